#include "process.h"

#include <sys/prctl.h>

#include <cerrno>

#include "errors.h"
#include "ksm-abi.h"

namespace ksm {

Napi::Value SetMemoryMerge(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsBoolean()) {
    throw Napi::TypeError::New(env, "setMemoryMerge(enabled: boolean)");
  }
  unsigned long enabled = info[0].As<Napi::Boolean>().Value() ? 1 : 0;
  if (prctl(PR_SET_MEMORY_MERGE, enabled, 0UL, 0UL, 0UL) != 0) {
    throw SystemError(env, errno, "prctl");
  }
  return env.Undefined();
}

Napi::Value GetMemoryMerge(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int result = prctl(PR_GET_MEMORY_MERGE, 0UL, 0UL, 0UL, 0UL);
  if (result < 0) {
    throw SystemError(env, errno, "prctl");
  }
  return Napi::Boolean::New(env, result != 0);
}

}  // namespace ksm
