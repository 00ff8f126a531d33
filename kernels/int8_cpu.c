/* Weight-only int8 linear for one activation row (the decode step on CPU), parallel over output rows:
 *   y[n] = scale[n] * sum_k x[k] * w[n, k]  (+ bias[n])
 * x, scale, bias, y bf16 (uint16 storage); w int8 [N, K] row-major; fp32 accumulation, y rounded to
 * nearest even. Decode reads every weight once per token, so this is bound by memory: the rows are
 * streamed in order over the OpenMP threads of the caller (PyTorch's pool when loaded inside it).
 * Loaded through ctypes by kernels/int8_cpu.py; reference: m3analyst.engine.quant.Int8Linear (PyTorch's
 * _weight_int8pack_mm), tested against it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_common.h"



#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && !defined(M3_NO_SIMD)
#include <immintrin.h>
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
#endif

static inline float dot1(const int8_t *w, int64_t K, const float *xf) {
    float acc = 0.f;
    for (int64_t k = 0; k < K; k++) acc += xf[k] * (float)w[k];
    return acc;
}

/* Returns 0, or -1 when out of memory. bias may be NULL. */
int int8_gemv_bf16(const uint16_t *x, const int8_t *w, const uint16_t *scale, const uint16_t *bias, int64_t N,
                   int64_t K, uint16_t *y) {
    float *xf = malloc(sizeof(float) * (size_t)(K + 16));
    if (xf == NULL) return -1;
    for (int64_t k = 0; k < K; k++) xf[k] = bf16_to_f32(x[k]);
    const int64_t n_quads = N / 4;
#pragma omp parallel for schedule(static) if (N * K >= (1 << 18))
    for (int64_t i = 0; i < n_quads + (N % 4); i++) {
        int64_t n = i < n_quads ? 4 * i : 4 * n_quads + (i - n_quads);
        int rows = i < n_quads ? 4 : 1;
        float acc[4];
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && !defined(M3_NO_SIMD)
        if (rows == 4) dot4(w + n * K, K, xf, acc);
        else
#endif
            for (int r = 0; r < rows; r++) acc[r] = dot1(w + (n + r) * K, K, xf);
        for (int r = 0; r < rows; r++) {
            float v = acc[r] * bf16_to_f32(scale[n + r]);
            if (bias) v += bf16_to_f32(bias[n + r]);
            y[n + r] = f32_to_bf16(v);
        }
    }
    free(xf);
    return 0;
}
