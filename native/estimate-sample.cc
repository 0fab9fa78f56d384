// The sample phase: every page found by the pagemap pass is read and hashed;
// with an interval, read and hashed again to find the ones that change. Then
// each range's figures are tallied, and the pages that may have a twin are
// gathered for the confirm phase.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <string>

#include "estimate-threads.h"
#include "estimate-worker.h"

namespace ksm {

int Lane::MemFdOf(uint32_t t, pid_t pid) {
  MemFd& slot = mem_fds[t % kMemFds];
  if (slot.fd >= 0 && slot.target == t) return slot.fd;
  if (slot.fd >= 0) close(slot.fd);
  std::string path = "/proc/" + std::to_string(pid) + "/mem";
  slot.fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  slot.target = t;
  return slot.fd;
}

void Lane::CloseFiles() {
  for (MemFd& slot : mem_fds) {
    if (slot.fd >= 0) close(slot.fd);
    slot.fd = -1;
  }
}

// One page not mapped exclusively, read through /proc/PID/mem into the
// lane's buffer (the kernel takes a reference to it, not a pin: nothing is
// unshared). 1: read; 0: not readable (unmapped meanwhile); -errno: the
// target is gone (ESRCH) or refuses.
int EstimateWorker::ReadShared(Lane& lane, uint32_t t, uint64_t address) {
  const int fd = lane.MemFdOf(t, targets_[t].pid);
  if (fd < 0) return errno == ENOENT || errno == ESRCH ? -ESRCH : -errno;
  if (address > static_cast<uint64_t>(INT64_MAX) - page_) return 0;
  for (;;) {
    const ssize_t got = pread(fd, lane.buffer, page_, static_cast<off_t>(address));
    if (got == static_cast<ssize_t>(page_)) {
      lane.bytes_read += page_;
      return 1;
    }
    if (got == 0) return -ESRCH;  // mem reads nothing once the mm is gone
    if (got > 0) return 0;
    if (errno == EINTR) continue;
    return IsPageError(errno) ? 0 : -errno;
  }
}

// Marks a target gone, or the whole estimate failed, after ReadPages.
void EstimateWorker::ReadEnded(uint32_t t, int err) {
  if (err == 0 || err == ECANCELED) return;
  Ended(t, err, "process_vm_readv");
}

// Hashes every entry (first sample), or re-hashes and marks the ones that
// changed (second sample), in chunks spread over the threads: one target's
// pages are read by several threads at once (the kernel takes its mmap lock
// for reading only).
void EstimateWorker::Sample(bool again) {
  const Phase phase = again ? kPhaseResample : kPhaseSample;
  struct Chunk {
    uint32_t target;
    size_t begin;
    size_t end;
  };
  std::vector<Chunk> chunks;
  size_t total = 0;
  for (uint32_t t = 0; t < targets_.size(); t++) {
    const size_t n = targets_[t].entries.size();
    total += n;
    for (size_t begin = 0; begin < n; begin += kChunkPages) chunks.push_back({t, begin, std::min(n, begin + kChunkPages)});
  }
  done_.store(0, std::memory_order_relaxed);
  crew_->ForEach(chunks.size(), [&](size_t lane, size_t c) {
    const Chunk& chunk = chunks[c];
    if (!Stopped() && !Exited(chunk.target)) SampleChunk(lanes_[lane], chunk.target, chunk.begin, chunk.end, again);
    const double done = static_cast<double>(done_.fetch_add(chunk.end - chunk.begin, std::memory_order_relaxed) +
                                            (chunk.end - chunk.begin));
    Report(phase, done, static_cast<double>(total));
  });
  Report(phase, static_cast<double>(total), static_cast<double>(total), true);
  for (Lane& lane : lanes_) {
    lane.live.clear();
    lane.live.shrink_to_fit();
  }
}

void EstimateWorker::SampleChunk(Lane& lane, uint32_t t, size_t begin, size_t end, bool again) {
  const PageHashFn hash_page = config_.hash.fn;
  Entry* base = targets_[t].entries.data() + begin;
  const size_t n = end - begin;
  // The entries still to read in the second sample: not skipped.
  std::vector<uint32_t>& live = lane.live;
  live.clear();
  if (again) {
    for (size_t i = 0; i < n; i++) {
      if ((base[i].ref & kFlagSkip) == 0) live.push_back(static_cast<uint32_t>(i));
    }
    lane.TrackMemory();
  }
  const size_t count = again ? live.size() : n;
  auto index = [&](size_t i) { return again ? live[i] : i; };
  int err = ReadPages(
      lane, t, count, [&](size_t i) { return base[index(i)].ref; },
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
          lane.pages_hashed++;
        } else if (hash != entry.hash) {
          entry.ref |= kFlagVolatile;
        }
      });
  ReadEnded(t, err);
}

// Per-range counts of what each of target t's entries turned out to be;
// the ones that can merge with a twin are marked to stay.
void EstimateWorker::Tally(uint32_t t) {
  Target& target = targets_[t];
  if (Exited(t)) return;
  size_t r = 0;
  for (size_t i = 0; i < target.entries.size(); i++) {
    if ((i & 65535) == 65535 && Stopped()) return;
    Entry& entry = target.entries[i];
    uint64_t address = AddressOf(entry.ref);
    while (r + 1 < target.RangeCount() && target.ranges[r * 2 + 1] <= address) r++;
    PageStats& stats = target.stats[r];
    const uint64_t flags = entry.ref & kFlagMask;
    if ((flags & kFlagSkip) != 0) {
      stats.unreadablePages += 1;
      continue;
    }
    if (zero_pfn_ == 0 && (flags & kFlagShared) != 0 && (flags & kFlagZero) != 0) {
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

// Only stable, non-zero pages of live processes look for twins: they move
// into one list, target after target, each target's own list freed as it
// goes (so the two are never both whole).
void EstimateWorker::Gather() {
  auto stays = [](const Entry& e) { return (e.ref & (kFlagSkip | kFlagVolatile | kFlagZero)) == 0; };
  size_t count = 0;
  for (uint32_t t = 0; t < targets_.size(); t++) {
    if (!Exited(t)) count += static_cast<size_t>(std::count_if(targets_[t].entries.begin(), targets_[t].entries.end(), stays));
  }
  entries_.reserve(count);
  TrackMemory();
  for (uint32_t t = 0; t < targets_.size(); t++) {
    std::vector<Entry>& own = targets_[t].entries;
    if (!Exited(t)) std::copy_if(own.begin(), own.end(), std::back_inserter(entries_), stays);
    own = std::vector<Entry>();
  }
}

}  // namespace ksm
