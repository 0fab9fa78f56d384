#include "pagewalk.h"

#include <sys/ioctl.h>
#include <unistd.h>

namespace ksm {

PagemapWalker::PagemapWalker(int fd, size_t page_size, bool scan)
    : fd_(fd),
      page_shift_(static_cast<unsigned>(__builtin_ctzl(page_size))),
      scan_(scan),
      entries_(kChunk) {
  if (scan_) regions_.resize(kRegions);
}

int PagemapWalker::Scan(uint64_t* next_vpn, uint64_t end_vpn, size_t* count) {
  PmScanArg arg{};
  arg.size = sizeof(arg);
  arg.start = *next_vpn << page_shift_;
  arg.end = end_vpn << page_shift_;
  arg.vec = reinterpret_cast<uintptr_t>(regions_.data());
  arg.vec_len = regions_.size();
  // Any page present or swapped; runs split only where that changes.
  arg.category_anyof_mask = kPageIsPresent | kPageIsSwapped;
  arg.return_mask = kPageIsPresent | kPageIsSwapped;
  int n;
  do {
    scan_calls_++;
    n = ioctl(fd_, kPagemapScan, &arg);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return errno;
  *count = static_cast<size_t>(n) < regions_.size() ? static_cast<size_t>(n) : regions_.size();
  // walk_end: where the walk stopped (the end, unless the vector filled up).
  const uint64_t from = *next_vpn;
  uint64_t next = arg.walk_end >> page_shift_;
  if (*count > 0 && (regions_[*count - 1].end >> page_shift_) > next) {
    next = regions_[*count - 1].end >> page_shift_;
  }
  *next_vpn = next > from && next <= end_vpn ? next : end_vpn;
  return 0;
}

int PagemapWalker::Probe(uint64_t vpn) {
  uint64_t entry;
  ssize_t got;
  do {
    got = pread(fd_, &entry, sizeof(entry), static_cast<off_t>(vpn * sizeof(entry)));
  } while (got < 0 && errno == EINTR);
  if (got < 0) {
    failed_syscall_ = "pread";
    return errno;
  }
  return got == 0 ? kEnded : 0;
}

ssize_t PagemapWalker::Read(uint64_t vpn, size_t want) {
  for (;;) {
    ssize_t got = pread(fd_, entries_.data(), want * sizeof(uint64_t),
                        static_cast<off_t>(vpn * sizeof(uint64_t)));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return -1;
    const size_t n = static_cast<size_t>(got) / sizeof(uint64_t);
    entries_read_ += n;
    return static_cast<ssize_t>(n);
  }
}

}  // namespace ksm
