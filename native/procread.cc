#include "procread.h"

#include <fcntl.h>
#include <unistd.h>

#include <pthread.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "addon-data.h"
#include "attribution.h"
#include "errors.h"
#include "header-read.h"
#include "smaps-scan.h"
#include "stack-pointers.h"

namespace ksm {

namespace {

struct Job;

// What the reader threads of one environment share with it: a queue of
// reads and the way back to JS. It outlives the environment for as long as
// a thread still holds it: a read stuck in the kernel when a worker is
// terminated returns later, sees `alive` false and drops its result, never
// touching the environment.
//
// The threads stay: creating one per read would map a new stack each time,
// next to whatever the process mapped last, and a reader of its own smaps
// would see its address space change under it.
struct Shared {
  std::mutex mutex;
  std::condition_variable wake;
  bool alive = true;
  napi_threadsafe_function tsfn = nullptr;
  std::deque<Job*> queue;
  size_t idle = 0;
  size_t threads = 0;
};

// Reads in the kernel at once, at most: a stuck read holds its thread until
// the lock it waits for is released; past this, reads wait in the queue (and
// their callers' deadlines pass).
constexpr size_t kMaxThreads = 64;
// A reader needs little stack: 64 KiB reads go to the heap.
constexpr size_t kStackBytes = 256 * 1024;

struct Pipeline;

struct Job {
  uint64_t id = 0;
  std::string path;
  std::vector<char> data;
  int err = 0;
  const char* syscall = "open";
  // readProcFile(path, 'smaps'): scanned here when it has the kernel's layout.
  bool scanSmaps = false;
  bool scanned = false;
  SmapsScan scan;
  // With a rule, the chunk headers of the scan's candidate VMAs, read while
  // smaps is (ScanHeaders); delivered with the scan when every read could be made.
  ChunkRule chunkRule = ChunkRule::kNone;
  size_t chunkLimit = 0;
  std::unique_ptr<ScanHeaders> chunks;
  // Asked for, exact attribution of the scan's VMAs with KSM pages, made
  // while smaps is read (ScanAttribution; PAGEMAP_SCAN tried where
  // attributeScan); delivered with the scan when every read could be made.
  bool attribute = false;
  bool attributeScan = true;
  std::unique_ptr<ScanAttribution> attribution;
  // Asked for, the stack pointers of the process's threads (tid, sp, ...),
  // read beside the scan (ReadStackPointers); delivered with the scan.
  bool stackPointers = false;
  bool stackPointersRead = false;
  std::vector<uint64_t> threadStackPointers;
  // readPresentHeaders(dir, addresses): `path` is /proc/PID, `data` the headers.
  bool readHeaders = false;
  std::vector<uint64_t> addresses;
  // A helper of a smaps read on another reader thread (ScanPieces): nothing is delivered.
  std::shared_ptr<Pipeline> helps;
};

// A large smaps scanned while it is read. The reader cuts what it has read
// into pieces of whole lines and hands them on; a helper on another reader
// thread scans them meanwhile, so that the scan costs the read next to
// nothing on a machine with a core to spare. The reader scans whatever the
// helper has not (it never started, or gave up waiting): the pieces are
// scanned once, in order, by one of them at a time.
struct Pipeline {
  std::mutex mutex;
  std::condition_variable changed;
  // Published pieces: never changed again (the scan's strings point into
  // them), and a deque's push_back moves none of them.
  std::deque<std::vector<char>> pieces;
  size_t scanned = 0;
  bool readDone = false;
  enum class Helper { kWaiting, kScanning, kGone } helper = Helper::kWaiting;
  SmapsScan scan;
  SmapsScanner scanner{&scan, 0};
  // Read by whoever scans, after each piece: the chunk headers of its
  // candidates, and the attribution of its VMAs with KSM pages (or none).
  std::unique_ptr<ScanHeaders> chunks;
  std::unique_ptr<ScanAttribution> attribution;
  // Asked for (kWanted), the threads' stack pointers of the process in
  // `dir`: read by the helper as it starts (the first piece is not read
  // yet), or by the reader after the read where no helper came.
  enum class Threads { kNone, kWanted, kReading, kRead } threads = Threads::kNone;
  std::string dir;
  std::vector<uint64_t> stackPointers;
};

// The pipeline's stack pointers, read here unless another thread took them;
// with `wait`, returns once they are read (by whichever thread).
void ReadThreads(Pipeline* pipe, bool wait) {
  std::unique_lock<std::mutex> lock(pipe->mutex);
  if (pipe->threads == Pipeline::Threads::kWanted) {
    pipe->threads = Pipeline::Threads::kReading;
    lock.unlock();
    std::vector<uint64_t> pairs;
    ReadStackPointers(pipe->dir, &pairs);
    lock.lock();
    pipe->stackPointers = std::move(pairs);
    pipe->threads = Pipeline::Threads::kRead;
    pipe->changed.notify_all();
    return;
  }
  if (wait) pipe->changed.wait(lock, [&] { return pipe->threads != Pipeline::Threads::kReading; });
}

// seq_files hand out a page or so per read: 64 KiB asks for all there is.
constexpr size_t kReadChunk = 65536;

// Where read() lands before its bytes are appended: growing the vector by
// 64 KiB for each read zeroed the 64 KiB first, and a smaps read returns
// what fits in a page (3.6 KiB a read at 10,000 VMAs: 18 times as much was
// zeroed as read; the read on a reader thread took 1.12x of
// fs.readFileSync's, 1.01x now). Nothing is written to it but by read().
class ReadScratch {
 public:
  ReadScratch() : bytes_(new char[kReadChunk]) {}
  char* get() { return bytes_.get(); }

