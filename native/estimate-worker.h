// The estimate worker: hashes the touched private anonymous pages of
// processes on threads of its own (estimate-threads.h), in phases, one file
// each:
//   estimate-pagemap.cc  which pages are there (pagemap, nothing faulted in)
//   estimate-sample.cc   read and hash them, once or twice; tally per range
//   estimate-confirm.cc  sort by hash, confirm twins byte for byte, count
//                        the classes over the targets still there
//   estimate-worker.cc   the run, progress, memory, the result for JS
// Every loop checks for cancellation (a cancel() or the environment going)
// between batches, and the interval between the samples is a wait that a
// cancellation ends.
#pragma once

#include <napi.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "hash.h"
#include "page-stats.h"
#include "scratch.h"

namespace ksm {

class Crew;

// An entry is 16 bytes: the hash and a reference packed as
// target (16 bits) | page number (44 bits: 56-bit user space) | flags (4).
// After the confirm phase an entry holds a class member instead: the first
// member of a class has the class size in `hash`, the others 0.
constexpr uint64_t kFlagZero = 1;          // every byte zero
constexpr uint64_t kFlagVolatile = 2;      // changed between the samples
constexpr uint64_t kFlagSkip = 4;          // unreadable, or not a candidate
// Not mapped exclusively (pagemap's PM_MMAP_EXCLUSIVE clear): a KSM page,
// a page shared with a parent or child since fork(), or (PFNs hidden) maybe
// the shared zero page. Such a page is read through /proc/PID/mem, never
// process_vm_readv: process_vm_readv pins the pages it reads (FOLL_PIN),
// and the kernel unshares a pinned anonymous page that is not exclusive,
// giving the process a private copy: reading would undo the merge (or the
// sharing since fork) it is measuring.
constexpr uint64_t kFlagShared = 8;
constexpr uint64_t kFlagMask = 15;
constexpr int kTargetShift = 48;
constexpr uint64_t kPageNumberMask = (1ull << 44) - 1;
constexpr size_t kMaxTargets = 1u << 16;
constexpr size_t kMaxThreads = 256;

struct Entry {
  uint64_t hash;
  uint64_t ref;
};
static_assert(sizeof(Entry) == 16, "an entry is 16 bytes");

inline uint32_t TargetOf(uint64_t ref) {
  return static_cast<uint32_t>(ref >> kTargetShift);
}

enum Phase : uint32_t { kPhasePagemap, kPhaseSample, kPhaseResample, kPhaseConfirm };

struct Progress {
  uint32_t phase;
  double done;
  double total;
};

struct Target {
  pid_t pid = 0;
  std::vector<uint64_t> ranges;  // start, end pairs
  std::vector<uint8_t> readable;
  std::vector<PageStats> stats;  // one per range
  size_t expected_pages = 0;     // entries to reserve for the pagemap pass
  std::vector<Entry> entries;    // its pages, from the pagemap pass to the tally

  size_t RangeCount() const { return ranges.size() / 2; }
  // The range holding `address`; ranges are sorted and disjoint.
  size_t RangeOf(uint64_t address) const {
    size_t lo = 0;
    size_t hi = RangeCount();
    while (hi - lo > 1) {
      size_t mid = (lo + hi) / 2;
      if (ranges[mid * 2] <= address) lo = mid;
      else hi = mid;
    }
    return lo;
  }
};

struct EstimateConfig {
  double interval_ms = 0;
  size_t max_page_sharing = 256;
  size_t batch_pages = 64;   // pages per process_vm_readv call while sampling
  size_t threads = 1;        // threads hashing and confirming at once
  size_t expected_pages = 0; // all targets' pages (Target::expected_pages each)
  bool pagemap_scan = true;  // try PAGEMAP_SCAN (pagewalk.h)
  bool skip_refused = false; // a target we may not read is left out, not an error
  double confirm_pause_ms = 0;  // test hook: hold after the first confirm wave
  PageHash hash = BestPageHash();
};

// How an estimate is stopped early: cancel() from JS, or its environment
// being torn down. Shared by the worker and whoever may stop it.
class StopSignal {
 public:
  void Cancel() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      cancelled_.store(true, std::memory_order_relaxed);
    }
    wake_.notify_all();
  }
  bool Cancelled() const { return cancelled_.load(std::memory_order_relaxed); }
  // Waits `ms`, or less when cancelled meanwhile.
  void Wait(double ms) {
    std::unique_lock<std::mutex> lock(mutex_);
    wake_.wait_for(lock, std::chrono::duration<double, std::milli>(ms), [&] { return Cancelled(); });
  }

 private:
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<bool> cancelled_{false};
};

// A piece of one range for the pagemap pass, with its own counts (pieces of
// one range are walked on different threads and added up afterwards).
struct PagemapPiece {
  uint32_t range = 0;
  uint64_t start_vpn = 0;
  uint64_t end_vpn = 0;
  PageStats stats;
};

// A pagemap work item: consecutive pieces of one target, at most about
// kPagemapItemPages of address space, and the entries it found, in address
// order (the items of a target are joined in order afterwards).
struct PagemapItem {
  uint32_t target = 0;
  size_t first_piece = 0;
  size_t end_piece = 0;
  std::vector<Entry> entries;
};

