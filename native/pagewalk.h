// Reading /proc/PID/pagemap only where something is mapped.
//
// pagemap has one 8-byte entry per virtual page, mapped or not: a 16 TiB
// MAP_NORESERVE reservation (ASan's shadow, a WebAssembly memory, a big
// arena) is 32 GiB of entries, nearly all empty. The PAGEMAP_SCAN ioctl
// (Linux 6.7, fs/proc/task_mmu.c) walks the page tables instead, skipping
// unpopulated tables whole, and returns the runs of pages that are present or
// swapped. Entries are then read only inside those runs. Every page a linear
// read would show as present (PM_PRESENT: pte/pmd present) or swapped
// (PM_SWAP: any non-none, non-present pte) is PAGE_IS_PRESENT or
// PAGE_IS_SWAPPED to the scan, so callers see the same entries minus empty
// ones, which they skip anyway.
#pragma once

#include <sys/types.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "pagemap-abi.h"

namespace ksm {

// A pagemap reader over one open /proc/PID/pagemap. Not thread-safe; one per
// worker and process.
class PagemapWalker {
  static constexpr size_t kChunk = 4096;   // entries per pread (32 KiB)
  static constexpr size_t kRegions = 512;  // runs per PAGEMAP_SCAN call

 public:
  // Walk() returns 0, an errno, or kEnded: pread found no more entries (the
  // process exited, its mm is gone, or the end of the address space).
  static constexpr int kEnded = -1;

  // `scan`: try PAGEMAP_SCAN first (false: read every entry, as on kernels
  // before 6.7; NODE_KSM_PAGEMAP_SCAN=0 in lib/ asks for it).
  PagemapWalker(int fd, size_t page_size, bool scan);

  // Calls visit(vpn, entries, count) for consecutive pagemap entries of
  // virtual pages [vpn, vpn + count), in address order, covering at least
  // every present or swapped page of [start_vpn, end_vpn). visit returns
  // false to stop (Walk then returns 0).
  template <typename Visit>
  int Walk(uint64_t start_vpn, uint64_t end_vpn, Visit visit);

  // PAGEMAP_SCAN is in use: asked for, and the kernel has not refused it.
  bool scanning() const { return scan_; }
  // Entries read with pread, and PAGEMAP_SCAN calls made, so far.
  uint64_t entries_read() const { return entries_read_; }
  uint64_t scan_calls() const { return scan_calls_; }
  // The system call behind Walk's last errno: "ioctl" or "pread".
  const char* failed_syscall() const { return failed_syscall_; }
  // Bytes of buffers a walker holds.
  static constexpr size_t kFootprint = kChunk * sizeof(uint64_t) + kRegions * sizeof(PmPageRegion);

 private:
  // One PAGEMAP_SCAN over [*next_vpn, end_vpn): fills regions_, advances
  // *next_vpn to where the kernel stopped. 0 or an errno.
  int Scan(uint64_t* next_vpn, uint64_t end_vpn, size_t* count);
  // One entry at `vpn` read and dropped: 0, kEnded, or an errno.
  int Probe(uint64_t vpn);
  // pread of up to kChunk entries at `vpn`: entries read, or -1 with errno.
  ssize_t Read(uint64_t vpn, size_t want);

  template <typename Visit>
  int ReadRun(uint64_t vpn, uint64_t end_vpn, Visit& visit, bool* stop);

  int fd_;
  unsigned page_shift_;
  bool scan_;
  uint64_t entries_read_ = 0;
  uint64_t scan_calls_ = 0;
  const char* failed_syscall_ = "pread";
  std::vector<uint64_t> entries_;
  std::vector<PmPageRegion> regions_;
};

template <typename Visit>
int PagemapWalker::ReadRun(uint64_t vpn, uint64_t end_vpn, Visit& visit, bool* stop) {
  while (vpn < end_vpn) {
    const size_t want = static_cast<size_t>(
        end_vpn - vpn < kChunk ? end_vpn - vpn : kChunk);
    ssize_t got = Read(vpn, want);
    if (got < 0) {
      failed_syscall_ = "pread";
      return errno;
    }
    if (got == 0) return kEnded;
    if (!visit(vpn, entries_.data(), static_cast<size_t>(got))) {
      *stop = true;
      return 0;
    }
    vpn += static_cast<uint64_t>(got);
  }
  return 0;
}

template <typename Visit>
int PagemapWalker::Walk(uint64_t start_vpn, uint64_t end_vpn, Visit visit) {
  bool stop = false;
  uint64_t vpn = start_vpn;
  if (scan_ && vpn < end_vpn) {
    // A process without an mm (exited, a zombie, a kernel thread) reads as
    // end of file; the ioctl would be handed a NULL mm (6.7 dereferenced
    // it). Ask pread first.
    int err = Probe(vpn);
    if (err != 0) return err;
  }
  while (scan_ && vpn < end_vpn) {
    size_t count = 0;
    const uint64_t from = vpn;
    int err = Scan(&vpn, end_vpn, &count);
    if (err == ENOTTY || err == EINVAL) {
      // No PAGEMAP_SCAN (before 6.7), or one that refuses this argument
      // layout: read every entry from now on.
      scan_ = false;
      vpn = from;
      break;
    }
    if (err == EFAULT) {
      // Addresses the ioctl will not take (above TASK_SIZE: [vsyscall]):
      // read them as before the ioctl existed.
      return ReadRun(from, end_vpn, visit, &stop);
    }
    if (err != 0) {
      failed_syscall_ = "ioctl";
      return err;
    }
    for (size_t i = 0; i < count; i++) {
      err = ReadRun(regions_[i].start >> page_shift_, regions_[i].end >> page_shift_,
                    visit, &stop);
      if (err != 0 || stop) return err;
    }
  }
  if (scan_) return 0;
  return ReadRun(vpn, end_vpn, visit, &stop);
}

}  // namespace ksm
