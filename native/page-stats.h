// estimate()'s per-range figures: one list, from which the struct the worker
// adds to, the names estimatePages exports (pageStatFields) and the order of
// the Float64Array it returns all come. lib/binding.ts holds the same list
// (PAGE_STAT_FIELDS); a test compares the two.
#pragma once

#include <cstddef>

namespace ksm {

#define KSM_PAGE_STATS(X) \
  X(presentPages)         \
  X(swappedPages)         \
  X(filePages)            \
  X(zeroPageMapped)       \
  X(candidatePages)       \
  X(unreadablePages)      \
  X(zeroPages)            \
  X(volatilePages)        \
  X(duplicatePages)       \
  X(twinInVma)            \
  X(twinInProcess)        \
  X(twinInOtherProcess)   \
  X(savedPages)

// Page counts of one range; savedPages is fractional (a class's saving is
// shared evenly among its pages).
struct PageStats {
#define KSM_PAGE_STAT_FIELD(name) double name = 0;
  KSM_PAGE_STATS(KSM_PAGE_STAT_FIELD)
#undef KSM_PAGE_STAT_FIELD

  // Adds another range's (or a piece of this range's) figures to these.
  void Add(const PageStats& other) {
#define KSM_PAGE_STAT_ADD(name) name += other.name;
    KSM_PAGE_STATS(KSM_PAGE_STAT_ADD)
#undef KSM_PAGE_STAT_ADD
  }

  // Writes the figures to out[0 .. kPageStatCount), in the list's order.
  void CopyTo(double* out) const {
    size_t i = 0;
#define KSM_PAGE_STAT_COPY(name) out[i++] = name;
    KSM_PAGE_STATS(KSM_PAGE_STAT_COPY)
#undef KSM_PAGE_STAT_COPY
  }
};

constexpr const char* kPageStatNames[] = {
#define KSM_PAGE_STAT_NAME(name) #name,
    KSM_PAGE_STATS(KSM_PAGE_STAT_NAME)
#undef KSM_PAGE_STAT_NAME
};

constexpr size_t kPageStatCount = sizeof(kPageStatNames) / sizeof(kPageStatNames[0]);
static_assert(sizeof(PageStats) == kPageStatCount * sizeof(double),
              "PageStats holds exactly the listed figures");

}  // namespace ksm
