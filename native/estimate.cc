#include "estimate.h"

#include <unistd.h>

#include <atomic>
#include <cmath>
#include <memory>
#include <string>
#include <utility>
#include <vector>

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
  config.expected_pages =
      static_cast<size_t>(NumberProperty(env, options, "expectedPages", 0, 1e12));
  config.batch_pages = static_cast<size_t>(NumberProperty(env, options, "batchPages", 1, 1024));
  // Optional, default true: false reads pagemap linearly (the pre-6.7 path).
  Napi::Value scan = options.Get("pagemapScan");
  if (!scan.IsUndefined() && !scan.IsBoolean()) {
    throw Napi::TypeError::New(env, "pagemapScan must be a boolean");
  }
  config.pagemap_scan = scan.IsUndefined() || scan.As<Napi::Boolean>().Value();
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
  return target;
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

  auto cancelled = std::make_shared<std::atomic<bool>>(false);
  auto* worker = new EstimateWorker(env, std::move(targets), config, cancelled, on_progress);
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

Napi::Array PageStatFields(Napi::Env env) {
  Napi::Array names = Napi::Array::New(env, kPageStatCount);
  for (uint32_t i = 0; i < kPageStatCount; i++) {
    names.Set(i, Napi::String::New(env, kPageStatNames[i]));
  }
  return names;
}

}  // namespace ksm
