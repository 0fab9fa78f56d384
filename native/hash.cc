#include "hash.h"

#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace ksm {

namespace {

// The design is wyhash's (Wang Yi, public domain / Unlicense): 64x64->128
// multiply, fold the halves with xor, four independent lanes so the
// multiplier stays busy. It is not wyhash's output (pages are fixed-size and
// a multiple of 64 bytes, so there is no tail), and it need not be: a
// collision costs one extra memcmp, never a wrong answer, because every match
// is confirmed byte for byte.
constexpr uint64_t kSecret0 = 0xa0761d6478bd642full;
constexpr uint64_t kSecret1 = 0xe7037ed1a0b428dbull;
constexpr uint64_t kSecret2 = 0x8ebc6af09c88c6e3ull;
constexpr uint64_t kSecret3 = 0x589965cc75374cc3ull;

inline uint64_t Mum(uint64_t a, uint64_t b) {
  __uint128_t r = static_cast<__uint128_t>(a) * b;
  return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
}

inline uint64_t Load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

uint64_t HashPageScalar(const uint8_t* data, size_t len, bool* all_zero) {
  uint64_t s0 = kSecret0 ^ len;
  uint64_t s1 = kSecret1;
  uint64_t s2 = kSecret2;
  uint64_t s3 = kSecret3;
  uint64_t any = 0;
  for (size_t i = 0; i < len; i += 64) {
    const uint8_t* p = data + i;
    uint64_t w0 = Load64(p), w1 = Load64(p + 8), w2 = Load64(p + 16), w3 = Load64(p + 24);
    uint64_t w4 = Load64(p + 32), w5 = Load64(p + 40), w6 = Load64(p + 48), w7 = Load64(p + 56);
    any |= w0 | w1 | w2 | w3 | w4 | w5 | w6 | w7;
    s0 = Mum(w0 ^ kSecret1, w1 ^ s0);
    s1 = Mum(w2 ^ kSecret2, w3 ^ s1);
    s2 = Mum(w4 ^ kSecret3, w5 ^ s2);
    s3 = Mum(w6 ^ kSecret0, w7 ^ s3);
  }
  *all_zero = any == 0;
  uint64_t h = Mum(s0 ^ kSecret1, s1 ^ kSecret2) ^ Mum(s2 ^ kSecret3, s3 ^ kSecret0);
  return Mum(h ^ kSecret0, len ^ kSecret1);
}

#if defined(__x86_64__)
// XXH3's stripe accumulation (Yann Collet's design, BSD-2-Clause; the idea,
// not its code): per 64-bit lane acc += lo32(v ^ key) * hi32(v ^ key) plus
// the neighbouring lane's input. The key moves on with every stripe so that
// swapping two stripes changes the hash; the eight lanes are folded with the
// multiply-fold above. bench/estimate.mjs measures it against the scalar one.
__attribute__((target("avx2"))) uint64_t HashPageAvx2(const uint8_t* data, size_t len,
                                                     bool* all_zero) {
  __m256i acc0 = _mm256_set_epi64x(kSecret0, kSecret1, kSecret2, kSecret3);
  __m256i acc1 = _mm256_set_epi64x(kSecret3, kSecret2, kSecret1, kSecret0);
  __m256i key0 = _mm256_set_epi64x(kSecret1, kSecret3, kSecret0, kSecret2);
  __m256i key1 = _mm256_set_epi64x(kSecret2, kSecret0, kSecret3, kSecret1);
  const __m256i step = _mm256_set1_epi64x(0x9e3779b97f4a7c15ull);
  __m256i any = _mm256_setzero_si256();
  for (size_t i = 0; i < len; i += 64) {
    __m256i v0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(data + i));
    __m256i v1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(data + i + 32));
    any = _mm256_or_si256(any, _mm256_or_si256(v0, v1));
    __m256i x0 = _mm256_xor_si256(v0, key0);
    __m256i x1 = _mm256_xor_si256(v1, key1);
    __m256i p0 = _mm256_mul_epu32(x0, _mm256_srli_epi64(x0, 32));
    __m256i p1 = _mm256_mul_epu32(x1, _mm256_srli_epi64(x1, 32));
    acc0 = _mm256_add_epi64(acc0, _mm256_add_epi64(p0, _mm256_shuffle_epi32(v0, _MM_SHUFFLE(1, 0, 3, 2))));
    acc1 = _mm256_add_epi64(acc1, _mm256_add_epi64(p1, _mm256_shuffle_epi32(v1, _MM_SHUFFLE(1, 0, 3, 2))));
    key0 = _mm256_add_epi64(key0, step);
    key1 = _mm256_add_epi64(key1, step);
  }
  *all_zero = _mm256_testz_si256(any, any) != 0;
  alignas(32) uint64_t lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), acc0);
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes + 4), acc1);
  uint64_t h = kSecret0 ^ len;
  for (int i = 0; i < 8; i += 2) h = Mum(lanes[i] ^ kSecret1, lanes[i + 1] ^ h);
  return Mum(h ^ kSecret2, len ^ kSecret3);
}
#endif

PageHash PickPageHash() {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2")) return {HashPageAvx2, "avx2"};
#endif
  return ScalarPageHash();
}

}  // namespace

PageHash BestPageHash() {
  // Chosen once per process; a const, so no mutable state is shared.
  static const PageHash best = PickPageHash();
  return best;
}

PageHash ScalarPageHash() { return {HashPageScalar, "scalar"}; }

}  // namespace ksm
