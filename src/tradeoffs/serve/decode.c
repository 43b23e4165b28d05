/* One forward step of a Llama-family model over M rows (tokens), in C: the engine's step whenever it
 * has at most a hundred or so tokens, i.e. every decode step of a busy server (one row per decoding
 * request) and the prompt chunks prefilled beside them (several rows of one sequence).
 *
 * This is the same computation as tradeoffs/serve/llama.py (read that first: it is the reference,
 * and it says why each step is there). At small batches a step is bound by reading the weights, and
 * the PyTorch version spends much of its time in per-operation overhead (30 layers x ~40 small ops)
 * and in matrix kernels that are not tuned for a few rows. Here a step is one OpenMP parallel region:
 *
 *   - each weight matrix is streamed once for all M rows (matrix_rows below), its rows handed out to
 *     the threads in chunks as they come free;
 *   - the per-row work (norms, residual adds, rotary embedding, SwiGLU) is shared out by rows or
 *     spans; threads meet at the end of each product and each such phase (9 times per layer);
 *   - every row's key and value go into the cache before anyone attends, then attention is shared
 *     out by (row, key/value group): each row sees its sequence's positions up to its own.
 *
 * Numbers: activations are rounded to the model's dtype at the points where the PyTorch version
 * materialises a tensor in that dtype (round_to), and every sum is accumulated in float32, so the
 * results match the PyTorch path to within summation-order differences. Each row's sums run in the
 * same order whatever else is in the step, so a request's tokens do not depend on its neighbours.
 *
 * Built by tradeoffs/serve/native.py with the system's C compiler (cc -O3 -march=native -fopenmp).
 * bfloat16 products use the CPU's matrix tiles (AMX) where it has them and the OS grants them, else
 * its bf16 dot-product instructions (AVX512-BF16); float32 uses AVX-512 fused multiply-adds; any other
 * CPU runs portable C loops that the compiler vectorises.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

typedef struct {
    int n_layers, hidden, heads, kv_heads, head_dim, inter, vocab, bf16;
    int blocked; /* 1: the five projections' weights are in the blocked layout (see blocked_rows) */
    int amx;     /* 1: blocked products run on AMX tiles */
    const void *embed;                       /* (vocab, hidden) */
    const void *const *ln1, *const *ln2;     /* per layer: (hidden) */
    const float *eps1, *eps2;                /* per layer */
    const void *const *w_qkv, *const *b_qkv; /* ((heads + 2 kv_heads) * head_dim, hidden); bias or NULL */
    const void *const *w_o, *const *b_o;     /* (hidden, heads * head_dim) */
    const void *const *w_gu, *const *b_gu;   /* (2 inter, hidden): gate rows, then up rows */
    const void *const *w_down, *const *b_down; /* (hidden, inter) */
    const void *norm;                        /* (hidden) */
    float norm_eps;
    const void *lm_head, *lm_bias;           /* (vocab, hidden); bias or NULL */
    const float *cos, *sin;                  /* (positions, head_dim); sin with its first half negated */
} Model;

/* ------------------------------------------------------------------ numbers */
static inline float bf16_to_float(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint16_t float_to_bf16(float f) { /* round to nearest even, as torch does */
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* NaN stays NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* A value as the model's dtype stores it: bfloat16 rounding, or float32 unchanged. */
static inline float round_to(const Model *m, float f) { return m->bf16 ? bf16_to_float(float_to_bf16(f)) : f; }

static inline float weight_at(const Model *m, const void *w, size_t i) {
    return m->bf16 ? bf16_to_float(((const uint16_t *)w)[i]) : ((const float *)w)[i];
}

/* ------------------------------------------------------------------ matrix x vectors */
#if defined(__AVX512F__)
/* 16 bfloat16 values as floats. */
static inline __m512 load_bf16x16(const uint16_t *p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}
#endif

#if defined(__AVX512BF16__)
/* The blocked layout of a bfloat16 weight (N, K), N a multiple of 16 (native.py makes it): block b
 * holds rows 16b .. 16b+15 as (K/2, 16, 2), i.e. for each pair of columns the 16 rows' two values side
 * by side. One 64-byte load then feeds 16 outputs, and one bf16 dot-product instruction per sequence
 * (its column pair broadcast) accumulates all 16: no horizontal sums, and the blocks are read in
 * memory order. This is oneDNN's and AMX's "VNNI" layout, 16 rows wide. */
int blocked_layout(void) { return 1; }

/* y[0:16] = v rounded to bfloat16 (nearest even), stored as floats. */
static inline void store_rounded_bf16x16(float *y, __m512 v) {
    __m256bh r = _mm512_cvtneps_pbh(v);
    _mm512_storeu_ps(y, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32((__m256i)r), 16)));
}

