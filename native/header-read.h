// The first bytes of many pages of a process at once, for telling glibc's
// mmapped chunks by their headers: one read on a reader thread instead of a
// pagemap and a mem read per VMA through the libuv pool.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fd.h"

namespace ksm {

// Bytes read at each address.
constexpr size_t kHeaderBytes = 16;

// For each of `addresses` (user addresses in `dir`'s process, /proc/PID),
// kHeaderBytes bytes read through dir/mem into `out` (kHeaderBytes per
// address, in their order), but only where dir/pagemap shows the page
// present: a page not in RAM is never faulted in, and stays zeros, as does
// a read that fails (unmapped meanwhile). The present ones are read with one
// process_vm_readv per 1,024 where `dir` names a pid (a system call each
// through mem cost ~2.5 us more per header), through mem where that is
// refused. False, with `failure`, when pagemap or mem cannot be opened (no
// ptrace access).
bool ReadPresentHeaders(const std::string& dir, const std::vector<uint64_t>& addresses, std::vector<char>* out,
                        Failure* failure);

struct SmapsScan;

// The VMAs of a smaps scan whose first chunk header a smaps read reads
// beside its scan (readProcFile's fourth argument): lib/kernel/vma.ts
// mallocChunkCandidate()'s (anonymous, `rw-p`, no `dc` flag), and with
// kReported only those profit() reports of them (KSM pages in them, or `mg`).
enum class ChunkRule { kNone, kCandidates, kReported };

// Whether VMA `vma` of `scan` is one of `rule`'s.
bool ChunkCandidate(const SmapsScan& scan, size_t vma, ChunkRule rule);

// Chunks walked along one VMA at most (lib/kernel/vma-evidence.ts MAX_CHUNKS_PER_VMA).
constexpr uint32_t kMaxChunksPerVma = 4096;
// Headers read past the first ones, at most, by one scan's walks (about a
// second of reads): a process made of tiny mapped chunks cannot hold a
// reader thread for longer; the VMAs not walked to their end are not told,
// as a walk stopped at its deadline in lib/kernel/malloc-chunks.ts.
constexpr size_t kMaxWalkReads = 1 << 20;

// The size of the chunk whose header (prev_size, size; 16 bytes
// little-endian) this is when it is one glibc mapped on its own (IS_MMAPPED
// 0x2, neither PREV_INUSE 0x1 nor NON_MAIN_ARENA 0x4, prev_size 0, a whole
// number of pages that fits `remaining`), 0 otherwise: lib/kernel/vma.ts
// mmappedChunkSize().
uint64_t MmappedChunkSize(const char* header, uint64_t remaining, uint64_t pageSize);

// The first header of the first `limit` candidate VMAs of a smaps scan
// that grows a piece at a time (procread.cc reads the headers of each piece
// while the rest of smaps is read): ReadPresentHeaders() of the new ones at
// each Add(), pagemap and mem opened once. A candidate whose first header
// is a mapped chunk's is walked on from there, a round of reads for all of
// them at once per chunk, as lib/kernel/malloc-chunks.ts walks them.
class ScanHeaders {
 public:
  ScanHeaders(ChunkRule rule, size_t limit, std::string dir) : rule_(rule), limit_(limit), dir_(std::move(dir)) {}
  // The candidates among the VMAs scanned since the last call, read;
  // `complete`: the scan is whole (else its last VMA may still lack its
  // VmFlags line, and waits for the next call).
  void Add(const SmapsScan& scan, bool complete);
  // Every read could be made (pagemap and mem opened).
  bool Ok() const { return !failed_; }
  // The candidates' VMA indexes in the scan, in order, and their headers (kHeaderBytes each).
  std::vector<uint32_t> candidates;
  std::vector<char> headers;
  // Per candidate: how many mapped chunks tile it exactly (kMaxChunksPerVma
  // at most walked), 0 where they do not.
  std::vector<uint32_t> tiled;

 private:
  ChunkRule rule_;
  size_t limit_;
  std::string dir_;
  size_t next_ = 0;
  bool failed_ = false;
  // Opened at the first header read, and kept for the next pieces'.
  bool opened_ = false;
  size_t walkReads_ = 0;
  Fd pagemap_;
  Fd mem_;

  // Walks the new candidates from `first` on (their headers read into
  // `read`), setting `tiled` for each.
  void Walk(const SmapsScan& scan, size_t first, const std::vector<char>& read);
};

}  // namespace ksm
