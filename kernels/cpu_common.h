/* Small helpers shared by the CPU kernels of this folder (msa/cpu.c, attn_amx.c, int8_cpu.c, norm_cpu.c). */
#ifndef M3_CPU_COMMON_H
#define M3_CPU_COMMON_H
#include <stdint.h>
#include <string.h>

/* bf16 (uint16 storage) <-> fp32; fp32 -> bf16 rounds to nearest even, as PyTorch does. */
static inline float bf16_to_f32(uint16_t x) {
    uint32_t u = (uint32_t)x << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint16_t f32_to_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

/* e^r for |r| <= ln2/2 by its degree-6 Taylor polynomial (relative error < 2e-7), in any vector width: FMA and SET1
 * are that width's fused multiply-add and broadcast. */
#define M3_EXP_TAYLOR6(FMA, SET1, r)                                                                              \
    FMA(FMA(FMA(FMA(FMA(FMA(SET1(1.f / 720), r, SET1(1.f / 120)), r, SET1(1.f / 24)), r, SET1(1.f / 6)), r,  \
                SET1(0.5f)), r, SET1(1.f)), r, SET1(1.f))

/* r = x - n ln2, ln2 split in two parts (the first exact in few bits, so n * it is exact). */
#define M3_EXP_REDUCE(FNMADD, SET1, n, x) FNMADD(n, SET1(1.428606765330187e-06f), FNMADD(n, SET1(0.693145751953125f), x))

#if defined(__AVX512F__)
#include <immintrin.h>
/* The lanes of a 16-wide step that hold data when `left` values remain (all 16 from 16 on). */
static inline __mmask16 tail_mask(int64_t left) {
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
}

/* exp(x) for x <= 0 in use: x = n ln2 + r with |r| <= ln2/2; e^r by its degree-6 Taylor polynomial
 * (relative error < 2e-7), times 2^n by vscalefps. Inputs below -87 give ~e^-87 instead of 0. */
static inline __m512 exp512(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = M3_EXP_REDUCE(_mm512_fnmadd_ps, _mm512_set1_ps, n, x);
    return _mm512_scalef_ps(M3_EXP_TAYLOR6(_mm512_fmadd_ps, _mm512_set1_ps, r), n);
}

/* 2^x for x <= 0 in use: x = n + r with |r| <= 1/2; 2^r = e^(r ln2) by its degree-5 Taylor polynomial (relative
 * error < 3e-6, far below the bf16 rounding of what callers make of it), times 2^n by vscalefps. Four
 * operations fewer than exp512 (no ln2 range reduction): for softmax scores already scaled by log2(e). */
static inline __m512 exp2_512(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-126.f));
    __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_sub_ps(x, n);
    __m512 p = _mm512_set1_ps(1.3333558146e-3f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(9.6181291076e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.5504108665e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(2.4022650696e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(6.9314718056e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
    return _mm512_scalef_ps(p, n);
}
#endif

/* AVX2+FMA (x86-64-v3; also present on every AVX-512 CPU): 8 fp32 lanes. M3_AVX2 is 0 in plain-C builds. */
#if !defined(M3_NO_SIMD) && defined(__AVX2__) && defined(__FMA__)
#define M3_AVX2 1
#include <immintrin.h>
static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float hmax256(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 8 bf16 (uint16 storage) widened to fp32. */
static inline __m256 load8_bf16(const uint16_t *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

/* exp(x) for x <= 0 in use, 8 lanes: as exp512 (degree-6 polynomial after ln2 range reduction), 2^n built in the
 * exponent bits. Inputs below -87 give ~e^-87 instead of 0. */
static inline __m256 exp256(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = M3_EXP_REDUCE(_mm256_fnmadd_ps, _mm256_set1_ps, n, x);
    __m256 p = M3_EXP_TAYLOR6(_mm256_fmadd_ps, _mm256_set1_ps, r);
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}
#else
#define M3_AVX2 0
#endif

/* `m3_simd()`, which loops a build compiled (for `engine info`): each kernel file ends with
 * M3_SIMD_EXPORT(avx512, avx2), its own 0/1 conditions for having compiled AVX-512 / AVX2+FMA loops. */
#define M3_SIMD_EXPORT(avx512, avx2) \
    const char *m3_simd(void) { return (avx512) ? "avx512" : (avx2) ? "avx2+fma" : "plain C"; }
#endif