static inline __attribute__((always_inline)) void block_product(const uint16_t *blk, __m512 bias, int K, int ms,
                                                                const uint32_t *x, float *Y, int ldy) {
    __m512 acc[16];
    for (int s = 0; s < ms; s++) acc[s] = _mm512_setzero_ps();
    for (int kp = 0; kp < K / 2; kp++) {
        _mm_prefetch((const char *)(blk + (size_t)kp * 32 + 1024), _MM_HINT_T0);
        __m512bh w = (__m512bh)_mm512_loadu_si512(blk + (size_t)kp * 32);
        for (int s = 0; s < ms; s++)
            acc[s] = _mm512_dpbf16_ps(acc[s], w, (__m512bh)_mm512_set1_epi32((int)x[(size_t)s * (K / 2) + kp]));
    }
    for (int s = 0; s < ms; s++) store_rounded_bf16x16(Y + (size_t)s * ldy, _mm512_add_ps(acc[s], bias));
}

static void blocked_rows(const void *W, const void *bias, int K, int M, const uint16_t *xb, float *Y, int ldy,
                         int n0, int n1) {
    for (int n = n0; n < n1; n += 16) {
        const uint16_t *blk = (const uint16_t *)W + (size_t)n * K;
        __m512 b = bias ? load_bf16x16((const uint16_t *)bias + n) : _mm512_setzero_ps();
        for (int s0 = 0; s0 < M; s0 += 16) {
            const uint32_t *x = (const uint32_t *)(xb + (size_t)s0 * K);
            float *y = Y + (size_t)s0 * ldy + n;
            switch (M - s0 < 16 ? M - s0 : 16) { /* a constant count per case: the compiler unrolls each */
#define BLOCK_CASE(c) case c: block_product(blk, b, K, c, x, y, ldy); break;
                BLOCK_CASE(1) BLOCK_CASE(2) BLOCK_CASE(3) BLOCK_CASE(4) BLOCK_CASE(5) BLOCK_CASE(6)
                BLOCK_CASE(7) BLOCK_CASE(8) BLOCK_CASE(9) BLOCK_CASE(10) BLOCK_CASE(11) BLOCK_CASE(12)
                BLOCK_CASE(13) BLOCK_CASE(14) BLOCK_CASE(15) BLOCK_CASE(16)
#undef BLOCK_CASE
            }
        }
    }
}

#if defined(__AMX_BF16__) && defined(__AMX_TILE__)
#include <sys/syscall.h>
#include <unistd.h>
/* AMX: with the same blocked layout, 16 column pairs of a block are exactly a B tile (16 rows of 64
 * bytes, contiguous), and up to 16 rows' 32 columns an A tile: one tile instruction does what 16
 * dot-product instructions per sequence do above. The OS must grant the tile state once per process. */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} TileConfig;

static int amx_granted = -1; /* -1: not asked yet */

int amx_available(void) {
    if (amx_granted < 0) /* ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA */
        amx_granted = syscall(SYS_arch_prctl, 0x1023, 18) == 0;
    return amx_granted;
}

/* Two row tiles by two weight blocks at a time: four accumulators (C tiles 0-3) whose tile products
 * do not wait on each other (one chain would wait out each product's latency), A tiles 4-5 (rows of
 * xb), B tiles 6-7 (weight blocks). Past 16 rows the tiles are whole (16 rows): the caller pads xb. */
static inline void amx_store(float *Y, int ldy, int rows, __m512 b, float *out) {
    for (int s = 0; s < rows; s++)
        store_rounded_bf16x16(Y + (size_t)s * ldy, _mm512_add_ps(_mm512_loadu_ps(out + 16 * s), b));
}

