#include "advice.h"

#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <mutex>
#include <string>
#include <vector>

#include "errors.h"
#include "ksm-abi.h"
#include "view.h"

namespace ksm {

namespace {

struct Span {
  uintptr_t start;
  uintptr_t end;
};

struct Mark {
  uintptr_t start;
  uintptr_t end;
  std::string label;
  // Order of the mark that gave the label (0: none): the newest names a merge.
  uint64_t labelSeq;
};

struct Mergeable {
  uint64_t id;
  uintptr_t start;
  uintptr_t end;
  // The env whose teardown releases it; nullptr for alloc()'s own mappings,
  // which their finalizer forgets.
  napi_env env;
};

// A mutable static on purpose: every env (the main thread and each worker)
// loads this one library image, and PR_SET_MEMORY_MERGE in any of them
// changes the VMAs of all, so the record of what must stay (un)mergeable has
// to be one per process, not per env. The mutex makes "advise and record"
// one step against a reapplyAdvice() in another thread.
struct Registry {
  std::mutex mutex;
  std::vector<Mark> marks;  // by start, not overlapping
  std::vector<Mergeable> mergeable;
  std::vector<napi_env> hooked;  // envs with a cleanup hook installed
  uint64_t nextId = 1;
  uint64_t nextSeq = 1;
};

Registry& TheRegistry() {
  // Never destroyed: a worker may still call in while the process exits.
  static Registry* registry = new Registry();
  return *registry;
}

uintptr_t Page() { return static_cast<uintptr_t>(sysconf(_SC_PAGESIZE)); }

bool Overlaps(uintptr_t a0, uintptr_t a1, uintptr_t b0, uintptr_t b1) {
  return a0 < b1 && b0 < a1;
}

int Advise(uintptr_t start, uintptr_t end, int advice) {
  if (end <= start) return 0;
  return madvise(reinterpret_cast<void*>(start), end - start, advice) == 0 ? 0 : errno;
}

// The mapped parts of [start, end), in order. msync(MS_ASYNC) does no I/O and
// fails with ENOMEM exactly when part of the range is not mapped; halving
// finds the holes in O(holes x log pages) calls.
void MappedParts(uintptr_t start, uintptr_t end, uintptr_t page, std::vector<Span>* out) {
  if (end <= start) return;
  if (msync(reinterpret_cast<void*>(start), end - start, MS_ASYNC) == 0 || errno != ENOMEM) {
    if (!out->empty() && out->back().end == start) {
      out->back().end = end;
    } else {
      out->push_back({start, end});
    }
    return;
  }
  if (end - start <= page) return;
  const uintptr_t mid = start + (end - start) / page / 2 * page;
  MappedParts(start, mid, page, out);
  MappedParts(mid, end, page, out);
}

// [start, end) less every span in `holes`.
std::vector<Span> Subtract(Span range, const std::vector<Span>& holes) {
  std::vector<Span> parts{range};
  for (const Span& hole : holes) {
    std::vector<Span> next;
    for (const Span& part : parts) {
      if (!Overlaps(part.start, part.end, hole.start, hole.end)) {
        next.push_back(part);
        continue;
      }
      if (part.start < hole.start) next.push_back({part.start, hole.start});
      if (hole.end < part.end) next.push_back({hole.end, part.end});
    }
    parts.swap(next);
  }
  return parts;
}

// --- marks (markSensitive) ---------------------------------------------------

void AddMark(Registry& r, uintptr_t start, uintptr_t end, const std::string* label) {
  Mark mark{start, end, label == nullptr ? std::string() : *label, label == nullptr ? 0 : r.nextSeq++};
  r.marks.push_back(mark);
  std::sort(r.marks.begin(), r.marks.end(), [](const Mark& a, const Mark& b) { return a.start < b.start; });
  std::vector<Mark> merged;
  for (Mark& m : r.marks) {
    if (merged.empty() || m.start >= merged.back().end) {
      merged.push_back(std::move(m));
      continue;
    }
    Mark& last = merged.back();
    last.end = std::max(last.end, m.end);
    if (m.labelSeq > last.labelSeq) {
      last.label = std::move(m.label);
      last.labelSeq = m.labelSeq;
    }
  }
  r.marks.swap(merged);
}

// Marks trimmed to what is still mapped: an unmapped page holds no secret.
void PruneMarks(Registry& r) {
  const uintptr_t page = Page();
  std::vector<Mark> kept;
  for (const Mark& m : r.marks) {
    std::vector<Span> parts;
    MappedParts(m.start, m.end, page, &parts);
    for (const Span& part : parts) kept.push_back({part.start, part.end, m.label, m.labelSeq});
  }
  r.marks.swap(kept);
}

void ForgetMarks(Registry& r, Span range) {
  std::vector<Mark> kept;
  for (const Mark& m : r.marks) {
    for (const Span& part : Subtract({m.start, m.end}, {range})) {
      kept.push_back({part.start, part.end, m.label, m.labelSeq});
    }
  }
  r.marks.swap(kept);
}

// MADV_UNMERGEABLE on every mark overlapping [from, to); the first failure
// other than ENOMEM (a hole: the mapped parts are still advised).
int UnmergeMarks(const Registry& r, uintptr_t from, uintptr_t to) {
  int first = 0;
  for (const Mark& m : r.marks) {
    if (!Overlaps(m.start, m.end, from, to)) continue;
    const int err = Advise(m.start, m.end, MADV_UNMERGEABLE);
    if (err != 0 && err != ENOMEM && first == 0) first = err;
  }
  return first;
}

// --- mergeable records (allocMergeable, markMergeable) --------------------

void AddMergeable(Registry& r, uint64_t id, Span range, napi_env env) {
  for (Mergeable& m : r.mergeable) {
    // Pieces of one owner that meet become one.
    if (m.id == id && m.start <= range.end && range.start <= m.end) {
      m.start = std::min(m.start, range.start);
      m.end = std::max(m.end, range.end);
      return;
    }
  }
  r.mergeable.push_back({id, range.start, range.end, env});
}

template <typename Pred>
std::vector<Span> TakeMergeable(Registry& r, Pred pred) {
  std::vector<Span> taken;
  std::vector<Mergeable> kept;
  for (const Mergeable& m : r.mergeable) {
    if (pred(m)) {
      taken.push_back({m.start, m.end});
    } else {
      kept.push_back(m);
    }
  }
  r.mergeable.swap(kept);
  return taken;
}

void RemoveMergeableRange(Registry& r, Span range) {
  std::vector<Mergeable> kept;
  for (const Mergeable& m : r.mergeable) {
    for (const Span& part : Subtract({m.start, m.end}, {range})) kept.push_back({m.id, part.start, part.end, m.env});
  }
  r.mergeable.swap(kept);
}

bool MergeAnyOn() { return prctl(PR_GET_MEMORY_MERGE, 0UL, 0UL, 0UL, 0UL) > 0; }

// Released ranges lose their advice, except what another record still keeps.
// Under merge-any every VMA is mergeable by the process's choice: left alone.
void UnadviseReleased(const Registry& r, const std::vector<Span>& released) {
  if (released.empty() || MergeAnyOn()) return;
  std::vector<Span> live;
  for (const Mergeable& m : r.mergeable) live.push_back({m.start, m.end});
  const uintptr_t page = Page();
  for (const Span& span : released) {
    for (const Span& part : Subtract(span, live)) {
      std::vector<Span> mapped;
      MappedParts(part.start, part.end, page, &mapped);
      // Best effort: called from a finalizer, nobody to tell of EAGAIN.
      for (const Span& m : mapped) Advise(m.start, m.end, MADV_UNMERGEABLE);
    }
  }
}

// An env torn down: its records go, as if every owner were collected. The
// main thread's env goes only as the process exits: unmerging (copying back)
// memory that is about to vanish would only cost time and memory.
void ReleaseEnv(void* arg) {
  napi_env env = static_cast<napi_env>(arg);
  Registry& r = TheRegistry();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.hooked.erase(std::remove(r.hooked.begin(), r.hooked.end(), env), r.hooked.end());
  std::vector<Span> released = TakeMergeable(r, [env](const Mergeable& m) { return m.env == env; });
  if (static_cast<pid_t>(syscall(SYS_gettid)) != getpid()) UnadviseReleased(r, released);
}

void HookEnv(Registry& r, napi_env env) {
  if (std::find(r.hooked.begin(), r.hooked.end(), env) != r.hooked.end()) return;
  if (napi_add_env_cleanup_hook(env, ReleaseEnv, env) == napi_ok) r.hooked.push_back(env);
}

// --- arguments and results -------------------------------------------------

Span ViewSpan(Napi::Env env, const Napi::Value& value, bool outward) {
  ViewMemory view = GetViewMemory(env, value);
  const uintptr_t page = Page();
  const uintptr_t begin = reinterpret_cast<uintptr_t>(view.data);
  if (view.length == 0) return {begin / page * page, begin / page * page};
  Span span = outward ? Span{begin / page * page, (begin + view.length + page - 1) / page * page}
                      : Span{(begin + page - 1) / page * page, (begin + view.length) / page * page};
  if (span.end < span.start) span.end = span.start;
  return span;
}

uint64_t ToId(Napi::Env env, const Napi::Value& value) {
  if (!value.IsNumber()) throw Napi::TypeError::New(env, "id must be a number");
  const double raw = value.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(raw) || std::trunc(raw) != raw || raw < 0 || raw > 9007199254740991.0) {
    throw Napi::RangeError::New(env, "id must be a non-negative safe integer");
  }
  return static_cast<uint64_t>(raw);
}

Napi::Object RangeObject(Napi::Env env, Span span) {
  Napi::Object range = Napi::Object::New(env);
  range.Set("address", Napi::BigInt::New(env, static_cast<uint64_t>(span.start)));
  range.Set("length", Napi::Number::New(env, static_cast<double>(span.end - span.start)));
  return range;
}

}  // namespace

