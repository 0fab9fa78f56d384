#include "pages.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <utility>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "errors.h"
#include "pagewalk.h"
#include "view.h"

namespace ksm {

namespace {

// ---------------------------------------------------------------------------
// The page hash. The design is wyhash's (Wang Yi, public domain / Unlicense):
// 64x64->128 multiply, fold the halves with xor, four independent lanes so the
// multiplier stays busy. It is not wyhash's output (pages are fixed-size and
// a multiple of 64 bytes, so there is no tail), and it need not be: a
// collision costs one extra memcmp, never a wrong answer, because every match
// is confirmed byte for byte.
constexpr uint64_t kSecret0 = 0xa0761d6478bd642full;
constexpr uint64_t kSecret1 = 0xe7037ed1a0b428dbull;
constexpr uint64_t kSecret2 = 0x8ebc6af09c88c6e3ull;
constexpr uint64_t kSecret3 = 0x589965cc75374cc3ull;

inline uint64_t Mum(uint64_t a, uint64_t b) {
  __uint128_t r = static_cast<__uint128_t>(a) * b;
  return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
}

inline uint64_t Load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// /proc/PID/pagemap bits (Documentation/admin-guide/mm/pagemap.rst).
constexpr uint64_t kPmPresent = 1ull << 63;
constexpr uint64_t kPmSwap = 1ull << 62;
constexpr uint64_t kPmFile = 1ull << 61;  // file page or shared anon
constexpr uint64_t kPmExclusive = 1ull << 56;
constexpr uint64_t kPmPfnMask = (1ull << 55) - 1;

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

// Per-VMA figures, in this order (exported as pageStatFields).
enum Stat : size_t {
  kPresentPages,
  kSwappedPages,
  kFilePages,
  kZeroPageMapped,
  kCandidatePages,
  kUnreadablePages,
  kZeroPages,
  kVolatilePages,
  kDuplicatePages,
  kTwinInVma,
  kTwinInProcess,
  kTwinInOtherProcess,
  kSavedPages,
  kStatCount,
};

constexpr const char* kStatNames[kStatCount] = {
    "presentPages",     "swappedPages",       "filePages",
    "zeroPageMapped",   "candidatePages",     "unreadablePages",
    "zeroPages",        "volatilePages",      "duplicatePages",
    "twinInVma",        "twinInProcess",      "twinInOtherProcess",
    "savedPages",
};

enum Phase : uint32_t { kPhasePagemap, kPhaseSample, kPhaseResample, kPhaseConfirm };
constexpr const char* kPhaseNames[] = {"pagemap", "sample", "resample",
                                       "confirm"};

struct Progress {
  uint32_t phase;
  double done;
  double total;
};

struct Target {
  pid_t pid = 0;
  std::vector<uint64_t> ranges;  // start, end pairs
  std::vector<uint8_t> readable;
  std::vector<double> stats;     // ranges x kStatCount
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
  void Add(size_t range, Stat stat, double value) {
    stats[range * kStatCount + stat] += value;
  }
};

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull +
         static_cast<uint64_t>(ts.tv_nsec);
}

// Errors a single page can give process_vm_readv without the process being
// at fault: unmapped meanwhile, not readable, poisoned.
bool IsPageError(int err) {
  return err == EFAULT || err == ENOMEM || err == EIO || err == EHWPOISON;
}

// Where the shared zero page is, when pagemap shows PFNs (CAP_SYS_ADMIN):
// map a page, read-fault it, look it up.
uint64_t FindZeroPfn(size_t page) {
  void* mem = mmap(nullptr, page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return 0;
  volatile const uint8_t* p = static_cast<const uint8_t*>(mem);
  (void)p[0];
  uint64_t entry = 0;
  int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    off_t offset = static_cast<off_t>(reinterpret_cast<uintptr_t>(mem) / page * 8);
    if (pread(fd, &entry, sizeof(entry), offset) != sizeof(entry)) entry = 0;
    close(fd);
  }
  munmap(mem, page);
  return (entry & kPmPresent) != 0 ? (entry & kPmPfnMask) : 0;
}

// Page copies made while reading live on a mapping of their own, outside the
// ranges being scanned (those were fixed before it existed), and are unmapped
// at the end: copies left in malloc's free lists would show up as phantom
// twins when this process estimates itself again.
class Scratch {
 public:
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { Release(); }

