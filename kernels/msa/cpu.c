/* MSA decode for one sequence on CPU, fused: block scoring + top-K + exact attention over the chosen
 * blocks, read in place from the KV cache (no gather copy). One call per layer and decode step.
 *
 * Plain C (no PyTorch headers) so that it compiles in about a second; loaded through ctypes by
 * kernels/msa_cpu.py, which also documents the contract. The semantics are those of the plain-PyTorch
 * reference in kernels/msa/naive.py (select_blocks + sparse_decode), tested against it:
 *   - per KV head h, the G query heads of its group score every block j (block_scores: the group-summed
 *     Quest bound  sum_g sum_d max(q_gd * kmin_jd, q_gd * kmax_jd), the mean key, or an estimated
 *     attention mass: per-head softmax over blocks of such logits, summed over the group);
 *   - the first `sink` and last `local` blocks are always kept; the best `top_k - sink - local` of the
 *     others are chosen (equal scores: the lower block id wins, like the reference);
 *   - each query head attends exactly (softmax in fp32) over the tokens of the kept blocks < seq_len.
 * Keys/values are bf16 (uint16 storage) or fp32; summaries and queries fp32; output fp32.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_common.h"
#ifdef _OPENMP
#include <omp.h>
#endif

#define MAX_D 256
#define MAX_G 16


/* Row r of a [rows, D] cache slice as fp32 into dst (bf16 widened, fp32 copied). */
static inline void load_row(const void *base, int is_bf16, int64_t r, int D, float *dst) {
    if (is_bf16) {
        const uint16_t *p = (const uint16_t *)base + r * D;
        for (int d = 0; d < D; d++) dst[d] = bf16_to_f32(p[d]);
    } else {
        memcpy(dst, (const float *)base + r * D, sizeof(float) * D);
    }
}

/* Ask for rows [t0, t0 + n) of a [rows, D] cache slice ahead of use: the blocks a step reads are scattered
 * over the cache, so the hardware prefetcher only catches up inside each one; this overlaps the next
 * block's memory latency with the current block's arithmetic. */
static inline void prefetch_rows(const void *base, int is_bf16, int64_t t0, int64_t n, int D) {
    const size_t row = (size_t)D * (is_bf16 ? 2 : 4);
    const char *p = (const char *)base + (size_t)t0 * row, *end = p + (size_t)n * row;
    for (; p < end; p += 64) __builtin_prefetch(p, 0, 3);
}

/* Insert (score, id) into the descending list of the best n so far (capacity cap). Strict '>' keeps
 * the earlier (lower) id ahead on equal scores. */
static void keep_best(float *best_s, int32_t *best_i, int *n, int cap, float score, int32_t id) {
    int pos = *n < cap ? *n : cap;
    if (pos == cap && !(score > best_s[cap - 1])) return;
    while (pos > 0 && score > best_s[pos - 1]) {
        if (pos < cap) { best_s[pos] = best_s[pos - 1]; best_i[pos] = best_i[pos - 1]; }
        pos--;
    }
    if (pos < cap) { best_s[pos] = score; best_i[pos] = id; }
    if (*n < cap) (*n)++;
}

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512BF16__) && !defined(M3_NO_SIMD)
/* AVX-512 inner loops (built with -march=native on CPUs that have them; the plain loops below otherwise):
 * logits of 16 keys at a time (per-key partial sums, then one transposing reduction of the 16), a vector
 * exp, and value accumulation over 4 tokens per pass of the accumulators. */
#include <immintrin.h>
#define M3_SIMD 1

/* Lane i of the result = the sum of the 16 lanes of a[i]: three rounds of pairwise half-swaps and adds,
 * then one permutation back to key order. */
static inline __m512 sum_each16(const __m512 *a) {
    __m512 b[8], c[4];
    for (int i = 0; i < 8; i++)
        b[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x44), _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xEE));
    for (int i = 0; i < 4; i++)
        c[i] = _mm512_add_ps(_mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0x88), _mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0xDD));
    __m512 d0 = _mm512_add_ps(_mm512_shuffle_ps(c[0], c[1], 0x44), _mm512_shuffle_ps(c[0], c[1], 0xEE));
    __m512 d1 = _mm512_add_ps(_mm512_shuffle_ps(c[2], c[3], 0x44), _mm512_shuffle_ps(c[2], c[3], 0xEE));
    __m512 e = _mm512_add_ps(_mm512_shuffle_ps(d0, d1, 0x88), _mm512_shuffle_ps(d0, d1, 0xDD));
    const __m512i back = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    return _mm512_permutexvar_ps(back, e);
}

/* 16 dims of row r (bf16 widened or fp32) as one vector. */
static inline __m512 load16(const void *base, int is_bf16, int64_t at) {
    if (is_bf16)
        return _mm512_castsi512_ps(_mm512_slli_epi32(
            _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)((const uint16_t *)base + at))), 16));
    return _mm512_loadu_ps((const float *)base + at);
}

/* logits[g * row + i] = scale * q_g . k_{t0+i} for i < n (n <= 16), every head g of the group.
 * qbf != NULL: the queries are exactly bf16 (qbf holds them packed, D/32 vectors per head) and the keys
 * bf16: products by vdpbf16ps, exact, summed in fp32. Else fp32 products of widened keys. */
