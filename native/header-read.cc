#include "header-read.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ksm {

namespace {

// pagemap entries read at once: neighbouring VMAs' pages share one read.
constexpr uint64_t kWindowEntries = 512;
constexpr uint64_t kPresent = 1ULL << 63;

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
  bool Present(uint64_t page) {
    if (!(page >= first_ && page < first_ + count_)) Load(page);
    return page >= first_ && page < first_ + count_ && (entries_[page - first_] & kPresent) != 0;
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

}  // namespace

bool ReadPresentHeaders(const std::string& dir, const std::vector<uint64_t>& addresses, std::vector<char>* out,
                        Failure* failure) {
  Fd pagemap;
  Fd mem;
  if (!pagemap.Open(dir + "/pagemap", failure) || !mem.Open(dir + "/mem", failure)) return false;
  const long pageSize = sysconf(_SC_PAGESIZE);
  const uint64_t page = pageSize > 0 ? static_cast<uint64_t>(pageSize) : 4096;
  out->assign(addresses.size() * kHeaderBytes, 0);
  PagemapWindow window(pagemap.get());
  for (size_t i = 0; i < addresses.size(); i++) {
    const uint64_t address = addresses[i];
    // The header must lie in one page, and mem offsets are signed.
    if (address > static_cast<uint64_t>(INT64_MAX) || address % page > page - kHeaderBytes) continue;
    if (!window.Present(address / page)) continue;
    char* at = out->data() + i * kHeaderBytes;
    if (PreadFull(mem.get(), at, kHeaderBytes, address) != static_cast<ssize_t>(kHeaderBytes)) {
      memset(at, 0, kHeaderBytes);
    }
  }
  return true;
}

}  // namespace ksm
