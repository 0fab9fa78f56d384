// Bench-only entry points (bench/estimate.mjs): what estimate() is measured
// against. Not in the shipped addon.
#include <napi.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <string>
#include <vector>

#include "errors.h"
#include "hash.h"
#include "view.h"

namespace {

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull +
         static_cast<uint64_t>(ts.tv_nsec);
}

// hashPages(view, hash?: 'auto' | 'scalar') -> { pages, zeroPages,
// nanoseconds, digest, implementation }: the page hash over memory already
// in this process (no copy, no page tables).
Napi::Value HashPages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1) throw Napi::TypeError::New(env, "hashPages(view, hash?)");
  ksm::ViewMemory view = ksm::GetViewMemory(env, info[0]);
  ksm::PageHash hash = ksm::BestPageHash();
  if (info.Length() >= 2 && !info[1].IsUndefined()) {
    const std::string name = info[1].ToString().Utf8Value();
    if (name == "scalar") hash = ksm::ScalarPageHash();
    else if (name != "auto") throw Napi::RangeError::New(env, "hash must be 'auto' or 'scalar'");
  }
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t pages = view.length / page;
  uint64_t digest = 0;
  size_t zero = 0;
  uint64_t t0 = NowNs();
  for (size_t i = 0; i < pages; i++) {
    bool all_zero = false;
    digest ^= hash.fn(view.data + i * page, page, &all_zero);
    zero += all_zero ? 1 : 0;
  }
  uint64_t ns = NowNs() - t0;
  Napi::Object result = Napi::Object::New(env);
  result.Set("pages", Napi::Number::New(env, static_cast<double>(pages)));
  result.Set("zeroPages", Napi::Number::New(env, static_cast<double>(zero)));
  result.Set("nanoseconds", Napi::Number::New(env, static_cast<double>(ns)));
  result.Set("digest", Napi::BigInt::New(env, digest));
  result.Set("implementation", Napi::String::New(env, hash.name));
  return result;
}

// readBandwidth(view, passes) -> { bytes, nanoseconds, checksum }: a plain
// sequential read of the view, the machine's one-core memory bandwidth.
Napi::Value ReadBandwidth(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[1].IsNumber()) {
    throw Napi::TypeError::New(env, "readBandwidth(view, passes)");
  }
  ksm::ViewMemory view = ksm::GetViewMemory(env, info[0]);
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

// vmReadBandwidth(view, batchPages) -> { bytes, nanoseconds }: the view read
// into a scratch buffer through process_vm_readv on this process, batchPages
// at a time: the kernel's copy path alone.
Napi::Value VmReadBandwidth(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[1].IsNumber()) {
    throw Napi::TypeError::New(env, "vmReadBandwidth(view, batchPages)");
  }
  ksm::ViewMemory view = ksm::GetViewMemory(env, info[0]);
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
    if (got < 0) throw ksm::SystemError(env, errno, "process_vm_readv");
    bytes += static_cast<size_t>(got);
  }
  uint64_t ns = NowNs() - t0;
  Napi::Object result = Napi::Object::New(env);
  result.Set("bytes", Napi::Number::New(env, static_cast<double>(bytes)));
  result.Set("nanoseconds", Napi::Number::New(env, static_cast<double>(ns)));
  return result;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("hashPages", Napi::Function::New(env, HashPages, "hashPages"));
  exports.Set("readBandwidth", Napi::Function::New(env, ReadBandwidth, "readBandwidth"));
  exports.Set("vmReadBandwidth", Napi::Function::New(env, VmReadBandwidth, "vmReadBandwidth"));
  return exports;
}

}  // namespace

NODE_API_MODULE(ksm_bench, Init)