  bool Map(size_t bytes) {
    Release();
    void* mem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return false;
    data_ = static_cast<uint8_t*>(mem);
    size_ = bytes;
    return true;
  }
  void Release() {
    if (data_ != nullptr) munmap(data_, size_);
    data_ = nullptr;
    size_ = 0;
  }
  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

class EstimateWorker : public Napi::AsyncProgressWorker<Progress> {
 public:
  EstimateWorker(Napi::Env env, std::vector<Target> targets, double interval_ms,
                 uint32_t max_page_sharing, size_t expected_pages, size_t batch_pages,
                 bool pagemap_scan, std::shared_ptr<std::atomic<bool>> cancelled,
                 Napi::Function on_progress)
      : Napi::AsyncProgressWorker<Progress>(env, "node-ksm:estimate"),
        deferred_(Napi::Promise::Deferred::New(env)),
        targets_(std::move(targets)),
        interval_ms_(interval_ms),
        max_page_sharing_(max_page_sharing),
        expected_pages_(expected_pages),
        batch_pages_(batch_pages),
        pagemap_scan_(pagemap_scan),
        cancelled_(std::move(cancelled)) {
    page_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    page_shift_ = static_cast<unsigned>(__builtin_ctzl(page_));
    if (!on_progress.IsEmpty()) on_progress_ = Napi::Persistent(on_progress);
  }

  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute(const ExecutionProgress& progress) override {
    progress_ = &progress;
    try {
      Run();
    } catch (const std::exception&) {
      // Only allocation can throw here (vectors growing).
      Fail(ENOMEM, "malloc", 0);
    }
    progress_ = nullptr;
  }

  void OnProgress(const Progress* data, size_t count) override {
    if (on_progress_.IsEmpty() || data == nullptr || count == 0) return;
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    on_progress_.Call({Napi::String::New(env, kPhaseNames[data->phase]),
                       Napi::Number::New(env, data->done),
                       Napi::Number::New(env, data->total)});
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    on_progress_.Reset();
    if (err_ != 0) {
      Napi::Error error = SystemError(env, err_, syscall_);
      error.Set("pid", Napi::Number::New(env, err_pid_));
      deferred_.Reject(error.Value());
      return;
    }
    deferred_.Resolve(Result(env));
  }

  void OnError(const Napi::Error& error) override {
    on_progress_.Reset();
    deferred_.Reject(error.Value());
  }

 private:
  bool Cancelled() const { return cancelled_->load(std::memory_order_relaxed); }

  void Fail(int err, const char* syscall, pid_t pid) {
    if (err_ != 0) return;
    err_ = err;
    syscall_ = syscall;
    err_pid_ = pid;
  }

  bool Stopped() const { return err_ != 0 || Cancelled(); }

  void Report(Phase phase, double done, double total) {
    uint64_t now = NowNs();
    if (progress_ == nullptr) return;
    if (done < total && now - last_progress_ns_ < 50000000ull) return;
    last_progress_ns_ = now;
    Progress p{phase, done, total};
    progress_->Send(&p, 1);
  }

  void TrackMemory() {
    size_t bytes = entries_.capacity() * sizeof(Entry) + scratch_.size() +
                   PagemapWalker::kFootprint +
                   (pending_.capacity() + rest_.capacity() + members_.capacity()) *
                       sizeof(uint64_t) +
                   live_.capacity() * sizeof(uint32_t) +
                   wave_refs_.capacity() * sizeof(uint64_t) +
                   wave_runs_.capacity() * sizeof(std::pair<size_t, size_t>) +
                   wave_order_.capacity() * sizeof(uint32_t) + wave_ok_.capacity();
    peak_memory_ = std::max(peak_memory_, bytes);
  }

  void Run() {
    // Read batches, the confirm wave, and one representative page.
    const size_t batch_bytes = std::max(batch_pages_, kWavePages) * page_;
    if (!scratch_.Map(batch_bytes + kWavePages * page_ + page_)) {
      Fail(errno, "mmap", 0);
      return;
    }
    buffer_ = scratch_.data();
    wave_ = scratch_.data() + batch_bytes;
    rep_ = wave_ + kWavePages * page_;
    zero_pfn_ = FindZeroPfn(page_);
    if (expected_pages_ > 0) entries_.reserve(expected_pages_ + expected_pages_ / 64 + 1024);
    TrackMemory();

    uint64_t t0 = NowNs();
    for (uint32_t t = 0; t < targets_.size() && !Stopped(); t++) PagemapPass(t);
    TrackMemory();
    uint64_t t1 = NowNs();
    pagemap_ns_ = t1 - t0;
    if (Stopped()) return;

    Sample(false);
    uint64_t t2 = NowNs();
    sample_ns_ = t2 - t1;
    if (Stopped()) return;

    if (interval_ms_ > 0) {
      Sleep(interval_ms_);
      if (Stopped()) return;
      uint64_t t3 = NowNs();
      Sample(true);
      resample_ns_ = NowNs() - t3;
      if (Stopped()) return;
    }

    Tally();
    uint64_t t4 = NowNs();
    Group();
    confirm_ns_ = NowNs() - t4;
    TrackMemory();
    scratch_.Release();
    for (Target& target : targets_) {
      if (target.exited) std::fill(target.stats.begin(), target.stats.end(), 0.0);
    }
  }

  void Sleep(double ms) {
    uint64_t until = NowNs() + static_cast<uint64_t>(ms * 1e6);
    while (!Cancelled()) {
      uint64_t now = NowNs();
      if (now >= until) break;
      uint64_t step = std::min<uint64_t>(until - now, 10000000ull);
      timespec ts{static_cast<time_t>(step / 1000000000ull),
                  static_cast<long>(step % 1000000000ull)};
      nanosleep(&ts, nullptr);
    }
  }