Napi::Value MarkSensitive(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1) throw Napi::TypeError::New(env, "markSensitive(view, label?)");
  const Span span = ViewSpan(env, info[0], true);
  std::string label;
  const bool labelled = info.Length() > 1 && !info[1].IsUndefined();
  if (labelled) {
    if (!info[1].IsString()) throw Napi::TypeError::New(env, "label must be a string");
    label = info[1].As<Napi::String>().Utf8Value();
  }
  if (span.end == span.start) return RangeObject(env, span);
  Registry& r = TheRegistry();
  int err = 0;
  {
    std::lock_guard<std::mutex> lock(r.mutex);
    // Recorded first: if the advice fails, the mark still says what must not merge.
    AddMark(r, span.start, span.end, labelled ? &label : nullptr);
    err = Advise(span.start, span.end, MADV_UNMERGEABLE);
  }
  if (err != 0) throw SystemError(env, err, "madvise");
  return RangeObject(env, span);
}

Napi::Value SensitiveRanges(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Registry& r = TheRegistry();
  std::vector<Mark> marks;
  {
    std::lock_guard<std::mutex> lock(r.mutex);
    PruneMarks(r);
    marks = r.marks;
  }
  Napi::Array out = Napi::Array::New(env, marks.size());
  for (size_t i = 0; i < marks.size(); i++) {
    Napi::Object entry = Napi::Object::New(env);
    entry.Set("start", Napi::BigInt::New(env, static_cast<uint64_t>(marks[i].start)));
    entry.Set("end", Napi::BigInt::New(env, static_cast<uint64_t>(marks[i].end)));
    entry.Set("label", marks[i].labelSeq == 0 ? env.Undefined() : Napi::String::New(env, marks[i].label));
    out.Set(static_cast<uint32_t>(i), entry);
  }
  return out;
}

