#include "attribution.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "errors.h"
#include "fd.h"
#include "pagemap-abi.h"
#include "pagewalk.h"
#include "smaps-scan.h"

namespace ksm {

namespace {

// Frames of kpageflags/kpagecount are read together when fewer than kMaxGap
// frames lie between them, up to kWindow frames per pread. The kernel spends
// about a microsecond per frame it reports (kpagecount looks up each folio's
// mapcount), about as much as a pread costs: reading unwanted frames to save a
// call pays only across small gaps. Measured on 6.18: a 4096-frame window per
// call made 16 MiB of scattered KSM pages cost 700 ms; gap-limited, 15 ms.
constexpr uint64_t kWindow = 4096;
constexpr uint64_t kMaxGap = 8;

struct Frame {
  uint64_t pfn;
  uint32_t range;
};

// pread until `bytes` or end of file; returns bytes read, -1 with errno.
ssize_t ReadFully(int fd, void* buffer, size_t bytes, uint64_t offset) {
  size_t done = 0;
  while (done < bytes) {
    ssize_t n = pread(fd, static_cast<char*>(buffer) + done, bytes - done,
                      static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(done);
}

// Reads the 8-byte entry of every frame in `frames` (sorted by pfn) from a
// kpage* file, in windows; calls visit(frame, entry) for each.
template <typename Visit>
bool ReadPerFrame(int fd, const std::string& path,
                  const std::vector<Frame>& frames, Failure* failure,
                  Visit visit) {
  std::vector<uint64_t> buffer(kWindow);
  size_t i = 0;
  while (i < frames.size()) {
    const uint64_t first = frames[i].pfn;
    size_t j = i;
    while (j + 1 < frames.size() && frames[j + 1].pfn - frames[j].pfn <= kMaxGap &&
           frames[j + 1].pfn - first < kWindow) {
      j++;
    }
    const size_t count = static_cast<size_t>(frames[j].pfn - first + 1);
    ssize_t n = ReadFully(fd, buffer.data(), count * sizeof(uint64_t),
                          first * sizeof(uint64_t));
    if (n < 0) {
      *failure = {errno, "pread", path};
      return false;
    }
    const size_t got = static_cast<size_t>(n) / sizeof(uint64_t);
    for (size_t k = i; k <= j; k++) {
      const size_t index = static_cast<size_t>(frames[k].pfn - first);
      // A frame past the end (memory hot-removed meanwhile) reads as 0.
      visit(frames[k], index < got ? buffer[index] : 0);
    }
    i = j + 1;
  }
  return true;
}

// The attribution of [starts[r], ends[r]) appended to `out`, `walker`
// reading `pagemapPath`; false with `failure` where a read fails (`out` is
// then partial).
bool Attribute(PagemapWalker* walker, const std::string& pagemapPath, int flagsFd, int countsFd,
               const std::vector<uint64_t>& starts, const std::vector<uint64_t>& ends, uint64_t page,
               Attribution* out, Failure* failure) {
  const size_t base = out->present.size();
  const size_t n = starts.size();
  out->present.resize(base + n, 0);
  out->ksm.resize(base + n, 0);
  out->zero.resize(base + n, 0);
  out->sharing.resize(base + n);
  std::vector<Frame> frames;
  for (size_t r = 0; r < n; r++) {
    const size_t range = base + r;
    int err = walker->Walk(starts[r] / page, ends[r] / page,
                           [&](uint64_t, const uint64_t* entries, size_t got) {
      for (size_t k = 0; k < got; k++) {
        const uint64_t entry = entries[k];
        if ((entry & kPmPresent) == 0) continue;
        out->present[range]++;
        const uint64_t pfn = entry & kPmPfnMask;
        // Without CAP_SYS_ADMIN the kernel reports present pages as pfn 0.
        if (pfn == 0) {
          out->pfnHidden = true;
          continue;
        }
        frames.push_back({pfn, static_cast<uint32_t>(range)});
      }
      return true;
    });
    if (err == PagemapWalker::kEnded) continue;  // end of the address space
    if (err != 0) {
      *failure = {err, walker->failed_syscall(), pagemapPath};
      return false;
    }
  }
  if (out->pfnHidden) return true;

  std::sort(frames.begin(), frames.end(),
            [](const Frame& a, const Frame& b) { return a.pfn < b.pfn; });
  std::vector<Frame> ksmFrames;
  if (!ReadPerFrame(flagsFd, "/proc/kpageflags", frames, failure,
                    [&](const Frame& frame, uint64_t value) {
                      if (value & kKpfZeroPage) {
                        out->zero[frame.range]++;
                      } else if (value & kKpfKsm) {
                        ksmFrames.push_back(frame);
                      }
                    })) {
    return false;
  }
  std::vector<std::map<uint64_t, uint64_t>> histograms(n);
  if (!ReadPerFrame(countsFd, "/proc/kpagecount", ksmFrames, failure,
                    [&](const Frame& frame, uint64_t mapcount) {
                      out->ksm[frame.range]++;
                      histograms[frame.range - base][mapcount]++;
                    })) {
    return false;
  }
  for (size_t r = 0; r < n; r++) {
    for (const auto& [mapcount, pages] : histograms[r]) {
      out->sharing[base + r].push_back(static_cast<double>(mapcount));
      out->sharing[base + r].push_back(static_cast<double>(pages));
    }
  }
  return true;
}

uint64_t PageSize() {
  const long size = sysconf(_SC_PAGESIZE);
  return size > 0 ? static_cast<uint64_t>(size) : 4096;
}

class AttributionWorker : public Napi::AsyncWorker {
 public:
  AttributionWorker(Napi::Env env, int pid, std::vector<uint64_t> starts,
                    std::vector<uint64_t> ends, bool scan)
      : Napi::AsyncWorker(env),
        deferred_(Napi::Promise::Deferred::New(env)),
        pid_(pid),
        scan_(scan),
        starts_(std::move(starts)),
        ends_(std::move(ends)) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute() override {
    const std::string pagemapPath = "/proc/" + std::to_string(pid_) + "/pagemap";
    Fd pagemap;
    Fd flags;
    Fd counts;
    if (!pagemap.Open(pagemapPath, &failure_) ||
        !flags.Open("/proc/kpageflags", &failure_) ||
        !counts.Open("/proc/kpagecount", &failure_)) {
      return;
    }
    const uint64_t page = PageSize();
    PagemapWalker walker(pagemap.get(), page, scan_);
    if (Attribute(&walker, pagemapPath, flags.get(), counts.get(), starts_, ends_, page, &result_, &failure_)) {
      scanned_ = walker.scanning();
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (failure_.err != 0) {
      deferred_.Reject(SystemError(env, failure_.err, failure_.syscall.c_str(), failure_.path).Value());
      return;
    }
    const size_t n = starts_.size();
    Napi::Array present = Napi::Array::New(env, n);
    Napi::Array ksm = Napi::Array::New(env, n);
    Napi::Array zero = Napi::Array::New(env, n);
    Napi::Array sharing = Napi::Array::New(env, n);
    for (size_t r = 0; r < n; r++) {
      const uint32_t i = static_cast<uint32_t>(r);
      present.Set(i, Napi::Number::New(env, static_cast<double>(result_.present[r])));
      ksm.Set(i, Napi::Number::New(env, static_cast<double>(result_.ksm[r])));
      zero.Set(i, Napi::Number::New(env, static_cast<double>(result_.zero[r])));
      Napi::Float64Array pairs = Napi::Float64Array::New(env, result_.sharing[r].size());
      std::copy(result_.sharing[r].begin(), result_.sharing[r].end(), pairs.Data());
      sharing.Set(i, pairs);
    }
    Napi::Object result = Napi::Object::New(env);
    result.Set("presentPages", present);
    result.Set("ksmPages", ksm);
    result.Set("zeroPages", zero);
    result.Set("sharing", sharing);
    result.Set("pfnHidden", Napi::Boolean::New(env, result_.pfnHidden));
    result.Set("pagemapScan", Napi::Boolean::New(env, scanned_));
    deferred_.Resolve(result);
  }

  void OnError(const Napi::Error& error) override {
    deferred_.Reject(error.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  const int pid_;
  const bool scan_;     // try PAGEMAP_SCAN (pagewalk.h)
  bool scanned_ = false;  // ... and it was used throughout
  const std::vector<uint64_t> starts_;
  const std::vector<uint64_t> ends_;
  Attribution result_;
  Failure failure_;
};

std::vector<uint64_t> ToAddresses(Napi::Env env, const Napi::Value& value,
                                  const char* name) {
  if (!value.IsTypedArray() ||
      value.As<Napi::TypedArray>().TypedArrayType() != napi_biguint64_array) {
    throw Napi::TypeError::New(env, std::string(name) + " must be a BigUint64Array");
  }
  Napi::TypedArrayOf<uint64_t> array = value.As<Napi::TypedArrayOf<uint64_t>>();
  return std::vector<uint64_t>(array.Data(), array.Data() + array.ElementLength());
}

}  // namespace

ScanAttribution::ScanAttribution(const std::string& dir, bool pagemapScan) : pagemapPath_(dir + "/pagemap"), pagemapScan_(pagemapScan) {}

ScanAttribution::~ScanAttribution() = default;

bool ScanAttribution::PagemapScan() const { return walker_ ? walker_->scanning() : pagemapScan_; }

void ScanAttribution::Add(const SmapsScan& scan, bool complete) {
  if (failed_) return;
  const uint64_t page = PageSize();
  const size_t upTo = WholeVmas(scan, complete);
  std::vector<uint32_t> at;
  std::vector<uint64_t> starts;
  std::vector<uint64_t> ends;
  for (; next_ < upTo; next_++) {
    if (next_ > UINT32_MAX || (next_ + 1) * kSmapsFieldCount > scan.figures.size()) continue;
    const double* figures = scan.figures.data() + next_ * kSmapsFieldCount;
    // -1: the kernel printed no KSM: line (before 6.6); then every VMA KSM scans.
    const double ksm = figures[kColumn_ksm];
    if (!(ksm > 0 || (ksm < 0 && HasVmFlag(ScanText(scan, figures[kColumn_vmFlags]), "mg")))) continue;
    const uint64_t start = scan.addresses[3 * next_];
    const uint64_t end = scan.addresses[3 * next_ + 1];
    if (start % page != 0 || end % page != 0 || start >= end) continue;
    at.push_back(static_cast<uint32_t>(next_));
    starts.push_back(start);
    ends.push_back(end);
  }
  if (starts.empty()) return;
  Failure failure;
  if (!opened_) {
    if (!pagemap_.Open(pagemapPath_, &failure) || !flags_.Open("/proc/kpageflags", &failure) ||
        !counts_.Open("/proc/kpagecount", &failure)) {
      failed_ = true;
      return;
    }
    walker_ = std::make_unique<PagemapWalker>(pagemap_.get(), page, pagemapScan_);
    opened_ = true;
  }
  if (!Attribute(walker_.get(), pagemapPath_, flags_.get(), counts_.get(), starts, ends, page, &result, &failure)) {
    failed_ = true;
    return;
  }
  vmas.insert(vmas.end(), at.begin(), at.end());
}

Napi::Value PageAttribution(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsNumber() ||
      (info.Length() > 3 && !info[3].IsUndefined() && !info[3].IsBoolean())) {
    throw Napi::TypeError::New(
        env, "pageAttribution(pid: number, starts: BigUint64Array, ends: BigUint64Array, "
             "pagemapScan?: boolean)");
  }
  // Default true; false reads pagemap linearly (the pre-6.7 path).
  const bool scan = info.Length() <= 3 || info[3].IsUndefined() || info[3].As<Napi::Boolean>().Value();
  const double rawPid = info[0].As<Napi::Number>().DoubleValue();
  if (!(rawPid >= 1 && rawPid <= 4194304) || static_cast<int>(rawPid) != rawPid) {
    throw Napi::RangeError::New(env, "pid must be an integer from 1 to 4194304");
  }
  std::vector<uint64_t> starts = ToAddresses(env, info[1], "starts");
  std::vector<uint64_t> ends = ToAddresses(env, info[2], "ends");
  if (starts.size() != ends.size() || starts.size() > UINT32_MAX) {
    throw Napi::RangeError::New(env, "starts and ends must have the same length");
  }
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  for (size_t r = 0; r < starts.size(); r++) {
    if (starts[r] % page != 0 || ends[r] % page != 0 || starts[r] >= ends[r]) {
      throw Napi::RangeError::New(
          env, "each range must be page-aligned with start < end");
    }
  }
  auto* worker = new AttributionWorker(env, static_cast<int>(rawPid),
                                       std::move(starts), std::move(ends), scan);
  Napi::Promise promise = worker->Promise();
  worker->Queue();  // the worker deletes itself after OnOK/OnError
  return promise;
}

}  // namespace ksm