// One thread's working set: its read buffer and confirm waves (slices of
// the worker's scratch mapping), its lists, its counts.
struct Lane {
  uint8_t* buffer = nullptr;  // read batches
  uint8_t* wave = nullptr;    // pages of a confirm wave
  uint8_t* rep = nullptr;     // a large run's representative
  std::vector<uint64_t> pending;
  std::vector<uint64_t> rest;
  std::vector<uint64_t> members;
  std::vector<uint32_t> live;
  std::vector<uint64_t> wave_refs;
  std::vector<std::pair<size_t, size_t>> wave_runs;  // offset, length
  std::vector<uint32_t> wave_order;
  std::vector<uint8_t> wave_ok;
  size_t written = 0;  // where the next class member goes (confirm)
  uint64_t pages_hashed = 0;
  uint64_t bytes_read = 0;
  uint64_t hash_collisions = 0;
  size_t memory = 0;  // its lists at their largest, in bytes
  // /proc/PID/mem of the targets whose shared pages this lane read last
  // (by target % kMemFds), opened when first needed, closed by CloseFiles().
  static constexpr size_t kMemFds = 16;
  struct MemFd {
    uint32_t target = 0;
    int fd = -1;
  };
  MemFd mem_fds[kMemFds];

  void TrackMemory();
  // The open mem file of target t (pid), or -1 with errno.
  int MemFdOf(uint32_t t, pid_t pid);
  void CloseFiles();
};

class EstimateWorker {
 public:
  using ProgressSink = std::function<void(const Progress&)>;

  EstimateWorker(std::vector<Target> targets, const EstimateConfig& config,
                 std::shared_ptr<StopSignal> stop);
  ~EstimateWorker();
  EstimateWorker(const EstimateWorker&) = delete;
  EstimateWorker& operator=(const EstimateWorker&) = delete;

  // The whole estimate, on the calling thread (and the helpers it starts).
  // `progress` is called from any of them, at most every 50 ms per phase.
  void Run(ProgressSink progress);

  // On the JS thread, after Run(): the result, or the error that ended it.
  bool failed() const { return err_ != 0; }
  Napi::Error Error(Napi::Env env) const;
  Napi::Value Result(Napi::Env env) const;

 private:
  static constexpr size_t kWavePages = 64;
  static constexpr size_t kMaxIov = 1024;  // IOV_MAX
  static constexpr size_t kChunkPages = 2048;     // sample work item
  static constexpr size_t kConfirmChunk = 16384;  // confirm work item (entries)
  // Pagemap work item: 16 MiB of address space; a larger range is cut into
  // at most kPagemapSplit pieces per thread (a sparse reservation of
  // terabytes is walked quickly by PAGEMAP_SCAN, not cut into millions).
  static constexpr size_t kPagemapItemPages = 4096;
  static constexpr size_t kPagemapSplit = 16;

  bool Cancelled() const { return stop_->Cancelled(); }
  bool Stopped() const { return failed_.load(std::memory_order_relaxed) || Cancelled(); }
  bool Exited(uint32_t t) const { return exited_[t].load(std::memory_order_relaxed); }
  void MarkExited(uint32_t t) { exited_[t].store(true, std::memory_order_relaxed); }
  // Left out like a target that exited, and said so apart.
  void MarkRefused(uint32_t t) {
    refused_[t].store(true, std::memory_order_relaxed);
    MarkExited(t);
  }
  bool Refused(uint32_t t) const { return refused_[t].load(std::memory_order_relaxed); }
  // errno of reading target t: gone, refused (with skip_refused) or a failure.
  void Ended(uint32_t t, int err, const char* syscall);
  void Fail(int err, const char* syscall, pid_t pid);
  void Report(Phase phase, double done, double total, bool force = false);
  // The peak of what the estimate holds, now plus `extra` bytes about to be.
  void TrackMemory(size_t extra = 0);
  bool Prepare();
  void Phases();

  uint64_t AddressOf(uint64_t ref) const {
    return ((ref >> 4) & kPageNumberMask) << page_shift_;
  }

  // estimate-pagemap.cc
  void FindZeroPfn();
  void PagemapPhase();
  void PlanPagemap();
  void PagemapWalk(PagemapItem& item);
  void JoinPagemap();

  // estimate-sample.cc
  template <typename Ref, typename Visit>
  int ReadPages(Lane& lane, uint32_t t, size_t n, Ref ref, Visit visit);
  int ReadShared(Lane& lane, uint32_t t, uint64_t address);
  void ReadEnded(uint32_t t, int err);
  void Sample(bool again);
  void SampleChunk(Lane& lane, uint32_t t, size_t begin, size_t end, bool again);
  void Tally(uint32_t t);
  void Gather();

  // estimate-confirm.cc
  void SortByHash();
  void Confirm();
  void ConfirmChunk(Lane& lane, size_t begin, size_t end);
  void ConfirmWave(Lane& lane);
  void ConfirmRun(Lane& lane);
  void Record(Lane& lane);
  void Account();
  void AccountClass(const uint64_t* members, size_t k);

