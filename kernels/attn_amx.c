/* Causal prefill attention on CPU with Intel AMX (bf16 tiles, fp32 accumulation), head dim 64.
 *
 * out[t, h] = softmax_j(scale * q[t, h] . k[j, h/G]) v[j, h/G] over keys j <= p0 + t (flash attention:
 * online softmax over blocks of 32 keys; exp in fp32, probabilities rounded to bf16 for the P.V
 * product, as PyTorch's bf16 flash attention does). Work items are (query head, 16 query rows), spread
 * over the OpenMP threads of the caller (PyTorch's pool when loaded inside it).
 *
 * Tiles (the AMX register file holds 8 of 16 rows x 64 bytes), all computed transposed:
 *   tmm0-3  C: O^T, 4 x 16 dims x 16 rows, accumulated over the whole item
 *   tmm4-5  C: S^T, 2 x 16 keys x 16 rows
 *   tmm6    A: 16 keys x 32 dims, straight from the cache; or V^T, 16 dims x 16 key pairs
 *   tmm7    B: Q^T (16 dim pairs x 16 rows, two halves); or P^T (16 key pairs x 16 rows), bf16 pairs
 * V is first rewritten as V^T in key pairs ("VNNI" layout), once per call.
 * Loaded through ctypes by kernels/attn_amx.py, which documents the contract; reference: PyTorch's
 * scaled_dot_product_attention(is_causal=True), tested against it.
 */
#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "cpu_common.h"

#if defined(__AMX_TILE__) && defined(__AMX_BF16__) && defined(__AVX512F__) && defined(__AVX512BF16__)
#define M3_AMX 1 /* immintrin.h comes with cpu_common.h */

#define D 64     /* head dim of this kernel */
#define KB 32    /* keys per online-softmax step */
#define QR 16    /* query rows per work item */

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} __attribute__((packed)) tile_config;

/* Linux keeps AMX state off until a process asks for it (arch_prctl ARCH_REQ_XCOMP_PERM). */
static int amx_permitted(void) {
    static int state = 0;
    if (state == 0) state = syscall(SYS_arch_prctl, 0x1023, 18) == 0 ? 1 : -1;
    return state == 1;
}

static void configure_tiles(void) {
    tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int i = 0; i < 8; i++) {
        cfg.rows[i] = 16;
        cfg.colsb[i] = 64;
    }
    _tile_loadconfig(&cfg);
}


/* One work item: rows t0..t0+n-1 (n <= 16) of query head h against keys 0..p0+t of its KV head.
 * Computed transposed -- S^T = K Q^T and O^T = V^T P^T -- so that the 16 query rows are the 16 lanes of
 * every vector: the softmax's row maxima and sums are plain vector ops (no horizontal reductions), the
 * keys are read as they lie in the cache (row = one key: the A operand), and O^T stays in tiles 0-3 for
 * the whole item. Lazy rescaling: probabilities are exp(s - m) with m a running maximum that is only
 * raised (and O^T, l rescaled) when a row's scores exceed it by more than LAZY (so p <= 2^LAZY: exact in
 * fp32, and the bf16 rounding of P is relative). */
#define LAZY 11.f /* in base 2, like the scores */
/* P^T = 2^(scale' S^T - m) for one block of KB keys into pt (bf16, key pairs x 16 rows); keys outside vis
 * (NULL: all visible) get 0. Returns the row sums; *hi = each row's largest exponent (scale' s - m). */
static inline __m512 exp_block(const float *st, const __mmask16 *vis, __m512 vscale, __m512 m, __m512i pair,
                               uint32_t *pt, __m512 *hi) {
    __m512 sum = _mm512_setzero_ps(), sum2 = _mm512_setzero_ps(), h = _mm512_set1_ps(-FLT_MAX);
    for (int i = 0; i < KB; i += 2) {
        __m512 x0 = _mm512_fmsub_ps(_mm512_load_ps(st + i * QR), vscale, m);
        __m512 x1 = _mm512_fmsub_ps(_mm512_load_ps(st + (i + 1) * QR), vscale, m);
        __m512 e0, e1;
        if (vis == NULL) {
            h = _mm512_max_ps(h, _mm512_max_ps(x0, x1));
            e0 = exp2_512(x0);
            e1 = exp2_512(x1);
        } else {
            h = _mm512_mask_max_ps(h, vis[i], h, x0);
            h = _mm512_mask_max_ps(h, vis[i + 1], h, x1);
            e0 = _mm512_maskz_mov_ps(vis[i], exp2_512(x0));
            e1 = _mm512_maskz_mov_ps(vis[i + 1], exp2_512(x1));
        }
        sum = _mm512_add_ps(sum, e0);
        sum2 = _mm512_add_ps(sum2, e1);
        _mm512_store_si512((__m512i *)(pt + (i / 2) * QR), _mm512_permutexvar_epi16(pair, (__m512i)_mm512_cvtne2ps_pbh(e1, e0)));
    }
    *hi = h;
    return _mm512_add_ps(sum, sum2);
}

