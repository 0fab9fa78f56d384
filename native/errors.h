// Node-shaped system errors for failed system calls.
#pragma once

#include <napi.h>

#include <string>

namespace ksm {

// Builds `Error('EINVAL: invalid argument, madvise')` with `code` 'EINVAL',
// `errno` -22 and `syscall` 'madvise', the shape of Node's own SystemError.
Napi::Error SystemError(Napi::Env env, int err, const char* syscall);

// The same for a call on a file, with `path` set and named in the message as
// Node does: "EACCES: permission denied, open '/proc/kpageflags'".
Napi::Error SystemError(Napi::Env env, int err, const char* syscall,
                        const std::string& path);

// errno's symbolic name ("EINVAL"), or "Unknown system error <n>" style
// fallback "E<n>" for numbers outside the table.
const char* ErrnoName(int err);

}  // namespace ksm
