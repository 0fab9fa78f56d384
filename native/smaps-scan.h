// /proc/PID/smaps in the kernel's own layout, scanned on the reader thread
// that read it (procread.cc), so that regions() and profit() spend on the
// event loop little more than making the VMA objects. A tight loop over
// bytes, not a parser of its own: it takes the shapes the kernel prints
// (fs/proc/task_mmu.c) and nothing else, and gives up on the first line out
// of them; the caller then gets the bytes and lib/kernel/smaps.ts, which
// defines the format for every input, scans them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

namespace ksm {

// Per VMA, in this order, as doubles (-1: the kernel printed no such line).
// lib/kernel/smaps-native.ts holds the same list (NATIVE_SMAPS_FIELDS) and uses
// this scan only when smapsScanFields, exported from this list, equals it.
#define KSM_SMAPS_FIELDS(X) \
  X(inode)                  \
  X(perms)                  \
  X(dev)                    \
  X(pathname)               \
  X(vmFlags)                \
  X(size)                   \
  X(rss)                    \
  X(pss)                    \
  X(sharedClean)            \
  X(sharedDirty)            \
  X(privateClean)           \
  X(privateDirty)           \
  X(anonymous)              \
  X(ksm)                    \
  X(anonHugePages)          \
  X(swap)

// Each field's column in SmapsScan::figures.
enum SmapsColumn : size_t {
#define KSM_SMAPS_COLUMN(name) kColumn_##name,
  KSM_SMAPS_FIELDS(KSM_SMAPS_COLUMN)
#undef KSM_SMAPS_COLUMN
};

#define KSM_SMAPS_FIELD_COUNT(name) +1
constexpr size_t kSmapsFieldCount = 0 KSM_SMAPS_FIELDS(KSM_SMAPS_FIELD_COUNT);
#undef KSM_SMAPS_FIELD_COUNT

struct SmapsScan {
  // start, end, offset per VMA.
  std::vector<uint64_t> addresses;
  // kSmapsFieldCount per VMA. perms, dev, pathname and vmFlags are indexes
  // into `spans`: the raw bytes (perms and dev tokens, the rest of the header
  // line after the inode and its spaces, VmFlags' text after the colon), each
  // distinct one once.
  std::vector<double> figures;
  std::vector<char> text;
  // [from, to) into `text`, two per distinct string.
  std::vector<uint32_t> spans;
};

// The text of a string of the scan (perms, dev, pathname, vmFlags: a span id
// as its figure), empty for -1.
std::string_view ScanText(const SmapsScan& scan, double id);

// Whether a VmFlags line's text holds `flag` (two letters) as one of its words.
bool HasVmFlag(std::string_view flags, std::string_view flag);

// How many of a growing scan's VMAs are whole: all of them once it is
// `complete`, else all but the last (its VmFlags line, or its KSM: line,
// may be in the next piece). For the work done beside the scan after each piece.
inline size_t WholeVmas(const SmapsScan& scan, bool complete) {
  const size_t count = scan.addresses.size() / 3;
  return complete || count == 0 ? count : count - 1;
}

// True when every line had the kernel's shape and `out` holds every VMA;
// false at the first line that did not (`out` is then partial).
bool ScanSmaps(const char* data, size_t size, SmapsScan* out);

// The same scan a piece at a time, in order, as the bytes are read: every
// piece but the last ends at a line's end, and every piece stays in memory,
// unmoved, until the scan is done (strings are told apart by pointing into
// them). Scan() is false from the first line out of the kernel's shape on.
class SmapsScanner {
 public:
  SmapsScanner(SmapsScan* out, size_t expectedBytes);
  ~SmapsScanner();
  SmapsScanner(const SmapsScanner&) = delete;
  SmapsScanner& operator=(const SmapsScanner&) = delete;
  bool Scan(const char* data, size_t size);
  // Every piece so far had the kernel's shape.
  bool Ok() const { return !failed_; }

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
  uint64_t bytes_ = 0;
  bool failed_ = false;
};

}  // namespace ksm