static void amx_rows(const void *W, const void *bias, int K, int M, const uint16_t *xb, float *Y, int ldy,
                     int n0, int n1) {
    float out[4][16 * 16];
    for (int n = n0; n < n1; n += 32) {
        const int two = n + 16 < n1; /* a second weight block */
        const uint16_t *b0 = (const uint16_t *)W + (size_t)n * K, *b1 = b0 + (size_t)16 * K;
        for (int s0 = 0; s0 < M; s0 += 32) {
            const int lower = s0 + 16 < M; /* a second row tile */
            const uint16_t *x0 = xb + (size_t)s0 * K, *x1 = x0 + (size_t)16 * K;
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
            for (int k = 0; k < K; k += 32) {
                _tile_loadd(4, x0 + k, K * 2);
                _tile_loadd(6, b0 + (size_t)k * 16, 64);
                _tile_dpbf16ps(0, 4, 6);
                if (two) {
                    _tile_loadd(7, b1 + (size_t)k * 16, 64);
                    _tile_dpbf16ps(1, 4, 7);
                }
                if (lower) {
                    _tile_loadd(5, x1 + k, K * 2);
                    _tile_dpbf16ps(2, 5, 6);
                    if (two) _tile_dpbf16ps(3, 5, 7);
                }
            }
            _tile_stored(0, out[0], 64);
            _tile_stored(1, out[1], 64);
            _tile_stored(2, out[2], 64);
            _tile_stored(3, out[3], 64);
            const int top = M - s0 < 16 ? M - s0 : 16, bottom = M - s0 - 16 < 16 ? M - s0 - 16 : 16;
            for (int blk = 0; blk <= two; blk++) {
                __m512 b = bias ? load_bf16x16((const uint16_t *)bias + n + 16 * blk) : _mm512_setzero_ps();
                amx_store(Y + (size_t)s0 * ldy + n + 16 * blk, ldy, top, b, out[blk]);
                if (lower) amx_store(Y + (size_t)(s0 + 16) * ldy + n + 16 * blk, ldy, bottom, b, out[2 + blk]);
            }
        }
    }
}

/* Configure this thread's tiles as amx_rows uses them, M <= 16 rows each (C 0-3: M x 16 floats, A 4-5:
 * M x 32 bf16, B 6-7: 16 x 32 bf16), keeping whatever configuration the thread had (oneDNN's, say). */
static void amx_begin(int M, TileConfig *saved) {
    TileConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    _tile_storeconfig(saved);
    cfg.palette = 1;
    for (int t = 0; t < 6; t++) cfg.rows[t] = (uint8_t)M, cfg.colsb[t] = 64; /* C 0-3, A 4-5 */
    for (int t = 6; t < 8; t++) cfg.rows[t] = 16, cfg.colsb[t] = 64;         /* B 6-7 */
    _tile_loadconfig(&cfg);
}

static void amx_end(const TileConfig *saved) {
    if (saved->palette)
        _tile_loadconfig(saved);
    else
        _tile_release();
}
#else
int amx_available(void) { return 0; }
#endif
#else
int blocked_layout(void) { return 0; }
int amx_available(void) { return 0; }
#endif

/* Y[s * ldy + n] = round(W[n] . X[s] + bias[n]) for rows n in [n0, n1) and input rows s < M.
 * X holds the M input vectors, already rounded to the dtype: as floats (xf, K apart) and, for
 * bfloat16, as bf16 bits too (xb, K apart). W is (N, K) row-major, or blocked (m->blocked). */
static void matrix_rows(const Model *m, const void *W, const void *bias, int K, int M, const float *xf,
                        const uint16_t *xb, float *Y, int ldy, int n0, int n1) {
    int n = n0;
#if defined(__AVX512BF16__)
    if (m->blocked) {
#if defined(__AMX_BF16__) && defined(__AMX_TILE__)
        if (m->amx) {
            amx_rows(W, bias, K, M, xb, Y, ldy, n0, n1);
            return;
        }
#endif
        blocked_rows(W, bias, K, M, xb, Y, ldy, n0, n1);
        return;
    }
#endif
#if defined(__AVX512F__)
    if (!m->bf16 && K % 16 == 0) { /* the same blocking for float32 weights, with fused multiply-adds */
        const float *w = (const float *)W;
        for (; n + 4 <= n1; n += 4) {
            for (int s0 = 0; s0 < M; s0 += 4) {
                int ms = M - s0 < 4 ? M - s0 : 4;
                __m512 acc[4][4];
                for (int r = 0; r < 4; r++)
                    for (int s = 0; s < 4; s++) acc[r][s] = _mm512_setzero_ps();
                for (int k = 0; k < K; k += 16) {
                    __m512 x[4];
                    for (int s = 0; s < ms; s++) x[s] = _mm512_loadu_ps(xf + (size_t)(s0 + s) * K + k);
                    for (int r = 0; r < 4; r++) {
                        const float *row = w + (size_t)(n + r) * K + k;
                        if (s0 == 0) _mm_prefetch((const char *)(row + 8 * (size_t)K), _MM_HINT_T0);
                        __m512 wv = _mm512_loadu_ps(row);
                        for (int s = 0; s < ms; s++) acc[r][s] = _mm512_fmadd_ps(wv, x[s], acc[r][s]);
                    }
                }
                for (int r = 0; r < 4; r++) {
                    float b = bias ? ((const float *)bias)[n + r] : 0.0f;
                    for (int s = 0; s < ms; s++) Y[(size_t)(s0 + s) * ldy + n + r] = _mm512_reduce_add_ps(acc[r][s]) + b;
                }
            }
        }
    }
#endif
    for (; n < n1; n++) { /* portable path (and the rows left over above) */
        for (int s = 0; s < M; s++) {
            const float *x = xf + (size_t)s * K;
            float acc = 0.0f;
            if (m->bf16) {
                const uint16_t *row = (const uint16_t *)W + (size_t)n * K;
#pragma omp simd reduction(+ : acc)
                for (int k = 0; k < K; k++) acc += bf16_to_float(row[k]) * x[k];
            } else {
                const float *row = (const float *)W + (size_t)n * K;
#pragma omp simd reduction(+ : acc)
                for (int k = 0; k < K; k++) acc += row[k] * x[k];
            }
            Y[(size_t)s * ldy + n] = round_to(m, acc + (bias ? weight_at(m, bias, n) : 0.0f));
        }
    }
}

