// Anonymous mappings handed to JavaScript, and madvise over views.
#pragma once

#include <napi.h>

namespace ksm {

// alloc(size, advices): mmap a private anonymous mapping of whole pages,
// apply each advice, return a Buffer of exactly `size` bytes whose
// finalizer munmaps the mapping. Accounted as external memory.
Napi::Value Alloc(const Napi::CallbackInfo& info);

// madvise(view, advice[, outward]): advise the whole pages inside the view's
// memory (never rounding outward), return { address, length } of what was
// covered. outward=true (MADV_UNMERGEABLE only) covers every page the view
// touches instead.
Napi::Value Madvise(const Napi::CallbackInfo& info);

// viewRange(view): { address, length } of the view's memory, as is.
Napi::Value ViewRange(const Napi::CallbackInfo& info);

Napi::Value PageSize(const Napi::CallbackInfo& info);

// trimMalloc(): malloc_trim(0) where the C library has it (glibc): free
// memory inside malloc's arenas goes back to the kernel (MADV_DONTNEED on
// whole free pages, the top of each heap trimmed). Returns true when memory
// was released, false when none was, null where there is no malloc_trim.
Napi::Value TrimMalloc(const Napi::CallbackInfo& info);

// MADV_* values the binding accepts, from the system headers.
Napi::Object AdviceConstants(Napi::Env env);

}  // namespace ksm
