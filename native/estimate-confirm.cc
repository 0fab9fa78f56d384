// The confirm phase: entries sorted by hash, each run of equal hashes
// compared byte for byte, every class of identical pages written down; then
// the classes are counted over the targets that are still there, so that a
// process that exits meanwhile takes its pages out of every class it was in.
#include <algorithm>
#include <cstring>

#include "estimate-threads.h"
#include "estimate-worker.h"

namespace ksm {

namespace {

bool ByHash(const Entry& a, const Entry& b) {
  return a.hash != b.hash ? a.hash < b.hash : a.ref < b.ref;
}

}  // namespace

// Sorts entries_ by hash, then ref. With several threads: an in-place
// partition into buckets by the hash's top bits (hashes are uniform, and a
// run of equal hashes never spans two buckets), each bucket sorted on its
// own thread; the buckets, cut at run boundaries, are the confirm work items.
void EstimateWorker::SortByHash() {
  const size_t n = entries_.size();
  const size_t buckets = lanes_.size() == 1 ? 1 : lanes_.size() * 8;
  auto bucket_of = [&](uint64_t hash) {
    return static_cast<size_t>((static_cast<unsigned __int128>(hash) * buckets) >> 64);
  };
  std::vector<size_t> start(buckets + 1, 0);
  for (const Entry& e : entries_) start[bucket_of(e.hash) + 1]++;
  for (size_t b = 0; b < buckets; b++) start[b + 1] += start[b];
  if (buckets > 1) {
    std::vector<size_t> next(start.begin(), start.end() - 1);
    for (size_t b = 0; b < buckets; b++) {
      while (next[b] < start[b + 1]) {
        const size_t k = bucket_of(entries_[next[b]].hash);
        if (k == b) next[b]++;
        else std::swap(entries_[next[b]], entries_[next[k]++]);
      }
    }
  }
  crew_->ForEach(buckets, [&](size_t, size_t b) {
    std::sort(entries_.begin() + static_cast<ptrdiff_t>(start[b]), entries_.begin() + static_cast<ptrdiff_t>(start[b + 1]), ByHash);
  });
  chunks_.clear();
  for (size_t b = 0; b < buckets; b++) {
    size_t p = start[b];
    while (p < start[b + 1]) {
      size_t q = std::min(start[b + 1], p + kConfirmChunk);
      while (q < start[b + 1] && entries_[q].hash == entries_[q - 1].hash) q++;
      chunks_.push_back({p, q});
      p = q;
    }
  }
  chunk_written_.assign(chunks_.size(), 0);
  (void)n;
  TrackMemory();
}

void EstimateWorker::Confirm() {
  done_.store(0, std::memory_order_relaxed);
  crew_->ForEach(chunks_.size(), [&](size_t lane, size_t c) {
    Lane& l = lanes_[lane];
    l.written = chunks_[c].first;
    if (!Stopped()) ConfirmChunk(l, chunks_[c].first, chunks_[c].second);
    chunk_written_[c] = l.written;
    l.TrackMemory();
  });
  Report(kPhaseConfirm, static_cast<double>(entries_.size()), static_cast<double>(entries_.size()), true);
}

// Confirms each run of equal hashes in [begin, end): a run is a class of
// identical pages unless bytes differ. Small runs are gathered into waves of
// up to kWavePages pages, read with one process_vm_readv per target and
// compared in memory; a run larger than a wave is streamed against its
// representative (ConfirmRun).
void EstimateWorker::ConfirmChunk(Lane& lane, size_t begin, size_t end) {
  const double total = static_cast<double>(entries_.size());
  size_t i = begin;
  while (i < end && !Stopped()) {
    const size_t wave_start = i;
    lane.wave_refs.clear();
    lane.wave_runs.clear();
    while (i < end) {
      size_t j = i + 1;
      while (j < end && entries_[j].hash == entries_[i].hash) j++;
      const size_t len = j - i;
      if (len < 2) {
        i = j;
        continue;
      }
      if (len > kWavePages) {
        if (!lane.wave_refs.empty()) break;  // finish the wave first
        lane.pending.clear();
        for (size_t k = i; k < j; k++) lane.pending.push_back(entries_[k].ref & ~(kFlagMask & ~kFlagShared));
        ConfirmRun(lane);
        i = j;
        continue;
      }
      if (lane.wave_refs.size() + len > kWavePages) break;
      lane.wave_runs.push_back({lane.wave_refs.size(), len});
      for (size_t k = i; k < j; k++) lane.wave_refs.push_back(entries_[k].ref & ~(kFlagMask & ~kFlagShared));
      i = j;
    }
    if (!lane.wave_refs.empty()) ConfirmWave(lane);
    const double done = static_cast<double>(done_.fetch_add(i - wave_start, std::memory_order_relaxed) + (i - wave_start));
    if (config_.confirm_pause_ms > 0 && !paused_.exchange(true)) {
      Report(kPhaseConfirm, done, total, true);
      stop_->Wait(config_.confirm_pause_ms);
    }
    Report(kPhaseConfirm, done, total);
  }
}

void EstimateWorker::ConfirmWave(Lane& lane) {
  const std::vector<uint64_t>& refs = lane.wave_refs;
  const size_t n = refs.size();
  // Read order: by target then address, so each target is one call.
  lane.wave_order.resize(n);
  for (size_t k = 0; k < n; k++) lane.wave_order[k] = static_cast<uint32_t>(k);
  std::sort(lane.wave_order.begin(), lane.wave_order.end(), [&](uint32_t x, uint32_t y) { return refs[x] < refs[y]; });
  lane.wave_ok.assign(n, 0);
  size_t a = 0;
  while (a < n) {
    const uint32_t t = TargetOf(refs[lane.wave_order[a]]);
    size_t b = a;
    while (b < n && TargetOf(refs[lane.wave_order[b]]) == t) b++;
    const size_t base = a;
    if (!Exited(t)) {
      int err = ReadPages(
          lane, t, b - a, [&](size_t k) { return refs[lane.wave_order[base + k]]; },
          [&](size_t k, const uint8_t* page) {
            if (page == nullptr) return;  // gone meanwhile: no twin
            const uint32_t slot = lane.wave_order[base + k];
            std::memcpy(lane.wave + slot * page_, page, page_);
            lane.wave_ok[slot] = 1;
          });
      ReadEnded(t, err);
    }
    a = b;
  }
  for (const auto& run : lane.wave_runs) {
    lane.rest.clear();
    for (size_t s = run.first; s < run.first + run.second; s++) {
      if (lane.wave_ok[s] != 0) lane.rest.push_back(s);
    }
    while (lane.rest.size() >= 2) {
      const uint8_t* rep = lane.wave + lane.rest[0] * page_;
      lane.members.clear();
      lane.pending.clear();
      for (uint64_t s : lane.rest) {
        if (s == lane.rest[0] || std::memcmp(lane.wave + s * page_, rep, page_) == 0) {
          lane.members.push_back(refs[s]);
        } else {
          lane.pending.push_back(s);
        }
      }
      if (!lane.pending.empty()) lane.hash_collisions++;
      if (lane.members.size() >= 2) Record(lane);
      lane.rest.swap(lane.pending);
    }
  }
}

void EstimateWorker::ConfirmRun(Lane& lane) {
  while (lane.pending.size() >= 2 && !Stopped()) {
    lane.members.clear();
    lane.rest.clear();
    // pending is sorted by ref, so by target: each target's slice is read
    // in batches. The first page is the representative, read in the same
    // call as the pages after it (most classes are pairs: one syscall).
    bool have_rep = false;
    bool rep_lost = false;
    size_t a = 0;
    while (a < lane.pending.size()) {
      const uint32_t t = TargetOf(lane.pending[a]);
      size_t b = a;
      while (b < lane.pending.size() && TargetOf(lane.pending[b]) == t) b++;
      const size_t base = a;
      if (!Exited(t)) {
        int err = ReadPages(
            lane, t, b - a, [&](size_t k) { return lane.pending[base + k]; },
            [&](size_t k, const uint8_t* page) {
              const uint64_t ref = lane.pending[base + k];
              if (base + k == 0) {
                if (page == nullptr) {
                  rep_lost = true;
                } else {
                  std::memcpy(lane.rep, page, page_);
                  have_rep = true;
                  lane.members.push_back(ref);
                }
                return;
              }
              if (page == nullptr) return;  // gone meanwhile: no twin
              if (have_rep && std::memcmp(page, lane.rep, page_) == 0) lane.members.push_back(ref);
              else lane.rest.push_back(ref);
            });
        ReadEnded(t, err);
        if (base == 0 && !have_rep) rep_lost = true;
      } else if (base == 0) {
        rep_lost = true;
      }
      a = b;
    }
    if (rep_lost) {
      // The representative could not be read: the others try again without it.
      lane.members.clear();
    } else if (!lane.rest.empty()) {
      lane.hash_collisions++;
    }
    if (lane.members.size() >= 2) Record(lane);
    lane.pending.swap(lane.rest);
    lane.TrackMemory();
  }
}

// One class of identical pages (lane.members, sorted by ref), written down
// in place: entries before the wave being confirmed are done with, and a
// chunk's classes never hold more members than the entries it has read.
void EstimateWorker::Record(Lane& lane) {
  const size_t k = lane.members.size();
  Entry* out = entries_.data() + lane.written;
  for (size_t m = 0; m < k; m++) out[m] = Entry{m == 0 ? k : 0, lane.members[m]};
  lane.written += k;
}

// Counts every class over the targets still there at the end: a class
// with a member in a process that exited is the class of the others.
void EstimateWorker::Account() {
  std::vector<uint64_t>& live = lanes_[0].members;
  size_t seen = 0;
  for (size_t c = 0; c < chunks_.size(); c++) {
    size_t p = chunks_[c].first;
    const size_t end = chunk_written_[c];
    while (p < end) {
      const size_t k = static_cast<size_t>(entries_[p].hash);
      live.clear();
      for (size_t m = p; m < p + k; m++) {
        if (!Exited(TargetOf(entries_[m].ref))) live.push_back(entries_[m].ref);
      }
      if (live.size() >= 2) AccountClass(live.data(), live.size());
      p += k;
      if ((++seen & 65535) == 0 && Stopped()) return;
    }
  }
}

void EstimateWorker::AccountClass(const uint64_t* members, size_t k) {
  const size_t sharing = config_.max_page_sharing;
  const size_t copies = (k + sharing - 1) / sharing;
  const double share = static_cast<double>(k - copies) / static_cast<double>(k);
  classes_++;
  // A last group of one has nothing to share with: it stays unmerged.
  kept_pages_ += k / sharing + (k % sharing >= 2 ? 1 : 0);
  sharing_pages_ += k - copies;
  size_t a = 0;
  while (a < k) {
    const uint32_t t = TargetOf(members[a]);
    size_t b = a;
    while (b < k && TargetOf(members[b]) == t) b++;
    Target& target = targets_[t];
    const size_t in_process = b - a;
    size_t c = a;
    while (c < b) {
      const size_t r = target.RangeOf(AddressOf(members[c]));
      size_t d = c;
      while (d < b && target.RangeOf(AddressOf(members[d])) == r) d++;
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
