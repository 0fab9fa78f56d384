// Hashing the pages of processes, for estimate(): which touched private
// anonymous pages are zero, identical to another page, or changing. The
// binding; the work is EstimateWorker's (estimate-worker.h).
#pragma once

#include <napi.h>

namespace ksm {

// estimatePages(targets, options, onProgress?) -> { promise, cancel }
//   targets: [{ pid, ranges: BigUint64Array [start, end, ...] sorted,
//               page-aligned, non-overlapping, readable: Uint8Array }]
//   options: { intervalMs, maxPageSharing, expectedPages, batchPages,
//              pagemapScan? (default true: PAGEMAP_SCAN, see pagewalk.h),
//              hash? ('auto', the default: the fastest this CPU runs;
//                     'scalar': the portable one, see hash.h) }
// Runs on the libuv pool; `cancel()` stops it between batches and the promise
// then resolves with { cancelled: true }. The result says which hash ran
// (hashImplementation: 'avx2' | 'scalar').
Napi::Value EstimatePages(const Napi::CallbackInfo& info);

// Names of the per-range figures in estimatePages' `stats`, in order
// (page-stats.h).
Napi::Array PageStatFields(Napi::Env env);

}  // namespace ksm
