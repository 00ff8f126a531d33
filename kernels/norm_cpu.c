/* Fused elementwise kernels for the decoder layer on CPU (bf16 tensors in uint16 storage):
 *
 *   rmsnorm_bf16: y = RMSNorm(x) per row of `dim` values, fp32 statistics, in one of the formulas the
 *                 transformers models use (which one a model uses is found by m3analyst/engine/fuse.py):
 *       mode 0 (Llama, Qwen2/3, Mistral):  y = bf16( w * bf16(x * r) )
 *       mode 1 (Gemma):                    y = bf16( x * r * (1 + w) )
 *       mode 2:                            y = bf16( x * r * w )
 *     with r = 1 / sqrt(mean(x^2) + eps).
 *   silu_mul_bf16: y = bf16( bf16(silu(g)) * u ), the gated MLP's activation (two PyTorch ops, each rounding).
 *
 * In PyTorch eager each is 2-8 ops, each a pass over memory (an 8K-token prefill of SmolLM2 spends ~1.3 s
 * in them) and a few microseconds of dispatch (a decode step runs 61 norms). One pass here, rows split over
 * the caller's OpenMP threads (PyTorch's pool when loaded inside it). References: the PyTorch formulas in
 * kernels/norm_cpu.py, tested against these.
 */
#include <math.h>
#include <stdint.h>

#include "cpu_common.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && !defined(M3_NO_SIMD)
#define M3_SIMD 1
#include <immintrin.h>

static inline __m512 load_bf16(const uint16_t *p, __mmask16 m) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
}

/* fp32 -> bf16, round to nearest even (NaN not special-cased: the inputs here are finite activations). */
static inline __m256i to_bf16(__m512 x) {
#if defined(__AVX512BF16__)
    return (__m256i)_mm512_cvtneps_pbh(x);
#else
    __m512i u = _mm512_castps_si512(x);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    u = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF)));
    return _mm512_cvtepi32_epi16(_mm512_srli_epi32(u, 16));
#endif
}

/* bf16 round trip of x, as fp32 (what a PyTorch op that returns bf16 hands to the next one). */
static inline __m512 round_bf16(__m512 x) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(to_bf16(x)), 16));
}
#elif M3_AVX2
/* AVX2+FMA: 8 values a step, the same formulas (scalar tails). */
#define M3_SIMD8 1

/* fp32 -> bf16, round to nearest even, 8 lanes into 8 uint16 (finite inputs). */
static inline __m128i to_bf16_8(__m256 x) {
    __m256i u = _mm256_castps_si256(x);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    u = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7FFF))), 16);
    return _mm_packus_epi32(_mm256_castsi256_si128(u), _mm256_extracti128_si256(u, 1));
}

static inline __m256 round_bf16_8(__m256 x) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(to_bf16_8(x)), 16));
}
#endif

static float row_scale(const uint16_t *x, int64_t dim, float eps) {
    float ss = 0.f;
    int64_t i = 0;
#ifdef M3_SIMD
    __m512 acc = _mm512_setzero_ps();
    for (; i < dim; i += 16) {
        __m512 v = load_bf16(x + i, tail_mask(dim - i));
        acc = _mm512_fmadd_ps(v, v, acc);
    }
    ss = _mm512_reduce_add_ps(acc);
#elif defined(M3_SIMD8)
    __m256 acc = _mm256_setzero_ps();
    for (; i + 8 <= dim; i += 8) {
        __m256 v = load8_bf16(x + i);
        acc = _mm256_fmadd_ps(v, v, acc);
    }
    ss = hsum256(acc);
#endif
    for (; i < dim; i++) {
        float v = bf16_to_f32(x[i]);
        ss += v * v;
    }
    return 1.f / sqrtf(ss / (float)dim + eps);
}

static inline float norm_one(float xv, float r, float wv, int mode) {
    if (mode == 0) return wv * bf16_to_f32(f32_to_bf16(xv * r));
    if (mode == 1) return xv * r * (1.f + wv);
    return xv * r * wv;
}

