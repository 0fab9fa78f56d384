// A file descriptor closed on every path out, and the failed call a worker
// reports once it is back on the JavaScript thread.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace ksm {

// What failed, for SystemError(env, err, syscall, path).
struct Failure {
  int err = 0;
  std::string syscall;
  std::string path;
};

class Fd {
 public:
  Fd() = default;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  bool Open(const std::string& path, Failure* failure) {
    fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) {
      *failure = {errno, "open", path};
      return false;
    }
    return true;
  }
  int get() const { return fd_; }

 private:
  int fd_ = -1;
};

}  // namespace ksm
