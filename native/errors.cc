#include "errors.h"

#include <cctype>
#include <cerrno>
#include <cstring>
#include <string>

namespace ksm {

namespace {

struct ErrnoEntry {
  int value;
  const char* name;
};

// The errnos the calls we make (mmap, munmap, madvise, prctl, pread,
// process_vm_readv) can return, plus the common neighbours.
constexpr ErrnoEntry kErrnos[] = {
    {EPERM, "EPERM"},     {ENOENT, "ENOENT"},       {ESRCH, "ESRCH"},
    {EINTR, "EINTR"},     {EIO, "EIO"},             {ENXIO, "ENXIO"},
    {E2BIG, "E2BIG"},     {EBADF, "EBADF"},         {EAGAIN, "EAGAIN"},
    {ENOMEM, "ENOMEM"},   {EACCES, "EACCES"},       {EFAULT, "EFAULT"},
    {EBUSY, "EBUSY"},     {EEXIST, "EEXIST"},       {ENODEV, "ENODEV"},
    {ENOTDIR, "ENOTDIR"}, {EISDIR, "EISDIR"},       {EINVAL, "EINVAL"},
    {ENFILE, "ENFILE"},   {EMFILE, "EMFILE"},       {ENOSPC, "ENOSPC"},
    {EROFS, "EROFS"},     {ERANGE, "ERANGE"},       {ENOSYS, "ENOSYS"},
    {EOVERFLOW, "EOVERFLOW"},                       {EHWPOISON, "EHWPOISON"},
    {EOPNOTSUPP, "EOPNOTSUPP"},
};

}  // namespace

const char* ErrnoName(int err) {
  for (const auto& entry : kErrnos) {
    if (entry.value == err) return entry.name;
  }
  return nullptr;
}

Napi::Error SystemError(Napi::Env env, int err, const char* syscall) {
  const char* name = ErrnoName(err);
  std::string code = name != nullptr ? name : "E" + std::to_string(err);

  // strerror_r comes in two flavours; glibc's GNU one returns the string.
  char buf[128] = {0};
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
  std::string description = strerror_r(err, buf, sizeof(buf));
#else
  std::string description =
      strerror_r(err, buf, sizeof(buf)) == 0 ? buf : "unknown error";
#endif
  // Node writes "invalid argument", libc writes "Invalid argument".
  if (!description.empty()) {
    description[0] = static_cast<char>(
        std::tolower(static_cast<unsigned char>(description[0])));
  }

  Napi::Error error = Napi::Error::New(
      env, code + ": " + description + ", " + syscall);
  error.Set("code", Napi::String::New(env, code));
  error.Set("errno", Napi::Number::New(env, -err));
  error.Set("syscall", Napi::String::New(env, syscall));
  return error;
}

Napi::Error SystemError(Napi::Env env, int err, const char* syscall,
                        const std::string& path) {
  Napi::Error error = SystemError(env, err, syscall);
  error.Set("message", Napi::String::New(env, error.Message() + " '" + path + "'"));
  error.Set("path", Napi::String::New(env, path));
  return error;
}

}  // namespace ksm
