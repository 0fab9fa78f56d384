#include "stack-pointers.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <memory>

namespace ksm {

namespace {

// lib/kernel/vma-evidence.ts splits on /\s+/: the kernel prints single spaces and a newline.
bool Space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

// A thread id: digits only, as the JavaScript reader's /^\d+$/, and one a pid_t holds.
bool ThreadId(const char* name, uint64_t* tid) {
  if (*name == '\0') return false;
  uint64_t value = 0;
  for (const char* c = name; *c != '\0'; c++) {
    if (*c < '0' || *c > '9') return false;
    value = value * 10 + static_cast<uint64_t>(*c - '0');
    if (value > 0x3fffffff) return false;
  }
  *tid = value;
  return true;
}

// The syscall file is one short line ("nr" and eight hex words at most).
constexpr size_t kSyscallBytes = 256;

}  // namespace

std::optional<uint64_t> SyscallStackPointer(std::string_view text) {
  std::string_view fields[10];
  size_t count = 0;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && Space(text[i])) i++;
    if (i == text.size()) break;
    const size_t from = i;
    while (i < text.size() && !Space(text[i])) i++;
    if (count == 10) return std::nullopt;  // more fields than either shape has
    fields[count++] = text.substr(from, i - from);
  }
  if (count != 9 && count != 3) return std::nullopt;
  const std::string_view sp = fields[count - 2];
  // 0x and 1 to 16 lowercase hex digits: a user address fits 64 bits.
  if (sp.size() < 3 || sp.size() > 18 || sp[0] != '0' || sp[1] != 'x') return std::nullopt;
  uint64_t value = 0;
  for (size_t k = 2; k < sp.size(); k++) {
    const char c = sp[k];
    uint64_t digit;
    if (c >= '0' && c <= '9') {
      digit = static_cast<uint64_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      digit = static_cast<uint64_t>(c - 'a' + 10);
    } else {
      return std::nullopt;
    }
    value = (value << 4) | digit;
  }
  return value;
}

void ReadStackPointers(const std::string& dir, std::vector<uint64_t>* pairs) {
  const std::string task = dir + "/task";
  std::unique_ptr<DIR, int (*)(DIR*)> listing(opendir(task.c_str()), closedir);
  if (!listing) return;
  char text[kSyscallBytes];
  for (;;) {
    errno = 0;
    const dirent* entry = readdir(listing.get());
    if (entry == nullptr) break;
    uint64_t tid;
    if (!ThreadId(entry->d_name, &tid)) continue;
    const std::string path = task + "/" + entry->d_name + "/syscall";
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    size_t length = 0;
    for (;;) {
      const ssize_t n = read(fd, text + length, sizeof(text) - length);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      length += static_cast<size_t>(n);
      if (length == sizeof(text)) break;
    }
    close(fd);
    if (length == sizeof(text)) continue;  // not the kernel's one line
    const std::optional<uint64_t> sp = SyscallStackPointer(std::string_view(text, length));
    if (!sp) continue;
    pairs->push_back(tid);
    pairs->push_back(*sp);
  }
}

}  // namespace ksm
