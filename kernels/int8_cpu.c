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
#include "int8_gemv.h"

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

M3_SIMD_EXPORT(M3_GEMV_AVX512, M3_AVX2)