/* Y = W X (+ bias) for all N rows, shared between the threads in chunks handed out as they come free
 * (so a thread that the OS preempts for a moment delays the step by its chunk, not by its whole
 * share). Every thread of the team must call it; it returns when all rows are done. */
static void product(const Model *m, const void *W, const void *bias, int K, int N, int M, const float *xf,
                    const uint16_t *xb, float *Y) {
    const int unit = m->blocked ? 32 : 4; /* blocked: pairs of 16-row blocks (an odd last block is fine) */
    int chunk = N / (8 * omp_get_num_threads()) / unit * unit;
    if (chunk < unit) chunk = unit;
    const int chunks = (N + chunk - 1) / chunk;
#pragma omp for schedule(dynamic, 1)
    for (int c = 0; c < chunks; c++)
        matrix_rows(m, W, bias, K, M, xf, xb, Y, N, c * chunk, (c + 1) * chunk < N ? (c + 1) * chunk : N);
}

/* ------------------------------------------------------------------ the small per-token work */
/* out = weight * rms_norm(x): float32 statistics, rounded before the weight multiply (llama.py's _rms_norm). */
static void rms_norm(const Model *m, const float *x, const void *weight, float eps, float *out, uint16_t *out_b) {
    int d = m->hidden;
    float ss = 0.0f;
    for (int i = 0; i < d; i++) ss += x[i] * x[i];
    float r = 1.0f / sqrtf(ss / d + eps);
    for (int i = 0; i < d; i++) {
        out[i] = round_to(m, weight_at(m, weight, i) * round_to(m, x[i] * r));
        if (out_b) out_b[i] = float_to_bf16(out[i]);
    }
}

/* Rotary embedding of one head vector, as llama.py's _rotate: x * cos + roll(x, half) * signed_sin. */
static void rotate(const Model *m, const float *x, const float *cos, const float *sin, float *out) {
    int d = m->head_dim, half = d / 2;
    for (int i = 0; i < d; i++) {
        float rolled = x[i < half ? i + half : i - half];
        out[i] = round_to(m, round_to(m, x[i] * cos[i]) + round_to(m, rolled * sin[i]));
    }
}

/* SwiGLU of one gate/up pair, as llama.py rounds it: silu(gate) in the dtype, times up, in the dtype. */
static inline float swiglu(const Model *m, float gate, float up) {
    return round_to(m, round_to(m, gate / (1.0f + expf(-gate))) * up);
}

#if defined(__AVX512F__)
/* exp of 16 floats: 2^n times a degree-6 polynomial on [-ln2/2, ln2/2] (Cephes' expf; within 2 ulp of
 * expf, as torch's vectorised exp is within 1); overflow gives inf and underflow 0, as expf does. */
static inline __m512 exp16(__m512 x) {
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 y = _mm512_set1_ps(1.9875691500e-4f);
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.3981999507e-3f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.3334519073e-3f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.1665795894e-2f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.6666665459e-1f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(5.0000001201e-1f));
    y = _mm512_fmadd_ps(y, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(y, n);
}