Napi::Value AdviseMergeable(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2) throw Napi::TypeError::New(env, "adviseMergeable(view, id)");
  const Span span = ViewSpan(env, info[0], false);
  uint64_t id = ToId(env, info[1]);
  Registry& r = TheRegistry();
  int err = 0;
  int marksErr = 0;
  if (span.end > span.start) {
    std::lock_guard<std::mutex> lock(r.mutex);
    const bool fresh = id == 0;
    if (fresh) id = r.nextId++;
    HookEnv(r, env);
    AddMergeable(r, id, span, env);
    err = Advise(span.start, span.end, MADV_MERGEABLE);
    if (err != 0 && fresh) TakeMergeable(r, [id](const Mergeable& m) { return m.id == id; });
    // A secret inside the range stays unmergeable.
    marksErr = UnmergeMarks(r, span.start, span.end);
  }
  if (err != 0) throw SystemError(env, err, "madvise");
  if (marksErr != 0) {
    // The range is advised and recorded: the caller still needs the id.
    Napi::Error error = SystemError(env, marksErr, "madvise");
    error.Set("mergeableId", Napi::Number::New(env, static_cast<double>(id)));
    throw error;
  }
  Napi::Object range = RangeObject(env, span);
  range.Set("id", Napi::Number::New(env, static_cast<double>(id)));
  return range;
}

