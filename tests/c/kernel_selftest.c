/* The CPU kernels checked from C alone, against scalar double-precision references written here: what runs where
 * no Python of the target can (an Arm build run under qemu-user; tests/test_kernels_cross.py builds and runs it).
 * Linked with kernels/int8_cpu.c, kernels/layer_cpu.c, kernels/norm_cpu.c and kernels/msa/cpu.c, each compiled with
 * -Dm3_simd=m3_simd_<name> (every kernel exports its own m3_simd). Prints one line per check and a closing
 * "N passed, N failed"; exits non-zero on any failure. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_common.h"

int int8_gemv_f32(const float *x, const int8_t *w, const float *scale, const float *bias, int64_t N, int64_t K, float *y);
void rmsnorm_f32(const float *x, const float *w, int64_t n, float eps, float *y);
void rmsnorm_bf16(const uint16_t *x, const uint16_t *w, int64_t rows, int64_t dim, float eps, int mode, uint16_t *y);
void silu_mul_bf16(const uint16_t *g, const uint16_t *u, int64_t n, uint16_t *y);

typedef struct {
    const void *k, *v;
    const float *ksum, *kmin, *kmax;
    float *sel, *logits;
    int64_t cap, nb_cap;
    int32_t is_bf16, scorer, hkv, G, D, bs, top_k, sink, local, rerank;
    float scale, alpha;
} msa_args;
typedef struct {
    void *k, *v;
    float *ksum, *kmin, *kmax;
    int64_t cap, nb_cap;
    int32_t is_bf16, hkv, D, bs;
} msa_cache;
int msa_decode(const msa_args *a, const void *q, int io_bf16, int64_t seq_len, int32_t *idx_out, void *out);
int msa_append1_f32(const msa_cache *c, const float *k_new, int64_t ks, const float *v_new, int64_t vs, int64_t pos);

static int passed, failed;
static uint32_t rng = 12345;

static float frand(void) { /* uniform in [-1, 1) */
    rng = rng * 1664525u + 1013904223u;
    return (float)(rng >> 8) / (float)(1u << 23) - 1.f;
}

static void check(const char *what, const float *got, const double *want, int64_t n, double tol) {
    double worst = 0.;
    for (int64_t i = 0; i < n; i++) {
        double err = fabs(got[i] - want[i]) / (fabs(want[i]) + 1.);
        worst = err > worst ? err : worst;
    }
    int ok = worst <= tol;
    printf("%s %s (worst relative error %.2e, tolerance %.0e)\n", ok ? "PASS" : "FAIL", what, worst, tol);
    ok ? passed++ : failed++;
}

static void test_gemv(void) {
    enum { N = 37, K = 70 };
    static int8_t w[N * K];
    static float x[K], s[N], b[N], y[N];
    static double want[N];
    for (int i = 0; i < N * K; i++) w[i] = (int8_t)(frand() * 127);
    for (int k = 0; k < K; k++) x[k] = frand();
    for (int n = 0; n < N; n++) s[n] = 0.01f + 0.01f * frand(), b[n] = frand();
    int8_gemv_f32(x, w, s, b, N, K, y);
    for (int n = 0; n < N; n++) {
        double acc = 0.;
        for (int k = 0; k < K; k++) acc += (double)x[k] * w[n * K + k];
        want[n] = acc * s[n] + b[n];
    }
    check("int8_gemv_f32", y, want, N, 1e-5);
}

static void test_norms(void) {
    enum { DIM = 101 };
    static float x[DIM], w[DIM], y[DIM], yb[DIM];
    static uint16_t xb[DIM], wb[DIM], ob[DIM], gb[DIM], ub[DIM];
    static double want[DIM];
    double ss = 0.;
    for (int i = 0; i < DIM; i++) {
        x[i] = 3 * frand(), w[i] = 1 + 0.2f * frand();
        xb[i] = f32_to_bf16(x[i]), wb[i] = f32_to_bf16(w[i]);
        x[i] = bf16_to_f32(xb[i]), w[i] = bf16_to_f32(wb[i]);
        ss += (double)x[i] * x[i];
    }
    double r = 1. / sqrt(ss / DIM + 1e-5);
    for (int i = 0; i < DIM; i++) want[i] = w[i] * x[i] * r;
    rmsnorm_f32(x, w, DIM, 1e-5f, y);
    check("rmsnorm_f32", y, want, DIM, 1e-5);
    rmsnorm_bf16(xb, wb, 1, DIM, 1e-5f, 2, ob);
    for (int i = 0; i < DIM; i++) yb[i] = bf16_to_f32(ob[i]);
    check("rmsnorm_bf16 (mode 2)", yb, want, DIM, 8e-3);
    for (int i = 0; i < DIM; i++) {
        gb[i] = f32_to_bf16(4 * frand()), ub[i] = f32_to_bf16(frand());
        double g = bf16_to_f32(gb[i]);
        want[i] = g / (1. + exp(-g)) * bf16_to_f32(ub[i]);
    }
    silu_mul_bf16(gb, ub, DIM, ob);
    for (int i = 0; i < DIM; i++) yb[i] = bf16_to_f32(ob[i]);
    check("silu_mul_bf16", yb, want, DIM, 1.6e-2);
}