  // Reads /proc/PID/pagemap for the ranges: which pages are present, swapped,
  // file-backed or the zero page, without faulting anything in.
  void PagemapPass(uint32_t t) {
    Target& target = targets_[t];
    target.first = entries_.size();
    std::string path = "/proc/" + std::to_string(target.pid) + "/pagemap";
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (err == ENOENT || err == ESRCH) target.exited = true;
      else Fail(err, "open", target.pid);
      target.end = entries_.size();
      return;
    }
    const bool pfn_visible = zero_pfn_ != 0;
    PagemapWalker walker(fd, page_, pagemap_scan_);
    for (size_t r = 0; r < target.RangeCount() && !Stopped() && !target.exited; r++) {
      const uint64_t start = target.ranges[r * 2] >> page_shift_;
      const uint64_t end = target.ranges[r * 2 + 1] >> page_shift_;
      const bool readable = target.readable[r] != 0;
      int err = walker.Walk(start, end, [&](uint64_t page, const uint64_t* pagemap, size_t n) {
        for (size_t i = 0; i < n; i++) {
          uint64_t pm = pagemap[i];
          if ((pm & kPmPresent) == 0) {
            if ((pm & kPmSwap) != 0) target.Add(r, kSwappedPages, 1);
            continue;
          }
          target.Add(r, kPresentPages, 1);
          if ((pm & kPmFile) != 0) {
            target.Add(r, kFilePages, 1);
            continue;
          }
          if (pfn_visible && (pm & kPmPfnMask) == zero_pfn_) {
            target.Add(r, kZeroPageMapped, 1);
            continue;
          }
          if (!readable) {
            target.Add(r, kUnreadablePages, 1);
            continue;
          }
          uint64_t ref = (static_cast<uint64_t>(t) << kTargetShift) |
                         (((page + i) & kPageNumberMask) << 4);
          // Without PFNs a page mapped once is surely an anonymous page of
          // its own; one mapped more than once may be the zero page.
          if (!pfn_visible && (pm & kPmExclusive) == 0) ref |= kFlagMaybeZeroMap;
          entries_.push_back(Entry{0, ref});
        }
        Report(kPhasePagemap, static_cast<double>(t), static_cast<double>(targets_.size()));
        return !Cancelled();
      });
      if (err == PagemapWalker::kEnded || err == ESRCH) {
        // The mm is gone: the process exited.
        target.exited = true;
      } else if (err != 0) {
        Fail(err, walker.failed_syscall(), target.pid);
      }
    }
    if (!walker.scanning()) pagemap_scan_used_ = false;
    pagemap_entries_ += walker.entries_read();
    pagemap_scans_ += walker.scan_calls();
    close(fd);
    target.end = entries_.size();
  }

  uint64_t AddressOf(uint64_t ref) const {
    return ((ref >> 4) & kPageNumberMask) << page_shift_;
  }

