/* MSA decode for one sequence on CPU, fused: block scoring + top-K + exact attention over the chosen
 * blocks, read in place from the KV cache (no gather copy). One call per layer and decode step.
 *
 * Plain C (no PyTorch headers) so that it compiles in about a second; loaded through ctypes by
 * kernels/msa_cpu.py, which also documents the contract. The semantics are those of the plain-PyTorch
 * reference in kernels/msa_naive.py (select_blocks + sparse_decode), tested against it:
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
#include <string.h>

#define MAX_D 256
#define MAX_G 16

static inline float bf16_to_f32(uint16_t x) {
    uint32_t u = (uint32_t)x << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

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

/* exp(x), x <= 0 in use: x = n ln2 + r with |r| <= ln2/2; e^r by its degree-6 Taylor polynomial
 * (relative error < 2e-7), times 2^n by vscalefps. Inputs below -87 give ~e^-87 instead of 0. */
static inline __m512 exp512(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), r);
    __m512 p = _mm512_set1_ps(1.f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
    return _mm512_scalef_ps(p, n);
}

static inline __mmask16 tail_mask(int n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u); }

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
    float *lg = sc + nb;
    for (int64_t j = 0; j < nb; j++) sc[j] = 0.f;
    for (int g = 0; g < G; g++) {
        const float *q = qh + g * D;
        float m = -FLT_MAX, total = 0.f;
        for (int64_t j = 0; j < nb; j++) {
            float bound = 0.f, mean = 0.f;
            if (scorer != 3) {
                const float *mx = kmax + j * D, *mn = kmin + j * D;
                for (int d = 0; d < D; d++) {
                    float a = q[d] * mx[d], b = q[d] * mn[d];
                    bound += a > b ? a : b;
                }
            }
            if (scorer != 2) {
                const float *sm = ksum + j * D;
                for (int d = 0; d < D; d++) mean += q[d] * sm[d];
                int64_t count = seq_len - j * bs < bs ? seq_len - j * bs : bs;
                mean /= (float)count;
            }
            float l = scorer == 2 ? bound : scorer == 3 ? mean : mean + alpha * (bound - mean);
            lg[j] = l * scale;
            m = lg[j] > m ? lg[j] : m;
        }
        for (int64_t j = 0; j < nb; j++) { lg[j] = expf(lg[j] - m); total += lg[j]; }
        for (int64_t j = 0; j < nb; j++) sc[j] += lg[j] / total;
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

/* Returns 0, or -1 on unsupported sizes (D > MAX_D, G > MAX_G, more than 1024 candidates).
 * rerank > 1: two-stage selection -- rerank * top_k candidate blocks by block_scores (sink and local
 * forced), then the top_k of them with the largest exact attention mass (per head softmax of the
 * candidates' logits, summed over each block's tokens and the group's heads; forced blocks stay); the
 * output attends over the final blocks reusing the candidates' logits (keys are read once). */
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
#ifdef M3_SIMD
    int q_is_bf16 = is_bf16 && D % 32 == 0; /* queries that are bf16 values (a bf16 model's) take vdpbf16ps */
    for (int64_t i = 0; q_is_bf16 && i < (int64_t)hkv * G * D; i++) {
        uint32_t u;
        memcpy(&u, q + i, sizeof u);
        q_is_bf16 = (u & 0xFFFFu) == 0;
    }
    __m512i pick_hi = _mm512_setzero_si512(); /* odd 16-bit words of two vectors: the bf16 halves */
    {
        uint16_t ids[32];
        for (int i = 0; i < 32; i++) ids[i] = (uint16_t)(2 * i + 1);
        pick_hi = _mm512_loadu_si512(ids);
    }
#endif
    /* KV heads are independent: spread over the OpenMP threads the caller has (PyTorch's pool when run
     * inside it: libgomp is the one PyTorch loaded), when there is enough work to pay for the fork. */
#pragma omp parallel for schedule(static, 1) if (hkv > 1 && row * G * hkv >= 8192)
    for (int h = 0; h < hkv; h++) {
        float krow[MAX_D], mass[1024];
        int32_t cand[1024], off[1024], cnt[1024], keep[1024], order[1024];
        float *sel = sel_all + (int64_t)h * (G + 1) * nb_cap, *logits = logits_all + (int64_t)h * G * row;
        const float *qh = q + (int64_t)h * G * D;
        const int64_t hs = (int64_t)h * nb_cap * D;
        int32_t *ids = idx_out + (int64_t)h * top_k;
        int n_cand = pick_candidates(qh, ksum + hs, kmin + hs, kmax + hs, scorer, G, D, nb, seq_len, bs, n_stage1,
                                     sink, local, scale, alpha, sel, cand);
        /* n_cand >= 0: n_stage1 <= 1024 was checked above */
        /* ---- logits of every candidate token, per query head; then exp(l - max) in place ---- */
        const char *kh = (const char *)k + (size_t)h * cap * D * (is_bf16 ? 2 : 4);
        const char *vh = (const char *)v + (size_t)h * cap * D * (is_bf16 ? 2 : 4);
        int n_tok = 0;
#ifdef M3_SIMD
        __m512i qbf[MAX_G * MAX_D / 32];
        if (q_is_bf16)
            for (int i = 0; i < G * D / 32; i++) /* 32 bf16 = the top halves of 32 fp32 queries */
                qbf[i] = _mm512_permutex2var_epi16(_mm512_loadu_si512(qh + 32 * i), pick_hi,
                                                   _mm512_loadu_si512(qh + 32 * i + 16));
#endif
        for (int c = 0; c < n_cand; c++) {
            int64_t t0 = (int64_t)cand[c] * bs, t1 = t0 + bs < seq_len ? t0 + bs : seq_len;
            /* the next candidate's rows, a tile's worth per tile (a burst of a whole block stalls on the fill buffers) */
            int64_t next = c + 1 < n_cand ? (int64_t)cand[c + 1] * bs - t0 : 0;
            if (c == 0) prefetch_rows(kh, is_bf16, t0, t1 - t0 < 16 ? t1 - t0 : 16, D);
            off[c] = n_tok;
            cnt[c] = (int32_t)(t1 - t0);
            int64_t t = t0;
#ifdef M3_SIMD
            if (D % 16 == 0) {
                const __m512i *qv = q_is_bf16 ? qbf : NULL;
                for (; t + 16 <= t1; t += 16, n_tok += 16) {
                    if (next) prefetch_rows(kh, is_bf16, t + next, 16, D);
                    else if (t + 16 < t1) prefetch_rows(kh, is_bf16, t + 16, 16, D);
                    qk_tile(kh, is_bf16, t, 16, qh, qv, G, D, scale, logits + n_tok, row);
                }
                if (t < t1) {
                    qk_tile(kh, is_bf16, t, (int)(t1 - t), qh, qv, G, D, scale, logits + n_tok, row);
                    n_tok += (int)(t1 - t);
                    t = t1;
                }
            }
#endif
            for (; t < t1; t++, n_tok++) {
                load_row(kh, is_bf16, t, D, krow);
                for (int g = 0; g < G; g++) {
                    const float *qg = qh + g * D;
                    float acc = 0.f;
                    for (int d = 0; d < D; d++) acc += qg[d] * krow[d];
                    logits[(int64_t)g * row + n_tok] = acc * scale;
                }
            }
        }
        float etot[MAX_G];
        for (int g = 0; g < G; g++) {
            float *lg = logits + (int64_t)g * row;
            etot[g] = exp_shift_sum(lg, n_tok, max_of(lg, n_tok));
        }
        /* ---- the final blocks: all candidates, or the top_k by exact mass (rerank) ---- */
        int n_keep = 0;
        if (n_cand <= top_k) {
            for (int c = 0; c < n_cand; c++) keep[n_keep++] = c;
        } else {
            int n_sink = sink < nb ? sink : (int)nb;
            int64_t hi = nb - local > n_sink ? nb - local : n_sink;
            for (int c = 0; c < n_cand; c++) { /* mass of each candidate block: sum over heads of its softmax share */
                mass[c] = 0.f;
                order[c] = c;
            }
            for (int g = 0; g < G; g++) {
                const float *e = logits + (int64_t)g * row;
                float inv = 1.f / etot[g];
                for (int c = 0; c < n_cand; c++) mass[c] += sum_of(e + off[c], cnt[c]) * inv;
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
            float best_m[1024];
            int32_t best_c[1024];
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
        }
        for (int i = 0; i < top_k; i++) ids[i] = i < n_keep ? cand[keep[i]] : -1;
        /* ---- exact attention over the final blocks: out_g = sum e v / sum e ---- */
        float total[MAX_G];
        for (int g = 0; g < G; g++) {
            total[g] = 0.f;
            float *o = out + ((int64_t)h * G + g) * D;
            for (int d = 0; d < D; d++) o[d] = 0.f;
        }
        for (int i = 0; i < n_keep; i++) {
            int c = keep[i];
            int64_t t0 = (int64_t)cand[c] * bs;
            int64_t next = i + 1 < n_keep ? (int64_t)cand[keep[i + 1]] * bs - t0 : 0;
            if (i == 0) prefetch_rows(vh, is_bf16, t0, cnt[c] < 4 ? cnt[c] : 4, D);
            float *o = out + (int64_t)h * G * D;
            const float *p = logits + off[c];
            for (int g = 0; g < G; g++) total[g] += sum_of(p + (int64_t)g * row, cnt[c]);
            int t = 0;
#ifdef M3_SIMD
            if (D % 16 == 0)
                for (; t < cnt[c]; t += 4) {
                    if (next) prefetch_rows(vh, is_bf16, t0 + t + next, 4, D);
                    else if (t + 4 < cnt[c]) prefetch_rows(vh, is_bf16, t0 + t + 4, 4, D);
                    pv_tile(vh, is_bf16, t0 + t, cnt[c] - t < 4 ? cnt[c] - t : 4, p + t, row, G, D, o);
                }
#endif
            for (; t < cnt[c]; t++) {
                load_row(vh, is_bf16, t0 + t, D, krow);
                for (int g = 0; g < G; g++) {
                    float pg = p[(int64_t)g * row + t];
                    for (int d = 0; d < D; d++) o[g * D + d] += pg * krow[d];
                }
            }
        }
        for (int g = 0; g < G; g++) {
            float inv = total[g] > 0.f ? 1.f / total[g] : 0.f;
            float *o = out + ((int64_t)h * G + g) * D;
            for (int d = 0; d < D; d++) o[d] *= inv;
        }
    }
    return 0;
}

/* The exported entry point: the common head dims get their own inlined copy with D a compile-time
 * constant (unrolled row loads and dot products; measured ~20 % faster per layer at D 64); any other D
 * takes the generic copy. */
int msa_decode_b1(
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
    float *sel,              /* scratch [Hkv, (G + 1) * nb_cap] for block scores */
    float *logits,           /* scratch [Hkv, G, max(rerank, 1) * top_k * bs] */
    float *out)              /* [Hkv*G, D] */
{
#define M3_DECODE_ARGS(DIM) q, k, v, is_bf16, ksum, kmin, kmax, scorer, hkv, G, DIM, cap, nb_cap, seq_len, bs, top_k, \
    sink, local, scale, alpha, rerank, idx_out, sel, logits, out
    if (D == 64) return decode_impl(M3_DECODE_ARGS(64));
    if (D == 128) return decode_impl(M3_DECODE_ARGS(128));
    return decode_impl(M3_DECODE_ARGS(D));
#undef M3_DECODE_ARGS
}
