#include "estimate-threads.h"

#include <sys/mman.h>

#include <memory>

namespace ksm {

namespace {

// Small: the deepest frame is a read batch's iovec array (16 KiB).
constexpr size_t kStackBytes = 1024 * 1024;

bool Spawn(void* (*main)(void*), void* arg, bool detached, pthread_t* out) {
  pthread_attr_t attr;
  if (pthread_attr_init(&attr) != 0) return false;
  pthread_attr_setstacksize(&attr, kStackBytes);
  if (detached) pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t thread;
  const int err = pthread_create(&thread, &attr, main, arg);
  pthread_attr_destroy(&attr);
  if (err != 0) return false;
  if (out != nullptr) *out = thread;
  return true;
}

void* DetachedMain(void* arg) {
  std::unique_ptr<std::function<void()>> body(static_cast<std::function<void()>*>(arg));
  SeparateOwnStack();
  (*body)();
  return nullptr;
}

}  // namespace

void SeparateOwnStack() {
  pthread_setname_np(pthread_self(), "ksm-estimate");
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) != 0) return;
  void* base = nullptr;
  size_t size = 0;
  if (pthread_attr_getstack(&attr, &base, &size) == 0 && base != nullptr) {
    // Best effort: without it the figures stay right, only the VMA list of
    // this process shows our stack merged with a neighbour.
    madvise(base, size, MADV_DONTDUMP);
  }
  pthread_attr_destroy(&attr);
}

bool StartDetached(std::function<void()> body) {
  auto* arg = new std::function<void()>(std::move(body));
  if (Spawn(DetachedMain, arg, true, nullptr)) return true;
  delete arg;
  return false;
}

Crew::Crew(size_t size) {
  for (size_t lane = 1; lane < size; lane++) {
    auto* start = new Start{this, lane};
    pthread_t thread;
    if (!Spawn(HelperMain, start, false, &thread)) {
      delete start;
      break;  // fewer threads: the work is the same
    }
    helpers_.push_back(thread);
  }
}

Crew::~Crew() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  for (pthread_t thread : helpers_) pthread_join(thread, nullptr);
}

void* Crew::HelperMain(void* arg) {
  std::unique_ptr<Start> start(static_cast<Start*>(arg));
  SeparateOwnStack();
  Crew* crew = start->crew;
  const size_t lane = start->lane;
  uint64_t seen = 0;
  std::unique_lock<std::mutex> lock(crew->mutex_);
  for (;;) {
    crew->wake_.wait(lock, [&] { return crew->stop_ || crew->generation_ != seen; });
    if (crew->stop_) break;
    seen = crew->generation_;
    lock.unlock();
    crew->Work(lane);
    lock.lock();
    if (--crew->busy_ == 0) crew->idle_.notify_all();
  }
  return nullptr;
}

void Crew::Work(size_t lane) {
  for (;;) {
    const size_t item = next_.fetch_add(1, std::memory_order_relaxed);
    if (item >= count_) return;
    (*fn_)(lane, item);
  }
}

void Crew::ForEach(size_t count, const std::function<void(size_t, size_t)>& fn) {
  if (count == 0) return;
  if (helpers_.empty() || count == 1) {
    for (size_t item = 0; item < count; item++) fn(0, item);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    fn_ = &fn;
    count_ = count;
    next_.store(0, std::memory_order_relaxed);
    busy_ = helpers_.size();
    generation_++;
  }
  wake_.notify_all();
  Work(0);
  std::unique_lock<std::mutex> lock(mutex_);
  idle_.wait(lock, [&] { return busy_ == 0; });
  fn_ = nullptr;
}

}  // namespace ksm
