#include "estimate.h"

#include <unistd.h>

#include <atomic>
#include <cmath>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "errors.h"
#include "estimate-threads.h"
#include "estimate-worker.h"
#include "hash.h"
#include "page-stats.h"

namespace ksm {

namespace {

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

EstimateConfig ParseOptions(Napi::Env env, Napi::Object options) {
  EstimateConfig config;
  config.interval_ms = NumberProperty(env, options, "intervalMs", 0, 86400000);
  config.max_page_sharing =
      static_cast<uint32_t>(NumberProperty(env, options, "maxPageSharing", 2, 1e9));
  // All targets' pages, to reserve for: a target's own `expectedPages` wins.
  config.expected_pages = static_cast<size_t>(NumberProperty(env, options, "expectedPages", 0, 1e12));
  if (options.Has("threads")) {
    config.threads = static_cast<size_t>(NumberProperty(env, options, "threads", 1, static_cast<double>(kMaxThreads)));
  }
  config.batch_pages = static_cast<size_t>(NumberProperty(env, options, "batchPages", 1, 1024));
  // Optional, default true: false reads pagemap linearly (the pre-6.7 path).
  Napi::Value scan = options.Get("pagemapScan");
  if (!scan.IsUndefined() && !scan.IsBoolean()) {
    throw Napi::TypeError::New(env, "pagemapScan must be a boolean");
  }
  config.pagemap_scan = scan.IsUndefined() || scan.As<Napi::Boolean>().Value();
  // Optional, default false: a target that refuses its pagemap or
  // process_vm_readv (EPERM, EACCES) is left out and said so (estimate --all).
  Napi::Value skip = options.Get("skipRefused");
  if (!skip.IsUndefined() && !skip.IsBoolean()) {
    throw Napi::TypeError::New(env, "skipRefused must be a boolean");
  }
  config.skip_refused = skip.IsBoolean() && skip.As<Napi::Boolean>().Value();
  if (options.Has("confirmPauseMs")) config.confirm_pause_ms = NumberProperty(env, options, "confirmPauseMs", 0, 60000);
  // Optional, default 'auto'. Which one to use is the caller's choice; this
  // only carries it out.
  Napi::Value hash = options.Get("hash");
  if (!hash.IsUndefined() && !hash.IsString()) {
    throw Napi::TypeError::New(env, "hash must be a string");
  }
  const std::string hash_name = hash.IsUndefined() ? "auto" : hash.As<Napi::String>().Utf8Value();
  if (hash_name == "auto") config.hash = BestPageHash();
  else if (hash_name == "scalar") config.hash = ScalarPageHash();
  else throw Napi::RangeError::New(env, "hash must be 'auto' or 'scalar'");
  return config;
}

Target ParseTarget(Napi::Env env, Napi::Value item, size_t page) {
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
  target.stats.assign(target.RangeCount(), PageStats{});
  if (object.Has("expectedPages")) target.expected_pages = static_cast<size_t>(NumberProperty(env, object, "expectedPages", 0, 1e12));
  return target;
}


// What the estimate's thread shares with JS: whether anyone is still there
// to hear from it. A teardown clears `tsfn` and the thread then drops its
// messages, never touching the environment.
struct Link {
  std::mutex mutex;
  napi_threadsafe_function tsfn = nullptr;
  std::shared_ptr<StopSignal> stop;