Napi::Value UnadviseMergeable(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1) throw Napi::TypeError::New(env, "unadviseMergeable(view)");
  const Span span = ViewSpan(env, info[0], false);
  if (span.end == span.start) return RangeObject(env, span);
  Registry& r = TheRegistry();
  int err = 0;
  {
    std::lock_guard<std::mutex> lock(r.mutex);
    RemoveMergeableRange(r, span);
    err = Advise(span.start, span.end, MADV_UNMERGEABLE);
  }
  if (err != 0) throw SystemError(env, err, "madvise");
  return RangeObject(env, span);
}

Napi::Value ReleaseMergeable(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1) throw Napi::TypeError::New(env, "releaseMergeable(id)");
  const uint64_t id = ToId(env, info[0]);
  Registry& r = TheRegistry();
  std::lock_guard<std::mutex> lock(r.mutex);
  UnadviseReleased(r, TakeMergeable(r, [id](const Mergeable& m) { return m.id == id; }));
  return env.Undefined();
}

Napi::Value ReapplyAdvice(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Registry& r = TheRegistry();
  int mergeErr = 0;
  int marksErr = 0;
  {
    std::lock_guard<std::mutex> lock(r.mutex);
    PruneMarks(r);
    for (const Mergeable& m : r.mergeable) {
      // A record whose memory is already unmapped (its owner not yet
      // collected) is skipped: that memory is gone.
      if (msync(reinterpret_cast<void*>(m.start), m.end - m.start, MS_ASYNC) != 0) continue;
      const int err = Advise(m.start, m.end, MADV_MERGEABLE);
      if (err != 0 && err != ENOMEM && mergeErr == 0) mergeErr = err;
    }
    // Last: a mark inside a mergeable record wins.
    marksErr = UnmergeMarks(r, 0, UINTPTR_MAX);
  }
  if (marksErr != 0) throw SystemError(env, marksErr, "madvise");
  if (mergeErr != 0) throw SystemError(env, mergeErr, "madvise");
  return env.Undefined();
}

uint64_t RecordMapping(uintptr_t start, uintptr_t end, bool mergeable) {
  Registry& r = TheRegistry();
  std::lock_guard<std::mutex> lock(r.mutex);
  ForgetMarks(r, {start, end});
  if (!mergeable) return 0;
  const uint64_t id = r.nextId++;
  AddMergeable(r, id, {start, end}, nullptr);
  return id;
}

void ForgetMapping(uint64_t id) {
  if (id == 0) return;
  Registry& r = TheRegistry();
  std::lock_guard<std::mutex> lock(r.mutex);
  TakeMergeable(r, [id](const Mergeable& m) { return m.id == id; });
}

}  // namespace ksm