  // Reads the pages `address(i)`, i in [0, n), of one process in batches
  // through process_vm_readv (never a raw pointer: memory unmapped meanwhile
  // is an EFAULT, not a SIGSEGV) and calls visit(i, page or nullptr).
  // Returns 0, or the errno that ended it (ESRCH: the process exited).
  template <typename Address, typename Visit>
  int ReadPages(pid_t pid, size_t n, Address address, Visit visit) {
    iovec remote[kMaxIov];
    size_t i = 0;
    while (i < n) {
      if (Cancelled()) return ECANCELED;
      size_t count = std::min(batch_pages_, n - i);
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

  // Marks a target gone, or the whole estimate failed, after ReadPages.
  void ReadEnded(Target& target, int err) {
    if (err == 0 || err == ECANCELED) return;
    if (err == ESRCH) target.exited = true;
    else Fail(err, "process_vm_readv", target.pid);
  }

  // Hashes every entry (first sample), or re-hashes and marks the ones that
  // changed (second sample).
  void Sample(bool again) {
    const Phase phase = again ? kPhaseResample : kPhaseSample;
    const double total = static_cast<double>(entries_.size());
    double done = 0;
    for (Target& target : targets_) {
      if (Stopped()) return;
      if (target.exited) continue;
      Entry* base = entries_.data() + target.first;
      // The entries still to read in the second sample: not skipped.
      std::vector<uint32_t>& live = live_;
      live.clear();
      size_t n = target.end - target.first;
      if (again) {
        for (size_t i = 0; i < n; i++) {
          if ((base[i].ref & kFlagSkip) == 0) live.push_back(static_cast<uint32_t>(i));
        }
        TrackMemory();
      }
      size_t count = again ? live.size() : n;
      auto index = [&](size_t i) { return again ? live[i] : i; };
      int err = ReadPages(
          target.pid, count, [&](size_t i) { return AddressOf(base[index(i)].ref); },
          [&](size_t i, const uint8_t* page) {
            Entry& entry = base[index(i)];
            if (page == nullptr) {
              entry.ref |= again ? kFlagVolatile : kFlagSkip;
              return;
            }
            bool zero = false;
            uint64_t hash = HashPage(page, page_, &zero);
            if (!again) {
              entry.hash = hash;
              if (zero) entry.ref |= kFlagZero;
              pages_hashed_++;
            } else if (hash != entry.hash) {
              entry.ref |= kFlagVolatile;
            }
            if (((i + 1) & 4095) == 0) Report(phase, done + static_cast<double>(i + 1), total);
          });
      ReadEnded(target, err);
      done += static_cast<double>(n);
    }
    Report(phase, total, total);
    live_.clear();
    live_.shrink_to_fit();
  }

  // Per-VMA counts of what each entry turned out to be; the entries that can
  // merge with a twin stay for Group().
  void Tally() {
    for (Target& target : targets_) {
      if (target.exited) continue;
      size_t r = 0;
      for (size_t i = target.first; i < target.end; i++) {
        Entry& entry = entries_[i];
        uint64_t address = AddressOf(entry.ref);
        while (r + 1 < target.RangeCount() && target.ranges[r * 2 + 1] <= address) r++;
        const uint64_t flags = entry.ref & kFlagMask;
        if ((flags & kFlagSkip) != 0) {
          target.Add(r, kUnreadablePages, 1);
          continue;
        }
        if ((flags & kFlagMaybeZeroMap) != 0 && (flags & kFlagZero) != 0) {
          // Zero content, mapped more than once, PFNs hidden: counted as the
          // shared zero page, which is what a never-written read gives.
          target.Add(r, kZeroPageMapped, 1);
          entry.ref |= kFlagSkip;
          continue;
        }
        target.Add(r, kCandidatePages, 1);
        if ((flags & kFlagVolatile) != 0) {
          target.Add(r, kVolatilePages, 1);
          continue;
        }
        if ((flags & kFlagZero) != 0) target.Add(r, kZeroPages, 1);
      }
    }
    // Only stable, non-zero pages of live processes look for twins.
    entries_.erase(std::remove_if(entries_.begin(), entries_.end(),
                                  [&](const Entry& e) {
                                    return (e.ref & (kFlagSkip | kFlagVolatile | kFlagZero)) != 0 ||
                                           targets_[TargetOf(e.ref)].exited;
                                  }),
                   entries_.end());
  }

  // Sorts by hash, then confirms each run of equal hashes byte for byte:
  // a class of k identical pages saves k - ceil(k / max_page_sharing).
  // Small runs are gathered into waves of up to kWavePages pages, read with
  // one process_vm_readv per target and compared in memory; a run larger
  // than a wave is streamed against its representative (ConfirmRun).
  void Group() {
    std::sort(entries_.begin(), entries_.end(), [](const Entry& a, const Entry& b) {
      return a.hash != b.hash ? a.hash < b.hash : a.ref < b.ref;
    });
    TrackMemory();
    const double total = static_cast<double>(entries_.size());
    size_t i = 0;
    while (i < entries_.size() && !Stopped()) {
      wave_refs_.clear();
      wave_runs_.clear();
      while (i < entries_.size()) {
        size_t j = i + 1;
        while (j < entries_.size() && entries_[j].hash == entries_[i].hash) j++;
        const size_t len = j - i;
        if (len < 2) {
          i = j;
          continue;
        }
        if (len > kWavePages) {
          if (!wave_refs_.empty()) break;  // finish the wave first
          pending_.clear();
          for (size_t k = i; k < j; k++) pending_.push_back(entries_[k].ref & ~kFlagMask);
          ConfirmRun();
          i = j;
          continue;
        }
        if (wave_refs_.size() + len > kWavePages) break;
        wave_runs_.push_back({wave_refs_.size(), len});
        for (size_t k = i; k < j; k++) wave_refs_.push_back(entries_[k].ref & ~kFlagMask);
        i = j;
      }
      if (!wave_refs_.empty()) ConfirmWave();
      Report(kPhaseConfirm, static_cast<double>(i), total);
    }
  }

  void ConfirmWave() {
    const size_t n = wave_refs_.size();
    // Read order: by target then address, so each target is one call.
    wave_order_.resize(n);
    for (size_t k = 0; k < n; k++) wave_order_[k] = static_cast<uint32_t>(k);
    std::sort(wave_order_.begin(), wave_order_.end(),
              [&](uint32_t x, uint32_t y) { return wave_refs_[x] < wave_refs_[y]; });
    wave_ok_.assign(n, 0);
    size_t a = 0;
    while (a < n) {
      uint32_t t = TargetOf(wave_refs_[wave_order_[a]]);
      size_t b = a;
      while (b < n && TargetOf(wave_refs_[wave_order_[b]]) == t) b++;
      Target& target = targets_[t];
      const size_t base = a;
      if (!target.exited) {
        int err = ReadPages(
            target.pid, b - a, [&](size_t k) { return AddressOf(wave_refs_[wave_order_[base + k]]); },
            [&](size_t k, const uint8_t* page) {
              if (page == nullptr) return;  // gone meanwhile: no twin
              const uint32_t slot = wave_order_[base + k];
              std::memcpy(wave_ + slot * page_, page, page_);
              wave_ok_[slot] = 1;
            });
        ReadEnded(target, err);
      }
      a = b;
    }
    for (const auto& run : wave_runs_) {
      rest_.clear();
      for (size_t s = run.first; s < run.first + run.second; s++) {
        if (wave_ok_[s] != 0) rest_.push_back(s);
      }
      while (rest_.size() >= 2) {
        const uint8_t* rep = wave_ + rest_[0] * page_;
        members_.clear();
        pending_.clear();
        for (uint64_t s : rest_) {
          if (s == rest_[0] || std::memcmp(wave_ + s * page_, rep, page_) == 0) {
            members_.push_back(wave_refs_[s]);
          } else {
            pending_.push_back(s);
          }
        }
        if (!pending_.empty()) hash_collisions_++;
        if (members_.size() >= 2) Record();
        rest_.swap(pending_);
      }
    }
  }

  void ConfirmRun() {
    while (pending_.size() >= 2 && !Stopped()) {
      members_.clear();
      rest_.clear();
      // pending_ is sorted by ref, so by target: each target's slice is read
      // in batches. The first page is the representative, read in the same
      // call as the pages after it (most classes are pairs: one syscall).
      bool have_rep = false;
      bool rep_lost = false;
      size_t a = 0;
      while (a < pending_.size()) {
        uint32_t t = TargetOf(pending_[a]);
        size_t b = a;
        while (b < pending_.size() && TargetOf(pending_[b]) == t) b++;
        Target& target = targets_[t];
        const size_t base = a;
        if (!target.exited) {
          int err = ReadPages(
              target.pid, b - a, [&](size_t k) { return AddressOf(pending_[base + k]); },
              [&](size_t k, const uint8_t* page) {
                const uint64_t ref = pending_[base + k];
                if (base + k == 0) {
                  if (page == nullptr) {
                    rep_lost = true;
                  } else {
                    std::memcpy(rep_, page, page_);
                    have_rep = true;
                    members_.push_back(ref);
                  }
                  return;
                }
                if (page == nullptr) return;  // gone meanwhile: no twin
                if (have_rep && std::memcmp(page, rep_, page_) == 0) members_.push_back(ref);
                else rest_.push_back(ref);
              });
          ReadEnded(target, err);
          if (base == 0 && !have_rep) rep_lost = true;
        } else if (base == 0) {
          rep_lost = true;
        }
        a = b;
      }
      if (rep_lost) {
        // The representative could not be read: the others try again without it.
        members_.clear();
      } else if (!rest_.empty()) {
        hash_collisions_++;
      }
      if (members_.size() >= 2) Record();
      pending_.swap(rest_);
      TrackMemory();
    }
  }

  // One class of identical pages, members sorted by ref (target, address).
  void Record() {
    const size_t k = members_.size();
    const size_t copies = (k + max_page_sharing_ - 1) / max_page_sharing_;
    const double share = static_cast<double>(k - copies) / static_cast<double>(k);
    classes_++;
    // A last group of one has nothing to share with: it stays unmerged.
    kept_pages_ += k / max_page_sharing_ + (k % max_page_sharing_ >= 2 ? 1 : 0);
    sharing_pages_ += k - copies;
    size_t a = 0;
    while (a < k) {
      uint32_t t = TargetOf(members_[a]);
      size_t b = a;
      while (b < k && TargetOf(members_[b]) == t) b++;
      Target& target = targets_[t];
      const size_t in_process = b - a;
      size_t c = a;
      while (c < b) {
        size_t r = target.RangeOf(AddressOf(members_[c]));
        size_t d = c;
        while (d < b && target.RangeOf(AddressOf(members_[d])) == r) d++;
        const double n = static_cast<double>(d - c);
        target.Add(r, kDuplicatePages, n);
        if (d - c >= 2) target.Add(r, kTwinInVma, n);
        if (in_process >= 2) target.Add(r, kTwinInProcess, n);
        if (k > in_process) target.Add(r, kTwinInOtherProcess, n);
        target.Add(r, kSavedPages, n * share);
        c = d;
      }
      a = b;
    }
  }

  Napi::Value Result(Napi::Env env) {
    Napi::Object result = Napi::Object::New(env);
    result.Set("cancelled", Napi::Boolean::New(env, Cancelled()));
    Napi::Array targets = Napi::Array::New(env, targets_.size());
    for (uint32_t t = 0; t < targets_.size(); t++) {
      const Target& target = targets_[t];
      Napi::Object item = Napi::Object::New(env);
      item.Set("pid", Napi::Number::New(env, target.pid));
      item.Set("exited", Napi::Boolean::New(env, target.exited));
      Napi::Float64Array stats = Napi::Float64Array::New(env, target.stats.size());
      std::copy(target.stats.begin(), target.stats.end(), stats.Data());
      item.Set("stats", stats);
      targets.Set(t, item);
    }
    result.Set("targets", targets);
    result.Set("pfnVisible", Napi::Boolean::New(env, zero_pfn_ != 0));
    result.Set("pagemapEntries", Napi::Number::New(env, static_cast<double>(pagemap_entries_)));
    result.Set("pagemapScans", Napi::Number::New(env, static_cast<double>(pagemap_scans_)));
    result.Set("pagemapScan", Napi::Boolean::New(env, pagemap_scan_ && pagemap_scan_used_));
    result.Set("pagesHashed", Napi::Number::New(env, static_cast<double>(pages_hashed_)));
    result.Set("bytesRead", Napi::Number::New(env, static_cast<double>(bytes_read_)));
    result.Set("memoryBytes", Napi::Number::New(env, static_cast<double>(peak_memory_)));
    result.Set("classes", Napi::Number::New(env, static_cast<double>(classes_)));
    result.Set("keptPages", Napi::Number::New(env, static_cast<double>(kept_pages_)));
    result.Set("sharingPages", Napi::Number::New(env, static_cast<double>(sharing_pages_)));
    result.Set("hashCollisions", Napi::Number::New(env, static_cast<double>(hash_collisions_)));
    Napi::Object timings = Napi::Object::New(env);
    timings.Set("pagemapNs", Napi::Number::New(env, static_cast<double>(pagemap_ns_)));
    timings.Set("sampleNs", Napi::Number::New(env, static_cast<double>(sample_ns_)));
    timings.Set("resampleNs", Napi::Number::New(env, static_cast<double>(resample_ns_)));
    timings.Set("confirmNs", Napi::Number::New(env, static_cast<double>(confirm_ns_)));
    result.Set("timings", timings);
    return result;
  }

  static constexpr size_t kWavePages = 64;
  static constexpr size_t kMaxIov = 1024;    // IOV_MAX

  Napi::Promise::Deferred deferred_;
  Napi::FunctionReference on_progress_;
  std::vector<Target> targets_;
  double interval_ms_;
  size_t max_page_sharing_;
  size_t expected_pages_;
  size_t batch_pages_;  // pages per process_vm_readv call while sampling
  bool pagemap_scan_;   // try PAGEMAP_SCAN (pagewalk.h)
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

double NumberProperty(Napi::Env env, Napi::Object object, const char* name,
                      double min, double max) {
  Napi::Value value = object.Get(name);
  if (!value.IsNumber()) {
    throw Napi::TypeError::New(env, std::string(name) + " must be a number");
  }
  double number = value.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(number) || number < min || number > max) {
    throw Napi::RangeError::New(env, std::string(name) + " is out of range");
  }
  return number;
}

}  // namespace

namespace {

uint64_t HashPageScalar(const uint8_t* data, size_t len, bool* all_zero) {
  uint64_t s0 = kSecret0 ^ len;
  uint64_t s1 = kSecret1;
  uint64_t s2 = kSecret2;
  uint64_t s3 = kSecret3;
  uint64_t any = 0;
  for (size_t i = 0; i < len; i += 64) {
    const uint8_t* p = data + i;
    uint64_t w0 = Load64(p), w1 = Load64(p + 8), w2 = Load64(p + 16), w3 = Load64(p + 24);
    uint64_t w4 = Load64(p + 32), w5 = Load64(p + 40), w6 = Load64(p + 48), w7 = Load64(p + 56);
    any |= w0 | w1 | w2 | w3 | w4 | w5 | w6 | w7;
    s0 = Mum(w0 ^ kSecret1, w1 ^ s0);
    s1 = Mum(w2 ^ kSecret2, w3 ^ s1);
    s2 = Mum(w4 ^ kSecret3, w5 ^ s2);
    s3 = Mum(w6 ^ kSecret0, w7 ^ s3);
  }
  *all_zero = any == 0;
  uint64_t h = Mum(s0 ^ kSecret1, s1 ^ kSecret2) ^ Mum(s2 ^ kSecret3, s3 ^ kSecret0);
  return Mum(h ^ kSecret0, len ^ kSecret1);
}

#if defined(__x86_64__)
// XXH3's stripe accumulation (Yann Collet's design, BSD-2-Clause; the idea,
// not its code): per 64-bit lane acc += lo32(v ^ key) * hi32(v ^ key) plus
// the neighbouring lane's input. The key moves on with every stripe so that
// swapping two stripes changes the hash; the eight lanes are folded with the
// multiply-fold above. About three times the scalar speed on AVX2.
__attribute__((target("avx2"))) uint64_t HashPageAvx2(const uint8_t* data, size_t len,
                                                     bool* all_zero) {
  __m256i acc0 = _mm256_set_epi64x(kSecret0, kSecret1, kSecret2, kSecret3);
  __m256i acc1 = _mm256_set_epi64x(kSecret3, kSecret2, kSecret1, kSecret0);
  __m256i key0 = _mm256_set_epi64x(kSecret1, kSecret3, kSecret0, kSecret2);
  __m256i key1 = _mm256_set_epi64x(kSecret2, kSecret0, kSecret3, kSecret1);
  const __m256i step = _mm256_set1_epi64x(0x9e3779b97f4a7c15ull);
  __m256i any = _mm256_setzero_si256();
  for (size_t i = 0; i < len; i += 64) {
    __m256i v0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(data + i));
    __m256i v1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(data + i + 32));
    any = _mm256_or_si256(any, _mm256_or_si256(v0, v1));
    __m256i x0 = _mm256_xor_si256(v0, key0);
    __m256i x1 = _mm256_xor_si256(v1, key1);
    __m256i p0 = _mm256_mul_epu32(x0, _mm256_srli_epi64(x0, 32));
    __m256i p1 = _mm256_mul_epu32(x1, _mm256_srli_epi64(x1, 32));
    acc0 = _mm256_add_epi64(acc0, _mm256_add_epi64(p0, _mm256_shuffle_epi32(v0, _MM_SHUFFLE(1, 0, 3, 2))));
    acc1 = _mm256_add_epi64(acc1, _mm256_add_epi64(p1, _mm256_shuffle_epi32(v1, _MM_SHUFFLE(1, 0, 3, 2))));
    key0 = _mm256_add_epi64(key0, step);
    key1 = _mm256_add_epi64(key1, step);
  }
  *all_zero = _mm256_testz_si256(any, any) != 0;
  alignas(32) uint64_t lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), acc0);
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes + 4), acc1);
  uint64_t h = kSecret0 ^ len;
  for (int i = 0; i < 8; i += 2) h = Mum(lanes[i] ^ kSecret1, lanes[i + 1] ^ h);
  return Mum(h ^ kSecret2, len ^ kSecret3);
}
#endif

