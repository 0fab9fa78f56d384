// Exact KSM attribution, page by page: /proc/PID/pagemap gives each virtual
// page's frame, /proc/kpageflags says whether the frame is a KSM page (or the
// zero page), /proc/kpagecount how many page tables map it.
#pragma once

#include <napi.h>

namespace ksm {

// pageAttribution(pid: number, starts: BigUint64Array, ends: BigUint64Array,
// pagemapScan?: boolean): Promise<{ presentPages, ksmPages, zeroPages:
// number[], sharing: Float64Array[] ([mapcount, pages, mapcount, pages, ...]
// per range), pfnHidden: boolean, pagemapScan: boolean }>. Runs on the libuv
// pool. pagemap is read only in the runs PAGEMAP_SCAN finds populated
// (pagewalk.h) unless pagemapScan is false or the kernel predates it.
// Needs CAP_SYS_ADMIN (frames are hidden otherwise, kpageflags is 0400).
Napi::Value PageAttribution(const Napi::CallbackInfo& info);

}  // namespace ksm
