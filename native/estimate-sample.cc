// The sample phase: every page found by the pagemap pass is read and hashed;
// with an interval, read and hashed again to find the ones that change. Then
// each range's figures are tallied.
#include <algorithm>

#include "estimate-worker.h"

namespace ksm {

// Marks a target gone, or the whole estimate failed, after ReadPages.
void EstimateWorker::ReadEnded(Target& target, int err) {
  if (err == 0 || err == ECANCELED) return;
  if (err == ESRCH) target.exited = true;
  else Fail(err, "process_vm_readv", target.pid);
}

// Hashes every entry (first sample), or re-hashes and marks the ones that
// changed (second sample).
void EstimateWorker::Sample(bool again) {
  const Phase phase = again ? kPhaseResample : kPhaseSample;
  const PageHashFn hash_page = config_.hash.fn;
  const double total = static_cast<double>(entries_.size());
  double done = 0;
  for (Target& target : targets_) {
    if (Stopped()) return;
    if (target.exited) continue;
    Entry* base = entries_.data() + target.first;
    // The entries still to read in the second sample: not skipped.
    std::vector<uint32_t>& live = live_;
    live.clear();
    size_t n = target.end - target.first;
    if (again) {
      for (size_t i = 0; i < n; i++) {
        if ((base[i].ref & kFlagSkip) == 0) live.push_back(static_cast<uint32_t>(i));
      }
      TrackMemory();
    }
    size_t count = again ? live.size() : n;
    auto index = [&](size_t i) { return again ? live[i] : i; };
    int err = ReadPages(
        target.pid, count, [&](size_t i) { return AddressOf(base[index(i)].ref); },
        [&](size_t i, const uint8_t* page) {
          Entry& entry = base[index(i)];
          if (page == nullptr) {
            entry.ref |= again ? kFlagVolatile : kFlagSkip;
            return;
          }
          bool zero = false;
          uint64_t hash = hash_page(page, page_, &zero);
          if (!again) {
            entry.hash = hash;
            if (zero) entry.ref |= kFlagZero;
            pages_hashed_++;
          } else if (hash != entry.hash) {
            entry.ref |= kFlagVolatile;
          }
          if (((i + 1) & 4095) == 0) Report(phase, done + static_cast<double>(i + 1), total);
        });
    ReadEnded(target, err);
    done += static_cast<double>(n);
  }
  Report(phase, total, total);
  live_.clear();
  live_.shrink_to_fit();
}

// Per-range counts of what each entry turned out to be; the entries that can
// merge with a twin stay for Group().
void EstimateWorker::Tally() {
  for (Target& target : targets_) {
    if (target.exited) continue;
    size_t r = 0;
    for (size_t i = target.first; i < target.end; i++) {
      Entry& entry = entries_[i];
      uint64_t address = AddressOf(entry.ref);
      while (r + 1 < target.RangeCount() && target.ranges[r * 2 + 1] <= address) r++;
      PageStats& stats = target.stats[r];
      const uint64_t flags = entry.ref & kFlagMask;
      if ((flags & kFlagSkip) != 0) {
        stats.unreadablePages += 1;
        continue;
      }
      if ((flags & kFlagMaybeZeroMap) != 0 && (flags & kFlagZero) != 0) {
        // Zero content, mapped more than once, PFNs hidden: counted as the
        // shared zero page, which is what a never-written read gives.
        stats.zeroPageMapped += 1;
        entry.ref |= kFlagSkip;
        continue;
      }
      stats.candidatePages += 1;
      if ((flags & kFlagVolatile) != 0) {
        stats.volatilePages += 1;
        continue;
      }
      if ((flags & kFlagZero) != 0) stats.zeroPages += 1;
    }
  }
  // Only stable, non-zero pages of live processes look for twins.
  entries_.erase(std::remove_if(entries_.begin(), entries_.end(),
                                [&](const Entry& e) {
                                  return (e.ref & (kFlagSkip | kFlagVolatile | kFlagZero)) != 0 ||
                                         targets_[TargetOf(e.ref)].exited;
                                }),
                 entries_.end());
}

}  // namespace ksm