static inline __attribute__((always_inline)) void qk_tile(const void *kh, int is_bf16, int64_t t0, int n,
                                                          const float *qh, const __m512i *qbf, int G, int D,
                                                          float scale, float *logits, int64_t row) {
    for (int g = 0; g < G; g++) {
        __m512 acc[16];
        for (int i = 0; i < 16; i++) {
            __m512 a = _mm512_setzero_ps();
            if (i < n) {
                int64_t at = (t0 + i) * D;
                if (qbf) {
                    for (int c = 0; c < D / 32; c++)
                        a = _mm512_dpbf16_ps(a, (__m512bh)qbf[g * (D / 32) + c],
                                             (__m512bh)_mm512_loadu_si512((const uint16_t *)kh + at + 32 * c));
                } else {
                    for (int c = 0; c < D / 16; c++)
                        a = _mm512_fmadd_ps(_mm512_loadu_ps(qh + g * D + 16 * c), load16(kh, is_bf16, at + 16 * c), a);
                }
            }
            acc[i] = a;
        }
        _mm512_mask_storeu_ps(logits + (int64_t)g * row, tail_mask(n),
                              _mm512_mul_ps(sum_each16(acc), _mm512_set1_ps(scale)));
    }
}

/* o_g += sum_i p_g[i] v_{t0+i} over n <= 4 rows (o: G*D fp32; p_g at p + g * row). */
static inline __attribute__((always_inline)) void pv_tile(const void *vh, int is_bf16, int64_t t0, int n,
                                                          const float *p, int64_t row, int G, int D, float *o) {
    for (int c = 0; c < D / 16; c++) {
        __m512 vv[4];
        for (int i = 0; i < 4; i++) vv[i] = i < n ? load16(vh, is_bf16, (t0 + i) * D + 16 * c) : _mm512_setzero_ps();
        for (int g = 0; g < G; g++) {
            __m512 acc = _mm512_loadu_ps(o + g * D + 16 * c);
            for (int i = 0; i < 4 && i < n; i++) acc = _mm512_fmadd_ps(_mm512_set1_ps(p[(int64_t)g * row + i]), vv[i], acc);
            _mm512_storeu_ps(o + g * D + 16 * c, acc);
        }
    }
}

/* x[i] = exp(x[i] - m) for i < n; returns their sum. */
static inline float exp_shift_sum(float *x, int64_t n, float m) {
    __m512 mv = _mm512_set1_ps(m), s = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = tail_mask((int)(n - i));
        __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), mv));
        _mm512_mask_storeu_ps(x + i, k, e);
        s = _mm512_add_ps(s, _mm512_maskz_mov_ps(k, e));
    }
    return _mm512_reduce_add_ps(s);
}

static inline float max_of(const float *x, int64_t n) {
    __m512 m = _mm512_set1_ps(-FLT_MAX);
    for (int64_t i = 0; i < n; i += 16) m = _mm512_max_ps(m, _mm512_mask_loadu_ps(m, tail_mask((int)(n - i)), x + i));
    return _mm512_reduce_max_ps(m);
}

static inline float sum_of(const float *x, int64_t n) {
    __m512 s = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(tail_mask((int)(n - i)), x + i));
    return _mm512_reduce_add_ps(s);
}
#elif M3_AVX2
/* AVX2+FMA inner loops (x86-64-v3 CPUs without AVX-512: most laptops, many cloud VMs): logits of 8 keys at a time
 * (per-key partial sums, one transposing reduction of the 8), a vector exp, values accumulated per 8 dims over a
 * whole block with up to 4 query heads' sums held in registers. */
#define M3_SIMD8 1

/* Lane i of the result = the sum of the 8 lanes of a[i]. */
static inline __m256 sum_each8(const __m256 *a) {
    __m256 s01 = _mm256_hadd_ps(a[0], a[1]), s23 = _mm256_hadd_ps(a[2], a[3]);
    __m256 s45 = _mm256_hadd_ps(a[4], a[5]), s67 = _mm256_hadd_ps(a[6], a[7]);
    __m256 lo = _mm256_hadd_ps(s01, s23), hi = _mm256_hadd_ps(s45, s67);
    return _mm256_add_ps(_mm256_permute2f128_ps(lo, hi, 0x20), _mm256_permute2f128_ps(lo, hi, 0x31));
}

/* 8 dims at `at` of a cache slice (bf16 widened or fp32). */
static inline __m256 load8(const void *base, int is_bf16, int64_t at) {
    return is_bf16 ? load8_bf16((const uint16_t *)base + at) : _mm256_loadu_ps((const float *)base + at);
}

/* logits[g * row + i] = scale * q_g . k_{t0+i} for i < n (n <= 8), every head g of the group. bf16 keys are widened
 * once into a tile on the stack (the G heads then read fp32 from L1, not G conversions of each key). */
static inline __attribute__((always_inline)) void qk_tile8(const void *kh, int is_bf16, int64_t t0, int n,
                                                           const float *qh, int G, int D, float scale, float *logits,
                                                           int64_t row) {
    float wide[8 * MAX_D];
    const float *kt = (const float *)kh + t0 * D;
    if (is_bf16) {
        for (int64_t j = 0; j < (int64_t)n * D; j += 8)
            _mm256_storeu_ps(wide + j, load8_bf16((const uint16_t *)kh + t0 * D + j));
        kt = wide;
    }
    for (int g = 0; g < G; g++) {
        __m256 acc[8];
        for (int i = 0; i < 8; i++) {
            __m256 a = _mm256_setzero_ps();
            if (i < n)
                for (int c = 0; c < D / 8; c++)
                    a = _mm256_fmadd_ps(_mm256_loadu_ps(qh + g * D + 8 * c), _mm256_loadu_ps(kt + i * D + 8 * c), a);
            acc[i] = a;
        }
        __m256 l = _mm256_mul_ps(sum_each8(acc), _mm256_set1_ps(scale));
        float *dst = logits + (int64_t)g * row;
        if (n == 8) {
            _mm256_storeu_ps(dst, l);
        } else {
            float tmp[8];
            _mm256_storeu_ps(tmp, l);
            memcpy(dst, tmp, sizeof(float) * n);
        }
    }
}

