// Registers the binding; each concern lives in its own file.
#include <napi.h>

#if defined(__linux__)
#include "addon-data.h"
#include "advice.h"
#include "attribution.h"
#include "estimate.h"
#include "memory.h"
#include "process.h"
#include "procread.h"
#endif

#if defined(__linux__)
#include <dlfcn.h>

namespace ksm {
AddonData& DataOf(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }
}  // namespace ksm

namespace {

// Threads of ours can outlive the environment that started them: a read of
// a process whose memory map is locked returns when the lock is released,
// and a stopped estimate finishes its batch. Node unloads an addon when the
// last environment that loaded it goes (a worker that alone used it), which
// would unmap the code they run. One more reference, never dropped, keeps it
// loaded for the life of the process.
void KeepLoaded() {
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&KeepLoaded), &info) != 0 && info.dli_fname != nullptr) {
    dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
  }
}

}  // namespace
#endif

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
#if defined(__linux__)
  KeepLoaded();
  env.SetInstanceData<ksm::AddonData>(new ksm::AddonData());
  exports.Set("supported", Napi::Boolean::New(env, true));
  exports.Set("alloc", Napi::Function::New(env, ksm::Alloc, "alloc"));
  exports.Set("madvise", Napi::Function::New(env, ksm::Madvise, "madvise"));
  exports.Set("viewRange", Napi::Function::New(env, ksm::ViewRange, "viewRange"));
  exports.Set("pageSize", Napi::Function::New(env, ksm::PageSize, "pageSize"));
  exports.Set("trimMalloc", Napi::Function::New(env, ksm::TrimMalloc, "trimMalloc"));
  exports.Set("setMemoryMerge",
              Napi::Function::New(env, ksm::SetMemoryMerge, "setMemoryMerge"));
  exports.Set("getMemoryMerge",
              Napi::Function::New(env, ksm::GetMemoryMerge, "getMemoryMerge"));
  exports.Set("pageAttribution",
              Napi::Function::New(env, ksm::PageAttribution, "pageAttribution"));
  exports.Set("readProcFile",
              Napi::Function::New(env, ksm::ReadProcFile, "readProcFile"));
  exports.Set("readPresentHeaders",
              Napi::Function::New(env, ksm::ReadPresentHeadersAsync, "readPresentHeaders"));
  exports.Set("abandonRead",
              Napi::Function::New(env, ksm::AbandonRead, "abandonRead"));
  exports.Set("constants", ksm::AdviceConstants(env));
  exports.Set("estimatePages",
              Napi::Function::New(env, ksm::EstimatePages, "estimatePages"));
  exports.Set("pageStatFields", ksm::PageStatFields(env));
  exports.Set("smapsScanFields", ksm::SmapsScanFields(env));
  exports.Set("markSensitive", Napi::Function::New(env, ksm::MarkSensitive, "markSensitive"));
  exports.Set("sensitiveRanges", Napi::Function::New(env, ksm::SensitiveRanges, "sensitiveRanges"));
  exports.Set("adviseMergeable", Napi::Function::New(env, ksm::AdviseMergeable, "adviseMergeable"));
  exports.Set("unadviseMergeable", Napi::Function::New(env, ksm::UnadviseMergeable, "unadviseMergeable"));
  exports.Set("releaseMergeable", Napi::Function::New(env, ksm::ReleaseMergeable, "releaseMergeable"));
  exports.Set("reapplyAdvice", Napi::Function::New(env, ksm::ReapplyAdvice, "reapplyAdvice"));
#else
  // Other platforms load a stub so the package imports everywhere.
  exports.Set("supported", Napi::Boolean::New(env, false));
  exports.Set("reason",
              Napi::String::New(env, "KSM is a Linux kernel feature"));
#endif
  return exports;
}

}  // namespace

NODE_API_MODULE(ksm, Init)