 private:
  std::unique_ptr<char[]> bytes_;
};

// One read of fd appended to `into`: the bytes read, 0 at the end of the
// file, or -1 with the job's error set.
ssize_t ReadMore(int fd, ReadScratch* scratch, std::vector<char>* into, Job* job) {
  for (;;) {
    const ssize_t n = read(fd, scratch->get(), kReadChunk);
    if (n < 0 && errno == EINTR) continue;
    if (n > 0) into->insert(into->end(), scratch->get(), scratch->get() + n);
    if (n < 0) {
      job->err = errno;
      job->syscall = "read";
    }
    return n;
  }
}

// The file whole.
void ReadWhole(Job* job) {
  int fd = open(job->path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    job->err = errno;
    return;
  }
  ReadScratch scratch;
  while (ReadMore(fd, &scratch, &job->data, job) > 0) {
  }
  close(fd);
  if (job->err != 0) job->data.clear();
}

bool SpawnReader(const std::shared_ptr<Shared>& shared);

// A piece is cut off once this much is read (a 7 MiB smaps of 10,000 VMAs: 28 pieces).
constexpr size_t kPieceBytes = 256 * 1024;
// With chunk headers to read after each piece: the last piece's are read
// after the read is done, and this keeps them few (about 90 VMAs' smaps).
// Measured at 1,000 VMAs: 16 KiB pieces cost more in hand-offs than they
// overlap, 256 KiB left a third of the headers to the end; 32 to 128 KiB
// within the noise of each other.
constexpr size_t kHeaderPieceBytes = 64 * 1024;
// The first pieces are smaller (16, then 32 KiB): the work beside the scan
// starts sooner. A VMA's attribution (its pagemap and kpage* reads) takes
// about as long as the smaps read of a small process (2.5 against 1.6 ms at
// 16 MiB merged in 125 VMAs): cut at 64 KiB, the first piece held the whole
// 92 KiB's merged VMA and the attribution began two thirds into the read.
constexpr size_t kFirstBesidePieceBytes = 16 * 1024;
// A helper that waits this long for a piece (the read is stuck in the kernel) leaves the rest to the reader.
constexpr auto kHelperPatience = std::chrono::milliseconds(100);

// Scans published pieces in order while it may: the helper (helper) until
// the read is done or it waits too long, the reader (!helper) for what is left.
void ScanPieces(Pipeline* pipe, bool helper) {
  // Before the first piece comes: the stack pointers need no VMA.
  if (helper) ReadThreads(pipe, false);
  std::unique_lock<std::mutex> lock(pipe->mutex);
  if (helper) {
    if (pipe->helper != Pipeline::Helper::kWaiting) return;  // the reader took the scan
    pipe->helper = Pipeline::Helper::kScanning;
  }
  for (;;) {
    while (pipe->scanned < pipe->pieces.size()) {
      const std::vector<char>& piece = pipe->pieces[pipe->scanned];
      lock.unlock();
      // The headers of a piece's candidates are read (and its KSM pages
      // attributed) while the reader reads the next one.
      if (pipe->scanner.Scan(piece.data(), piece.size())) {
        if (pipe->chunks) pipe->chunks->Add(pipe->scan, false);
        if (pipe->attribution) pipe->attribution->Add(pipe->scan, false);
      }
      lock.lock();
      pipe->scanned++;
    }
    if (!helper || pipe->readDone) break;
    if (!pipe->changed.wait_for(lock, kHelperPatience, [&] { return pipe->readDone || pipe->scanned < pipe->pieces.size(); })) break;
  }
  if (helper) {
    pipe->helper = Pipeline::Helper::kGone;
    pipe->changed.notify_all();
  }
}

// A helper job for `pipe` on another reader thread; false when there is
// none to be had (the reader then scans alone).
bool StartHelper(const std::shared_ptr<Shared>& shared, const std::shared_ptr<Pipeline>& pipe) {
  auto helper = std::make_unique<Job>();
  helper->helps = pipe;
  {
    std::lock_guard<std::mutex> lock(shared->mutex);
    if (!shared->alive) return false;
    // Only a thread that is idle now, or one more: a helper never waits behind stuck reads.
    if (shared->idle == 0) {
      if (shared->threads >= kMaxThreads || !SpawnReader(shared)) return false;
      shared->threads++;
    }
    shared->queue.push_back(helper.release());
  }
  shared->wake.notify_one();
  return true;
}

// ReadWhole() of a smaps, scanned as it is read (Pipeline).
void ReadAndScan(Job* job, const std::shared_ptr<Shared>& shared) {
  int fd = open(job->path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    job->err = errno;
    return;
  }
  auto pipe = std::make_shared<Pipeline>();
  // With work beside the scan, the job's path is a process's smaps
  // (ReadProcFile checked it): that work reads in its directory.
  const std::string dir = job->path.substr(0, job->path.rfind('/'));
  if (job->chunkRule != ChunkRule::kNone) pipe->chunks = std::make_unique<ScanHeaders>(job->chunkRule, job->chunkLimit, dir);
  if (job->attribute) pipe->attribution = std::make_unique<ScanAttribution>(dir, job->attributeScan);
  if (job->stackPointers) {
    pipe->threads = Pipeline::Threads::kWanted;
    pipe->dir = dir;
  }
  // With work beside the scan, pieces grow from kFirstBesidePieceBytes to kHeaderPieceBytes.
  const bool beside = pipe->chunks || pipe->attribution || job->stackPointers;
  const size_t maxPieceBytes = beside ? kHeaderPieceBytes : kPieceBytes;
  size_t pieceBytes = beside ? kFirstBesidePieceBytes : kPieceBytes;
  std::vector<char> current;
  current.reserve(maxPieceBytes + kReadChunk);
  // With work beside the scan the helper is asked for at once: waking a
  // thread took 0.5-0.9 ms on a 2-vCPU VM (as long as reading 16-48 KiB of
  // smaps), and the work can only start once it is up.
  bool helped = beside && StartHelper(shared, pipe);
  auto publish = [&](std::vector<char> piece) {
    {
      std::lock_guard<std::mutex> lock(pipe->mutex);
      pipe->pieces.push_back(std::move(piece));
    }
    pipe->changed.notify_all();
  };
  ReadScratch scratch;
  while (ReadMore(fd, &scratch, &current, job) > 0) {
    if (current.size() < pieceBytes) continue;
    const auto last = std::find(current.rbegin(), current.rend(), '\n');
    if (last == current.rend()) continue;  // no line's end yet: read on
    const size_t cut = static_cast<size_t>(current.rend() - last);
    pieceBytes = std::min(2 * pieceBytes, maxPieceBytes);
    std::vector<char> rest;
    rest.reserve(maxPieceBytes + kReadChunk);
    rest.assign(current.begin() + static_cast<std::ptrdiff_t>(cut), current.end());
    current.resize(cut);
    publish(std::move(current));
    current = std::move(rest);
    if (!helped) helped = StartHelper(shared, pipe);
  }
  close(fd);
  if (job->err == 0) publish(std::move(current));
  {
    // Whatever the helper is scanning is scanned to its end; the rest is scanned here.
    std::unique_lock<std::mutex> lock(pipe->mutex);
    pipe->readDone = true;
    pipe->changed.notify_all();
    pipe->changed.wait(lock, [&] { return pipe->helper != Pipeline::Helper::kScanning; });
    pipe->helper = Pipeline::Helper::kGone;  // a helper that starts from now on leaves at once
  }
  if (job->err != 0) return;
  ScanPieces(pipe.get(), false);
  // Read here where no helper took them, or awaited where one reads them still.
  if (job->stackPointers) ReadThreads(pipe.get(), true);
  // Every piece is scanned, and nothing else holds them now.
  if (pipe->scanner.Ok()) {
    if (pipe->chunks) {
      pipe->chunks->Add(pipe->scan, true);
      if (pipe->chunks->Ok()) job->chunks = std::move(pipe->chunks);
    }
    if (pipe->attribution) {
      pipe->attribution->Add(pipe->scan, true);
      if (pipe->attribution->Ok()) job->attribution = std::move(pipe->attribution);
    }
    if (job->stackPointers) {
      job->threadStackPointers = std::move(pipe->stackPointers);
      job->stackPointersRead = true;
    }
    job->scan = std::move(pipe->scan);
    job->scanned = true;
    return;
  }
  // Out of the kernel's layout: the bytes, for lib/kernel/smaps.ts to scan.
  size_t total = 0;
  for (const auto& piece : pipe->pieces) total += piece.size();
  job->data.reserve(total);
  for (const auto& piece : pipe->pieces) job->data.insert(job->data.end(), piece.begin(), piece.end());
}

// The job's read, on its reader thread.
void Run(Job* job, const std::shared_ptr<Shared>& shared) {
  if (job->helps) {
    ScanPieces(job->helps.get(), true);
    return;
  }
  if (job->readHeaders) {
    Failure failure;
    if (!ReadPresentHeaders(job->path, job->addresses, &job->data, &failure)) {
      job->err = failure.err;
      job->path = failure.path;  // open is the only call that fails it
      job->data.clear();
    }
    return;
  }
  if (job->scanSmaps) {
    ReadAndScan(job, shared);
    return;
  }
  ReadWhole(job);
}

void* ReaderThread(void* arg) {
  std::shared_ptr<Shared> shared(*static_cast<std::shared_ptr<Shared>*>(arg));
  delete static_cast<std::shared_ptr<Shared>*>(arg);
  std::unique_lock<std::mutex> lock(shared->mutex);
  for (;;) {
    shared->idle++;
    shared->wake.wait(lock, [&] { return !shared->alive || !shared->queue.empty(); });
    shared->idle--;
    if (!shared->alive) break;
    std::unique_ptr<Job> job(shared->queue.front());
    shared->queue.pop_front();
    lock.unlock();
    Run(job.get(), shared);
    if (job->helps) {  // a helper delivers nothing; its pieces are let go outside the lock
      job.reset();
      lock.lock();
      continue;
    }
    lock.lock();
    if (!shared->alive) break;  // the environment is gone: drop the result
    if (napi_call_threadsafe_function(shared->tsfn, job.get(), napi_tsfn_nonblocking) == napi_ok) {
      job.release();  // Deliver() owns it now
    }
  }
  shared->threads--;
  return nullptr;
}

// A new detached reader thread; false when the system has none to give.
bool SpawnReader(const std::shared_ptr<Shared>& shared) {
  pthread_attr_t attr;
  if (pthread_attr_init(&attr) != 0) return false;
  pthread_attr_setstacksize(&attr, kStackBytes);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  auto* arg = new std::shared_ptr<Shared>(shared);
  pthread_t thread;
  const int err = pthread_create(&thread, &attr, ReaderThread, arg);
  pthread_attr_destroy(&attr);
  if (err != 0) {
    delete arg;
    return false;
  }
  return true;
}

template <typename T>
Napi::ArrayBuffer CopyOut(Napi::Env env, const std::vector<T>& from) {
  Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(env, from.size() * sizeof(T));
  if (!from.empty()) memcpy(buffer.Data(), from.data(), from.size() * sizeof(T));
  return buffer;
}

// A vector a reader thread filled, owned from now on by the JS value made
// over its bytes (HandOut()).
template <typename T>
struct HeldVector {
  std::vector<T> items;
  // Counted as external memory on top of what V8 counts (the byte length of
  // a backing store with a deleter): the rest of the vector's capacity.
  int64_t slack = 0;

