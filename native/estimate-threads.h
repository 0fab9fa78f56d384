// Threads of the estimate, our own (never the libuv pool): the pool is
// joined by process.exit() (uv_library_shutdown) and by a worker's teardown,
// so work on it holds both until it ends. An estimate runs on a detached
// thread of its own that a teardown only tells to stop, plus helpers it
// starts and joins itself.
#pragma once

#include <pthread.h>

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

namespace ksm {

// Starts `body` on a new detached thread; false when the system has none.
bool StartDetached(std::function<void()> body);

// What every estimate thread does first: keep its stack from merging with
// the memory around it. A new stack is mapped next to whatever the process
// mapped last, and from Linux 6.7 thread stacks are VM_NOHUGEPAGE like the
// buffers an application advises so: the kernel would merge the two into
// one VMA, and a later smaps read would show the application's buffer grown
// by our stack. MADV_DONTDUMP gives the stack a flag of its own
// (VM_DONTDUMP), so it stays a VMA of its own; the cost is that a core dump
// leaves out this thread's stack. Not MADV_DONTFORK or MADV_WIPEONFORK:
// glibc keeps every thread's descriptor at the top of its stack and walks
// them in a forked child (a child_process.spawn() after an estimate then
// died of SIGSEGV before it could exec).
void SeparateOwnStack();

// The estimate's own thread and `size - 1` helpers (started by the
// constructor, joined by the destructor): parallel loops whose items each
// thread claims one at a time, so a slow item holds one thread only.
class Crew {
 public:
  explicit Crew(size_t size);
  ~Crew();
  Crew(const Crew&) = delete;
  Crew& operator=(const Crew&) = delete;

  // Threads that run loops (fewer than asked when threads could not be had).
  size_t size() const { return helpers_.size() + 1; }

  // fn(lane, item) for every item in [0, count), spread over every thread
  // (lane 0 is the caller); returns when all are done. fn must not throw.
  void ForEach(size_t count, const std::function<void(size_t, size_t)>& fn);

 private:
  struct Start {
    Crew* crew;
    size_t lane;
  };
  static void* HelperMain(void* arg);
  void Work(size_t lane);

  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable idle_;
  const std::function<void(size_t, size_t)>* fn_ = nullptr;
  size_t count_ = 0;
  std::atomic<size_t> next_{0};
  uint64_t generation_ = 0;
  size_t busy_ = 0;
  bool stop_ = false;
  std::vector<pthread_t> helpers_;
};

}  // namespace ksm
