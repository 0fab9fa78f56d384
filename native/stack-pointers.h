// The stack pointers of a process's threads, read where lib/kernel/vma.ts
// tells thread stacks by them: /proc/PID/task/TID/syscall, as
// lib/kernel/vma-evidence.ts readStackPointers() reads them, but on a reader
// thread beside the smaps scan instead of on the JavaScript thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ksm {

// A syscall file's stack pointer: `nr a1 .. a6 sp pc` (blocked in a system
// call) or `-1 sp pc` (blocked outside one), sp in lowercase hex after
// 0x; none for a running thread ("running") or any other text.
std::optional<uint64_t> SyscallStackPointer(std::string_view text);

// For every thread of the process of `dir` (/proc/PID) that is blocked in
// the kernel, its id and stack pointer, appended to `pairs` (tid, sp, ...).
// A task directory that cannot be listed gives none; a thread that exits or
// refuses meanwhile is left out.
void ReadStackPointers(const std::string& dir, std::vector<uint64_t>* pairs);

}  // namespace ksm