  // Queues a message for the JS thread; false (and it is freed) when
  // nobody listens any more.
  template <typename T>
  bool Post(T* message) {
    std::lock_guard<std::mutex> lock(mutex);
    if (tsfn != nullptr && napi_call_threadsafe_function(tsfn, message, napi_tsfn_nonblocking) == napi_ok) return true;
    delete message;
    return false;
  }
};

// The estimate as JS sees it: the promise, the progress callback and the
// way back from the estimate's thread (a thread-safe function). Lives on the
// JS thread; freed when the function is finalized.
struct JsSide {
  napi_env env = nullptr;
  // The promise's resolve and reject, as references: a napi_deferred left
  // unsettled when the environment goes (a worker terminated mid-estimate)
  // can never be freed, while references are deleted in Finalize.
  napi_ref resolve = nullptr;
  napi_ref reject = nullptr;
  napi_ref on_progress = nullptr;
  napi_ref sentinel = nullptr;  // held until the promise settles
  napi_threadsafe_function tsfn = nullptr;
  bool hooked = false;  // the teardown hook is registered
  std::shared_ptr<Link> link;
};

struct Message {
  bool done = false;
  Progress progress{};
  std::shared_ptr<EstimateWorker> worker;  // with `done`
};

// Environment teardown (a worker terminated, the main thread leaving):
// stop the estimate and hear nothing more from it. Its thread finishes on
// its own a batch later (or when a read stuck on a locked process returns)
// and frees what it holds; nothing waits for it.
void Teardown(void* arg) {
  JsSide* js = static_cast<JsSide*>(arg);
  js->hooked = false;
  napi_threadsafe_function tsfn;
  {
    std::lock_guard<std::mutex> lock(js->link->mutex);
    tsfn = js->link->tsfn;
    js->link->tsfn = nullptr;
  }
  js->link->stop->Cancel();
  if (tsfn != nullptr) napi_release_threadsafe_function(tsfn, napi_tsfn_abort);
}

void Finalize(napi_env env, void* data, void*) {
  JsSide* js = static_cast<JsSide*>(data);
  if (js->hooked) napi_remove_env_cleanup_hook(env, Teardown, js);
  if (js->resolve != nullptr) napi_delete_reference(env, js->resolve);
  if (js->reject != nullptr) napi_delete_reference(env, js->reject);
  if (js->on_progress != nullptr) napi_delete_reference(env, js->on_progress);
  if (js->sentinel != nullptr) napi_delete_reference(env, js->sentinel);
  delete js;
}

// A worker's teardown frees its external buffers, newest first, before it
// runs any cleanup hook (Node's Environment::RunCleanup), and unmapping a
// large buffer takes a while: an estimate would run on through it, slowing
// it down. A one-byte external buffer made when the estimate starts, and
// held until it settles, is freed first of all and stops the estimate
// there. Freed later by the GC (the estimate over), it changes nothing.
void SentinelFreed(napi_env, void* data, void* hint) {
  delete[] static_cast<uint8_t*>(data);
  std::unique_ptr<std::shared_ptr<StopSignal>> stop(static_cast<std::shared_ptr<StopSignal>*>(hint));
  (*stop)->Cancel();
}

napi_status MakeSentinel(napi_env env, const std::shared_ptr<StopSignal>& stop, napi_ref* out) {
  auto* byte = new uint8_t[1]();
  auto* hint = new std::shared_ptr<StopSignal>(stop);
  napi_value buffer;
  napi_status status = napi_create_external_buffer(env, 1, byte, SentinelFreed, hint, &buffer);
  if (status != napi_ok) {
    delete[] byte;
    delete hint;
    return status;
  }
  return napi_create_reference(env, buffer, 1, out);
}

// Calls the promise's resolve (or reject) once, and lets go of both.
void SettlePromise(Napi::Env env, JsSide* js, bool ok, napi_value value) {
  napi_value fn = nullptr;
  napi_ref ref = ok ? js->resolve : js->reject;
  if (ref != nullptr && napi_get_reference_value(env, ref, &fn) == napi_ok && fn != nullptr) {
    Napi::Function(env, fn).Call({value});
  }
  for (napi_ref* r : {&js->resolve, &js->reject}) {
    if (*r != nullptr) napi_delete_reference(env, *r);
    *r = nullptr;
  }
}

// new Promise((resolve, reject) => ...), keeping references to both.
napi_status MakePromise(Napi::Env env, JsSide* js, napi_value* out) {
  Napi::Function executor = Napi::Function::New(env, [js](const Napi::CallbackInfo& cb) {
    napi_create_reference(cb.Env(), cb[0], 1, &js->resolve);
    napi_create_reference(cb.Env(), cb[1], 1, &js->reject);
    return cb.Env().Undefined();
  });
  Napi::Value ctor = env.Global().Get("Promise");
  if (!ctor.IsFunction()) return napi_function_expected;
  *out = ctor.As<Napi::Function>().New({executor});
  return js->resolve != nullptr && js->reject != nullptr ? napi_ok : napi_generic_failure;
}

void Settle(Napi::Env env, JsSide* js, const EstimateWorker& worker) {
  if (worker.failed()) SettlePromise(env, js, false, worker.Error(env).Value());
  else SettlePromise(env, js, true, worker.Result(env));
  napi_threadsafe_function tsfn;
  {
    std::lock_guard<std::mutex> lock(js->link->mutex);
    tsfn = js->link->tsfn;
    js->link->tsfn = nullptr;
  }
  if (tsfn != nullptr) napi_release_threadsafe_function(tsfn, napi_tsfn_release);
}

void CallJs(napi_env raw, napi_value, void* context, void* data) {
  std::unique_ptr<Message> message(static_cast<Message*>(data));
  if (raw == nullptr) return;  // torn down with the message still queued
  Napi::Env env(raw);
  JsSide* js = static_cast<JsSide*>(context);
  Napi::HandleScope scope(env);
  // Exceptions from the progress callback stay pending in JS, as they would
  // for any callback the addon makes.
  try {
    if (message->done) {
      Settle(env, js, *message->worker);
    } else if (js->on_progress != nullptr && message->progress.phase < 4) {
      static constexpr const char* kPhaseNames[] = {"pagemap", "sample", "resample", "confirm"};
      napi_value fn;
      if (napi_get_reference_value(raw, js->on_progress, &fn) != napi_ok || fn == nullptr) return;
      Napi::Function(env, fn).Call({Napi::String::New(env, kPhaseNames[message->progress.phase]),
                                    Napi::Number::New(env, message->progress.done),
                                    Napi::Number::New(env, message->progress.total)});
    }
  } catch (const Napi::Error& error) {
    error.ThrowAsJavaScriptException();
  }
}

}  // namespace

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
  const EstimateConfig config = ParseOptions(env, info[1].As<Napi::Object>());

  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  Napi::Array list = info[0].As<Napi::Array>();
  if (list.Length() > kMaxTargets) {
    throw Napi::RangeError::New(env, "at most 65536 targets");
  }
  std::vector<Target> targets;
  targets.reserve(list.Length());
  for (uint32_t i = 0; i < list.Length(); i++) targets.push_back(ParseTarget(env, list.Get(i), page));

