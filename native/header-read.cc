#include "header-read.h"

#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "smaps-scan.h"

namespace ksm {

namespace {

// pagemap entries read at once: neighbouring VMAs' pages share one read.
constexpr uint64_t kWindowEntries = 512;
constexpr uint64_t kPresent = 1ULL << 63;
constexpr uint64_t kExclusive = 1ULL << 56;  // PM_MMAP_EXCLUSIVE

ssize_t PreadFull(int fd, void* buffer, size_t size, uint64_t offset) {
  for (;;) {
    ssize_t n = pread(fd, buffer, size, static_cast<off_t>(offset));
    if (n >= 0 || errno != EINTR) return n;
  }
}

// One pagemap window, reloaded when a page falls outside it.
class PagemapWindow {
 public:
  explicit PagemapWindow(int fd) : fd_(fd) {}
  // The page's pagemap entry, 0 where there is none.
  uint64_t Entry(uint64_t page) {
    if (!(page >= first_ && page < first_ + count_)) Load(page);
    return page >= first_ && page < first_ + count_ ? entries_[page - first_] : 0;
  }

 private:
  void Load(uint64_t page) {
    first_ = page;
    count_ = 0;
    // pagemap offsets are page * 8: past 2^60 pages there is no entry to read.
    if (page > (UINT64_MAX >> 4)) return;
    ssize_t n = PreadFull(fd_, entries_, sizeof(entries_), page * 8);
    if (n > 0) count_ = static_cast<uint64_t>(n) / 8;
  }
  int fd_;
  uint64_t first_ = 0;
  uint64_t count_ = 0;
  uint64_t entries_[kWindowEntries] = {};
};

// iovecs per process_vm_readv (UIO_MAXIOV).
constexpr size_t kBatch = 1024;

// The process of a /proc/PID directory, 0 where its name is no pid.
pid_t PidOf(const std::string& dir) {
  const size_t slash = dir.rfind('/');
  const char* name = dir.c_str() + (slash == std::string::npos ? 0 : slash + 1);
  char* end = nullptr;
  const long pid = strtol(name, &end, 10);
  return end != name && *end == '\0' && pid > 0 && pid <= 0x3fffffff ? static_cast<pid_t>(pid) : 0;
}

// The headers at `at` (indexes into addresses/out) with one process_vm_readv
// per batch: one system call instead of one mem read each. An address that
// fails (unmapped meanwhile) is skipped and stays zeros. False where the
// call is refused (a seccomp policy, EPERM): the caller reads through mem.
bool ReadBatched(pid_t pid, const std::vector<uint64_t>& addresses, const std::vector<size_t>& at, std::vector<char>* out) {
  // On the heap: reader threads have small stacks.
  std::vector<iovec> local(kBatch);
  std::vector<iovec> remote(kBatch);
  for (size_t from = 0; from < at.size();) {
    const size_t count = std::min(kBatch, at.size() - from);
    for (size_t k = 0; k < count; k++) {
      local[k] = {out->data() + at[from + k] * kHeaderBytes, kHeaderBytes};
      remote[k] = {reinterpret_cast<void*>(static_cast<uintptr_t>(addresses[at[from + k]])), kHeaderBytes};
    }
    ssize_t n = process_vm_readv(pid, local.data(), count, remote.data(), count, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EFAULT) n = 0;  // the first one failed
    if (n < 0) return false;  // the caller reads every present header again
    // Whole headers read; the one cut short (or failed) is left zeros and skipped.
    const size_t whole = static_cast<size_t>(n) / kHeaderBytes;
    if (whole < count) memset(out->data() + at[from + whole] * kHeaderBytes, 0, kHeaderBytes);
    from += std::min(count, whole + 1);
  }
  return true;
}

// A pathname span with nothing but the padding lib/kernel/smaps-native.ts trims (spaces, CR).
bool Blank(std::string_view text) {
  for (char c : text) {
    if (c != ' ' && c != '\r') return false;
  }
  return true;
}

}  // namespace

bool ChunkCandidate(const SmapsScan& scan, size_t vma, ChunkRule rule) {
  if (rule == ChunkRule::kNone || (vma + 1) * kSmapsFieldCount > scan.figures.size()) return false;
  const double* figures = scan.figures.data() + vma * kSmapsFieldCount;
  if (ScanText(scan, figures[kColumn_perms]) != "rw-p" || !Blank(ScanText(scan, figures[kColumn_pathname]))) return false;
  const std::string_view flags = ScanText(scan, figures[kColumn_vmFlags]);
  if (HasVmFlag(flags, "dc")) return false;
  return rule == ChunkRule::kCandidates || figures[kColumn_ksm] > 0 || HasVmFlag(flags, "mg");
}

uint64_t MmappedChunkSize(const char* header, uint64_t remaining, uint64_t pageSize) {
  uint64_t prevSize = 0;
  uint64_t size = 0;
  for (int i = 7; i >= 0; i--) {
    prevSize = (prevSize << 8) | static_cast<unsigned char>(header[i]);
    size = (size << 8) | static_cast<unsigned char>(header[8 + i]);
  }
  if (prevSize != 0 || (size & 7) != 2) return 0;
  const uint64_t bytes = size & ~uint64_t{7};
  if (bytes == 0 || pageSize == 0 || bytes % pageSize != 0 || bytes > remaining) return 0;
  return bytes;
}

namespace {

uint64_t PageSize() {
  const long size = sysconf(_SC_PAGESIZE);
  return size > 0 ? static_cast<uint64_t>(size) : 4096;
}

// ReadPresentHeaders() with its files open: `pagemap` and `mem` of process `pid` (0: mem only).
void ReadPresent(int pagemapFd, int memFd, pid_t pid, const std::vector<uint64_t>& addresses, std::vector<char>* out) {
  const long pageSize = sysconf(_SC_PAGESIZE);
  const uint64_t page = pageSize > 0 ? static_cast<uint64_t>(pageSize) : 4096;
  out->assign(addresses.size() * kHeaderBytes, 0);
  PagemapWindow window(pagemapFd);
  // Pages mapped exclusively are read batched through process_vm_readv; the
  // others through mem: process_vm_readv pins what it reads, and the kernel
  // unshares a pinned anonymous page that is not exclusive (a KSM page, a
  // page shared since fork), so reading a header would undo a merge.
  std::vector<size_t> present;
  std::vector<size_t> shared;
  for (size_t i = 0; i < addresses.size(); i++) {
    const uint64_t address = addresses[i];
    // The header must lie in one page, and mem offsets are signed.
    if (address > static_cast<uint64_t>(INT64_MAX) || address % page > page - kHeaderBytes) continue;
    const uint64_t entry = window.Entry(address / page);
    if ((entry & kPresent) == 0) continue;
    ((entry & kExclusive) != 0 ? present : shared).push_back(i);
  }
  if (!(pid != 0 && ReadBatched(pid, addresses, present, out))) shared.insert(shared.end(), present.begin(), present.end());
  for (size_t i : shared) {
    char* at = out->data() + i * kHeaderBytes;
    if (PreadFull(memFd, at, kHeaderBytes, addresses[i]) != static_cast<ssize_t>(kHeaderBytes)) {
      memset(at, 0, kHeaderBytes);
    }
  }
}

}  // namespace

bool ReadPresentHeaders(const std::string& dir, const std::vector<uint64_t>& addresses, std::vector<char>* out,
                        Failure* failure) {
  Fd pagemap;
  Fd mem;
  if (!pagemap.Open(dir + "/pagemap", failure) || !mem.Open(dir + "/mem", failure)) return false;
  ReadPresent(pagemap.get(), mem.get(), PidOf(dir), addresses, out);
  return true;
}

void ScanHeaders::Add(const SmapsScan& scan, bool complete) {
  if (rule_ == ChunkRule::kNone || failed_) return;
  const size_t upTo = WholeVmas(scan, complete);
  std::vector<uint64_t> addresses;
  for (; next_ < upTo && candidates.size() < limit_; next_++) {
    if (next_ > UINT32_MAX || !ChunkCandidate(scan, next_, rule_)) continue;
    candidates.push_back(static_cast<uint32_t>(next_));
    addresses.push_back(scan.addresses[3 * next_]);
  }
  if (addresses.empty()) return;
  if (!opened_) {
    Failure failure;
    if (!pagemap_.Open(dir_ + "/pagemap", &failure) || !mem_.Open(dir_ + "/mem", &failure)) {
      failed_ = true;
      return;
    }
    opened_ = true;
  }
  std::vector<char> read;
  ReadPresent(pagemap_.get(), mem_.get(), PidOf(dir_), addresses, &read);
  headers.insert(headers.end(), read.begin(), read.end());
  Walk(scan, candidates.size() - addresses.size(), read);
}

void ScanHeaders::Walk(const SmapsScan& scan, size_t first, const std::vector<char>& read) {
  const uint64_t page = PageSize();
  tiled.resize(candidates.size(), 0);
  struct Along {
    size_t candidate;
    uint64_t at;
    uint64_t end;
    uint32_t chunks;
  };
  // A chunk's header at `at` taken: the walk's next place, or its end.
  auto step = [&](Along along, const char* header, std::vector<Along>* next) {
    const uint64_t size = MmappedChunkSize(header, along.end - along.at, page);
    if (size == 0) return;
    along.at += size;
    along.chunks++;
    if (along.at == along.end) {
      tiled[along.candidate] = along.chunks;
    } else if (along.chunks < kMaxChunksPerVma) {
      next->push_back(along);
    }
  };
  std::vector<Along> walks;
  for (size_t k = first; k < candidates.size(); k++) {
    const size_t vma = candidates[k];
    const uint64_t start = scan.addresses[3 * vma];
    const uint64_t end = scan.addresses[3 * vma + 1];
    if (end <= start) continue;
    step({k, start, end, 0}, read.data() + (k - first) * kHeaderBytes, &walks);
  }
  const pid_t pid = PidOf(dir_);
  std::vector<uint64_t> addresses;
  std::vector<char> more;
  while (!walks.empty() && walkReads_ + walks.size() <= kMaxWalkReads) {
    walkReads_ += walks.size();
    addresses.clear();
    for (const Along& along : walks) addresses.push_back(along.at);
    ReadPresent(pagemap_.get(), mem_.get(), pid, addresses, &more);
    std::vector<Along> next;
    for (size_t w = 0; w < walks.size(); w++) step(walks[w], more.data() + w * kHeaderBytes, &next);
    walks.swap(next);
  }
}

}  // namespace ksm