  static void Finalize(napi_env env, void* /*data*/, void* hint) {
    auto* held = static_cast<HeldVector*>(hint);
    const int64_t slack = held->slack;
    delete held;
    int64_t total = 0;
    if (slack != 0) napi_adjust_external_memory(env, -slack, &total);
  }
};

// Handed out without a copy up to this size; larger (a runtime's Buffer
// limit may be 4 GiB, and a Buffer past it would be freed by the runtime
// while still ours) they go through the copy, which refuses them cleanly.
constexpr size_t kMaxHandOutBytes = size_t{1} << 31;

// `from`'s bytes as a JS ArrayBuffer, or a Buffer (`asBuffer`), with no copy
// on the JS thread: the vector moves to the heap and the value owns it
// (freed by its finalizer, or when the environment goes). At 10,000 VMAs a
// 7 MiB read's bytes took 2.6-5.7 ms of the JS thread to deliver as a copy
// (zeroed, copied and faulted in there), 0.8-1.3 ms handed over. Where this
// runtime refuses external buffers (napi_no_external_buffers_allowed) they
// are copied.
template <typename T>
napi_value HandOut(Napi::Env env, std::vector<T>* from, bool asBuffer) {
  const size_t bytes = from->size() * sizeof(T);
  if (bytes == 0) return asBuffer ? napi_value(Napi::Buffer<char>::New(env, 0)) : napi_value(Napi::ArrayBuffer::New(env, 0));
  auto held = std::make_unique<HeldVector<T>>();
  held->items = std::move(*from);
  held->slack = static_cast<int64_t>((held->items.capacity() - held->items.size()) * sizeof(T));
  void* data = held->items.data();
  napi_status status = napi_no_external_buffers_allowed;
  napi_value value = nullptr;
  if (bytes <= kMaxHandOutBytes) {
    status = asBuffer ? napi_create_external_buffer(env, bytes, data, HeldVector<T>::Finalize, held.get(), &value)
                      : napi_create_external_arraybuffer(env, data, bytes, HeldVector<T>::Finalize, held.get(), &value);
  }
  if (status == napi_ok) {
    const int64_t slack = held.release()->slack;  // the value's finalizer frees it
    int64_t total = 0;
    if (slack != 0) napi_adjust_external_memory(env, slack, &total);
    return value;
  }
  if (status != napi_no_external_buffers_allowed) NAPI_THROW_IF_FAILED(env, status, nullptr);
  // Not handed out: a copy, and the vector freed with `held`.
  if (asBuffer) return Napi::Buffer<char>::Copy(env, static_cast<const char*>(data), bytes);
  return CopyOut(env, held->items);
}

// ScanAttribution's as { vmas: Uint32Array, presentPages, ksmPages, zeroPages: Float64Array,
// sharing: Float64Array[] (per VMA), pfnHidden, pagemapScan }.
Napi::Object AttributionObject(Napi::Env env, const ScanAttribution& attribution) {
  const Attribution& result = attribution.result;
  const size_t n = attribution.vmas.size();
  Napi::Object out = Napi::Object::New(env);
  out.Set("vmas", Napi::Uint32Array::New(env, n, CopyOut(env, attribution.vmas), 0));
  auto counts = [&](const std::vector<uint64_t>& from) {
    Napi::Float64Array array = Napi::Float64Array::New(env, n);
    for (size_t i = 0; i < n; i++) array[i] = static_cast<double>(from[i]);
    return array;
  };
  out.Set("presentPages", counts(result.present));
  out.Set("ksmPages", counts(result.ksm));
  out.Set("zeroPages", counts(result.zero));
  Napi::Array sharing = Napi::Array::New(env, n);
  for (size_t i = 0; i < n; i++) {
    sharing.Set(static_cast<uint32_t>(i), Napi::Float64Array::New(env, result.sharing[i].size(), CopyOut(env, result.sharing[i]), 0));
  }
  out.Set("sharing", sharing);
  out.Set("pfnHidden", Napi::Boolean::New(env, result.pfnHidden));
  out.Set("pagemapScan", Napi::Boolean::New(env, attribution.PagemapScan()));
  return out;
}

// { addresses: BigUint64Array, figures: Float64Array, text: Buffer, spans: Uint32Array }, with
// `chunks` chunkCandidates: Uint32Array (VMA indexes), chunkHeaders: Buffer (16 bytes each) and
// chunkTiles: Uint32Array (mapped chunks tiling each, or 0), with `attribution` attribution
// (AttributionObject()), with stack pointers asked for threadStackPointers: BigUint64Array (tid, sp, ...).
napi_value ScanObject(Napi::Env env, Job& job) {
  SmapsScan& scan = job.scan;
  const ScanHeaders* chunks = job.chunks.get();
  const ScanAttribution* attribution = job.attribution.get();
  Napi::Object result = Napi::Object::New(env);
  napi_value addresses;
  // The scan's columns are handed over, not copied: nothing reads job.scan after this.
  const size_t vmaWords = scan.addresses.size();
  const size_t figureCount = scan.figures.size();
  const size_t spanCount = scan.spans.size();
  NAPI_THROW_IF_FAILED(env, napi_create_typedarray(env, napi_biguint64_array, vmaWords,
                                                   HandOut(env, &scan.addresses, false), 0, &addresses), nullptr);
  result.Set("addresses", Napi::Value(env, addresses));
  result.Set("figures", Napi::Float64Array::New(env, figureCount, Napi::ArrayBuffer(env, HandOut(env, &scan.figures, false)), 0));
  result.Set("text", Napi::Value(env, HandOut(env, &scan.text, true)));
  result.Set("spans", Napi::Uint32Array::New(env, spanCount, Napi::ArrayBuffer(env, HandOut(env, &scan.spans, false)), 0));
  if (chunks != nullptr) {
    result.Set("chunkCandidates", Napi::Uint32Array::New(env, chunks->candidates.size(), CopyOut(env, chunks->candidates), 0));
    result.Set("chunkHeaders", Napi::Buffer<char>::Copy(env, chunks->headers.data(), chunks->headers.size()));
    result.Set("chunkTiles", Napi::Uint32Array::New(env, chunks->tiled.size(), CopyOut(env, chunks->tiled), 0));
  }
  if (job.stackPointersRead) {
    napi_value pairs;
    NAPI_THROW_IF_FAILED(env, napi_create_typedarray(env, napi_biguint64_array, job.threadStackPointers.size(),
                                                     CopyOut(env, job.threadStackPointers), 0, &pairs), nullptr);
    result.Set("threadStackPointers", Napi::Value(env, pairs));
  }
  if (attribution != nullptr) result.Set("attribution", AttributionObject(env, *attribution));
  return result;
}

}  // namespace

// One per environment, used on its JS thread only (but for `shared_`).
class ProcReader {
 public:
  ProcReader() : shared_(std::make_shared<Shared>()) {}
  ProcReader(const ProcReader&) = delete;
  ProcReader& operator=(const ProcReader&) = delete;

