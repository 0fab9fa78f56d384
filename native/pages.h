// Hashing the pages of processes, for estimate(): which touched private
// anonymous pages are zero, identical to another page, or changing.
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>

namespace ksm {

// estimatePages(targets, options, onProgress?) -> { promise, cancel }
//   targets: [{ pid, ranges: BigUint64Array [start, end, ...] sorted,
//               page-aligned, non-overlapping }]
//   options: { intervalMs, maxPageSharing, expectedPages, batchPages,
//              pagemapScan? (default true: PAGEMAP_SCAN, see pagewalk.h) }
// Runs on the libuv pool; `cancel()` stops it between batches and the promise
// then resolves with { cancelled: true }.
Napi::Value EstimatePages(const Napi::CallbackInfo& info);

// hashPages(view) -> { pages, nanoseconds, digest }: the page hash over memory
// already in this process, for the benchmark (no copy, no page tables).
Napi::Value HashPages(const Napi::CallbackInfo& info);

// readBandwidth(view, passes) -> { bytes, nanoseconds }: a plain sequential
// read of the view, the machine's one-core memory bandwidth for the benchmark.
Napi::Value ReadBandwidth(const Napi::CallbackInfo& info);

// vmReadBandwidth(view, batchPages) -> { bytes, nanoseconds }: the view read
// into a scratch buffer through process_vm_readv on this process, batchPages
// at a time: the kernel's copy path alone, for the benchmark.
Napi::Value VmReadBandwidth(const Napi::CallbackInfo& info);

// Names of the per-VMA figures in estimatePages' `stats`, in order.
Napi::Array PageStatFields(Napi::Env env);

// The 64-bit page hash (wyhash-style multiply-fold over four lanes). Sets
// *all_zero when every byte is zero. `len` is a multiple of 64.
uint64_t HashPage(const uint8_t* data, size_t len, bool* all_zero);

}  // namespace ksm
