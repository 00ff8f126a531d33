/* Weight-only int8 linear for one activation row (the decode step on CPU), parallel over output rows:
 *   y[n] = scale[n] * sum_k x[k] * w[n, k]  (+ bias[n])
 * Two entry points: int8_gemv_bf16 (x, scale, bias, y bf16 in uint16 storage; CPUs with bf16) and int8_gemv_f32
 * (all fp32; CPUs without bf16, e.g. AVX2-only). w int8 [N, K] row-major; fp32 accumulation. Decode reads every
 * weight once per token, so this is bound by memory: the rows are streamed in order over the OpenMP threads of
 * the caller (PyTorch's pool when loaded inside it). SIMD: AVX-512 (16 columns a step) or AVX2+FMA (8), else
 * plain C. Loaded through ctypes by kernels/int8_cpu.py; reference: m3analyst.engine.quant.Int8Linear (PyTorch's
 * _weight_int8pack_mm), tested against it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_common.h"

#if !defined(M3_NO_SIMD) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define M3_DOT4 1
/* Dot products of rows w0..w3 (K int8 each) with xf (K fp32); 16 columns per step, masked tail. */
static inline void dot4(const int8_t *w, int64_t K, const float *xf, float *out) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t k = 0; k < K; k += 16) {
        __mmask16 m = tail_mask(K - k);
        __m512 x = _mm512_maskz_loadu_ps(m, xf + k);
        if ((k & 63) == 0) /* the rows of the quad after next: their lines arrive while these are summed */
            for (int r = 8; r < 12; r++) _mm_prefetch((const char *)(w + r * K + k), _MM_HINT_T0);
#define M3_ROW(i, acc) acc = _mm512_fmadd_ps(x, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32( \
        _mm_maskz_loadu_epi8(m, w + (i) * K + k))), acc)
        M3_ROW(0, a0); M3_ROW(1, a1); M3_ROW(2, a2); M3_ROW(3, a3);
#undef M3_ROW
    }
    out[0] = _mm512_reduce_add_ps(a0);
    out[1] = _mm512_reduce_add_ps(a1);
    out[2] = _mm512_reduce_add_ps(a2);
    out[3] = _mm512_reduce_add_ps(a3);
}
#elif !defined(M3_NO_SIMD) && defined(__AVX2__) && defined(__FMA__)
#define M3_DOT4 1
#include <immintrin.h>
static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* The same with AVX2+FMA: 8 columns per step (8 int8 widened to 8 int32 to 8 fp32), scalar tail. */
static inline void dot4(const int8_t *w, int64_t K, const float *xf, float *out) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    const int64_t K8 = K & ~(int64_t)7;
    for (int64_t k = 0; k < K8; k += 8) {
        __m256 x = _mm256_loadu_ps(xf + k);
        if ((k & 63) == 0)
            for (int r = 8; r < 12; r++) _mm_prefetch((const char *)(w + r * K + k), _MM_HINT_T0);
#define M3_ROW(i, acc) acc = _mm256_fmadd_ps(x, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32( \
        _mm_loadl_epi64((const __m128i *)(w + (i) * K + k)))), acc)
        M3_ROW(0, a0); M3_ROW(1, a1); M3_ROW(2, a2); M3_ROW(3, a3);
#undef M3_ROW
    }
    out[0] = hsum256(a0); out[1] = hsum256(a1); out[2] = hsum256(a2); out[3] = hsum256(a3);
    for (int64_t k = K8; k < K; k++)
        for (int r = 0; r < 4; r++) out[r] += xf[k] * (float)w[r * K + k];
}
#endif

static inline float dot1(const int8_t *w, int64_t K, const float *xf) {
    float acc = 0.f;
    for (int64_t k = 0; k < K; k++) acc += xf[k] * (float)w[k];
    return acc;
}

/* acc[0..rows) = the dot products of rows n..n+rows of w with xf. */
static inline void dots(const int8_t *w, int64_t n, int rows, int64_t K, const float *xf, float *acc) {
#ifdef M3_DOT4
    if (rows == 4) {
        dot4(w + n * K, K, xf, acc);
        return;
    }
#endif
    for (int r = 0; r < rows; r++) acc[r] = dot1(w + (n + r) * K, K, xf);
}

/* The rows of one call in quads (then single rows), over the caller's OpenMP threads. scale / bias are read and y
 * written through the store callbacks' dtype: fp32 when `f32`, else bf16. */
static void gemv(const float *xf, const int8_t *w, const void *scale, const void *bias, int64_t N, int64_t K,
                 void *y, int f32) {
    const int64_t n_quads = N / 4;
#pragma omp parallel for schedule(static) if (N * K >= (1 << 18))
    for (int64_t i = 0; i < n_quads + (N % 4); i++) {
        int64_t n = i < n_quads ? 4 * i : 4 * n_quads + (i - n_quads);
        int rows = i < n_quads ? 4 : 1;
        float acc[4];
        dots(w, n, rows, K, xf, acc);
        for (int r = 0; r < rows; r++) {
            int64_t j = n + r;
            if (f32) {
                float v = acc[r] * ((const float *)scale)[j];
                ((float *)y)[j] = bias ? v + ((const float *)bias)[j] : v;
            } else {
                float v = acc[r] * bf16_to_f32(((const uint16_t *)scale)[j]);
                if (bias) v += bf16_to_f32(((const uint16_t *)bias)[j]);
                ((uint16_t *)y)[j] = f32_to_bf16(v);
            }
        }
    }
}

/* Returns 0, or -1 when out of memory. bias may be NULL. */
int int8_gemv_bf16(const uint16_t *x, const int8_t *w, const uint16_t *scale, const uint16_t *bias, int64_t N,
                   int64_t K, uint16_t *y) {
    float *xf = malloc(sizeof(float) * (size_t)(K + 16));
    if (xf == NULL) return -1;
    for (int64_t k = 0; k < K; k++) xf[k] = bf16_to_f32(x[k]);
    gemv(xf, w, scale, bias, N, K, y, 0);
    free(xf);
    return 0;
}

/* The fp32 form (x, scale, bias, y fp32): CPUs without bf16 keep fp32 activations and still read a quarter of
 * fp32's weight bytes per token. Returns 0. */
int int8_gemv_f32(const float *x, const int8_t *w, const float *scale, const float *bias, int64_t N, int64_t K,
                  float *y) {
    gemv(x, w, scale, bias, N, K, y, 1);
    return 0;
}

/* out[n - n0, k] = scale[n] * w[n, k] for rows [n0, n1): fp32 weights for a many-row forward (prefill) of a model
 * kept int8 on a CPU without bf16, one row tile at a time. */
void int8_dequant_f32(const int8_t *w, const float *scale, int64_t n0, int64_t n1, int64_t K, float *out) {
#pragma omp parallel for schedule(static)
    for (int64_t n = n0; n < n1; n++) {
        const int8_t *row = w + n * K;
        float *dst = out + (n - n0) * K;
        const float s = scale[n];
        for (int64_t k = 0; k < K; k++) dst[k] = s * (float)row[k];
    }
}

/* Which loops this build compiled, for `engine info`. */
const char *m3_simd(void) {
#if defined(M3_DOT4) && defined(__AVX512F__)
    return "avx512";
#elif defined(M3_DOT4)
    return "avx2+fma";
#else
    return "plain C";
#endif
}