  // Starts a read whose result goes to `deliver(id, error, result)` (the
  // function of the first call, for the environment's life); returns its id,
  // or throws. No N-API handle is made per read: a read still in the kernel
  // when the environment goes leaves nothing of it behind.
  uint64_t Start(Napi::Env env, std::unique_ptr<Job> job, Napi::Function deliver) {
    EnsureFunction(env, deliver);
    job->id = ++last_id_;
    const uint64_t id = job->id;
    {
      std::lock_guard<std::mutex> lock(shared_->mutex);
      if (shared_->idle == 0 && shared_->threads < kMaxThreads) {
        if (SpawnReader(shared_)) {
          shared_->threads++;
        } else if (shared_->threads == 0) {
          // No thread to be had (RLIMIT_NPROC, memory): refuse as clone(2) would.
          throw SystemError(env, EAGAIN, "pthread_create", job->path);
        }
      }
      shared_->queue.push_back(job.release());  // a reader thread owns it now
    }
    shared_->wake.notify_one();
    awaited_[id] = true;
    Hold(env);
    return id;
  }

  void Abandon(Napi::Env env, uint64_t id) {
    auto it = awaited_.find(id);
    if (it == awaited_.end() || !it->second) return;
    it->second = false;
    Let(env);
  }

  // On the JS thread, from the thread-safe function: deliver(id, error, result).
  void Deliver(Napi::Env env, napi_value deliver, std::unique_ptr<Job> job) {
    auto it = awaited_.find(job->id);
    if (it != awaited_.end()) {
      if (it->second) Let(env);
      awaited_.erase(it);
    }
    Napi::HandleScope scope(env);
    napi_value args[3] = {Napi::Number::New(env, static_cast<double>(job->id)), env.Null(), env.Undefined()};
    // Called from the thread-safe function's C callback: nothing may throw out of it.
    try {
      if (job->err != 0) {
        args[1] = SystemError(env, job->err, job->syscall, job->path).Value();
      } else if (job->scanned) {
        args[2] = ScanObject(env, *job);
      } else {
        args[2] = HandOut(env, &job->data, true);
      }
    } catch (const Napi::Error& error) {
      args[1] = error.Value();
    }
    napi_call_function(env, env.Undefined(), deliver, 3, args, nullptr);
  }