static void norm_row(const uint16_t *x, const uint16_t *w, int64_t dim, float eps, int mode, uint16_t *y) {
    const float r = row_scale(x, dim, eps);
    int64_t i = 0;
#ifdef M3_SIMD
    const __m512 vr = _mm512_set1_ps(r), one = _mm512_set1_ps(1.f);
    for (; i < dim; i += 16) {
        __mmask16 m = tail_mask(dim - i);
        __m512 xv = _mm512_mul_ps(load_bf16(x + i, m), vr), wv = load_bf16(w + i, m);
        __m512 out = mode == 0 ? _mm512_mul_ps(wv, round_bf16(xv))
                     : mode == 1 ? _mm512_mul_ps(xv, _mm512_add_ps(one, wv)) : _mm512_mul_ps(xv, wv);
        _mm256_mask_storeu_epi16(y + i, m, to_bf16(out));
    }
#elif defined(M3_SIMD8)
    const __m256 vr = _mm256_set1_ps(r), one = _mm256_set1_ps(1.f);
    for (; i + 8 <= dim; i += 8) {
        __m256 xv = _mm256_mul_ps(load8_bf16(x + i), vr), wv = load8_bf16(w + i);
        __m256 out = mode == 0 ? _mm256_mul_ps(wv, round_bf16_8(xv))
                     : mode == 1 ? _mm256_mul_ps(xv, _mm256_add_ps(one, wv)) : _mm256_mul_ps(xv, wv);
        _mm_storeu_si128((__m128i *)(y + i), to_bf16_8(out));
    }
#endif
    for (; i < dim; i++) y[i] = f32_to_bf16(norm_one(bf16_to_f32(x[i]), r, bf16_to_f32(w[i]), mode));
}

/* x, y [rows, dim] (row stride = dim), w [dim]. */
void rmsnorm_bf16(const uint16_t *x, const uint16_t *w, int64_t rows, int64_t dim, float eps, int mode, uint16_t *y) {
#pragma omp parallel for schedule(static) if (rows * dim >= (1 << 16))
    for (int64_t row = 0; row < rows; row++) norm_row(x + row * dim, w, dim, eps, mode, y + row * dim);
}

static inline float silu_f32(float g) { return g / (1.f + expf(-g)); }

#define SILU_CHUNK 4096
/* g, u, y: n values each. */
void silu_mul_bf16(const uint16_t *g, const uint16_t *u, int64_t n, uint16_t *y) {
    const int64_t chunks = (n + SILU_CHUNK - 1) / SILU_CHUNK;
#pragma omp parallel for schedule(static) if (n >= (1 << 16))
    for (int64_t c = 0; c < chunks; c++) {
        const int64_t end = (c + 1) * SILU_CHUNK < n ? (c + 1) * SILU_CHUNK : n;
        int64_t i = c * SILU_CHUNK;
#ifdef M3_SIMD
        const __m512 one = _mm512_set1_ps(1.f), zero = _mm512_setzero_ps();
        for (; i < end; i += 16) {
            __mmask16 m = tail_mask(end - i);
            __m512 gv = load_bf16(g + i, m);
            /* sigmoid from e = exp(-|g|) <= 1: 1/(1+e) for g >= 0, e/(1+e) below */
            __m512 e = exp512(_mm512_sub_ps(zero, _mm512_abs_ps(gv)));
            __m512 sig = _mm512_div_ps(_mm512_mask_blend_ps(_mm512_cmp_ps_mask(gv, zero, _CMP_LT_OQ), one, e),
                                       _mm512_add_ps(one, e));
            __m512 act = round_bf16(_mm512_mul_ps(gv, sig));
            _mm256_mask_storeu_epi16(y + i, m, to_bf16(_mm512_mul_ps(act, load_bf16(u + i, m))));
        }
#elif defined(M3_SIMD8)
        const __m256 one = _mm256_set1_ps(1.f), zero = _mm256_setzero_ps();
        const __m256 sign = _mm256_set1_ps(-0.f);
        for (; i + 8 <= end; i += 8) {
            __m256 gv = load8_bf16(g + i);
            __m256 e = exp256(_mm256_or_ps(gv, sign)); /* exp(-|g|) <= 1 */
            __m256 num = _mm256_blendv_ps(one, e, _mm256_cmp_ps(gv, zero, _CMP_LT_OQ));
            __m256 act = round_bf16_8(_mm256_mul_ps(gv, _mm256_div_ps(num, _mm256_add_ps(one, e))));
            _mm_storeu_si128((__m128i *)(y + i), to_bf16_8(_mm256_mul_ps(act, load8_bf16(u + i))));
        }
#endif
        for (; i < end; i++)
            y[i] = f32_to_bf16(bf16_to_f32(f32_to_bf16(silu_f32(bf16_to_f32(g[i])))) * bf16_to_f32(u[i]));
    }
}

#if defined(M3_SIMD)
M3_SIMD_EXPORT(1, 0)
#elif defined(M3_SIMD8)
M3_SIMD_EXPORT(0, 1)
#else
M3_SIMD_EXPORT(0, 0)
#endif
