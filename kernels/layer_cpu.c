/* One decoder layer's decode step (one token, fp32 activations, int8 weight-only linears) in two C calls, for the
 * Llama-shaped layers (Llama, Qwen2, Mistral: pre-norm RMSNorm, rotary q/k, grouped KV heads, SiLU-gated MLP):
 *
 *   layer_in:   h = rmsnorm(x, ln1);  q, k, v = Wq h, Wk h, Wv h (+ biases);  q, k rotated (rotate-half layout)
 *   -- the caller appends k, v to the KV cache and attends (kernels/msa/cpu.c: msa_append1, msa_decode) --
 *   layer_out:  x += Wo attn;  h = rmsnorm(x, ln2);  x += Wd (silu(Wg h) * Wu h)
 *
 * In PyTorch eager the same step is ~60 small ops and a few module calls per layer (each a few microseconds of
 * dispatch and an allocation): measured on the 2-core AVX2 VM, about as much CPU per token as reading the int8
 * weights. Norms use fp32 statistics (r = 1 / sqrt(mean(x^2) + eps), y = w * (x r)), as transformers' fp32 path.
 * Reference: the plain-PyTorch step in kernels/layer_cpu.py (layer_step_ref), tested against this.
 */
#include <math.h>
#include <stdint.h>

#include "cpu_common.h"
#include "int8_gemv.h"

/* One int8 linear: w [N, K], fp32 scales [N], optional fp32 bias [N]. */
typedef struct {
    const int8_t *w;
    const float *scale, *bias;
    int64_t N, K;
} lin8;

/* A layer's weights and shapes (built once per layer by kernels/layer_cpu.py). */
typedef struct {
    lin8 q, k, v, o, gate, up, down;
    const float *ln1, *ln2;
    float eps1, eps2;
    int32_t hq, hkv, D, hidden, inter;
} layer_w;

static inline void lin(const lin8 *l, const float *x, float *y) { gemv(x, l->w, l->scale, l->bias, l->N, l->K, y, 1); }

/* y = w * (x / sqrt(mean(x^2) + eps)); y may alias x. */
void rmsnorm_f32(const float *x, const float *w, int64_t n, float eps, float *y) {
    float ss = 0.f;
#if M3_AVX2
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        acc = _mm256_fmadd_ps(v, v, acc);
    }
    ss = hsum256(acc);
    for (; i < n; i++) ss += x[i] * x[i];
#else
    for (int64_t i = 0; i < n; i++) ss += x[i] * x[i];
#endif
    const float r = 1.f / sqrtf(ss / (float)n + eps);
    for (int64_t i = 0; i < n; i++) y[i] = w[i] * (x[i] * r);
}

/* x [heads, D] rotated in place: out = x cos + rotate_half(x) sin, rotate_half(x) = (-x2, x1) by halves. */
static void rope(float *x, int heads, int D, const float *cos, const float *sin) {
    const int half = D / 2;
    for (int h = 0; h < heads; h++) {
        float *p = x + (int64_t)h * D;
        for (int i = 0; i < half; i++) {
            const float a = p[i], b = p[i + half];
            p[i] = a * cos[i] - b * sin[i];
            p[i + half] = b * cos[i + half] + a * sin[i + half];
        }
    }
}

/* h: scratch [hidden]; q [hq, D], k, v [hkv, D] out; cos, sin [D] for this token's position. */
void layer_in(const layer_w *L, const float *x, const float *cos, const float *sin, float *h, float *q, float *k,
              float *v) {
    rmsnorm_f32(x, L->ln1, L->hidden, L->eps1, h);
    lin(&L->q, h, q);
    lin(&L->k, h, k);
    lin(&L->v, h, v);
    rope(q, L->hq, L->D, cos, sin);
    rope(k, L->hkv, L->D, cos, sin);
}

static inline float silu(float g) { return g / (1.f + expf(-g)); }

/* attn [hq * D] in; x [hidden] the residual stream, updated in place; scratch h [hidden], g, u [inter]. */
void layer_out(const layer_w *L, const float *attn, float *x, float *h, float *g, float *u) {
    lin(&L->o, attn, h);
    for (int i = 0; i < L->hidden; i++) x[i] += h[i];
    rmsnorm_f32(x, L->ln2, L->hidden, L->eps2, h);
    lin(&L->gate, h, g);
    lin(&L->up, h, u);
    for (int i = 0; i < L->inter; i++) g[i] = silu(g[i]) * u[i];
    lin(&L->down, g, h);
    for (int i = 0; i < L->hidden; i++) x[i] += h[i];
}

M3_SIMD_EXPORT(M3_GEMV_AVX512, M3_AVX2)
