// Process-wide KSM opt-in: prctl(PR_SET_MEMORY_MERGE / PR_GET_MEMORY_MERGE).
#pragma once

#include <napi.h>

namespace ksm {

// setMemoryMerge(enabled: boolean): void
Napi::Value SetMemoryMerge(const Napi::CallbackInfo& info);

// getMemoryMerge(): boolean
Napi::Value GetMemoryMerge(const Napi::CallbackInfo& info);

}  // namespace ksm