using HashFn = uint64_t (*)(const uint8_t*, size_t, bool*);

HashFn PickHash() {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2")) return HashPageAvx2;
#endif
  return HashPageScalar;
}

}  // namespace

uint64_t HashPage(const uint8_t* data, size_t len, bool* all_zero) {
  // Chosen once per process; a const, so no mutable state is shared.
  static const HashFn hash = PickHash();
  return hash(data, len, all_zero);
}

Napi::Value EstimatePages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsArray() || !info[1].IsObject()) {
    throw Napi::TypeError::New(
        env, "estimatePages(targets: object[], options: object, onProgress?: function)");
  }
  Napi::Function on_progress;
  if (info.Length() >= 3 && !info[2].IsUndefined()) {
    if (!info[2].IsFunction()) throw Napi::TypeError::New(env, "onProgress must be a function");
    on_progress = info[2].As<Napi::Function>();
  }
  Napi::Object options = info[1].As<Napi::Object>();
  double interval_ms = NumberProperty(env, options, "intervalMs", 0, 86400000);
  double max_sharing = NumberProperty(env, options, "maxPageSharing", 2, 1e9);
  double expected = NumberProperty(env, options, "expectedPages", 0, 1e12);
  double batch_pages = NumberProperty(env, options, "batchPages", 1, 1024);
  // Optional, default true: false reads pagemap linearly (the pre-6.7 path).
  Napi::Value scan_option = options.Get("pagemapScan");
  if (!scan_option.IsUndefined() && !scan_option.IsBoolean()) {
    throw Napi::TypeError::New(env, "pagemapScan must be a boolean");
  }
  const bool pagemap_scan = scan_option.IsUndefined() || scan_option.As<Napi::Boolean>().Value();

  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  Napi::Array list = info[0].As<Napi::Array>();
  if (list.Length() > kMaxTargets) {
    throw Napi::RangeError::New(env, "at most 65536 targets");
  }
  std::vector<Target> targets;
  targets.reserve(list.Length());
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Value item = list.Get(i);
    if (!item.IsObject()) throw Napi::TypeError::New(env, "each target must be an object");
    Napi::Object object = item.As<Napi::Object>();
    Target target;
    double pid = NumberProperty(env, object, "pid", 1, 4194304);
    if (std::trunc(pid) != pid) throw Napi::RangeError::New(env, "pid must be an integer");
    target.pid = static_cast<pid_t>(pid);
    Napi::Value ranges = object.Get("ranges");
    Napi::Value readable = object.Get("readable");
    if (!ranges.IsTypedArray() ||
        ranges.As<Napi::TypedArray>().TypedArrayType() != napi_biguint64_array) {
      throw Napi::TypeError::New(env, "ranges must be a BigUint64Array");
    }
    if (!readable.IsTypedArray() ||
        readable.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      throw Napi::TypeError::New(env, "readable must be a Uint8Array");
    }
    Napi::BigUint64Array r = ranges.As<Napi::BigUint64Array>();
    Napi::Uint8Array ok = readable.As<Napi::Uint8Array>();
    if (r.ElementLength() % 2 != 0 || ok.ElementLength() != r.ElementLength() / 2) {
      throw Napi::RangeError::New(env, "ranges must hold start, end pairs, one readable flag each");
    }
    uint64_t previous = 0;
    for (size_t k = 0; k < r.ElementLength(); k += 2) {
      uint64_t start = r[k];
      uint64_t end = r[k + 1];
      if (start % page != 0 || end % page != 0 || end <= start || start < previous ||
          end / page > kPageNumberMask) {
        throw Napi::RangeError::New(env, "ranges must be sorted, disjoint and page-aligned");
      }
      previous = end;
      target.ranges.push_back(start);
      target.ranges.push_back(end);
      target.readable.push_back(ok[k / 2]);
    }
    target.stats.assign(target.RangeCount() * kStatCount, 0.0);
    targets.push_back(std::move(target));
  }

  auto cancelled = std::make_shared<std::atomic<bool>>(false);
  auto* worker = new EstimateWorker(env, std::move(targets), interval_ms,
                                    static_cast<uint32_t>(max_sharing),
                                    static_cast<size_t>(expected),
                                    static_cast<size_t>(batch_pages), pagemap_scan, cancelled,
                                    on_progress);
  Napi::Promise promise = worker->Promise();
  worker->Queue();

  Napi::Object handle = Napi::Object::New(env);
  handle.Set("promise", promise);
  handle.Set("cancel", Napi::Function::New(
                           env,
                           [cancelled](const Napi::CallbackInfo& cb) {
                             cancelled->store(true, std::memory_order_relaxed);
                             return cb.Env().Undefined();
                           },
                           "cancel"));
  return handle;
}

