// The advice this package gave, kept for the whole process: the ranges
// markSensitive() keeps unmergeable, and the ranges allocMergeable() and
// markMergeable() keep mergeable. PR_SET_MEMORY_MERGE changes every VMA of
// the process, whichever thread calls it, so the record is process-wide too.
#pragma once

#include <napi.h>

#include <cstdint>

namespace ksm {

// markSensitive(view, label?) -> { address, length }: records every page the
// view touches, then advises them MADV_UNMERGEABLE. Overlapping marks become
// one range, named by the newest label. A mark lasts while its pages are
// mapped (memory that was freed and reused stays unmergeable: that costs
// savings, never a secret).
Napi::Value MarkSensitive(const Napi::CallbackInfo& info);

// sensitiveRanges() -> [{ start, end, label }]: the marks whose pages are
// still mapped (what is no longer mapped is dropped first), by start.
Napi::Value SensitiveRanges(const Napi::CallbackInfo& info);

// adviseMergeable(view, id) -> { address, length, id }: MADV_MERGEABLE on the
// whole pages inside the view, recorded under `id` (0: a new one). The marks
// inside the range are advised MADV_UNMERGEABLE again (where that fails, the
// SystemError carries the id as `mergeableId`). Entries of an env that is
// torn down are released as by releaseMergeable().
Napi::Value AdviseMergeable(const Napi::CallbackInfo& info);

// unadviseMergeable(view) -> { address, length }: MADV_UNMERGEABLE on the
// whole pages inside the view, and out of every record.
Napi::Value UnadviseMergeable(const Napi::CallbackInfo& info);

// releaseMergeable(id): forgets `id` (its owner was collected) and, unless
// merge-any is on, advises MADV_UNMERGEABLE what of it no other record keeps.
Napi::Value ReleaseMergeable(const Napi::CallbackInfo& info);

// reapplyAdvice(): after PR_SET_MEMORY_MERGE: MADV_MERGEABLE again on every
// mergeable record still mapped (merge-any off clears VM_MERGEABLE on every
// VMA), then MADV_UNMERGEABLE on every mark (merge-any on sets it).
Napi::Value ReapplyAdvice(const Napi::CallbackInfo& info);

// For alloc(): [start, end) was just mapped, so no mark there is alive; with
// `mergeable`, records it and returns its id (0 otherwise).
uint64_t RecordMapping(uintptr_t start, uintptr_t end, bool mergeable);

// For alloc()'s finalizer, before munmap: the mapping's record goes.
void ForgetMapping(uint64_t id);

}  // namespace ksm
