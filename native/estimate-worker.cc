#include "estimate-worker.h"

#include <time.h>
#include <unistd.h>

#include <exception>

#include "errors.h"
#include "estimate-threads.h"
#include "pagewalk.h"

namespace ksm {

namespace {

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull +
         static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace

void Lane::TrackMemory() {
  size_t bytes = (pending.capacity() + rest.capacity() + members.capacity() + wave_refs.capacity()) *
                     sizeof(uint64_t) +
                 (live.capacity() + wave_order.capacity()) * sizeof(uint32_t) +
                 wave_runs.capacity() * sizeof(std::pair<size_t, size_t>) + wave_ok.capacity();
  memory = std::max(memory, bytes);
}

EstimateWorker::EstimateWorker(std::vector<Target> targets, const EstimateConfig& config,
                               std::shared_ptr<StopSignal> stop)
    : targets_(std::move(targets)),
      exited_(new std::atomic<bool>[targets_.size()]),
      refused_(new std::atomic<bool>[targets_.size()]),
      config_(config),
      stop_(std::move(stop)) {
  for (size_t t = 0; t < targets_.size(); t++) {
    exited_[t].store(false, std::memory_order_relaxed);
    refused_[t].store(false, std::memory_order_relaxed);
  }
  page_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  page_shift_ = static_cast<unsigned>(__builtin_ctzl(page_));
}

EstimateWorker::~EstimateWorker() = default;

void EstimateWorker::Fail(int err, const char* syscall, pid_t pid) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (err_ != 0) return;
  err_ = err;
  syscall_ = syscall;
  err_pid_ = pid;
  failed_.store(true, std::memory_order_relaxed);
}

void EstimateWorker::Ended(uint32_t t, int err, const char* syscall) {
  if (err == ENOENT || err == ESRCH) MarkExited(t);
  else if ((err == EPERM || err == EACCES) && config_.skip_refused) MarkRefused(t);
  else Fail(err, syscall, targets_[t].pid);
}

void EstimateWorker::Report(Phase phase, double done, double total, bool force) {
  if (!progress_) return;
  const uint64_t now = NowNs();
  uint64_t last = last_progress_ns_.load(std::memory_order_relaxed);
  if (!force && done < total && now - last < 50000000ull) return;
  // One thread reports; the others skip this turn.
  if (!last_progress_ns_.compare_exchange_strong(last, now, std::memory_order_relaxed)) return;
  progress_(Progress{phase, std::min(done, total), total});
}

void EstimateWorker::TrackMemory(size_t extra) {
  size_t bytes = extra + entries_.capacity() * sizeof(Entry) + scratch_.size() +
                 pieces_.capacity() * sizeof(PagemapPiece) + items_.capacity() * sizeof(PagemapItem) +
                 lanes_.size() * PagemapWalker::kFootprint +
                 chunks_.capacity() * sizeof(std::pair<size_t, size_t>) +
                 chunk_written_.capacity() * sizeof(size_t);
  for (const Target& target : targets_) bytes += target.entries.capacity() * sizeof(Entry);
  for (const PagemapItem& item : items_) bytes += item.entries.capacity() * sizeof(Entry);
  for (const Lane& lane : lanes_) bytes += lane.memory;
  peak_memory_ = std::max(peak_memory_, bytes);
}

void EstimateWorker::Run(ProgressSink progress) {
  progress_ = std::move(progress);
  try {
    if (Prepare()) Phases();
  } catch (const std::exception&) {
    // Only allocation can throw here (vectors growing, a thread's state).
    Fail(ENOMEM, "malloc", 0);
  }
  crew_.reset();  // joins the helpers
  scratch_.Release();
  entries_ = std::vector<Entry>();
  for (Target& target : targets_) {
    target.entries = std::vector<Entry>();
    if (Exited(static_cast<uint32_t>(&target - targets_.data()))) {
      std::fill(target.stats.begin(), target.stats.end(), PageStats{});
    }
  }
  for (Lane& lane : lanes_) {
    lane.CloseFiles();
    pages_hashed_ += lane.pages_hashed;
    bytes_read_ += lane.bytes_read;
    hash_collisions_ += lane.hash_collisions;
  }
  lanes_.clear();
  progress_ = nullptr;
}

// Threads, and their buffers on one scratch mapping: per lane the read
// batches, a confirm wave and one representative page.
bool EstimateWorker::Prepare() {
  crew_ = std::make_unique<Crew>(std::max<size_t>(1, std::min(config_.threads, kMaxThreads)));
  threads_used_ = crew_->size();
  lanes_.resize(threads_used_);
  const size_t batch_bytes = std::max(config_.batch_pages, kWavePages) * page_;
  const size_t per_lane = batch_bytes + kWavePages * page_ + page_;
  if (!scratch_.Map(per_lane * lanes_.size())) {
    Fail(errno, "mmap", 0);
    return false;
  }
  for (size_t i = 0; i < lanes_.size(); i++) {
    Lane& lane = lanes_[i];
    lane.buffer = scratch_.data() + i * per_lane;
    lane.wave = lane.buffer + batch_bytes;
    lane.rep = lane.wave + kWavePages * page_;
  }
  FindZeroPfn();
  return true;
}

void EstimateWorker::Phases() {
  uint64_t t0 = NowNs();
  PagemapPhase();
  Report(kPhasePagemap, static_cast<double>(targets_.size()), static_cast<double>(targets_.size()));
  TrackMemory();
  uint64_t t1 = NowNs();
  pagemap_ns_ = t1 - t0;
  if (Stopped()) return;

  Sample(false);
  uint64_t t2 = NowNs();
  sample_ns_ = t2 - t1;
  if (Stopped()) return;

  if (config_.interval_ms > 0) {
    stop_->Wait(config_.interval_ms);
    if (Stopped()) return;
    uint64_t t3 = NowNs();
    Sample(true);
    resample_ns_ = NowNs() - t3;
    if (Stopped()) return;
  }

  uint64_t t4 = NowNs();
  crew_->ForEach(targets_.size(), [&](size_t, size_t t) {
    if (!Stopped()) Tally(static_cast<uint32_t>(t));
  });
  if (Stopped()) return;
  Gather();
  if (Stopped()) return;
  SortByHash();
  if (Stopped()) return;
  Confirm();
  if (Stopped()) return;
  Account();
  confirm_ns_ = NowNs() - t4;
  TrackMemory();
}

Napi::Error EstimateWorker::Error(Napi::Env env) const {
  Napi::Error error = SystemError(env, err_, syscall_);
  error.Set("pid", Napi::Number::New(env, err_pid_));
  return error;
}

Napi::Value EstimateWorker::Result(Napi::Env env) const {
  auto number = [&](uint64_t value) { return Napi::Number::New(env, static_cast<double>(value)); };
  Napi::Object result = Napi::Object::New(env);
  result.Set("cancelled", Napi::Boolean::New(env, Cancelled()));
  Napi::Array targets = Napi::Array::New(env, targets_.size());
  for (uint32_t t = 0; t < targets_.size(); t++) {
    const Target& target = targets_[t];
    Napi::Object item = Napi::Object::New(env);
    item.Set("pid", Napi::Number::New(env, target.pid));
    item.Set("exited", Napi::Boolean::New(env, Exited(t) && !Refused(t)));
    item.Set("refused", Napi::Boolean::New(env, Refused(t)));
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
  result.Set("threads", number(threads_used_));
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
