// The kernel's page-table files, as bits: /proc/PID/pagemap entries,
// /proc/kpageflags flags and the PAGEMAP_SCAN ioctl
// (Documentation/admin-guide/mm/pagemap.rst, include/uapi/linux/fs.h,
// include/uapi/linux/kernel-page-flags.h). Every reader includes this one
// header; nothing else spells these bits.
#pragma once

#include <sys/ioctl.h>

#include <cstdint>

namespace ksm {

// /proc/PID/pagemap: one 64-bit entry per virtual page.
constexpr uint64_t kPmPresent = 1ull << 63;
constexpr uint64_t kPmSwap = 1ull << 62;
constexpr uint64_t kPmFile = 1ull << 61;       // file page or shared anon
constexpr uint64_t kPmExclusive = 1ull << 56;  // mapped exactly once
// Bits 0-54: the page frame number, 0 without CAP_SYS_ADMIN.
constexpr uint64_t kPmPfnMask = (1ull << 55) - 1;

// /proc/kpageflags: one 64-bit set of flags per page frame.
constexpr uint64_t kKpfKsm = 1ull << 21;
constexpr uint64_t kKpfZeroPage = 1ull << 24;

// PAGEMAP_SCAN (6.7+); Debian 12's headers predate it.
struct PmPageRegion {
  uint64_t start;
  uint64_t end;
  uint64_t categories;
};

struct PmScanArg {
  uint64_t size;
  uint64_t flags;
  uint64_t start;
  uint64_t end;
  uint64_t walk_end;
  uint64_t vec;
  uint64_t vec_len;
  uint64_t max_pages;
  uint64_t category_inverted;
  uint64_t category_mask;
  uint64_t category_anyof_mask;
  uint64_t return_mask;
};
static_assert(sizeof(PmPageRegion) == 24, "struct page_region is 24 bytes");
static_assert(sizeof(PmScanArg) == 96, "struct pm_scan_arg is 96 bytes");

constexpr uint64_t kPageIsPresent = 1u << 3;
constexpr uint64_t kPageIsSwapped = 1u << 4;

// _IOWR('f', 16, struct pm_scan_arg)
constexpr unsigned long kPagemapScan = _IOWR('f', 16, PmScanArg);

}  // namespace ksm