static inline __m512 round16(const Model *m, __m512 v) {
    if (!m->bf16) return v;
    __m512i u = _mm512_castps_si512(v); /* nearest even, as float_to_bf16 (finite values) */
    u = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff),
                                             _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1))));
    return _mm512_castsi512_ps(_mm512_and_si512(u, _mm512_set1_epi32((int)0xffff0000u)));
}
#endif

/* out[i] = swiglu(gate[i], up[i]) for i < n, and its bf16 bits. */
static void swiglu_span(const Model *m, const float *gate, const float *up, int n, float *out, uint16_t *out_b) {
    int i = 0;
#if defined(__AVX512F__)
    for (; i + 16 <= n; i += 16) {
        __m512 g = _mm512_loadu_ps(gate + i);
        __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), g));
        __m512 act = round16(m, _mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e)));
        _mm512_storeu_ps(out + i, round16(m, _mm512_mul_ps(act, _mm512_loadu_ps(up + i))));
    }
#endif
    for (; i < n; i++) out[i] = swiglu(m, gate[i], up[i]);
    for (i = 0; i < n; i++) out_b[i] = float_to_bf16(out[i]);
}

/* ------------------------------------------------------------------ attention */
/* The attention of one query head of one row over positions 0 .. n-1 of its cache slot (keys and
 * values at base + j * hd): scores = q . k_j / sqrt(hd), softmax, sum of p_j v_j. As torch's CPU flash
 * attention: float32 scores and sums, the exponentials rounded to the dtype before they meet the
 * values, one division at the end. `scores` has room for n floats. */
static void attend_portable(const Model *m, const float *q, const void *kc, const void *vc, size_t base, int n,
                            float scale, float *scores, float *out) {
    const int hd = m->head_dim;
    float top = -INFINITY, total = 0.0f;
    for (int j = 0; j < n; j++) {
        float acc = 0.0f;
        size_t at = base + (size_t)j * hd;
        for (int i = 0; i < hd; i++) acc += q[i] * weight_at(m, kc, at + i);
        scores[j] = acc * scale;
        top = scores[j] > top ? scores[j] : top;
    }
    for (int i = 0; i < hd; i++) out[i] = 0.0f;
    for (int j = 0; j < n; j++) {
        total += scores[j] = expf(scores[j] - top);
        float p = round_to(m, scores[j]);
        size_t at = base + (size_t)j * hd;
        for (int i = 0; i < hd; i++) out[i] += p * weight_at(m, vc, at + i);
    }
    for (int i = 0; i < hd; i++) out[i] = round_to(m, out[i] / total);
}

#if defined(__AVX512F__)
/* The 16 horizontal sums of v[0..15], as one vector (lane j = the sum of v[j]'s lanes): a tree of
 * in-lane unpacks, then shuffles across the four 128-bit lanes, 15 adds in all instead of 16 reductions. */
