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
namespace ksm {
AddonData& DataOf(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }
}  // namespace ksm
#endif

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
#if defined(__linux__)
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
