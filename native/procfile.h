// Reading a whole /proc file in one task on the libuv pool.
#pragma once

#include <napi.h>

namespace ksm {

// readProcFile(path: string): Promise<Buffer>: the whole file, read on the
// libuv pool in one task. /proc/PID/smaps is a seq_file that returns one page
// (~3.7 KB, five VMAs) per read(2) whatever the buffer size: 2,000 reads for a
// 10,000-VMA process. fs.promises.readFile makes each of them a round trip to
// the pool; this makes them one.
Napi::Value ReadProcFile(const Napi::CallbackInfo& info);

}  // namespace ksm