/* o_g += sum_{i<n} p_g[i] v_{t0+i} for heads g0 .. g0+ng-1 (ng <= 4): per 8 dims, the ng sums stay in registers
 * over the n rows. */
static inline __attribute__((always_inline)) void pv_heads8(const void *vh, int is_bf16, int64_t t0, int n,
                                                            const float *p, int64_t row, int g0, int ng, int D,
                                                            float *o) {
    const float *p0 = p + (int64_t)g0 * row, *p1 = p0 + row, *p2 = p1 + row, *p3 = p2 + row;
    for (int c = 0; c < D / 8; c++) {
        float *oc = o + (int64_t)g0 * D + 8 * c;
        __m256 a0 = _mm256_loadu_ps(oc), a1 = a0, a2 = a0, a3 = a0;
        if (ng > 1) a1 = _mm256_loadu_ps(oc + D);
        if (ng > 2) a2 = _mm256_loadu_ps(oc + 2 * D);
        if (ng > 3) a3 = _mm256_loadu_ps(oc + 3 * D);
        for (int i = 0; i < n; i++) {
            __m256 vv = load8(vh, is_bf16, (t0 + i) * D + 8 * c);
            a0 = _mm256_fmadd_ps(_mm256_set1_ps(p0[i]), vv, a0);
            if (ng > 1) a1 = _mm256_fmadd_ps(_mm256_set1_ps(p1[i]), vv, a1);
            if (ng > 2) a2 = _mm256_fmadd_ps(_mm256_set1_ps(p2[i]), vv, a2);
            if (ng > 3) a3 = _mm256_fmadd_ps(_mm256_set1_ps(p3[i]), vv, a3);
        }
        _mm256_storeu_ps(oc, a0);
        if (ng > 1) _mm256_storeu_ps(oc + D, a1);
        if (ng > 2) _mm256_storeu_ps(oc + 2 * D, a2);
        if (ng > 3) _mm256_storeu_ps(oc + 3 * D, a3);
    }
}

static inline float max_of(const float *x, int64_t n) {
    __m256 m = _mm256_set1_ps(-FLT_MAX);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
    float r = hmax256(m);
    for (; i < n; i++) r = x[i] > r ? x[i] : r;
    return r;
}

static inline float sum_of(const float *x, int64_t n) {
    __m256 s = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) s = _mm256_add_ps(s, _mm256_loadu_ps(x + i));
    float r = hsum256(s);
    for (; i < n; i++) r += x[i];
    return r;
}