  std::vector<Target> targets_;
  std::unique_ptr<std::atomic<bool>[]> exited_;
  std::unique_ptr<std::atomic<bool>[]> refused_;
  const EstimateConfig config_;
  std::shared_ptr<StopSignal> stop_;
  ProgressSink progress_;
  std::unique_ptr<Crew> crew_;
  std::vector<Lane> lanes_;
  size_t page_ = 4096;
  unsigned page_shift_ = 12;
  uint64_t zero_pfn_ = 0;

  std::vector<PagemapPiece> pieces_;
  std::vector<PagemapItem> items_;
  std::unique_ptr<std::atomic<size_t>[]> items_left_;  // per target, until its pagemap is read

  std::vector<Entry> entries_;
  // Confirm work items over entries_ (begin, end), and how far each one's
  // class members reach once confirmed.
  std::vector<std::pair<size_t, size_t>> chunks_;
  std::vector<size_t> chunk_written_;
  Scratch scratch_;

  std::mutex mutex_;  // err_, syscall_, err_pid_ and the pagemap counts
  std::atomic<bool> failed_{false};
  int err_ = 0;
  const char* syscall_ = "";
  pid_t err_pid_ = 0;
  std::atomic<uint64_t> last_progress_ns_{0};
  std::atomic<uint64_t> done_{0};  // pages (or entries) done in this phase
  std::atomic<bool> paused_{false};
  uint64_t pagemap_entries_ = 0;
  uint64_t pagemap_scans_ = 0;
  bool pagemap_scan_used_ = true;  // every target's ranges went through PAGEMAP_SCAN
  uint64_t pages_hashed_ = 0;
  uint64_t bytes_read_ = 0;
  uint64_t classes_ = 0;
  uint64_t kept_pages_ = 0;
  uint64_t sharing_pages_ = 0;
  uint64_t hash_collisions_ = 0;
  size_t peak_memory_ = 0;
  uint64_t pagemap_ns_ = 0;
  uint64_t sample_ns_ = 0;
  uint64_t resample_ns_ = 0;
  uint64_t confirm_ns_ = 0;
  size_t threads_used_ = 1;
};

// Errors a single page can give process_vm_readv without the process being
// at fault: unmapped meanwhile, not readable, poisoned.
inline bool IsPageError(int err) {
  return err == EFAULT || err == ENOMEM || err == EIO || err == EHWPOISON;
}

// Reads the pages of refs `ref(i)`, i in [0, n), of target t in batches
// through process_vm_readv (never a raw pointer: memory unmapped meanwhile
// is an EFAULT, not a SIGSEGV) into the lane's buffer and calls
// visit(i, page or nullptr). A page not mapped exclusively (kFlagShared) is
// read alone through /proc/PID/mem instead, which does not pin it. Returns
// 0, or the errno that ended it (ESRCH: the process exited; ECANCELED: the
// estimate was stopped).
// A template in the header: the sample and confirm phases both inline it.
template <typename Ref, typename Visit>
int EstimateWorker::ReadPages(Lane& lane, uint32_t t, size_t n, Ref ref, Visit visit) {
  const pid_t pid = targets_[t].pid;
  iovec remote[kMaxIov];
  size_t i = 0;
  while (i < n) {
    if (Stopped()) return ECANCELED;
    if ((ref(i) & kFlagShared) != 0) {
      const int got = ReadShared(lane, t, AddressOf(ref(i)));
      if (got < 0) return -got;
      visit(i, got == 0 ? nullptr : lane.buffer);
      i++;
      continue;
    }
    size_t count = std::min(config_.batch_pages, n - i);
    size_t iovs = 0;
    for (size_t j = 0; j < count; j++) {
      const uint64_t r = ref(i + j);
      if ((r & kFlagShared) != 0) {
        count = j;  // read on its own, after this batch
        break;
      }
      const uint64_t a = AddressOf(r);
      if (iovs > 0 &&
          reinterpret_cast<uint64_t>(remote[iovs - 1].iov_base) + remote[iovs - 1].iov_len == a) {
        remote[iovs - 1].iov_len += page_;
        continue;
      }
      if (iovs == kMaxIov) {
        count = j;
        break;
      }
      remote[iovs].iov_base = reinterpret_cast<void*>(a);
      remote[iovs].iov_len = page_;
      iovs++;
    }
    iovec local{lane.buffer, count * page_};
    ssize_t got = process_vm_readv(pid, &local, 1, remote, iovs, 0);
    if (got < 0) {
      int err = errno;
      if (err == EINTR) continue;
      if (!IsPageError(err)) return err;
      visit(i, nullptr);  // the first page of the batch is the one at fault
      i++;
      continue;
    }
    size_t done = static_cast<size_t>(got) / page_;
    lane.bytes_read += static_cast<uint64_t>(done) * page_;
    for (size_t j = 0; j < done; j++) visit(i + j, lane.buffer + j * page_);
    if (done == 0) {
      visit(i, nullptr);
      done = 1;
    }
    i += done;
  }
  return 0;
}

}  // namespace ksm
