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

}  // namespace ksm
