/* The weight-only int8 GEMV of one fp32 activation row, shared by int8_cpu.c (the linears one at a time) and
 * layer_cpu.c (a decoder layer's decode step in one call):
 *   y[n] = scale[n] * sum_k x[k] * w[n, k]  (+ bias[n]),  w int8 [N, K] row-major, fp32 accumulation.
 * Rows are streamed in order over the caller's OpenMP threads, four at a time; SIMD: AVX-512 (16 columns a step),
 * AVX2+FMA (8), else plain C (M3_NO_SIMD or neither). */
#ifndef M3_INT8_GEMV_H
#define M3_INT8_GEMV_H
#include <stdint.h>

#include "cpu_common.h"

#if !defined(M3_NO_SIMD) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define M3_DOT4 1
#define M3_GEMV_AVX512 1
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
#elif M3_AVX2
#define M3_DOT4 1
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
#ifndef M3_GEMV_AVX512
#define M3_GEMV_AVX512 0
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

#endif