  // Environment teardown: no thread delivers from now on.
  void Close() {
    napi_threadsafe_function tsfn;
    std::deque<Job*> queued;
    {
      std::lock_guard<std::mutex> lock(shared_->mutex);
      shared_->alive = false;
      tsfn = shared_->tsfn;
      shared_->tsfn = nullptr;
      queued.swap(shared_->queue);
    }
    shared_->wake.notify_all();  // idle threads leave; busy ones when their read returns
    for (Job* job : queued) delete job;
    if (tsfn != nullptr) napi_release_threadsafe_function(tsfn, napi_tsfn_abort);
  }

 private:
  static void CallJs(napi_env env, napi_value deliver, void* context, void* data) {
    std::unique_ptr<Job> job(static_cast<Job*>(data));
    if (env == nullptr || deliver == nullptr) return;  // torn down with the job still queued
    static_cast<ProcReader*>(context)->Deliver(Napi::Env(env), deliver, std::move(job));
  }

  static void Cleanup(void* arg) { static_cast<ProcReader*>(arg)->Close(); }

  void EnsureFunction(Napi::Env env, Napi::Function deliver) {
    if (hookAdded_) return;
    napi_value name = Napi::String::New(env, "node-ksm procread");
    napi_threadsafe_function tsfn;
    NAPI_THROW_IF_FAILED_VOID(env, napi_create_threadsafe_function(env, deliver, nullptr, name, 0, 1, nullptr, nullptr,
                                                                  this, CallJs, &tsfn));
    // Idle, it must not keep the loop alive; Hold() refs it while a read is awaited.
    napi_unref_threadsafe_function(env, tsfn);
    {
      std::lock_guard<std::mutex> lock(shared_->mutex);
      shared_->tsfn = tsfn;
    }
    // Added after the function's own hook, so it runs first (hooks run in reverse).
    napi_add_env_cleanup_hook(env, Cleanup, this);
    hookAdded_ = true;
  }

