#include "view.h"

namespace ksm {

namespace {

bool IsDetached(Napi::Env env, napi_value arraybuffer) {
  bool detached = false;
  NAPI_THROW_IF_FAILED(env,
                       napi_is_detached_arraybuffer(env, arraybuffer, &detached),
                       false);
  return detached;
}

[[noreturn]] void ThrowDetached(Napi::Env env) {
  throw Napi::TypeError::New(env, "the view's ArrayBuffer is detached");
}

}  // namespace

ViewMemory GetViewMemory(Napi::Env env, const Napi::Value& value) {
  if (value.IsArrayBuffer()) {
    if (IsDetached(env, value)) ThrowDetached(env);
    Napi::ArrayBuffer buffer = value.As<Napi::ArrayBuffer>();
    return {static_cast<uint8_t*>(buffer.Data()), buffer.ByteLength()};
  }
  if (value.IsTypedArray()) {
    napi_typedarray_type type;
    size_t length = 0;
    void* data = nullptr;
    napi_value arraybuffer;
    size_t offset = 0;
    NAPI_THROW_IF_FAILED(env,
                         napi_get_typedarray_info(env, value, &type, &length,
                                                  &data, &arraybuffer, &offset),
                         ViewMemory{});
    if (IsDetached(env, arraybuffer)) ThrowDetached(env);
    size_t bytes = value.As<Napi::TypedArray>().ByteLength();
    return {static_cast<uint8_t*>(data), bytes};
  }
  if (value.IsDataView()) {
    Napi::DataView view = value.As<Napi::DataView>();
    if (IsDetached(env, view.ArrayBuffer())) ThrowDetached(env);
    return {static_cast<uint8_t*>(view.Data()), view.ByteLength()};
  }
  throw Napi::TypeError::New(
      env, "expected an ArrayBuffer, a TypedArray, a Buffer or a DataView");
}

}  // namespace ksm