  // Targets that did not say: an even part of the total.
  for (Target& target : targets) {
    if (target.expected_pages == 0) target.expected_pages = config.expected_pages / targets.size();
  }
  auto stop = std::make_shared<StopSignal>();
  auto worker = std::make_shared<EstimateWorker>(std::move(targets), config, stop);
  auto link = std::make_shared<Link>();
  link->stop = stop;
  auto* js = new JsSide();
  js->env = env;
  js->link = link;
  napi_value promise;
  napi_status status = MakePromise(env, js, &promise);
  if (status == napi_ok && !on_progress.IsEmpty()) status = napi_create_reference(env, on_progress, 1, &js->on_progress);
  if (status == napi_ok) status = MakeSentinel(env, stop, &js->sentinel);
  napi_threadsafe_function tsfn = nullptr;
  if (status == napi_ok) {
    status = napi_create_threadsafe_function(env, nullptr, nullptr, Napi::String::New(env, "node-ksm estimate"), 0, 1,
                                             js, Finalize, js, CallJs, &tsfn);
  }
  if (status != napi_ok) {
    if (js->on_progress != nullptr) napi_delete_reference(env, js->on_progress);
    if (js->sentinel != nullptr) napi_delete_reference(env, js->sentinel);
    if (js->resolve != nullptr) napi_delete_reference(env, js->resolve);
    if (js->reject != nullptr) napi_delete_reference(env, js->reject);
    delete js;
    NAPI_THROW_IF_FAILED(env, status, Napi::Value());
  }
  js->tsfn = tsfn;
  link->tsfn = tsfn;
  // Added after the function's own hook, so it runs first (hooks run in reverse).
  napi_add_env_cleanup_hook(env, Teardown, js);
  js->hooked = true;

  const bool started = StartDetached([worker, link]() {
    worker->Run([&link](const Progress& progress) {
      auto* message = new Message();
      message->progress = progress;
      link->Post(message);
    });
    auto* message = new Message();
    message->done = true;
    message->worker = worker;
    link->Post(message);
  });
  if (!started) {
    // No thread to be had (RLIMIT_NPROC, memory): refuse as clone(2) would.
    SettlePromise(env, js, false, SystemError(env, EAGAIN, "pthread_create").Value());
    napi_remove_env_cleanup_hook(env, Teardown, js);
    Teardown(js);
  }

  Napi::Object handle = Napi::Object::New(env);
  handle.Set("promise", Napi::Value(env, promise));
  handle.Set("cancel", Napi::Function::New(
                           env,
                           [stop](const Napi::CallbackInfo& cb) {
                             stop->Cancel();
                             return cb.Env().Undefined();
                           },
                           "cancel"));
  return handle;
}

Napi::Array PageStatFields(Napi::Env env) {
  Napi::Array names = Napi::Array::New(env, kPageStatCount);
  for (uint32_t i = 0; i < kPageStatCount; i++) {
    names.Set(i, Napi::String::New(env, kPageStatNames[i]));
  }
  return names;
}

}  // namespace ksm
