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

// readProcFile(path: string): Promise<Buffer>: the whole file, read on the
// libuv pool in one task. /proc/PID/smaps is a seq_file that returns one page
// (~3.7 KB, five VMAs) per read(2) whatever the buffer size: 2,000 reads for a
// 10,000-VMA process. fs.promises.readFile makes each of them a round trip to
// the pool; this makes them one.
Napi::Value ReadProcFile(const Napi::CallbackInfo& info);

}  // namespace ksm