  void Hold(Napi::Env env) {
    if (held_++ == 0 && shared_->tsfn != nullptr) napi_ref_threadsafe_function(env, shared_->tsfn);
  }

  void Let(Napi::Env env) {
    if (held_ > 0 && --held_ == 0 && shared_->tsfn != nullptr) napi_unref_threadsafe_function(env, shared_->tsfn);
  }

  std::shared_ptr<Shared> shared_;
  std::unordered_map<uint64_t, bool> awaited_;  // id -> still awaited (not abandoned)
  uint64_t last_id_ = 0;
  size_t held_ = 0;
  bool hookAdded_ = false;
};

AddonData::AddonData() = default;
AddonData::~AddonData() = default;

namespace {

// One job's result buffer stays small: 16 MiB of headers at most.
constexpr size_t kMaxHeaders = 1 << 20;

Napi::Value StartJob(Napi::Env env, std::unique_ptr<Job> job, Napi::Function deliver) {
  AddonData& data = DataOf(env);
  if (!data.procReader) data.procReader = std::make_unique<ProcReader>();
  const uint64_t id = data.procReader->Start(env, std::move(job), deliver);
  return Napi::Number::New(env, static_cast<double>(id));
}

}  // namespace

Napi::Value ReadProcFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !(info[1].IsUndefined() || info[1].IsString()) || !info[2].IsFunction()) {
    throw Napi::TypeError::New(env,
                               "readProcFile(path: string, scan: 'smaps' | undefined, deliver: (id, error, result) => void, "
                               "chunks?: 'candidates' | 'reported', chunkLimit?: number, attribute?: 'scan' | 'linear', "
                               "stackPointers?: boolean)");
  }
  bool scanSmaps = false;
  if (info[1].IsString()) {
    if (info[1].As<Napi::String>().Utf8Value() != "smaps") throw Napi::TypeError::New(env, "scan must be 'smaps'");
    scanSmaps = true;
  }
  std::string path = info[0].As<Napi::String>().Utf8Value();
  if (path.empty() || path.find('\0') != std::string::npos) {
    throw Napi::TypeError::New(env, "path must be a non-empty string without NUL bytes");
  }
  static const std::string kSmaps = "/smaps";
  const bool processSmaps = scanSmaps && path.size() > kSmaps.size() &&
                            path.compare(path.size() - kSmaps.size(), kSmaps.size(), kSmaps) == 0;
  ChunkRule chunkRule = ChunkRule::kNone;
  size_t chunkLimit = 0;
  if (info.Length() > 3 && !info[3].IsUndefined()) {
    const std::string rule = info[3].IsString() ? info[3].As<Napi::String>().Utf8Value() : "";
    if (rule != "candidates" && rule != "reported") throw Napi::TypeError::New(env, "chunks must be 'candidates' or 'reported'");
    if (!processSmaps) throw Napi::TypeError::New(env, "chunks needs the scan of a process's smaps");
    const double limit = info.Length() > 4 && info[4].IsNumber() ? info[4].As<Napi::Number>().DoubleValue() : -1;
    if (!(limit >= 0 && limit <= static_cast<double>(kMaxHeaders) && limit == static_cast<double>(static_cast<size_t>(limit)))) {
      throw Napi::RangeError::New(env, "chunkLimit must be an integer from 0 to 1,048,576");
    }
    chunkRule = rule == "candidates" ? ChunkRule::kCandidates : ChunkRule::kReported;
    chunkLimit = static_cast<size_t>(limit);
  }
  bool attribute = false;
  bool attributeScan = true;
  if (info.Length() > 5 && !info[5].IsUndefined()) {
    const std::string how = info[5].IsString() ? info[5].As<Napi::String>().Utf8Value() : "";
    if (how != "scan" && how != "linear") throw Napi::TypeError::New(env, "attribute must be 'scan' or 'linear'");
    if (!processSmaps) throw Napi::TypeError::New(env, "attribute needs the scan of a process's smaps");
    attribute = true;
    attributeScan = how == "scan";
  }
  bool stackPointers = false;
  if (info.Length() > 6 && !info[6].IsUndefined()) {
    if (!info[6].IsBoolean()) throw Napi::TypeError::New(env, "stackPointers must be a boolean");
    stackPointers = info[6].As<Napi::Boolean>().Value();
    if (stackPointers && !processSmaps) throw Napi::TypeError::New(env, "stackPointers needs the scan of a process's smaps");
  }
  auto job = std::make_unique<Job>();
  job->path = std::move(path);
  job->scanSmaps = scanSmaps;
  job->stackPointers = stackPointers;
  job->chunkRule = chunkRule;
  job->chunkLimit = chunkLimit;
  job->attribute = attribute;
  job->attributeScan = attributeScan;
  return StartJob(env, std::move(job), info[2].As<Napi::Function>());
}

