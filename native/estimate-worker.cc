#include "estimate-worker.h"

#include <time.h>
#include <unistd.h>

#include <exception>

#include "errors.h"
#include "pagewalk.h"

namespace ksm {

namespace {

constexpr const char* kPhaseNames[] = {"pagemap", "sample", "resample", "confirm"};

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull +
         static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace

EstimateWorker::EstimateWorker(Napi::Env env, std::vector<Target> targets,
                               const EstimateConfig& config,
                               std::shared_ptr<std::atomic<bool>> cancelled,
                               Napi::Function on_progress)
    : Napi::AsyncProgressWorker<Progress>(env, "node-ksm:estimate"),
      deferred_(Napi::Promise::Deferred::New(env)),
      targets_(std::move(targets)),
      config_(config),
      cancelled_(std::move(cancelled)) {
  page_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  page_shift_ = static_cast<unsigned>(__builtin_ctzl(page_));
  if (!on_progress.IsEmpty()) on_progress_ = Napi::Persistent(on_progress);
}

void EstimateWorker::Execute(const ExecutionProgress& progress) {
  progress_ = &progress;
  try {
    Run();
  } catch (const std::exception&) {
    // Only allocation can throw here (vectors growing).
    Fail(ENOMEM, "malloc", 0);
  }
  progress_ = nullptr;
}

void EstimateWorker::OnProgress(const Progress* data, size_t count) {
  if (on_progress_.IsEmpty() || data == nullptr || count == 0) return;
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  on_progress_.Call({Napi::String::New(env, kPhaseNames[data->phase]),
                     Napi::Number::New(env, data->done),
                     Napi::Number::New(env, data->total)});
}

void EstimateWorker::OnOK() {
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

void EstimateWorker::OnError(const Napi::Error& error) {
  on_progress_.Reset();
  deferred_.Reject(error.Value());
}

void EstimateWorker::Fail(int err, const char* syscall, pid_t pid) {
  if (err_ != 0) return;
  err_ = err;
  syscall_ = syscall;
  err_pid_ = pid;
}

void EstimateWorker::Report(Phase phase, double done, double total) {
  uint64_t now = NowNs();
  if (progress_ == nullptr) return;
  if (done < total && now - last_progress_ns_ < 50000000ull) return;
  last_progress_ns_ = now;
  Progress p{phase, done, total};
  progress_->Send(&p, 1);
}

void EstimateWorker::TrackMemory() {
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

void EstimateWorker::Run() {
  // Read batches, the confirm wave, and one representative page.
  const size_t batch_bytes = std::max(config_.batch_pages, kWavePages) * page_;
  if (!scratch_.Map(batch_bytes + kWavePages * page_ + page_)) {
    Fail(errno, "mmap", 0);
    return;
  }
  buffer_ = scratch_.data();
  wave_ = scratch_.data() + batch_bytes;
  rep_ = wave_ + kWavePages * page_;
  FindZeroPfn();
  const size_t expected = config_.expected_pages;
  if (expected > 0) entries_.reserve(expected + expected / 64 + 1024);
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

  if (config_.interval_ms > 0) {
    Sleep(config_.interval_ms);
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
    if (target.exited) std::fill(target.stats.begin(), target.stats.end(), PageStats{});
  }
}

void EstimateWorker::Sleep(double ms) {
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

Napi::Value EstimateWorker::Result(Napi::Env env) {
  auto number = [&](uint64_t value) { return Napi::Number::New(env, static_cast<double>(value)); };
  Napi::Object result = Napi::Object::New(env);
  result.Set("cancelled", Napi::Boolean::New(env, Cancelled()));
  Napi::Array targets = Napi::Array::New(env, targets_.size());
  for (uint32_t t = 0; t < targets_.size(); t++) {
    const Target& target = targets_[t];
    Napi::Object item = Napi::Object::New(env);
    item.Set("pid", Napi::Number::New(env, target.pid));
    item.Set("exited", Napi::Boolean::New(env, target.exited));
    // Range after range, each its kPageStatCount figures in pageStatFields' order.
    Napi::Float64Array stats = Napi::Float64Array::New(env, target.stats.size() * kPageStatCount);
    for (size_t r = 0; r < target.stats.size(); r++) target.stats[r].CopyTo(stats.Data() + r * kPageStatCount);
    item.Set("stats", stats);
    targets.Set(t, item);
  }
  result.Set("targets", targets);
  result.Set("pfnVisible", Napi::Boolean::New(env, zero_pfn_ != 0));
  result.Set("pagemapEntries", number(pagemap_entries_));
  result.Set("pagemapScans", number(pagemap_scans_));
  result.Set("pagemapScan", Napi::Boolean::New(env, config_.pagemap_scan && pagemap_scan_used_));
  result.Set("hashImplementation", Napi::String::New(env, config_.hash.name));
  result.Set("pagesHashed", number(pages_hashed_));
  result.Set("bytesRead", number(bytes_read_));
  result.Set("memoryBytes", number(peak_memory_));
  result.Set("classes", number(classes_));
  result.Set("keptPages", number(kept_pages_));
  result.Set("sharingPages", number(sharing_pages_));
  result.Set("hashCollisions", number(hash_collisions_));
  Napi::Object timings = Napi::Object::New(env);
  timings.Set("pagemapNs", number(pagemap_ns_));
  timings.Set("sampleNs", number(sample_ns_));
  timings.Set("resampleNs", number(resample_ns_));
  timings.Set("confirmNs", number(confirm_ns_));
  result.Set("timings", timings);
  return result;
}

}  // namespace ksm