Napi::Value HashPages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1) throw Napi::TypeError::New(env, "hashPages(view)");
  ViewMemory view = GetViewMemory(env, info[0]);
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t pages = view.length / page;
  uint64_t digest = 0;
  size_t zero = 0;
  uint64_t t0 = NowNs();
  for (size_t i = 0; i < pages; i++) {
    bool all_zero = false;
    digest ^= HashPage(view.data + i * page, page, &all_zero);
    zero += all_zero ? 1 : 0;
  }
  uint64_t ns = NowNs() - t0;
  Napi::Object result = Napi::Object::New(env);
  result.Set("pages", Napi::Number::New(env, static_cast<double>(pages)));
  result.Set("zeroPages", Napi::Number::New(env, static_cast<double>(zero)));
  result.Set("nanoseconds", Napi::Number::New(env, static_cast<double>(ns)));
  result.Set("digest", Napi::BigInt::New(env, digest));
  return result;
}

Napi::Value ReadBandwidth(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[1].IsNumber()) {
    throw Napi::TypeError::New(env, "readBandwidth(view, passes)");
  }
  ViewMemory view = GetViewMemory(env, info[0]);
  double passes_raw = info[1].As<Napi::Number>().DoubleValue();
  if (!(passes_raw >= 1 && passes_raw <= 1000)) {
    throw Napi::RangeError::New(env, "passes must be from 1 to 1000");
  }
  if (reinterpret_cast<uintptr_t>(view.data) % 8 != 0) {
    throw Napi::RangeError::New(env, "the view must start on an 8-byte boundary");
  }
  const size_t passes = static_cast<size_t>(passes_raw);
  const size_t words = view.length / 32 * 4;
  const uint64_t* p = reinterpret_cast<const uint64_t*>(view.data);
  uint64_t a = 0, b = 0, c = 0, d = 0;
  uint64_t t0 = NowNs();
  for (size_t pass = 0; pass < passes; pass++) {
    for (size_t i = 0; i < words; i += 4) {
      a += p[i];
      b += p[i + 1];
      c += p[i + 2];
      d += p[i + 3];
    }
  }
  uint64_t ns = NowNs() - t0;
  Napi::Object result = Napi::Object::New(env);
  result.Set("bytes", Napi::Number::New(env, static_cast<double>(words * 8 * passes)));
  result.Set("nanoseconds", Napi::Number::New(env, static_cast<double>(ns)));
  result.Set("checksum", Napi::BigInt::New(env, a ^ b ^ c ^ d));
  return result;
}