Napi::Value ReadPresentHeadersAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsTypedArray() || !info[2].IsFunction() ||
      info[1].As<Napi::TypedArray>().TypedArrayType() != napi_biguint64_array) {
    throw Napi::TypeError::New(env, "readPresentHeaders(dir: string, addresses: BigUint64Array, deliver: (id, error, result) => void)");
  }
  std::string dir = info[0].As<Napi::String>().Utf8Value();
  if (dir.empty() || dir.find('\0') != std::string::npos) {
    throw Napi::TypeError::New(env, "dir must be a non-empty string without NUL bytes");
  }
  Napi::TypedArrayOf<uint64_t> addresses = info[1].As<Napi::TypedArrayOf<uint64_t>>();
  if (addresses.ElementLength() > kMaxHeaders) throw Napi::RangeError::New(env, "at most 1,048,576 addresses");
  auto job = std::make_unique<Job>();
  job->path = std::move(dir);
  job->readHeaders = true;
  job->addresses.assign(addresses.Data(), addresses.Data() + addresses.ElementLength());
  return StartJob(env, std::move(job), info[2].As<Napi::Function>());
}

Napi::Value SmapsScanFields(Napi::Env env) {
  static const char* const kNames[] = {
#define KSM_SMAPS_FIELD_NAME(name) #name,
      KSM_SMAPS_FIELDS(KSM_SMAPS_FIELD_NAME)
#undef KSM_SMAPS_FIELD_NAME
  };
  Napi::Array names = Napi::Array::New(env, kSmapsFieldCount);
  for (size_t i = 0; i < kSmapsFieldCount; i++) names.Set(static_cast<uint32_t>(i), kNames[i]);
  return names;
}

Napi::Value AbandonRead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "abandonRead(id: number)");
  double id = info[0].As<Napi::Number>().DoubleValue();
  AddonData& data = DataOf(env);
  if (data.procReader && id >= 1 && id <= 9007199254740991.0) data.procReader->Abandon(env, static_cast<uint64_t>(id));
  return env.Undefined();
}

}  // namespace ksm
