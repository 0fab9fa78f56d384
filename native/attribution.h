// Exact KSM attribution, page by page: /proc/PID/pagemap gives each virtual
// page's frame, /proc/kpageflags says whether the frame is a KSM page (or the
// zero page), /proc/kpagecount how many page tables map it.
#pragma once

#include <napi.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fd.h"

namespace ksm {

class PagemapWalker;
struct SmapsScan;

// Per range, in order: present pages, KSM pages, zero pages, and the KSM
// pages' [mapcount, pages, mapcount, pages, ...] pairs.
struct Attribution {
  std::vector<uint64_t> present;
  std::vector<uint64_t> ksm;
  std::vector<uint64_t> zero;
  std::vector<std::vector<double>> sharing;
  // The kernel showed present pages as frame 0 (no CAP_SYS_ADMIN): nothing past pagemap was read.
  bool pfnHidden = false;
};

// pageAttribution()'s of a smaps scan's VMAs that hold KSM pages (a KSM:
// figure above 0, or no KSM: line and the mg flag: lib/report/profit's
// walked rows of a whole VMA), made as the scan grows a piece at a time
// (procread.cc attributes each piece's while the rest of smaps is read):
// pagemap, kpageflags and kpagecount opened once, at the first such VMA.
class ScanAttribution {
 public:
  ScanAttribution(const std::string& dir, bool pagemapScan);
  ~ScanAttribution();
  ScanAttribution(const ScanAttribution&) = delete;
  ScanAttribution& operator=(const ScanAttribution&) = delete;
  // The VMAs scanned since the last call, attributed; `complete` as ScanHeaders::Add.
  void Add(const SmapsScan& scan, bool complete);
  // Every file could be opened and read (else the caller attributes them itself, and is told why).
  bool Ok() const { return !failed_; }
  // PAGEMAP_SCAN was used throughout.
  bool PagemapScan() const;
  // The attributed VMAs' indexes in the scan, in order, and their attribution.
  std::vector<uint32_t> vmas;
  Attribution result;

 private:
  std::string pagemapPath_;
  bool pagemapScan_;
  size_t next_ = 0;
  bool failed_ = false;
  bool opened_ = false;
  Fd pagemap_;
  Fd flags_;
  Fd counts_;
  std::unique_ptr<PagemapWalker> walker_;
};

// pageAttribution(pid: number, starts: BigUint64Array, ends: BigUint64Array,
// pagemapScan?: boolean): Promise<{ presentPages, ksmPages, zeroPages:
// number[], sharing: Float64Array[] ([mapcount, pages, mapcount, pages, ...]
// per range), pfnHidden: boolean, pagemapScan: boolean }>. Runs on the libuv
// pool. pagemap is read only in the runs PAGEMAP_SCAN finds populated
// (pagewalk.h) unless pagemapScan is false or the kernel predates it.
// Needs CAP_SYS_ADMIN (frames are hidden otherwise, kpageflags is 0400).
Napi::Value PageAttribution(const Napi::CallbackInfo& info);

}  // namespace ksm