/* A dense decode (every block kept) over a cache filled by msa_append1_f32, against softmax attention in double. */
static void test_msa(int is_bf16) {
    enum { HKV = 2, G = 3, D = 16, BS = 8, CAP = 64, NB = CAP / BS, S = 43 };
    static float kin[S][HKV * D], vin[S][HKV * D], q[HKV * G * D], out[HKV * G * D];
    static float ksum[HKV * NB * D], kmin[HKV * NB * D], kmax[HKV * NB * D], sel[HKV * (G + 1) * NB];
    static float logits[HKV * G * NB * BS];
    static double want[HKV * G * D], wsum[HKV * NB * D];
    static char kc[HKV * CAP * D * 4], vc[HKV * CAP * D * 4];
    int32_t idx[HKV * NB];
    msa_cache c = {kc, vc, ksum, kmin, kmax, CAP, NB, is_bf16, HKV, D, BS};
    for (int t = 0; t < S; t++) {
        for (int j = 0; j < HKV * D; j++) kin[t][j] = frand(), vin[t][j] = frand();
        msa_append1_f32(&c, kin[t], D, vin[t], D, t);
    }
    for (int j = 0; j < HKV * G * D; j++) q[j] = 2 * frand();
    msa_args a = {kc, vc, ksum, kmin, kmax, sel, logits, CAP, NB, is_bf16, 0, HKV, G, D, BS, NB, 0, 0, 0, 0.25f, 0.5f};
    msa_decode(&a, q, 0, S, idx, out);
    for (int h = 0; h < HKV; h++) {
        for (int b = 0; b < NB; b++)
            for (int d = 0; d < D; d++) {
                double s = 0.;
                for (int t = b * BS; t < (b + 1) * BS && t < S; t++) s += kin[t][h * D + d];
                wsum[(h * NB + b) * D + d] = s;
            }
        for (int g = 0; g < G; g++) {
            const float *qg = q + (h * G + g) * D;
            double lg[S], m = -1e30, tot = 0.;
            for (int t = 0; t < S; t++) {
                double acc = 0.;
                for (int d = 0; d < D; d++) {
                    float k = is_bf16 ? bf16_to_f32(f32_to_bf16(kin[t][h * D + d])) : kin[t][h * D + d];
                    acc += (double)qg[d] * k;
                }
                lg[t] = acc * 0.25;
                m = lg[t] > m ? lg[t] : m;
            }
            for (int t = 0; t < S; t++) tot += lg[t] = exp(lg[t] - m);
            for (int d = 0; d < D; d++) {
                double o = 0.;
                for (int t = 0; t < S; t++) {
                    float v = is_bf16 ? bf16_to_f32(f32_to_bf16(vin[t][h * D + d])) : vin[t][h * D + d];
                    o += lg[t] * v;
                }
                want[(h * G + g) * D + d] = o / tot;
            }
        }
    }
    const int used = (S + BS - 1) / BS;
    float sums[HKV * NB * D];
    double wsums[HKV * NB * D];
    int n = 0;
    for (int h = 0; h < HKV; h++)
        for (int j = 0; j < used * D; j++) sums[n] = ksum[h * NB * D + j], wsums[n++] = wsum[h * NB * D + j];
    check(is_bf16 ? "msa_append1_f32 block sums (bf16 cache)" : "msa_append1_f32 block sums (fp32 cache)", sums, wsums, n,
          1e-5);
    check(is_bf16 ? "msa_decode, every block (bf16 cache)" : "msa_decode, every block (fp32 cache)", out, want,
          HKV * G * D, 1e-4);
}

int main(void) {
    test_gemv();
    test_norms();
    test_msa(0);
    test_msa(1);
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
