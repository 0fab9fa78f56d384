#include "memory.h"

#include <sys/mman.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "advice.h"
#include "errors.h"
#include "ksm-abi.h"
#include "view.h"

namespace ksm {

namespace {

bool IsAllowedAdvice(int64_t advice) {
  switch (advice) {
    case MADV_MERGEABLE:
    case MADV_UNMERGEABLE:
    case MADV_HUGEPAGE:
    case MADV_NOHUGEPAGE:
      return true;
    default:
      return false;
  }
}

int ToAdvice(Napi::Env env, const Napi::Value& value) {
  if (!value.IsNumber()) {
    throw Napi::TypeError::New(env, "advice must be a number");
  }
  double raw = value.As<Napi::Number>().DoubleValue();
  if (std::trunc(raw) != raw || !IsAllowedAdvice(static_cast<int64_t>(raw))) {
    throw Napi::RangeError::New(
        env, "advice must be one of MADV_MERGEABLE, MADV_UNMERGEABLE, "
             "MADV_HUGEPAGE, MADV_NOHUGEPAGE");
  }
  return static_cast<int>(raw);
}

size_t SystemPageSize() { return static_cast<size_t>(sysconf(_SC_PAGESIZE)); }

Napi::Object RangeObject(Napi::Env env, uintptr_t address, size_t length) {
  Napi::Object range = Napi::Object::New(env);
  range.Set("address",
            Napi::BigInt::New(env, static_cast<uint64_t>(address)));
  range.Set("length", Napi::Number::New(env, static_cast<double>(length)));
  return range;
}

}  // namespace

Napi::Value Alloc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsArray()) {
    throw Napi::TypeError::New(env, "alloc(size: number, advices: number[])");
  }
  double requested = info[0].As<Napi::Number>().DoubleValue();
  const size_t page = SystemPageSize();
  // Doubles above 2^53 are not exact sizes; anything near SIZE_MAX cannot be
  // rounded up to a page without wrapping.
  constexpr double kMaxSize = 9007199254740991.0;  // Number.MAX_SAFE_INTEGER
  if (!std::isfinite(requested) || std::trunc(requested) != requested ||
      requested <= 0 || requested > kMaxSize ||
      requested > static_cast<double>(std::numeric_limits<size_t>::max() - page)) {
    throw Napi::RangeError::New(
        env, "size must be a positive safe integer within the address space");
  }
  const size_t size = static_cast<size_t>(requested);
  const size_t mapped = (size + page - 1) / page * page;

  Napi::Array list = info[1].As<Napi::Array>();
  std::vector<int> advices;
  advices.reserve(list.Length());
  for (uint32_t i = 0; i < list.Length(); i++) {
    advices.push_back(ToAdvice(env, list.Get(i)));
  }

  void* addr = mmap(nullptr, mapped, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (addr == MAP_FAILED) {
    throw SystemError(env, errno, "mmap");
  }
  // Recorded before it is advised: disableMerge() in another thread advises
  // it again (advice.h).
  const uintptr_t begin = reinterpret_cast<uintptr_t>(addr);
  const uint64_t id = RecordMapping(
      begin, begin + mapped,
      std::find(advices.begin(), advices.end(), MADV_MERGEABLE) != advices.end());
  for (int advice : advices) {
    if (madvise(addr, mapped, advice) != 0) {
      int err = errno;
      ForgetMapping(id);
      munmap(addr, mapped);
      throw SystemError(env, err, "madvise");
    }
  }

  Napi::Buffer<uint8_t> buffer;
  try {
    buffer = Napi::Buffer<uint8_t>::New(
        env, static_cast<uint8_t*>(addr), size,
        [mapped, size, id](Napi::Env finalizeEnv, uint8_t* data) {
          ForgetMapping(id);
          munmap(data, mapped);
          if (mapped > size) {
            Napi::MemoryManagement::AdjustExternalMemory(
                finalizeEnv, -static_cast<int64_t>(mapped - size));
          }
        });
  } catch (...) {
    // The finalizer never took ownership (e.g. external buffers disallowed).
    ForgetMapping(id);
    munmap(addr, mapped);
    throw;
  }
  // V8 counts the Buffer's `size` bytes itself (a backing store with a
  // deleter); the mapping's rest of its last page is added here.
  if (mapped > size) {
    Napi::MemoryManagement::AdjustExternalMemory(
        env, static_cast<int64_t>(mapped - size));
  }
  return buffer;
}

Napi::Value Madvise(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2) {
    throw Napi::TypeError::New(env, "madvise(view, advice)");
  }
  ViewMemory view = GetViewMemory(env, info[0]);
  int advice = ToAdvice(env, info[1]);
  bool outward = false;
  if (info.Length() > 2 && !info[2].IsUndefined()) {
    if (!info[2].IsBoolean()) {
      throw Napi::TypeError::New(env, "outward must be a boolean");
    }
    outward = info[2].As<Napi::Boolean>().Value();
  }
  // Outward rounding is for MADV_UNMERGEABLE only (markSensitive): it never
  // changes the bytes, and a secret's partial pages must not merge either.
  if (outward && advice != MADV_UNMERGEABLE) {
    throw Napi::RangeError::New(env, "outward rounding is only for MADV_UNMERGEABLE");
  }

  const uintptr_t page = SystemPageSize();
  const uintptr_t begin = reinterpret_cast<uintptr_t>(view.data);
  // Inward rounding by default: the pages partly outside the view are not ours.
  const uintptr_t start =
      outward ? begin / page * page : (begin + page - 1) / page * page;
  const uintptr_t end = outward ? (begin + view.length + page - 1) / page * page
                                : (begin + view.length) / page * page;
  if (view.length == 0 || end <= start) {
    return RangeObject(env, start, 0);
  }
  if (madvise(reinterpret_cast<void*>(start), end - start, advice) != 0) {
    throw SystemError(env, errno, "madvise");
  }
  return RangeObject(env, start, end - start);
}

Napi::Value ViewRange(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1) {
    throw Napi::TypeError::New(env, "viewRange(view)");
  }
  ViewMemory view = GetViewMemory(env, info[0]);
  return RangeObject(env, reinterpret_cast<uintptr_t>(view.data), view.length);
}

Napi::Value PageSize(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(SystemPageSize()));
}

Napi::Value TrimMalloc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
#if defined(__GLIBC__)
  return Napi::Boolean::New(env, malloc_trim(0) != 0);
#else
  return env.Null();
#endif
}

Napi::Object AdviceConstants(Napi::Env env) {
  Napi::Object constants = Napi::Object::New(env);
  constants.Set("MADV_MERGEABLE", MADV_MERGEABLE);
  constants.Set("MADV_UNMERGEABLE", MADV_UNMERGEABLE);
  constants.Set("MADV_HUGEPAGE", MADV_HUGEPAGE);
  constants.Set("MADV_NOHUGEPAGE", MADV_NOHUGEPAGE);
  return constants;
}

}  // namespace ksm
