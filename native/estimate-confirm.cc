// The confirm phase: entries sorted by hash, each run of equal hashes
// compared byte for byte, and every class of identical pages recorded.
#include <algorithm>
#include <cstring>

#include "estimate-worker.h"

namespace ksm {

// Sorts by hash, then confirms each run of equal hashes byte for byte:
// a class of k identical pages saves k - ceil(k / max_page_sharing).
// Small runs are gathered into waves of up to kWavePages pages, read with
// one process_vm_readv per target and compared in memory; a run larger
// than a wave is streamed against its representative (ConfirmRun).
void EstimateWorker::Group() {
  std::sort(entries_.begin(), entries_.end(), [](const Entry& a, const Entry& b) {
    return a.hash != b.hash ? a.hash < b.hash : a.ref < b.ref;
  });
  TrackMemory();
  const double total = static_cast<double>(entries_.size());
  size_t i = 0;
  bool paused = false;
  while (i < entries_.size() && !Stopped()) {
    wave_refs_.clear();
    wave_runs_.clear();
    while (i < entries_.size()) {
      size_t j = i + 1;
      while (j < entries_.size() && entries_[j].hash == entries_[i].hash) j++;
      const size_t len = j - i;
      if (len < 2) {
        i = j;
        continue;
      }
      if (len > kWavePages) {
        if (!wave_refs_.empty()) break;  // finish the wave first
        pending_.clear();
        for (size_t k = i; k < j; k++) pending_.push_back(entries_[k].ref & ~kFlagMask);
        ConfirmRun();
        i = j;
        continue;
      }
      if (wave_refs_.size() + len > kWavePages) break;
      wave_runs_.push_back({wave_refs_.size(), len});
      for (size_t k = i; k < j; k++) wave_refs_.push_back(entries_[k].ref & ~kFlagMask);
      i = j;
    }
    if (!wave_refs_.empty()) ConfirmWave();
    if (config_.confirm_pause_ms > 0 && !paused) {
      paused = true;
      last_progress_ns_ = 0;
      Report(kPhaseConfirm, static_cast<double>(i), total);
      Sleep(config_.confirm_pause_ms);
    }
    Report(kPhaseConfirm, static_cast<double>(i), total);
  }
}

void EstimateWorker::ConfirmWave() {
  const size_t n = wave_refs_.size();
  // Read order: by target then address, so each target is one call.
  wave_order_.resize(n);
  for (size_t k = 0; k < n; k++) wave_order_[k] = static_cast<uint32_t>(k);
  std::sort(wave_order_.begin(), wave_order_.end(),
            [&](uint32_t x, uint32_t y) { return wave_refs_[x] < wave_refs_[y]; });
  wave_ok_.assign(n, 0);
  size_t a = 0;
  while (a < n) {
    uint32_t t = TargetOf(wave_refs_[wave_order_[a]]);
    size_t b = a;
    while (b < n && TargetOf(wave_refs_[wave_order_[b]]) == t) b++;
    Target& target = targets_[t];
    const size_t base = a;
    if (!target.exited) {
      int err = ReadPages(
          target.pid, b - a, [&](size_t k) { return AddressOf(wave_refs_[wave_order_[base + k]]); },
          [&](size_t k, const uint8_t* page) {
            if (page == nullptr) return;  // gone meanwhile: no twin
            const uint32_t slot = wave_order_[base + k];
            std::memcpy(wave_ + slot * page_, page, page_);
            wave_ok_[slot] = 1;
          });
      ReadEnded(target, err);
    }
    a = b;
  }
  for (const auto& run : wave_runs_) {
    rest_.clear();
    for (size_t s = run.first; s < run.first + run.second; s++) {
      if (wave_ok_[s] != 0) rest_.push_back(s);
    }
    while (rest_.size() >= 2) {
      const uint8_t* rep = wave_ + rest_[0] * page_;
      members_.clear();
      pending_.clear();
      for (uint64_t s : rest_) {
        if (s == rest_[0] || std::memcmp(wave_ + s * page_, rep, page_) == 0) {
          members_.push_back(wave_refs_[s]);
        } else {
          pending_.push_back(s);
        }
      }
      if (!pending_.empty()) hash_collisions_++;
      if (members_.size() >= 2) Record();
      rest_.swap(pending_);
    }
  }
}

void EstimateWorker::ConfirmRun() {
  while (pending_.size() >= 2 && !Stopped()) {
    members_.clear();
    rest_.clear();
    // pending_ is sorted by ref, so by target: each target's slice is read
    // in batches. The first page is the representative, read in the same
    // call as the pages after it (most classes are pairs: one syscall).
    bool have_rep = false;
    bool rep_lost = false;
    size_t a = 0;
    while (a < pending_.size()) {
      uint32_t t = TargetOf(pending_[a]);
      size_t b = a;
      while (b < pending_.size() && TargetOf(pending_[b]) == t) b++;
      Target& target = targets_[t];
      const size_t base = a;
      if (!target.exited) {
        int err = ReadPages(
            target.pid, b - a, [&](size_t k) { return AddressOf(pending_[base + k]); },
            [&](size_t k, const uint8_t* page) {
              const uint64_t ref = pending_[base + k];
              if (base + k == 0) {
                if (page == nullptr) {
                  rep_lost = true;
                } else {
                  std::memcpy(rep_, page, page_);
                  have_rep = true;
                  members_.push_back(ref);
                }
                return;
              }
              if (page == nullptr) return;  // gone meanwhile: no twin
              if (have_rep && std::memcmp(page, rep_, page_) == 0) members_.push_back(ref);
              else rest_.push_back(ref);
            });
        ReadEnded(target, err);
        if (base == 0 && !have_rep) rep_lost = true;
      } else if (base == 0) {
        rep_lost = true;
      }
      a = b;
    }
    if (rep_lost) {
      // The representative could not be read: the others try again without it.
      members_.clear();
    } else if (!rest_.empty()) {
      hash_collisions_++;
    }
    if (members_.size() >= 2) Record();
    pending_.swap(rest_);
    TrackMemory();
  }
}

// One class of identical pages, members sorted by ref (target, address).
void EstimateWorker::Record() {
  const size_t sharing = config_.max_page_sharing;
  const size_t k = members_.size();
  const size_t copies = (k + sharing - 1) / sharing;
  const double share = static_cast<double>(k - copies) / static_cast<double>(k);
  classes_++;
  // A last group of one has nothing to share with: it stays unmerged.
  kept_pages_ += k / sharing + (k % sharing >= 2 ? 1 : 0);
  sharing_pages_ += k - copies;
  size_t a = 0;
  while (a < k) {
    uint32_t t = TargetOf(members_[a]);
    size_t b = a;
    while (b < k && TargetOf(members_[b]) == t) b++;
    Target& target = targets_[t];
    const size_t in_process = b - a;
    size_t c = a;
    while (c < b) {
      size_t r = target.RangeOf(AddressOf(members_[c]));
      size_t d = c;
      while (d < b && target.RangeOf(AddressOf(members_[d])) == r) d++;
      const double n = static_cast<double>(d - c);
      PageStats& stats = target.stats[r];
      stats.duplicatePages += n;
      if (d - c >= 2) stats.twinInVma += n;
      if (in_process >= 2) stats.twinInProcess += n;
      if (k > in_process) stats.twinInOtherProcess += n;
      stats.savedPages += n * share;
      c = d;
    }
    a = b;
  }
}

}  // namespace ksm
