// The pagemap phase: which pages of the ranges are present, swapped,
// file-backed or the zero page, without faulting anything in.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <string>

#include "estimate-worker.h"
#include "pagemap-abi.h"
#include "pagewalk.h"

namespace ksm {

// Where the shared zero page is, when pagemap shows PFNs (CAP_SYS_ADMIN):
// map a page, read-fault it, look it up. zero_pfn_ stays 0 otherwise.
void EstimateWorker::FindZeroPfn() {
  void* mem = mmap(nullptr, page_, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return;
  volatile const uint8_t* p = static_cast<const uint8_t*>(mem);
  (void)p[0];
  uint64_t entry = 0;
  int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    off_t offset = static_cast<off_t>(reinterpret_cast<uintptr_t>(mem) / page_ * 8);
    if (pread(fd, &entry, sizeof(entry), offset) != sizeof(entry)) entry = 0;
    close(fd);
  }
  munmap(mem, page_);
  zero_pfn_ = (entry & kPmPresent) != 0 ? (entry & kPmPfnMask) : 0;
}

// Reads /proc/PID/pagemap for target t's ranges: counts what is not a
// candidate, and adds an entry for every page to read. One thread per
// target: its stats and entries are its own.
void EstimateWorker::PagemapPass(uint32_t t) {
  Target& target = targets_[t];
  std::string path = "/proc/" + std::to_string(target.pid) + "/pagemap";
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    Ended(t, errno, "open");
    return;
  }
  if (target.expected_pages > 0) target.entries.reserve(target.expected_pages + target.expected_pages / 64 + 64);
  const bool pfn_visible = zero_pfn_ != 0;
  std::vector<Entry>& entries = target.entries;
  PagemapWalker walker(fd, page_, config_.pagemap_scan);
  for (size_t r = 0; r < target.RangeCount() && !Stopped() && !Exited(t); r++) {
    const uint64_t start = target.ranges[r * 2] >> page_shift_;
    const uint64_t end = target.ranges[r * 2 + 1] >> page_shift_;
    const bool readable = target.readable[r] != 0;
    PageStats& stats = target.stats[r];
    int err = walker.Walk(start, end, [&](uint64_t page, const uint64_t* pagemap, size_t n) {
      for (size_t i = 0; i < n; i++) {
        uint64_t pm = pagemap[i];
        if ((pm & kPmPresent) == 0) {
          if ((pm & kPmSwap) != 0) stats.swappedPages += 1;
          continue;
        }
        stats.presentPages += 1;
        if ((pm & kPmFile) != 0) {
          stats.filePages += 1;
          continue;
        }
        if (pfn_visible && (pm & kPmPfnMask) == zero_pfn_) {
          stats.zeroPageMapped += 1;
          continue;
        }
        if (!readable) {
          stats.unreadablePages += 1;
          continue;
        }
        uint64_t ref = (static_cast<uint64_t>(t) << kTargetShift) |
                       (((page + i) & kPageNumberMask) << 4);
        // Without PFNs a page mapped once is surely an anonymous page of
        // its own; one mapped more than once may be the zero page.
        if (!pfn_visible && (pm & kPmExclusive) == 0) ref |= kFlagMaybeZeroMap;
        entries.push_back(Entry{0, ref});
      }
      return !Stopped();
    });
    if (err == PagemapWalker::kEnded || err == ESRCH) {
      // The mm is gone: the process exited.
      MarkExited(t);
    } else if (err != 0) {
      Fail(err, walker.failed_syscall(), target.pid);
    }
  }
  close(fd);
  const double done = static_cast<double>(done_.fetch_add(1, std::memory_order_relaxed) + 1);
  Report(kPhasePagemap, done, static_cast<double>(targets_.size()));
  std::lock_guard<std::mutex> lock(mutex_);
  if (!walker.scanning()) pagemap_scan_used_ = false;
  pagemap_entries_ += walker.entries_read();
  pagemap_scans_ += walker.scan_calls();
}

}  // namespace ksm
