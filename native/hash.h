// The 64-bit page hash estimate() sorts pages by: a scalar version for every
// CPU and an AVX2 one, picked at run time. The two give different hashes;
// a worker uses one for all of its pages.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ksm {

// Hashes `len` bytes (a multiple of 64) and sets *all_zero when every byte
// is zero.
using PageHashFn = uint64_t (*)(const uint8_t* data, size_t len, bool* all_zero);

struct PageHash {
  PageHashFn fn;
  const char* name;  // "avx2" or "scalar", as estimatePages reports it
};

// The fastest this CPU runs (AVX2 where __builtin_cpu_supports says so).
PageHash BestPageHash();

// The portable one, on any CPU: to test it where the dispatcher would not
// pick it.
PageHash ScalarPageHash();

}  // namespace ksm
