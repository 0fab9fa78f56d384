// The pagemap phase: which pages of the ranges are present, swapped,
// file-backed or the zero page, without faulting anything in.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <string>

#include "estimate-threads.h"
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

// Reads /proc/PID/pagemap over every target's ranges: counts what is not a
// candidate, and adds an entry for every page to read. The ranges are cut
// into work items (PlanPagemap) spread over the threads, so that one large
// process is read by all of them (the kernel takes its mmap lock for
// reading only); each item counts into pieces of its own, joined after.
void EstimateWorker::PagemapPhase() {
  done_.store(0, std::memory_order_relaxed);  // before the plan: it counts targets with nothing to read as done
  PlanPagemap();
  crew_->ForEach(items_.size(), [&](size_t, size_t i) {
    PagemapItem& item = items_[i];
    if (!Stopped() && !Exited(item.target)) PagemapWalk(item);
    // A target is done when the last of its items is.
    if (items_left_[item.target].fetch_sub(1, std::memory_order_acq_rel) == 1) {
      const double done = static_cast<double>(done_.fetch_add(1, std::memory_order_relaxed) + 1);
      Report(kPhasePagemap, done, static_cast<double>(targets_.size()));
    }
  });
  JoinPagemap();
}

// Items of about kPagemapItemPages of address space: small ranges of one
// target share an item, a large range is cut into pieces of equal length.
void EstimateWorker::PlanPagemap() {
  const size_t split_max = kPagemapSplit * lanes_.size();
  items_left_.reset(new std::atomic<size_t>[targets_.size()]);
  for (uint32_t t = 0; t < targets_.size(); t++) {
    const Target& target = targets_[t];
    size_t first_item = items_.size();
    uint64_t open_span = 0;  // address space of the item being filled
    auto close_item = [&]() {
      if (open_span == 0) return;
      items_.back().end_piece = pieces_.size();
      open_span = 0;
    };
    auto add_piece = [&](uint32_t r, uint64_t start, uint64_t end) {
      if (open_span == 0) {
        items_.emplace_back();
        items_.back().target = t;
        items_.back().first_piece = pieces_.size();
      }
      PagemapPiece piece;
      piece.range = r;
      piece.start_vpn = start;
      piece.end_vpn = end;
      pieces_.push_back(piece);
      open_span += end - start;
    };
    for (uint32_t r = 0; r < target.RangeCount(); r++) {
      const uint64_t start = target.ranges[r * 2] >> page_shift_;
      const uint64_t end = target.ranges[r * 2 + 1] >> page_shift_;
      if (end <= start) continue;
      const uint64_t span = end - start;
      if (span <= kPagemapItemPages) {
        add_piece(r, start, end);
        if (open_span >= kPagemapItemPages) close_item();
        continue;
      }
      close_item();
      const uint64_t parts = std::min<uint64_t>(split_max, (span + kPagemapItemPages - 1) / kPagemapItemPages);
      const uint64_t step = (span + parts - 1) / parts;
      for (uint64_t from = start; from < end; from += step) {
        add_piece(r, from, std::min(end, from + step));
        close_item();
      }
    }
    close_item();
    items_left_[t].store(items_.size() - first_item, std::memory_order_relaxed);
    if (items_.size() == first_item) done_.fetch_add(1, std::memory_order_relaxed);
  }
}

// One item: its pieces in address order, on a pagemap file of its own.
void EstimateWorker::PagemapWalk(PagemapItem& item) {
  const uint32_t t = item.target;
  const Target& target = targets_[t];
  std::string path = "/proc/" + std::to_string(target.pid) + "/pagemap";
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    Ended(t, errno, "open");
    return;
  }
  const bool pfn_visible = zero_pfn_ != 0;
  std::vector<Entry>& entries = item.entries;
  PagemapWalker walker(fd, page_, config_.pagemap_scan);
  for (size_t p = item.first_piece; p < item.end_piece && !Stopped() && !Exited(t); p++) {
    PagemapPiece& piece = pieces_[p];
    const bool readable = target.readable[piece.range] != 0;
    PageStats& stats = piece.stats;
    int err = walker.Walk(piece.start_vpn, piece.end_vpn, [&](uint64_t page, const uint64_t* pagemap, size_t n) {
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
        // A page mapped more than once is read without pinning it; without
        // PFNs it may also be the zero page (a page mapped once is surely
        // an anonymous page of its own).
        if ((pm & kPmExclusive) == 0) ref |= kFlagShared;
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
  std::lock_guard<std::mutex> lock(mutex_);
  if (!walker.scanning()) pagemap_scan_used_ = false;
  pagemap_entries_ += walker.entries_read();
  pagemap_scans_ += walker.scan_calls();
}

// Each target's items joined in address order into its own entries, their
// pieces' counts added to its ranges. At its peak this holds every item's
// entries and one target's joined copy.
void EstimateWorker::JoinPagemap() {
  size_t largest = 0;
  for (size_t i = 0; i < items_.size();) {
    const uint32_t t = items_[i].target;
    size_t count = 0;
    size_t j = i;
    for (; j < items_.size() && items_[j].target == t; j++) count += items_[j].entries.size();
    largest = std::max(largest, count * sizeof(Entry));
    i = j;
  }
  TrackMemory(largest);
  for (size_t i = 0; i < items_.size();) {
    const uint32_t t = items_[i].target;
    Target& target = targets_[t];
    size_t j = i;
    size_t count = 0;
    for (; j < items_.size() && items_[j].target == t; j++) count += items_[j].entries.size();
    target.entries.reserve(count);
    for (size_t k = i; k < j; k++) {
      PagemapItem& item = items_[k];
      target.entries.insert(target.entries.end(), item.entries.begin(), item.entries.end());
      item.entries = std::vector<Entry>();
      for (size_t p = item.first_piece; p < item.end_piece; p++) target.stats[pieces_[p].range].Add(pieces_[p].stats);
    }
    i = j;
  }
  items_ = std::vector<PagemapItem>();
  pieces_ = std::vector<PagemapPiece>();
}

}  // namespace ksm
