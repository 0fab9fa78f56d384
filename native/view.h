// The memory behind an ArrayBuffer, TypedArray (Buffer included) or DataView.
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>

namespace ksm {

struct ViewMemory {
  uint8_t* data;
  size_t length;
};

// Throws TypeError for anything else, and for a detached buffer.
ViewMemory GetViewMemory(Napi::Env env, const Napi::Value& value);

}  // namespace ksm