Napi::Value VmReadBandwidth(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[1].IsNumber()) {
    throw Napi::TypeError::New(env, "vmReadBandwidth(view, batchPages)");
  }
  ViewMemory view = GetViewMemory(env, info[0]);
  double batch_raw = info[1].As<Napi::Number>().DoubleValue();
  if (!(batch_raw >= 1 && batch_raw <= 1024) || std::trunc(batch_raw) != batch_raw) {
    throw Napi::RangeError::New(env, "batchPages must be an integer from 1 to 1024");
  }
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t batch = static_cast<size_t>(batch_raw) * page;
  std::vector<uint8_t> buffer(batch);
  const pid_t self = getpid();
  size_t bytes = 0;
  uint64_t t0 = NowNs();
  for (size_t offset = 0; offset + batch <= view.length; offset += batch) {
    iovec local{buffer.data(), batch};
    iovec remote{view.data + offset, batch};
    ssize_t got = process_vm_readv(self, &local, 1, &remote, 1, 0);
    if (got < 0) throw SystemError(env, errno, "process_vm_readv");
    bytes += static_cast<size_t>(got);
  }
  uint64_t ns = NowNs() - t0;
  Napi::Object result = Napi::Object::New(env);
  result.Set("bytes", Napi::Number::New(env, static_cast<double>(bytes)));
  result.Set("nanoseconds", Napi::Number::New(env, static_cast<double>(ns)));
  return result;
}

Napi::Array PageStatFields(Napi::Env env) {
  Napi::Array names = Napi::Array::New(env, kStatCount);
  for (uint32_t i = 0; i < kStatCount; i++) names.Set(i, Napi::String::New(env, kStatNames[i]));
  return names;
}

}  // namespace ksm
