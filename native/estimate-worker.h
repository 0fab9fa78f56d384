// The estimate worker: hashes the touched private anonymous pages of
// processes on the libuv pool, in phases, one file each:
//   estimate-pagemap.cc  which pages are there (pagemap, nothing faulted in)
//   estimate-sample.cc   read and hash them, once or twice; tally per range
//   estimate-confirm.cc  sort by hash, confirm twins byte for byte
//   estimate-worker.cc   the run, progress, memory, the result for JS
#pragma once

#include <napi.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "hash.h"
#include "page-stats.h"
#include "scratch.h"

namespace ksm {

// An entry is 16 bytes: the hash and a reference packed as
// target (16 bits) | page number (44 bits: 56-bit user space) | flags (4).
constexpr uint64_t kFlagZero = 1;          // every byte zero
constexpr uint64_t kFlagVolatile = 2;      // changed between the samples
constexpr uint64_t kFlagSkip = 4;          // unreadable, or not a candidate
constexpr uint64_t kFlagMaybeZeroMap = 8;  // may map the shared zero page
constexpr uint64_t kFlagMask = 15;
constexpr int kTargetShift = 48;
constexpr uint64_t kPageNumberMask = (1ull << 44) - 1;
constexpr size_t kMaxTargets = 1u << 16;

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
  bool exited = false;
  size_t first = 0;              // entries [first, end) after the pagemap pass
  size_t end = 0;

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
  size_t expected_pages = 0;
  size_t batch_pages = 64;   // pages per process_vm_readv call while sampling
  bool pagemap_scan = true;  // try PAGEMAP_SCAN (pagewalk.h)
  double confirm_pause_ms = 0;
  PageHash hash = BestPageHash();
};

class EstimateWorker : public Napi::AsyncProgressWorker<Progress> {
 public:
  EstimateWorker(Napi::Env env, std::vector<Target> targets, const EstimateConfig& config,
                 std::shared_ptr<std::atomic<bool>> cancelled, Napi::Function on_progress);

  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute(const ExecutionProgress& progress) override;
  void OnProgress(const Progress* data, size_t count) override;
  void OnOK() override;
  void OnError(const Napi::Error& error) override;

 private:
  static constexpr size_t kWavePages = 64;
  static constexpr size_t kMaxIov = 1024;  // IOV_MAX

  bool Cancelled() const { return cancelled_->load(std::memory_order_relaxed); }
  bool Stopped() const { return err_ != 0 || Cancelled(); }
  void Fail(int err, const char* syscall, pid_t pid);
  void Report(Phase phase, double done, double total);
  void TrackMemory();
  void Run();
  void Sleep(double ms);
  Napi::Value Result(Napi::Env env);

  uint64_t AddressOf(uint64_t ref) const {
    return ((ref >> 4) & kPageNumberMask) << page_shift_;
  }

  // estimate-pagemap.cc
  void FindZeroPfn();
  void PagemapPass(uint32_t t);

  // estimate-sample.cc
  template <typename Address, typename Visit>
  int ReadPages(pid_t pid, size_t n, Address address, Visit visit);
  void ReadEnded(Target& target, int err);
  void Sample(bool again);
  void Tally();

  // estimate-confirm.cc
  void Group();
  void ConfirmWave();
  void ConfirmRun();
  void Record();

  Napi::Promise::Deferred deferred_;
  Napi::FunctionReference on_progress_;
  std::vector<Target> targets_;
  const EstimateConfig config_;
  std::shared_ptr<std::atomic<bool>> cancelled_;
  const ExecutionProgress* progress_ = nullptr;
  size_t page_ = 4096;
  unsigned page_shift_ = 12;
  uint64_t zero_pfn_ = 0;

  std::vector<Entry> entries_;
  Scratch scratch_;
  uint8_t* buffer_ = nullptr;  // read batches
  uint8_t* wave_ = nullptr;    // pages of a confirm wave
  uint8_t* rep_ = nullptr;     // a large run's representative
  std::vector<uint64_t> pending_;
  std::vector<uint64_t> rest_;
  std::vector<uint64_t> members_;
  std::vector<uint32_t> live_;
  std::vector<uint64_t> wave_refs_;
  std::vector<std::pair<size_t, size_t>> wave_runs_;  // offset, length
  std::vector<uint32_t> wave_order_;
  std::vector<uint8_t> wave_ok_;

  int err_ = 0;
  const char* syscall_ = "";
  pid_t err_pid_ = 0;
  uint64_t last_progress_ns_ = 0;
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
};

// Errors a single page can give process_vm_readv without the process being
// at fault: unmapped meanwhile, not readable, poisoned.
inline bool IsPageError(int err) {
  return err == EFAULT || err == ENOMEM || err == EIO || err == EHWPOISON;
}

// Reads the pages `address(i)`, i in [0, n), of one process in batches
// through process_vm_readv (never a raw pointer: memory unmapped meanwhile
// is an EFAULT, not a SIGSEGV) and calls visit(i, page or nullptr).
// Returns 0, or the errno that ended it (ESRCH: the process exited).
// A template in the header: the sample and confirm phases both inline it.
template <typename Address, typename Visit>
int EstimateWorker::ReadPages(pid_t pid, size_t n, Address address, Visit visit) {
  iovec remote[kMaxIov];
  size_t i = 0;
  while (i < n) {
    if (Cancelled()) return ECANCELED;
    size_t count = std::min(config_.batch_pages, n - i);
    size_t iovs = 0;
    for (size_t j = 0; j < count; j++) {
      uint64_t a = address(i + j);
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
    iovec local{buffer_, count * page_};
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
    bytes_read_ += static_cast<uint64_t>(done) * page_;
    for (size_t j = 0; j < done; j++) visit(i + j, buffer_ + j * page_);
    if (done == 0) {
      visit(i, nullptr);
      done = 1;
    }
    i += done;
  }
  return 0;
}

}  // namespace ksm