/* x[i] = exp(x[i] - m) for i < n; returns their sum. */
static inline float exp_shift_sum(float *x, int64_t n, float m) {
    __m256 mv = _mm256_set1_ps(m), s = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv));
        _mm256_storeu_ps(x + i, e);
        s = _mm256_add_ps(s, e);
    }
    float r = hsum256(s);
    for (; i < n; i++) {
        x[i] = expf(x[i] - m);
        r += x[i];
    }
    return r;
}
#else
static inline float max_of(const float *x, int64_t n) {
    float m = -FLT_MAX; /* built with -ffast-math: no infinities anywhere */
    for (int64_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

static inline float sum_of(const float *x, int64_t n) {
    float s = 0.f;
    for (int64_t i = 0; i < n; i++) s += x[i];
    return s;
}

static inline float exp_shift_sum(float *x, int64_t n, float m) {
    float s = 0.f;
    for (int64_t i = 0; i < n; i++) { x[i] = expf(x[i] - m); s += x[i]; }
    return s;
}
#endif

/* Score blocks 0..nb-1 of one KV head into sc[nb] (higher = keep). sc must hold (G + 1) * nb floats:
 * the mass scorers keep per-head logits in sc[nb ..]. Scorers:
 *   0 mean         sum_g q_g . mean_j                        (group-summed mean-key logit)
 *   1 minmax       sum_g sum_d max(q_gd kmin_jd, q_gd kmax_jd) (group-summed Quest bound)
 *   2 minmax-mass  sum_g softmax_j(scale * bound_gj)          (estimated attention mass per block)
 *   3 mean-mass    sum_g softmax_j(scale * q_g . mean_j)
 *   4 interp-mass  sum_g softmax_j(scale * (mean_gj + alpha * (bound_gj - mean_gj)))
 */
static void block_scores(const float *qh, const float *ksum, const float *kmin, const float *kmax, int scorer,
                         int G, int D, int64_t nb, int64_t seq_len, int bs, float scale, float alpha, float *sc) {
    if (scorer <= 1) { /* linear in the group's summed query parts: one dot product per block */
        float P[MAX_D], N[MAX_D];
        for (int d = 0; d < D; d++) {
            float p = 0.f, m = 0.f, t = 0.f;
            for (int g = 0; g < G; g++) {
                float x = qh[g * D + d];
                t += x;
                if (x > 0) p += x; else m += x;
            }
            P[d] = scorer == 1 ? p : t;
            N[d] = m;
        }
        for (int64_t j = 0; j < nb; j++) {
            float score = 0.f;
            if (scorer == 1) {
                const float *mx = kmax + j * D, *mn = kmin + j * D;
                for (int d = 0; d < D; d++) score += mx[d] * P[d] + mn[d] * N[d];
            } else {
                const float *sm = ksum + j * D;
                for (int d = 0; d < D; d++) score += sm[d] * P[d];
                int64_t count = seq_len - j * bs < bs ? seq_len - j * bs : bs;
                score /= (float)count;
            }
            sc[j] = score;
        }
        return;
    }
    float *lg = sc + nb; /* [G, nb] logits; each block's summary rows are read once for the whole group */
    for (int64_t j = 0; j < nb; j++) {
        const float *mx = kmax + j * D, *mn = kmin + j * D, *sm = ksum + j * D;
        int64_t count = seq_len - j * bs < bs ? seq_len - j * bs : bs;
        for (int g = 0; g < G; g++) {
            const float *q = qh + g * D;
            float bound = 0.f, mean = 0.f;
            if (scorer != 3)
                for (int d = 0; d < D; d++) {
                    float a = q[d] * mx[d], b = q[d] * mn[d];
                    bound += a > b ? a : b;
                }
            if (scorer != 2) {
                for (int d = 0; d < D; d++) mean += q[d] * sm[d];
                mean /= (float)count;
            }
            float l = scorer == 2 ? bound : scorer == 3 ? mean : mean + alpha * (bound - mean);
            lg[g * nb + j] = l * scale;
        }
    }
    for (int64_t j = 0; j < nb; j++) sc[j] = 0.f;
    for (int g = 0; g < G; g++) { /* per head softmax over the blocks, summed over the group */
        float *lgg = lg + g * nb;
        float inv = 1.f / exp_shift_sum(lgg, nb, max_of(lgg, nb));
        for (int64_t j = 0; j < nb; j++) sc[j] += lgg[j] * inv;
    }
}

/* Candidate blocks of one KV head: all blocks when nb <= k; else sink + local (forced) + the best
 * k - forced others by block_scores. Writes ids (chosen by falling score, then forced ascending) and
 * returns their number, or -1 when k is over the 1024 the code keeps. */
static int pick_candidates(const float *qh, const float *ksum, const float *kmin, const float *kmax, int scorer,
                           int G, int D, int64_t nb, int64_t seq_len, int bs, int k, int sink, int local,
                           float scale, float alpha, float *sel, int32_t *ids) {
    static __thread float best_s[1024];
    static __thread int32_t best_i[1024];
    int n_ids = 0;
    int n_sink = sink < nb ? sink : (int)nb;
    int64_t lo = n_sink, hi = nb - local > lo ? nb - local : lo; /* competing blocks [lo, hi) */
    if (nb <= k) {
        for (int64_t j = 0; j < nb; j++) ids[n_ids++] = (int32_t)j;
        return n_ids;
    }
    int n_choose = k - n_sink - (int)(nb - hi);
    if (n_choose < 0) { /* more forced blocks than k: lowest forced ids win */
        for (int64_t j = 0; j < n_sink && n_ids < k; j++) ids[n_ids++] = (int32_t)j;
        for (int64_t j = hi; j < nb && n_ids < k; j++) ids[n_ids++] = (int32_t)j;
        return n_ids;
    }
    if (n_choose > 1024) return -1;
    block_scores(qh, ksum, kmin, kmax, scorer, G, D, nb, seq_len, bs, scale, alpha, sel);
    int n_best = 0;
    for (int64_t j = lo; j < hi && n_choose > 0; j++) keep_best(best_s, best_i, &n_best, n_choose, sel[j], (int32_t)j);
    for (int i = 0; i < n_best; i++) ids[n_ids++] = best_i[i];
    for (int64_t j = 0; j < n_sink; j++) ids[n_ids++] = (int32_t)j;
    for (int64_t j = hi; j < nb; j++) ids[n_ids++] = (int32_t)j;
    return n_ids;
}

/* Logits of one block's tokens [t0, t1) for the G query heads of a KV head: logits[g * row + i], scaled.
 * next: row offset of the block to prefetch meanwhile (0: none). Returns t1 - t0. */
static inline __attribute__((always_inline)) int qk_block(const void *kh, int is_bf16, int64_t t0, int64_t t1,
                                                          const float *qh, int q_is_bf16, int G, int D, float scale,
                                                          float *logits, int64_t row, int64_t next) {
    int64_t t = t0;
    float krow[MAX_D];
#ifdef M3_SIMD
    if (D % 16 == 0) {
        __m512i qbf[MAX_G * MAX_D / 32];
        if (q_is_bf16) {
            const __m512i pick_hi = _mm512_set_epi16(63, 61, 59, 57, 55, 53, 51, 49, 47, 45, 43, 41, 39, 37, 35, 33, 31, 29,
                                                     27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
            for (int i = 0; i < G * D / 32; i++) /* 32 bf16 = the top halves of 32 fp32 queries (exact here) */
                qbf[i] = _mm512_permutex2var_epi16(_mm512_loadu_si512(qh + 32 * i), pick_hi,
                                                   _mm512_loadu_si512(qh + 32 * i + 16));
        }
        const __m512i *qv = q_is_bf16 ? qbf : NULL;
        for (; t + 16 <= t1; t += 16) { /* a tile's worth of the next block per tile: a whole-block burst stalls */
            if (next) prefetch_rows(kh, is_bf16, t + next, 16, D);
            else if (t + 16 < t1) prefetch_rows(kh, is_bf16, t + 16, 16, D);
            qk_tile(kh, is_bf16, t, 16, qh, qv, G, D, scale, logits + (t - t0), row);
        }
        if (t < t1) qk_tile(kh, is_bf16, t, (int)(t1 - t), qh, qv, G, D, scale, logits + (t - t0), row);
        return (int)(t1 - t0);
    }
#elif defined(M3_SIMD8)
    (void)q_is_bf16;
    if (D % 8 == 0) {
        for (; t < t1; t += 8) {
            if (next) prefetch_rows(kh, is_bf16, t + next, 8, D);
            else if (t + 8 < t1) prefetch_rows(kh, is_bf16, t + 8, 8, D);
            qk_tile8(kh, is_bf16, t, t1 - t < 8 ? (int)(t1 - t) : 8, qh, G, D, scale, logits + (t - t0), row);
        }
        return (int)(t1 - t0);
    }
#endif
    for (; t < t1; t++) {
        load_row(kh, is_bf16, t, D, krow);
        for (int g = 0; g < G; g++) {
            const float *qg = qh + g * D;
            float acc = 0.f;
            for (int d = 0; d < D; d++) acc += qg[d] * krow[d];
            logits[(int64_t)g * row + (t - t0)] = acc * scale;
        }
    }
    return (int)(t1 - t0);
}

/* o[g * D + d] += sum_i p_g[i] v_{t0+i}[d] and tot[g] += sum_i p_g[i], over n rows (p_g at p + g * row).
 * next: row offset of the block to prefetch meanwhile (0: none). */
static inline __attribute__((always_inline)) void pv_block(const void *vh, int is_bf16, int64_t t0, int n,
                                                           const float *p, int64_t row, int G, int D, float *o,
                                                           float *tot, int64_t next) {
    int t = 0;
    float vrow[MAX_D];
    for (int g = 0; g < G; g++) tot[g] += sum_of(p + (int64_t)g * row, n);
#ifdef M3_SIMD
    if (D % 16 == 0) {
        for (; t < n; t += 4) {
            if (next) prefetch_rows(vh, is_bf16, t0 + t + next, 4, D);
            else if (t + 4 < n) prefetch_rows(vh, is_bf16, t0 + t + 4, 4, D);
            pv_tile(vh, is_bf16, t0 + t, n - t < 4 ? n - t : 4, p + t, row, G, D, o);
        }
        return;
    }
#elif defined(M3_SIMD8)
    if (D % 8 == 0) {
        if (next) prefetch_rows(vh, is_bf16, t0 + next, n, D);
        for (int g0 = 0; g0 < G; g0 += 4) pv_heads8(vh, is_bf16, t0, n, p, row, g0, G - g0 < 4 ? G - g0 : 4, D, o);
        return;
    }
#endif
    for (; t < n; t++) {
        load_row(vh, is_bf16, t0 + t, D, vrow);
        for (int g = 0; g < G; g++) {
            float pg = p[(int64_t)g * row + t];
            for (int d = 0; d < D; d++) o[g * D + d] += pg * vrow[d];
        }
    }
}

/* The final blocks of one KV head, as indices into its candidates: all of them (n_cand <= top_k), or
 * rerank: forced ones stay, the others by exact attention mass (per head softmax share of their
 * tokens, summed over the group; e = exp'd logits [G, row], etot their sums). Returns their number. */
static int keep_by_mass(const float *e, const float *etot, int G, int64_t row, const int32_t *cand, const int32_t *off,
                        const int32_t *cnt, int n_cand, int64_t nb, int top_k, int sink, int local, int32_t *keep) {
    int n_keep = 0;
    if (n_cand <= top_k) {
        for (int c = 0; c < n_cand; c++) keep[n_keep++] = c;
        return n_keep;
    }
    float mass[1024], best_m[1024];
    int32_t order[1024], best_c[1024];
    int n_sink = sink < nb ? sink : (int)nb;
    int64_t hi = nb - local > n_sink ? nb - local : n_sink;
    for (int c = 0; c < n_cand; c++) {
        mass[c] = 0.f;
        order[c] = c;
    }
    for (int g = 0; g < G; g++) {
        float inv = 1.f / etot[g];
        for (int c = 0; c < n_cand; c++) mass[c] += sum_of(e + (int64_t)g * row + off[c], cnt[c]) * inv;
    }
    for (int i = 1; i < n_cand; i++) { /* candidates in ascending block id: ties go to the lower id */
        int32_t x = order[i];
        int j = i;
        while (j > 0 && cand[order[j - 1]] > cand[x]) { order[j] = order[j - 1]; j--; }
        order[j] = x;
    }
    int n_forced = 0;
    for (int c = 0; c < n_cand; c++) n_forced += cand[c] < n_sink || cand[c] >= hi;
    int n_choose = top_k - n_forced, n_best = 0;
    for (int i = 0; i < n_cand && n_choose > 0; i++) {
        int c = order[i];
        if (cand[c] < n_sink || cand[c] >= hi) continue;
        keep_best(best_m, best_c, &n_best, n_choose, mass[c], c);
    }
    for (int i = 0; i < n_best; i++) keep[n_keep++] = best_c[i];
    for (int i = 0; i < n_cand && n_keep < top_k; i++) {
        int c = order[i];
        if (cand[c] < n_sink || cand[c] >= hi) keep[n_keep++] = c;
    }
    return n_keep;
}

/* Item `it` of a list that concatenates per-head runs of n[h] items: sets *h, returns the index in the run. */
static inline int item_of(int64_t it, const int32_t *n, int hkv, int *h) {
    int hh = 0;
    while (hh < hkv - 1 && it >= n[hh]) it -= n[hh++];
    *h = hh;
    return (int)it;
}

/* Returns 0, or -1 on unsupported sizes (D > MAX_D, G > MAX_G, more than 1024 candidates) or no memory.
 * rerank > 1: two-stage selection -- rerank * top_k candidate blocks by block_scores (sink and local
 * forced), then the top_k of them with the largest exact attention mass; the output attends over the
 * final blocks reusing the candidates' logits (keys are read once).
 * Work is split in phases over the OpenMP threads of the caller (PyTorch's pool when run inside it: the
 * libgomp PyTorch loaded): candidates per KV head; logits per (head, candidate block); softmax and
 * rerank per head; values per (head, kept block) into per-thread partial sums, added in thread order
 * (the result depends on the thread count only through float rounding, never on timing). */
static inline __attribute__((always_inline)) int decode_impl(
    const float *q,          /* [Hkv*G, D] query heads, grouped by KV head */
    const void *k,           /* [Hkv, cap, D] keys (B = 1), bf16 or fp32 */
    const void *v,           /* [Hkv, cap, D] values */
    int is_bf16,
    const float *ksum,       /* [Hkv, nb_cap, D] block key sums */
    const float *kmin,       /* [Hkv, nb_cap, D] block key minima (ksum again when absent) */
    const float *kmax,
    int scorer, int hkv, int G, int D, int64_t cap, int64_t nb_cap,
    int64_t seq_len, int bs, int top_k, int sink, int local, float scale, float alpha, int rerank,
    int32_t *idx_out,        /* [Hkv, top_k]: kept blocks, chosen ones first, then forced; -1 unused */
    float *sel_all,          /* scratch [Hkv, (G + 1) * nb_cap] for block scores */
    float *logits_all,       /* scratch [Hkv, G, max(rerank, 1) * top_k * bs] */
    float *out)              /* [Hkv*G, D] */
{
    if (D > MAX_D || G > MAX_G) return -1;
    const int64_t nb = (seq_len + bs - 1) / bs;
    const int n_stage1 = rerank > 1 ? rerank * top_k : top_k;
    if (n_stage1 > 1024) return -1;
    const int64_t row = (int64_t)n_stage1 * bs; /* logits row length per query head */
    const size_t esz = is_bf16 ? 2 : 4;
    int q_is_bf16 = 0;
#ifdef M3_SIMD
    q_is_bf16 = is_bf16 && D % 32 == 0; /* queries that are bf16 values (a bf16 model's) take vdpbf16ps */
    for (int64_t i = 0; q_is_bf16 && i < (int64_t)hkv * G * D; i++) {
        uint32_t u;
        memcpy(&u, q + i, sizeof u);
        q_is_bf16 = (u & 0xFFFFu) == 0;
    }
#endif
    int n_thr = 1, parallel = hkv * G * row >= 8192;
#ifdef _OPENMP
    if (parallel) n_thr = omp_get_max_threads();
#endif
    const int64_t slot = (int64_t)hkv * G * (D + 1); /* one thread's partial sums [Hkv*G, D], then totals [Hkv*G] */
    /* per head: candidate ids, token offsets and counts, kept candidates; run lengths; exp sums; partials */
    char *mem = malloc(sizeof(int32_t) * ((size_t)hkv * (4 * (size_t)n_stage1 + 2)) + sizeof(float) * ((size_t)hkv * G
                       + (size_t)n_thr * slot));
    if (mem == NULL) return -1;
    int32_t *cand = (int32_t *)mem, *off = cand + (size_t)hkv * n_stage1, *cnt = off + (size_t)hkv * n_stage1;
    int32_t *keep = cnt + (size_t)hkv * n_stage1, *n_cand = keep + (size_t)hkv * n_stage1, *n_keep = n_cand + hkv;
    float *etot = (float *)(n_keep + hkv), *part = etot + (size_t)hkv * G;
#pragma omp parallel if (parallel) num_threads(n_thr)
    {
        int tid = 0, nt = 1;
#ifdef _OPENMP
        tid = omp_get_thread_num();
        nt = omp_get_num_threads();
#endif
        /* ---- candidates per KV head (sink + local + the best by summaries), their token ranges ---- */
#pragma omp for schedule(static)
        for (int h = 0; h < hkv; h++) {
            int32_t *ch = cand + (int64_t)h * n_stage1;
            n_cand[h] = pick_candidates(q + (int64_t)h * G * D, ksum + (int64_t)h * nb_cap * D,
                                        kmin + (int64_t)h * nb_cap * D, kmax + (int64_t)h * nb_cap * D, scorer, G, D,
                                        nb, seq_len, bs, n_stage1, sink, local, scale, alpha,
                                        sel_all + (int64_t)h * (G + 1) * nb_cap, ch);
            int32_t n_tok = 0; /* n_cand >= 0: n_stage1 <= 1024 was checked above */
            for (int c = 0; c < n_cand[h]; c++) {
                int64_t t0 = (int64_t)ch[c] * bs;
                off[(int64_t)h * n_stage1 + c] = n_tok;
                n_tok += cnt[(int64_t)h * n_stage1 + c] = (int32_t)((t0 + bs < seq_len ? t0 + bs : seq_len) - t0);
            }
        }
        /* ---- logits of every candidate token, per (head, candidate block) ---- */
        int64_t n_items = 0;
        for (int h = 0; h < hkv; h++) n_items += n_cand[h];
#pragma omp for schedule(static)
        for (int64_t it = 0; it < n_items; it++) {
            int h, h2, c = item_of(it, n_cand, hkv, &h), c2 = it + 1 < n_items ? item_of(it + 1, n_cand, hkv, &h2) : -1;
            const char *kh = (const char *)k + (size_t)h * cap * D * esz;
            int64_t t0 = (int64_t)cand[(int64_t)h * n_stage1 + c] * bs;
            int64_t next = c2 < 0 ? 0 : ((int64_t)h2 * cap + (int64_t)cand[(int64_t)h2 * n_stage1 + c2] * bs)
                                        - ((int64_t)h * cap + t0);
            qk_block(kh, is_bf16, t0, t0 + cnt[(int64_t)h * n_stage1 + c], q + (int64_t)h * G * D, q_is_bf16, G, D,
                     scale, logits_all + (int64_t)h * G * row + off[(int64_t)h * n_stage1 + c], row, next);
        }
        /* ---- per head: exp(l - max) in place, the final blocks ---- */
#pragma omp for schedule(static)
        for (int h = 0; h < hkv; h++) {
            const int32_t *ch = cand + (int64_t)h * n_stage1, *oh = off + (int64_t)h * n_stage1;
            const int32_t *nh = cnt + (int64_t)h * n_stage1;
            int n_tok = n_cand[h] ? oh[n_cand[h] - 1] + nh[n_cand[h] - 1] : 0;
            float *lg = logits_all + (int64_t)h * G * row;
            for (int g = 0; g < G; g++)
                etot[h * G + g] = exp_shift_sum(lg + (int64_t)g * row, n_tok, max_of(lg + (int64_t)g * row, n_tok));
            int32_t *kh = keep + (int64_t)h * n_stage1;
            n_keep[h] = keep_by_mass(lg, etot + h * G, G, row, ch, oh, nh, n_cand[h], nb, top_k, sink, local, kh);
            for (int i = 0; i < top_k; i++) idx_out[(int64_t)h * top_k + i] = i < n_keep[h] ? ch[kh[i]] : -1;
        }
        /* ---- sum e v and sum e per (head, kept block), into this thread's partials ---- */
        float *mine = part + (int64_t)tid * slot;
        memset(mine, 0, sizeof(float) * slot);
        int64_t n_kept = 0;
        for (int h = 0; h < hkv; h++) n_kept += n_keep[h];
#pragma omp for schedule(static)
        for (int64_t it = 0; it < n_kept; it++) {
            int h, h2, i = item_of(it, n_keep, hkv, &h), i2 = it + 1 < n_kept ? item_of(it + 1, n_keep, hkv, &h2) : -1;
            int c = keep[(int64_t)h * n_stage1 + i];
            int64_t t0 = (int64_t)cand[(int64_t)h * n_stage1 + c] * bs, next = 0;
            if (i2 >= 0) {
                int c2 = keep[(int64_t)h2 * n_stage1 + i2];
                next = ((int64_t)h2 * cap + (int64_t)cand[(int64_t)h2 * n_stage1 + c2] * bs) - ((int64_t)h * cap + t0);
            }
            pv_block((const char *)v + (size_t)h * cap * D * esz, is_bf16, t0, cnt[(int64_t)h * n_stage1 + c],
                     logits_all + (int64_t)h * G * row + off[(int64_t)h * n_stage1 + c], row, G, D,
                     mine + (int64_t)h * G * D, mine + (int64_t)hkv * G * D + (int64_t)h * G, next);
        }
        /* ---- out = (sum of the partials) / (sum of their totals), in thread order ---- */
#pragma omp for schedule(static)
        for (int r = 0; r < hkv * G; r++) {
            float *o = out + (int64_t)r * D, total = 0.f;
            for (int d = 0; d < D; d++) o[d] = 0.f;
            for (int th = 0; th < nt; th++) {
                const float *pr = part + (int64_t)th * slot;
                for (int d = 0; d < D; d++) o[d] += pr[(int64_t)r * D + d];
                total += pr[(int64_t)hkv * G * D + r];
            }
            float inv = total > 0.f ? 1.f / total : 0.f;
            for (int d = 0; d < D; d++) o[d] *= inv;
        }
    }
    free(mem);
    return 0;
}

/* What stays fixed for one layer's cache across decode steps (built once per layer by kernels/msa_cpu.py). */
typedef struct {
    const void *k, *v;                      /* [Hkv, cap, D] keys / values (B = 1), bf16 or fp32 */
    const float *ksum, *kmin, *kmax;        /* [Hkv, nb_cap, D] block key sums / minima / maxima (kmin, kmax = ksum
                                               when absent) */
    float *sel, *logits;                    /* scratch [Hkv, (G + 1) * nb_cap], [Hkv, G, max(rerank, 1) * top_k * bs] */
    int64_t cap, nb_cap;
    int32_t is_bf16, scorer, hkv, G, D, bs, top_k, sink, local, rerank;
    float scale, alpha;
} msa_args;


/* The exported entry point. q [Hkv*G, D] and out [Hkv*G, D] are bf16 when io_bf16 (a bf16 model's
 * activations, widened / rounded here), else fp32; idx_out [Hkv, top_k] gets the kept blocks (chosen
 * ones first, then forced; -1 unused). The common head dims get their own inlined copy with D a
 * compile-time constant; any other D takes the generic copy. Returns 0, or -1 on unsupported sizes. */
int msa_decode(const msa_args *a, const void *q, int io_bf16, int64_t seq_len, int32_t *idx_out, void *out) {
    const int64_t n = (int64_t)a->hkv * a->G * a->D;
    if (a->D > MAX_D || a->G > MAX_G || n > 64 * MAX_D) return -1;
    float q32[64 * MAX_D], o32[64 * MAX_D];
    const float *qf = (const float *)q;
    float *of = io_bf16 ? o32 : (float *)out;
    if (io_bf16) {
        for (int64_t i = 0; i < n; i++) q32[i] = bf16_to_f32(((const uint16_t *)q)[i]);
        qf = q32;
    }
#define M3_DECODE_ARGS(DIM) qf, a->k, a->v, a->is_bf16, a->ksum, a->kmin, a->kmax, a->scorer, a->hkv, a->G, DIM, a->cap, \
    a->nb_cap, seq_len, a->bs, a->top_k, a->sink, a->local, a->scale, a->alpha, a->rerank, idx_out, a->sel, a->logits, of
    int rc = a->D == 64 ? decode_impl(M3_DECODE_ARGS(64))
           : a->D == 128 ? decode_impl(M3_DECODE_ARGS(128))
           : decode_impl(M3_DECODE_ARGS(a->D));
#undef M3_DECODE_ARGS
    if (io_bf16)
        for (int64_t i = 0; i < n; i++) ((uint16_t *)out)[i] = f32_to_bf16(o32[i]);
    return rc;
}

/* One layer's cache as msa_append1 writes it (built once per layer by kernels/msa_cpu.py). */
typedef struct {
    void *k, *v;                            /* [Hkv, cap, D] keys / values (B = 1), bf16 or fp32 */
    float *ksum, *kmin, *kmax;              /* [Hkv, nb_cap, D] block sums / minima / maxima; kmin = kmax = NULL when absent */
    int64_t cap, nb_cap;
    int32_t is_bf16, hkv, D, bs;
} msa_cache;

/* A decode step's new token: k_new / v_new (D values per KV head, head h at + h * head stride; the cache's dtype, or
 * fp32 when in_f32 -- rounded to nearest even where the cache is bf16) written at position pos, and folded into its
 * block's summaries from the values given (a block's first token starts them afresh; later ones add / take min and
 * max) -- what the cache layer's write + update_summaries do in ~15 PyTorch ops. Returns 0, or -1 when pos is
 * outside the cache. */
static int append1(const msa_cache *c, const void *k_new, int64_t k_head_stride, const void *v_new,
                   int64_t v_head_stride, int64_t pos, int in_f32) {
    if (pos < 0 || pos >= c->cap || pos / c->bs >= c->nb_cap) return -1;
    const int64_t D = c->D, b = pos / c->bs;
    const int first = pos % c->bs == 0;
    const size_t esize = c->is_bf16 ? 2 : 4, isize = in_f32 ? 4 : esize;
    for (int h = 0; h < c->hkv; h++) {
        const char *kn = (const char *)k_new + h * k_head_stride * (int64_t)isize;
        const char *vn = (const char *)v_new + h * v_head_stride * (int64_t)isize;
        char *kd = (char *)c->k + ((int64_t)h * c->cap + pos) * D * (int64_t)esize;
        char *vd = (char *)c->v + ((int64_t)h * c->cap + pos) * D * (int64_t)esize;
        if (isize == esize) {
            memcpy(kd, kn, D * esize);
            memcpy(vd, vn, D * esize);
        } else { /* fp32 in, bf16 cache */
            for (int64_t d = 0; d < D; d++) {
                ((uint16_t *)kd)[d] = f32_to_bf16(((const float *)kn)[d]);
                ((uint16_t *)vd)[d] = f32_to_bf16(((const float *)vn)[d]);
            }
        }
        float *sum = c->ksum + ((int64_t)h * c->nb_cap + b) * D;
        float *mn = c->kmin ? c->kmin + ((int64_t)h * c->nb_cap + b) * D : NULL;
        float *mx = c->kmax ? c->kmax + ((int64_t)h * c->nb_cap + b) * D : NULL;
        for (int64_t d = 0; d < D; d++) {
            float x = isize == 2 ? bf16_to_f32(((const uint16_t *)kn)[d]) : ((const float *)kn)[d];
            sum[d] = first ? x : sum[d] + x;
            if (mn) {
                mn[d] = first || x < mn[d] ? x : mn[d];
                mx[d] = first || x > mx[d] ? x : mx[d];
            }
        }
    }
    return 0;
}

/* k_new / v_new in the cache's dtype. */
int msa_append1(const msa_cache *c, const void *k_new, int64_t k_head_stride, const void *v_new,
                int64_t v_head_stride, int64_t pos) {
    return append1(c, k_new, k_head_stride, v_new, v_head_stride, pos, 0);
}

/* k_new / v_new fp32 (a decode step computed in fp32), into a bf16 or fp32 cache. */
int msa_append1_f32(const msa_cache *c, const float *k_new, int64_t k_head_stride, const float *v_new,
                    int64_t v_head_stride, int64_t pos) {
    return append1(c, k_new, k_head_stride, v_new, v_head_stride, pos, 1);
}

#if defined(M3_SIMD)
M3_SIMD_EXPORT(1, 0)
#elif defined(M3_SIMD8)
M3_SIMD_EXPORT(0, 1)
#else
M3_SIMD_EXPORT(0, 0)
#endif