static inline __m512 sums16(__m512 v[16]) {
    __m512 w[8], x[4], y[2];
    for (int i = 0; i < 8; i++) /* per 128-bit lane: (a0+a2, b0+b2, a1+a3, b1+b3) */
        w[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
    for (int i = 0; i < 4; i++) /* per 128-bit lane: (v0, v1, v2, v3) of this group of four, that lane's part */
        x[i] = _mm512_add_ps(_mm512_shuffle_ps(w[2 * i], w[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(w[2 * i], w[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    for (int i = 0; i < 2; i++) /* 128-bit lanes: (x0 L0+L1, x0 L2+L3, x1 L0+L1, x1 L2+L3) */
        y[i] = _mm512_add_ps(_mm512_shuffle_f32x4(x[2 * i], x[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_f32x4(x[2 * i], x[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm512_add_ps(_mm512_shuffle_f32x4(y[0], y[1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(y[0], y[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

/* The same computation for the nh query heads of one key/value group (queries q + h * hd, scores
 * scores + h * ld, outputs out + h * hd), 16 positions at a time, each key and value read once for all
 * of them; head_dim is 16 * nv, a multiple of 32 up to 128. bfloat16 keys meet the query in bf16
 * dot-product instructions (the query is already a bf16 value, so its products are exact); values
 * are widened to float32 and summed with fused multiply-adds, in registers, up to four heads at once. */
static inline __attribute__((always_inline)) void attend_group(const Model *m, const int nv, const float *q, int nh,
                                                               const void *kc, const void *vc, size_t base, int n,
                                                               float scale, float *scores, int ld, float *out) {
    const int hd = 16 * nv;
    for (int h = 0; h < nh; h++) {
        const float *qh = q + (size_t)h * hd;
        float *sh = scores + (size_t)h * ld;
        __m512 qf[8], acc[16], top = _mm512_set1_ps(-INFINITY);
        for (int c = 0; c < nv; c++) qf[c] = _mm512_loadu_ps(qh + 16 * c);
#if defined(__AVX512BF16__)
        __m512bh qb[4];
        for (int c = 0; c < nv / 2; c++) qb[c] = _mm512_cvtne2ps_pbh(qf[2 * c + 1], qf[2 * c]);
#endif
        for (int j0 = 0; j0 < n; j0 += 16) {
            const int cnt = n - j0 < 16 ? n - j0 : 16;
            for (int jj = 0; jj < 16; jj++) {
                acc[jj] = _mm512_setzero_ps();
                if (jj >= cnt) continue;
                const size_t at = base + (size_t)(j0 + jj) * hd;
                if (m->bf16) {
#if defined(__AVX512BF16__)
                    for (int c = 0; c < nv / 2; c++)
                        acc[jj] = _mm512_dpbf16_ps(acc[jj], (__m512bh)_mm512_loadu_si512((const uint16_t *)kc + at + 32 * c), qb[c]);
#else
                    for (int c = 0; c < nv; c++) acc[jj] = _mm512_fmadd_ps(qf[c], load_bf16x16((const uint16_t *)kc + at + 16 * c), acc[jj]);
#endif
                } else {
                    for (int c = 0; c < nv; c++)
                        acc[jj] = _mm512_fmadd_ps(qf[c], _mm512_loadu_ps((const float *)kc + at + 16 * c), acc[jj]);
                }
            }
            const __mmask16 live = (__mmask16)((1u << cnt) - 1u);
            const __m512 sc = _mm512_mul_ps(sums16(acc), _mm512_set1_ps(scale));
            _mm512_mask_storeu_ps(sh + j0, live, sc);
            top = _mm512_mask_max_ps(top, live, top, sc);
        }
        const __m512 best = _mm512_set1_ps(_mm512_reduce_max_ps(top));
        __m512 total = _mm512_setzero_ps();
        for (int j0 = 0; j0 < n; j0 += 16) {
            const __mmask16 live = (__mmask16)((1u << (n - j0 < 16 ? n - j0 : 16)) - 1u);
            const __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(live, sh + j0), best));
            total = _mm512_add_ps(total, _mm512_maskz_mov_ps(live, e));
            _mm512_mask_storeu_ps(sh + j0, live, round16(m, e));
        }
        out[(size_t)h * hd] = _mm512_reduce_add_ps(total); /* the sum, until the values are in */
    }
    for (int h0 = 0; h0 < nh; h0 += 4) {
        const int hc = nh - h0 < 4 ? nh - h0 : 4;
        __m512 o[4][8];
        for (int h = 0; h < 4; h++)
            for (int c = 0; c < nv; c++) o[h][c] = _mm512_setzero_ps();
        for (int j = 0; j < n; j++) {
            __m512 v[8];
            const size_t at = base + (size_t)j * hd;
            for (int c = 0; c < nv; c++)
                v[c] = m->bf16 ? load_bf16x16((const uint16_t *)vc + at + 16 * c) : _mm512_loadu_ps((const float *)vc + at + 16 * c);
            for (int h = 0; h < 4; h++) {
                if (h >= hc) break;
                const __m512 p = _mm512_set1_ps(scores[(size_t)(h0 + h) * ld + j]);
                for (int c = 0; c < nv; c++) o[h][c] = _mm512_fmadd_ps(p, v[c], o[h][c]);
            }
        }
        for (int h = 0; h < hc; h++) {
            float *oh = out + (size_t)(h0 + h) * hd;
            const __m512 total = _mm512_set1_ps(oh[0]);
            for (int c = 0; c < nv; c++) _mm512_storeu_ps(oh + 16 * c, round16(m, _mm512_div_ps(o[h][c], total)));
        }
    }
}
#endif

/* Attention of the nh query heads q (nh x head_dim) of one key/value group over positions 0 .. n-1
 * (keys and values at base + j * head_dim of kc and vc), into out (nh x head_dim); scores has room
 * for nh x ld floats, ld >= n + 16. */
static void attend(const Model *m, const float *q, int nh, const void *kc, const void *vc, size_t base, int n,
                   float scale, float *scores, int ld, float *out) {
#if defined(__AVX512F__)
    switch (m->head_dim) { /* a constant width per case: the compiler keeps each head's sums in registers */
    case 64: attend_group(m, 4, q, nh, kc, vc, base, n, scale, scores, ld, out); return;
    case 128: attend_group(m, 8, q, nh, kc, vc, base, n, scale, scores, ld, out); return;
    case 32: attend_group(m, 2, q, nh, kc, vc, base, n, scale, scores, ld, out); return;
    case 96: attend_group(m, 6, q, nh, kc, vc, base, n, scale, scores, ld, out); return;
    }
#endif
    for (int h = 0; h < nh; h++)
        attend_portable(m, q + (size_t)h * m->head_dim, kc, vc, base, n, scale, scores, out + (size_t)h * m->head_dim);
}

static inline void cache_put(const Model *m, void *cache, size_t i, float v) {
    if (m->bf16)
        ((uint16_t *)cache)[i] = float_to_bf16(v);
    else
        ((float *)cache)[i] = v;
}

/* ------------------------------------------------------------------ the step */
/* One forward pass over M rows, as llama.py's PackedLlama.forward: row r feeds tokens[r] at
 * positions[r] of the sequence in cache slot slots[r] (each layer's cache, keys[layer] and
 * values[layer], is a contiguous (slots, kv_heads, capacity, head_dim) tensor). A decoding sequence
 * is one row; a prompt chunk is several rows of one slot at consecutive positions. Every row's key and
 * value are written to the cache first, then each row attends to positions 0 .. its own of its slot,
 * so the cache must already hold that slot's earlier positions. Logits (n_keep x vocab, float32) are
 * computed for rows keep[0 .. n_keep-1] only. Returns 0, or -1 when memory runs out. */
int forward_step(const Model *m, int M, const int64_t *tokens, const int64_t *positions, const int64_t *slots,
                 int n_keep, const int64_t *keep, void *const *keys, void *const *values, int capacity, int threads,
                 float *logits) {
    const int d = m->hidden, H = m->heads, KV = m->kv_heads, hd = m->head_dim, I = m->inter;
    const int n_qkv = (H + 2 * KV) * hd, rep = H / KV, widest = n_qkv > 2 * I ? n_qkv : 2 * I;
    const int rows = M > 16 ? (M + 15) / 16 * 16 : M; /* AMX reads whole 16-row tiles past 16 rows */
    int width = 0;
    for (int r = 0; r < M; r++) width = positions[r] + 1 > width ? (int)positions[r] + 1 : width;
    /* Shared between the threads: the residual stream x, each product's input (in, and its bf16 bits),
     * the products' outputs in two buffers used in turn (A: q/k/v and gate/up, B: the output and down
     * projections), the attention and SwiGLU outputs. Per thread: a rotated query and its scores. */
    float *x = malloc(sizeof(float) * M * d), *in = malloc(sizeof(float) * M * d);
    float *A = malloc(sizeof(float) * M * widest), *B = malloc(sizeof(float) * M * d);
    float *attn = malloc(sizeof(float) * rows * H * hd), *act = malloc(sizeof(float) * rows * I);
    uint16_t *in_b = calloc((size_t)rows * d, sizeof(uint16_t)), *attn_b = calloc((size_t)rows * H * hd, sizeof(uint16_t));
    uint16_t *act_b = calloc((size_t)rows * I, sizeof(uint16_t));
    const int ld = width + 16; /* a head's scores */
    float *qs = malloc(sizeof(float) * threads * rep * hd), *scores_all = malloc(sizeof(float) * threads * rep * ld);
    int failed = !(x && in && A && B && attn && act && in_b && attn_b && act_b && qs && scores_all);
    const float scale = 1.0f / sqrtf((float)hd);
    if (!failed) {
#pragma omp parallel num_threads(threads)
        {
            const int t = omp_get_thread_num();
            float *q = qs + (size_t)t * rep * hd, *scores = scores_all + (size_t)t * rep * ld;
#if defined(__AMX_BF16__) && defined(__AMX_TILE__)
            TileConfig saved;
            if (m->amx) amx_begin(M < 16 ? M : 16, &saved);
#endif
#pragma omp for schedule(static)
            for (int r = 0; r < M; r++) {
                for (int i = 0; i < d; i++) x[(size_t)r * d + i] = weight_at(m, m->embed, (size_t)tokens[r] * d + i);
                rms_norm(m, x + (size_t)r * d, m->ln1[0], m->eps1[0], in + (size_t)r * d, in_b + (size_t)r * d);
            } /* implicit barrier */
            for (int L = 0; L < m->n_layers; L++) {
                product(m, m->w_qkv[L], m->b_qkv[L], d, n_qkv, M, in, in_b, A);
                /* every row's key (rotated) and value into the cache, before anyone attends */
#pragma omp for schedule(static)
                for (int item = 0; item < M * KV; item++) {
                    int r = item / KV, g = item % KV;
                    const float *c = m->cos + positions[r] * hd, *sn = m->sin + positions[r] * hd;
                    size_t at = (((size_t)slots[r] * KV + g) * capacity + positions[r]) * hd;
                    rotate(m, A + (size_t)r * n_qkv + (H + g) * hd, c, sn, q);
                    for (int i = 0; i < hd; i++) {
                        cache_put(m, keys[L], at + i, q[i]);
                        cache_put(m, values[L], at + i, A[(size_t)r * n_qkv + (H + KV + g) * hd + i]);
                    }
                } /* implicit barrier */
                /* attention, one (row, key/value group) per work item */
#pragma omp for schedule(dynamic, 1)
                for (int item = 0; item < M * KV; item++) {
                    int r = item / KV, g = item % KV;
                    const float *c = m->cos + positions[r] * hd, *sn = m->sin + positions[r] * hd;
                    for (int h = 0; h < rep; h++) rotate(m, A + (size_t)r * n_qkv + (g * rep + h) * hd, c, sn, q + h * hd);
                    float *out = attn + ((size_t)r * H + g * rep) * hd;
                    attend(m, q, rep, keys[L], values[L], ((size_t)slots[r] * KV + g) * capacity * hd,
                           (int)positions[r] + 1, scale, scores, ld, out);
                    for (int i = 0; i < rep * hd; i++) attn_b[((size_t)r * H + g * rep) * hd + i] = float_to_bf16(out[i]);
                } /* implicit barrier */
                product(m, m->w_o[L], m->b_o[L], H * hd, d, M, attn, attn_b, B);
#pragma omp for schedule(static)
                for (int r = 0; r < M; r++) {
                    for (int i = 0; i < d; i++) x[(size_t)r * d + i] = round_to(m, x[(size_t)r * d + i] + B[(size_t)r * d + i]);
                    rms_norm(m, x + (size_t)r * d, m->ln2[L], m->eps2[L], in + (size_t)r * d, in_b + (size_t)r * d);
                } /* implicit barrier */
                product(m, m->w_gu[L], m->b_gu[L], d, 2 * I, M, in, in_b, A);
                /* SwiGLU, shared out in spans */
#pragma omp for schedule(dynamic, 1)
                for (int item = 0; item < M * 16; item++) {
                    int r = item / 16, i0 = I * (item % 16) / 16, i1 = I * (item % 16 + 1) / 16;
                    const float *gate = A + (size_t)r * 2 * I;
                    swiglu_span(m, gate + i0, gate + I + i0, i1 - i0, act + (size_t)r * I + i0,
                                act_b + (size_t)r * I + i0);
                } /* implicit barrier */
                product(m, m->w_down[L], m->b_down[L], I, d, M, act, act_b, B);
                /* residual, then the next layer's norm (or, after the last, the final norm of the kept rows) */
                if (L + 1 < m->n_layers) {
#pragma omp for schedule(static)
                    for (int r = 0; r < M; r++) {
                        for (int i = 0; i < d; i++) x[(size_t)r * d + i] = round_to(m, x[(size_t)r * d + i] + B[(size_t)r * d + i]);
                        rms_norm(m, x + (size_t)r * d, m->ln1[L + 1], m->eps1[L + 1], in + (size_t)r * d, in_b + (size_t)r * d);
                    } /* implicit barrier */
                } else {
#pragma omp for schedule(static)
                    for (int k = 0; k < n_keep; k++) {
                        size_t r = (size_t)keep[k];
                        for (int i = 0; i < d; i++) x[r * d + i] = round_to(m, x[r * d + i] + B[r * d + i]);
                        rms_norm(m, x + r * d, m->norm, m->norm_eps, in + (size_t)k * d, in_b + (size_t)k * d);
                    } /* implicit barrier */
                }
            }
            if (n_keep > 0) product(m, m->lm_head, m->lm_bias, d, m->vocab, n_keep, in, in_b, logits);
#if defined(__AMX_BF16__) && defined(__AMX_TILE__)
            if (m->amx) amx_end(&saved);
#endif
        }
    }
    free(x), free(in), free(A), free(B), free(attn), free(act), free(in_b), free(attn_b), free(act_b);
    free(qs), free(scores_all);
    return failed ? -1 : 0;
}
