// Registers the binding; each concern lives in its own file.
#include <napi.h>

#if defined(__linux__)
#include "memory.h"
#include "pagemap.h"
#include "pages.h"
#include "process.h"
#endif

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
#if defined(__linux__)
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
  exports.Set("constants", ksm::AdviceConstants(env));
  exports.Set("estimatePages",
              Napi::Function::New(env, ksm::EstimatePages, "estimatePages"));
  exports.Set("hashPages", Napi::Function::New(env, ksm::HashPages, "hashPages"));
  exports.Set("readBandwidth",
              Napi::Function::New(env, ksm::ReadBandwidth, "readBandwidth"));
  exports.Set("vmReadBandwidth",
              Napi::Function::New(env, ksm::VmReadBandwidth, "vmReadBandwidth"));
  exports.Set("pageStatFields", ksm::PageStatFields(env));
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