static void attend_rows(const uint16_t *q, int64_t q_row, const uint16_t *kc, int64_t cap, const uint32_t *vvt,
                        int64_t p0, int64_t t0, int n, float scale, uint16_t *out, int64_t o_row) {
    uint32_t qt[D / 2 * QR] __attribute__((aligned(64)));   /* B: Q^T, [dim pair][row] */
    uint32_t pt[KB / 2 * QR] __attribute__((aligned(64)));  /* B: P^T, [key pair][row] */
    uint16_t kpad[KB * D] __attribute__((aligned(64)));     /* the last keys when the cache ends inside a block */
    float st[KB * QR] __attribute__((aligned(64)));         /* S^T [key][row] */
    float ot[D * QR] __attribute__((aligned(64)));          /* O^T [dim][row] */
    for (int d2 = 0; d2 < D / 2; d2++)
        for (int r = 0; r < QR; r++) qt[d2 * QR + r] = r < n ? ((const uint32_t *)(q + (t0 + r) * q_row))[d2] : 0u;
    const __m512i pos = _mm512_add_epi32(_mm512_set1_epi32((int32_t)(p0 + t0)),
                                         _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    const __mmask16 live = tail_mask(n);
    const __m512i pair = _mm512_set_epi16( /* element 2r <- r, 2r+1 <- 16+r (highest first) */
        31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    /* scores in base 2 (scale * log2 e folded in): probabilities are 2^(s' - m) */
    const __m512 vscale = _mm512_set1_ps(scale * 1.44269504088896341f), lowest = _mm512_set1_ps(-FLT_MAX);
    __m512 m = lowest, l = _mm512_setzero_ps();
    _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
    const int64_t last = p0 + t0 + n - 1; /* the last key any of these rows sees */
    for (int64_t k0 = 0; k0 <= last; k0 += KB) {
        const uint16_t *kb = kc + k0 * D;
        if (k0 + KB > cap) { /* never read past the cache: copy what is there */
            memset(kpad, 0, sizeof kpad);
            memcpy(kpad, kb, sizeof(uint16_t) * (size_t)(cap - k0) * D);
            kb = kpad;
        }
        /* ---- S^T = K Q^T: 2 tiles of 16 keys x 16 rows, each over 2 x 32 dims ---- */
        _tile_zero(4); _tile_zero(5);
        _tile_loadd(7, qt, 64);
        _tile_loadd(6, kb, D * 2);           _tile_dpbf16ps(4, 6, 7);
        _tile_loadd(6, kb + 16 * D, D * 2);  _tile_dpbf16ps(5, 6, 7);
        _tile_loadd(7, qt + 16 * QR, 64);
        _tile_loadd(6, kb + 32, D * 2);          _tile_dpbf16ps(4, 6, 7);
        _tile_loadd(6, kb + 16 * D + 32, D * 2); _tile_dpbf16ps(5, 6, 7);
        _tile_stored(4, st, 64);
        _tile_stored(5, st + 16 * QR, 64);
        /* ---- softmax, 16 rows per vector: one pass with the running maximum; a second only when some row's
         * scores exceed it by more than LAZY (always on a row's first block) ---- */
        __mmask16 vis[KB];
        const int full = k0 + KB - 1 <= p0 + t0; /* below the diagonal: every key visible to every live row */
        if (!full)
            for (int i = 0; i < KB; i++)
                vis[i] = _mm512_mask_cmple_epi32_mask(live, _mm512_set1_epi32((int32_t)(k0 + i)), pos);
        __m512 hi;
        __m512 sum = exp_block(st, full ? NULL : vis, vscale, m, pair, pt, &hi);
        if (_mm512_mask_cmp_ps_mask(live, hi, _mm512_set1_ps(LAZY), _CMP_GT_OQ)) {
            __m512 mx = lowest;
            for (int i = 0; i < KB; i++)
                mx = _mm512_mask_max_ps(mx, full ? live : vis[i], mx, _mm512_load_ps(st + i * QR)); /* scale > 0 */
            mx = _mm512_mask_mul_ps(mx, _mm512_cmp_ps_mask(mx, lowest, _CMP_GT_OQ), mx, vscale);
            __m512 m_new = _mm512_max_ps(m, mx);
            __m512 alpha = exp2_512(_mm512_sub_ps(m, m_new)); /* rows seen first here: l = 0 and O = 0 anyway */
            _tile_stored(0, ot, 64); _tile_stored(1, ot + 16 * QR, 64);
            _tile_stored(2, ot + 32 * QR, 64); _tile_stored(3, ot + 48 * QR, 64);
            for (int d = 0; d < D; d++) _mm512_store_ps(ot + d * QR, _mm512_mul_ps(_mm512_load_ps(ot + d * QR), alpha));
            _tile_loadd(0, ot, 64); _tile_loadd(1, ot + 16 * QR, 64);
            _tile_loadd(2, ot + 32 * QR, 64); _tile_loadd(3, ot + 48 * QR, 64);
            l = _mm512_mul_ps(l, alpha);
            m = m_new;
            sum = exp_block(st, full ? NULL : vis, vscale, m, pair, pt, &hi);
        }
        l = _mm512_add_ps(l, sum);
        /* ---- O^T += V^T P^T: 4 tiles of 16 dims x 16 rows over the 16 key pairs ---- */
        const uint32_t *vb = vvt + (k0 / KB) * D * (KB / 2);
        _tile_loadd(7, pt, 64);
        _tile_loadd(6, vb, 64);           _tile_dpbf16ps(0, 6, 7);
        _tile_loadd(6, vb + 16 * 16, 64); _tile_dpbf16ps(1, 6, 7);
        _tile_loadd(6, vb + 32 * 16, 64); _tile_dpbf16ps(2, 6, 7);
        _tile_loadd(6, vb + 48 * 16, 64); _tile_dpbf16ps(3, 6, 7);
    }
    _tile_stored(0, ot, 64); _tile_stored(1, ot + 16 * QR, 64);
    _tile_stored(2, ot + 32 * QR, 64); _tile_stored(3, ot + 48 * QR, 64);
    float inv[QR];
    _mm512_storeu_ps(inv, _mm512_div_ps(_mm512_set1_ps(1.f), _mm512_mask_mov_ps(_mm512_set1_ps(1.f), live, l)));
    for (int r = 0; r < n; r++) {
        uint16_t *o = out + (t0 + r) * o_row;
        for (int d = 0; d < D; d++) o[d] = f32_to_bf16(ot[d * QR + r] * inv[r]);
    }
}
#endif

/* Returns 0; -1 when this build or CPU cannot (no AMX, head dim != 64) or out of memory.
 * q [T, Hq*?]: row t of query head h at q + t * q_row + h * 64 (bf16); k, v [Hkv, cap, 64] bf16 cache
 * holding keys 0..p0+T-1; out like q with o_row. */
int attn_amx_prefill(const uint16_t *q, int64_t q_row, const uint16_t *k, const uint16_t *v, int64_t cap, int hq,
                     int hkv, int64_t T, int64_t p0, int head_dim, float scale, uint16_t *out, int64_t o_row) {
#ifdef M3_AMX
    if (head_dim != D || !amx_permitted()) return -1;
    const int64_t S = p0 + T, spad = (S + KB - 1) / KB * KB;
    const int G = hq / hkv;
    /* V^T in key pairs, per block of KB keys: vvt[h][s/KB][d][j] = (v[s0+2j][d], v[s0+2j+1][d]), s0 = KB (s/KB);
     * zero past the S valid keys. One block of one head is 4 KB in a row. */
    const int64_t nkb = spad / KB;
    uint32_t *vvt = aligned_alloc(64, sizeof(uint32_t) * (size_t)hkv * nkb * D * (KB / 2));
    if (vvt == NULL) return -1;
#pragma omp parallel for schedule(static)
    for (int64_t hb = 0; hb < (int64_t)hkv * nkb; hb++) {
        int64_t h = hb / nkb, s0 = (hb % nkb) * KB;
        uint32_t *dst = vvt + hb * D * (KB / 2);
        for (int j = 0; j < KB / 2; j++) {
            int64_t s = s0 + 2 * j;
            const uint16_t *v0 = v + (h * cap + s) * D;
            for (int d = 0; d < D; d++) {
                uint32_t a = s < S ? v0[d] : 0u, b = s + 1 < S ? v0[D + d] : 0u;
                dst[d * (KB / 2) + j] = a | (b << 16);
            }
        }
    }
    const int64_t nqb = (T + QR - 1) / QR;
#pragma omp parallel
    {
        configure_tiles();
        /* causal: later query blocks cost more; interleave them over the threads */
#pragma omp for schedule(dynamic, 1)
        for (int64_t it = 0; it < (int64_t)hq * nqb; it++) {
            /* one KV head at a time (its V^T stays in cache), the dearest query blocks first */
            int64_t grp = it / ((int64_t)G * nqb), rest = it % ((int64_t)G * nqb);
            int64_t qb = nqb - 1 - rest / G;
            int h = (int)(grp * G + rest % G);
            int64_t t0 = qb * QR;
            int n = T - t0 < QR ? (int)(T - t0) : QR;
            attend_rows(q + h * D, q_row, k + (int64_t)(h / G) * cap * D, cap, vvt + (int64_t)(h / G) * nkb * D * (KB / 2),
                        p0, t0, n, scale, out + h * D, o_row);
        }
        _tile_release();
    }
    free(vvt);
    return 0;
#else
    (void)q; (void)q_row; (void)k; (void)v; (void)cap; (void)hq; (void)hkv; (void)T; (void)p0; (void)head_dim;
    (void)scale; (void)out; (void)o_row;
    return -1;
#endif
}
