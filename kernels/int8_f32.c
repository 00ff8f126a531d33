/* Weight-only int8 linears with fp32 activations, for CPUs without bf16 instructions (AVX2 and older), where
 * PyTorch's _weight_int8pack_mm with fp32 inputs is ~6x slower than an fp32 GEMV (measured on an AVX2 EPYC):
 *   int8_gemv_f32:    y[n] = scale[n] * sum_k x[k] * w[n, k] (+ bias[n])   one activation row (a decode step)
 *   int8_dequant_f32: out[n, k] = scale[n] * w[n, k]                        rows [n0, n1) for many-row forwards
 * w int8 [N, K] row-major, x / scale / bias / y / out fp32. Plain loops the compiler vectorizes (-O3 -march=native
 * -ffast-math lets it reorder the sums); rows spread over the caller's OpenMP threads. Loaded through ctypes by
 * kernels/int8_f32.py; reference: dequantize then torch.nn.functional.linear (tested against it).
 */
#include <stdint.h>

int int8_gemv_f32(const float *x, const int8_t *w, const float *scale, const float *bias, int64_t N, int64_t K,
                  float *y) {
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++) {
        const int8_t *row = w + n * K;
        float acc = 0.f;
        for (int64_t k = 0; k < K; k++) acc += x[k] * (float)row[k];
        y[n] = acc * scale[n] + (bias ? bias[n] : 0.f);
    }
    return 0;
}

void int8_dequant_f32(const int8_t *w, const float *scale, int64_t n0, int64_t n1, int64_t K, float *out) {
#pragma omp parallel for schedule(static)
    for (int64_t n = n0; n < n1; n++) {
        const int8_t *row = w + n * K;
        float *dst = out + (n - n0) * K;
        const float s = scale[n];
        for (int64_t k = 0; k < K; k++) dst[k] = s * (float)row[k];
    }
}
