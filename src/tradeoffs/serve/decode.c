/* One decode step of a Llama-family model for M sequences, one new token each, in C.
 *
 * This is the same computation as tradeoffs/serve/llama.py (read that first: it is the reference,
 * and it says why each step is there), for the case that dominates serving: every running request
 * decodes one token. At small batches such a step is bound by reading the weights, and the PyTorch
 * version spends about half of its time in per-operation overhead (30 layers x ~40 small ops) and in
 * matrix-vector kernels that are not tuned for one row. Here a step is one OpenMP parallel region:
 *
 *   - each weight matrix is streamed once, with software prefetch, for all M sequences at once
 *     (matrix_rows below), its rows handed out to the threads in chunks as they come free;
 *   - the small per-token work (norms, rotary embedding, residual adds) is repeated by every
 *     thread on its own copy of the activations, so threads meet only at the end of each matrix
 *     product, of attention and of SwiGLU (6 times per layer);
 *   - attention is shared out by (sequence, head), SwiGLU by spans of elements.
 *
 * Numbers: activations are rounded to the model's dtype at the points where the PyTorch version
 * materialises a tensor in that dtype (round_to), and every sum is accumulated in float32, so the
 * results match the PyTorch path to within the summation-order differences of batch non-invariance.
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
    int amx;     /* 1: blocked products run on AMX tiles (at most 16 sequences) */
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
#if defined(__AVX512BF16__)
/* The blocked layout of a bfloat16 weight (N, K), N a multiple of 16 (native.py makes it): block b
 * holds rows 16b .. 16b+15 as (K/2, 16, 2), i.e. for each pair of columns the 16 rows' two values side
 * by side. One 64-byte load then feeds 16 outputs, and one bf16 dot-product instruction per sequence
 * (its column pair broadcast) accumulates all 16: no horizontal sums, and the blocks are read in
 * memory order. This is oneDNN's and AMX's "VNNI" layout, 16 rows wide. */
int blocked_layout(void) { return 1; }

/* 16 bfloat16 values (a bias) as floats. */
static inline __m512 load_bf16x16(const uint16_t *p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}

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
 * bytes, contiguous), and up to 16 sequences' 32 columns an A tile: one tile instruction does what 16
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

static void amx_rows(const void *W, const void *bias, int K, int M, const uint16_t *xb, float *Y, int ldy,
                     int n0, int n1) {
    float out[16 * 16];
    for (int n = n0; n < n1; n += 16) {
        const uint16_t *blk = (const uint16_t *)W + (size_t)n * K;
        _tile_zero(0);
        for (int k = 0; k < K; k += 32) {
            _tile_loadd(1, xb + k, K * 2);
            _tile_loadd(2, blk + (size_t)k * 16, 64);
            _tile_dpbf16ps(0, 1, 2);
        }
        _tile_stored(0, out, 64);
        __m512 b = bias ? load_bf16x16((const uint16_t *)bias + n) : _mm512_setzero_ps();
        for (int s = 0; s < M; s++)
            store_rounded_bf16x16(Y + (size_t)s * ldy + n, _mm512_add_ps(_mm512_loadu_ps(out + 16 * s), b));
    }
}

/* Configure this thread's tiles for M sequences (C: M x 16 floats, A: M x 32 bf16, B: 16 x 32 bf16),
 * keeping whatever configuration the thread had (oneDNN's, say) to put back after. */
static void amx_begin(int M, TileConfig *saved) {
    TileConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    _tile_storeconfig(saved);
    cfg.palette = 1;
    cfg.rows[0] = cfg.rows[1] = (uint8_t)M;
    cfg.colsb[0] = cfg.colsb[1] = 64;
    cfg.rows[2] = 16;
    cfg.colsb[2] = 64;
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

/* Y[s * ldy + n] = round(W[n] . X[s] + bias[n]) for rows n in [n0, n1) and sequences s < M.
 * X holds the M input vectors, already rounded to the dtype: as floats (xf, K apart) and, for
 * bfloat16, as bf16 bits too (xb, K apart). W is (N, K) row-major, or blocked (m->blocked). */
static void matrix_rows(const Model *m, const void *W, const void *bias, int K, int M, const float *xf,
                        const uint16_t *xb, float *Y, int ldy, int n0, int n1) {
    int n = n0;
#if defined(__AVX512BF16__)
    if (m->blocked) {
#if defined(__AMX_BF16__) && defined(__AMX_TILE__)
        if (m->amx && M <= 16) {
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
    const int unit = m->blocked ? 16 : 4;
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

/* q . cache[at : at + n] and out += p * cache[at : at + n], vectorised for each dtype. */
static float dot_cache(const Model *m, const float *q, const void *cache, size_t at, int n) {
    float acc = 0.0f;
    if (m->bf16) {
        const uint16_t *c = (const uint16_t *)cache + at;
#pragma omp simd reduction(+ : acc)
        for (int i = 0; i < n; i++) acc += q[i] * bf16_to_float(c[i]);
    } else {
        const float *c = (const float *)cache + at;
#pragma omp simd reduction(+ : acc)
        for (int i = 0; i < n; i++) acc += q[i] * c[i];
    }
    return acc;
}

static void add_scaled_cache(const Model *m, float p, const void *cache, size_t at, int n, float *out) {
    if (m->bf16) {
        const uint16_t *c = (const uint16_t *)cache + at;
#pragma omp simd
        for (int i = 0; i < n; i++) out[i] += p * bf16_to_float(c[i]);
    } else {
        const float *c = (const float *)cache + at;
#pragma omp simd
        for (int i = 0; i < n; i++) out[i] += p * c[i];
    }
}

static inline void cache_put(const Model *m, void *cache, size_t i, float v) {
    if (m->bf16)
        ((uint16_t *)cache)[i] = float_to_bf16(v);
    else
        ((float *)cache)[i] = v;
}

/* ------------------------------------------------------------------ the step */
/* Logits (M x vocab, float32) of the next token of M sequences. Sequence s feeds tokens[s] at position
 * positions[s] and keeps its keys/values in slot slots[s] of each layer's cache, a contiguous
 * (slots, kv_heads, capacity, head_dim) tensor (keys[layer], values[layer]); its earlier positions are
 * already there, this token's are written. Returns 0, or -1 when memory runs out. */
int decode_step(const Model *m, int M, const int64_t *tokens, const int64_t *positions, const int64_t *slots,
                void *const *keys, void *const *values, int capacity, int threads, float *logits) {
    const int d = m->hidden, H = m->heads, KV = m->kv_heads, hd = m->head_dim, I = m->inter;
    const int n_qkv = (H + 2 * KV) * hd, rep = H / KV, widest = n_qkv > 2 * I ? n_qkv : 2 * I;
    const int longest = d > H * hd ? d : H * hd;
    int width = 0;
    for (int s = 0; s < M; s++) width = positions[s] + 1 > width ? (int)positions[s] + 1 : width;
    /* Shared: the products' outputs in two buffers used in turn (A: q/k/v and gate/up, B: the output and
     * down projections), so a product never overwrites what a slower thread may still be reading; the
     * attention and SwiGLU outputs. Per thread: its residual stream, the next product's input, the
     * rotated q and k, attention scores. */
    float *A = malloc(sizeof(float) * M * widest), *B = malloc(sizeof(float) * M * d);
    float *attn = malloc(sizeof(float) * M * longest), *act = malloc(sizeof(float) * M * I);
    uint16_t *attn_b = malloc(sizeof(uint16_t) * M * longest), *act_b = malloc(sizeof(uint16_t) * M * I);
    float *xs = malloc(sizeof(float) * threads * M * d), *ins = malloc(sizeof(float) * threads * M * d);
    uint16_t *ins_b = malloc(sizeof(uint16_t) * threads * M * d);
    float *rots = malloc(sizeof(float) * threads * M * (H + KV) * hd), *scores_all = malloc(sizeof(float) * threads * width);
    int failed = !(A && B && attn && act && attn_b && act_b && xs && ins && ins_b && rots && scores_all);
    const float scale = 1.0f / sqrtf((float)hd);
    if (!failed) {
#pragma omp parallel num_threads(threads)
        {
            const int t = omp_get_thread_num();
            float *x = xs + (size_t)t * M * d, *in = ins + (size_t)t * M * d;
            uint16_t *in_b = ins_b + (size_t)t * M * d;
            float *rot = rots + (size_t)t * M * (H + KV) * hd, *scores = scores_all + (size_t)t * width;
#if defined(__AMX_BF16__) && defined(__AMX_TILE__)
            TileConfig saved;
            if (m->amx && M <= 16) amx_begin(M, &saved);
#endif
            for (int s = 0; s < M; s++)
                for (int i = 0; i < d; i++) x[s * d + i] = weight_at(m, m->embed, (size_t)tokens[s] * d + i);
            for (int L = 0; L < m->n_layers; L++) {
                /* norm, fused q/k/v product */
                for (int s = 0; s < M; s++) rms_norm(m, x + s * d, m->ln1[L], m->eps1[L], in + s * d, in_b + s * d);
                product(m, m->w_qkv[L], m->b_qkv[L], d, n_qkv, M, in, in_b, A);
                /* rotary embedding of q and k, by every thread */
                for (int s = 0; s < M; s++) {
                    const float *c = m->cos + positions[s] * hd, *sn = m->sin + positions[s] * hd;
                    for (int h = 0; h < H + KV; h++)
                        rotate(m, A + (size_t)s * n_qkv + h * hd, c, sn, rot + ((size_t)s * (H + KV) + h) * hd);
                }
                /* attention, one (sequence, head) per work item: earlier positions from the cache, this
                 * token's key and value from the product; the first head of each group stores them */
#pragma omp for schedule(dynamic, 1)
                for (int item = 0; item < M * H; item++) {
                    int s = item / H, h = item % H, g = h / rep, n = (int)positions[s] + 1;
                    const float *q = rot + ((size_t)s * (H + KV) + h) * hd;
                    const float *k = rot + ((size_t)s * (H + KV) + H + g) * hd;
                    const float *v = A + (size_t)s * n_qkv + (H + KV + g) * hd;
                    size_t base = ((size_t)slots[s] * KV + g) * capacity * hd;
                    float top = -INFINITY, total = 0.0f, *out = attn + ((size_t)s * H + h) * hd;
                    for (int j = 0; j < n - 1; j++) {
                        scores[j] = dot_cache(m, q, keys[L], base + (size_t)j * hd, hd) * scale;
                        top = scores[j] > top ? scores[j] : top;
                    }
                    float own = 0.0f;
                    for (int i = 0; i < hd; i++) own += q[i] * k[i];
                    scores[n - 1] = own * scale;
                    top = scores[n - 1] > top ? scores[n - 1] : top;
                    for (int j = 0; j < n; j++) total += scores[j] = expf(scores[j] - top);
                    /* as torch's CPU flash attention: the exponentials meet the values in the dtype, and
                     * the sum divides once at the end */
                    for (int i = 0; i < hd; i++) out[i] = round_to(m, scores[n - 1]) * v[i];
                    for (int j = 0; j < n - 1; j++)
                        add_scaled_cache(m, round_to(m, scores[j]), values[L], base + (size_t)j * hd, hd, out);
                    for (int i = 0; i < hd; i++) {
                        out[i] = round_to(m, out[i] / total);
                        attn_b[((size_t)s * H + h) * hd + i] = float_to_bf16(out[i]);
                    }
                    if (h % rep == 0) /* nobody reads this column of the cache during this layer */
                        for (int i = 0; i < hd; i++) {
                            cache_put(m, keys[L], base + (size_t)(n - 1) * hd + i, k[i]);
                            cache_put(m, values[L], base + (size_t)(n - 1) * hd + i, v[i]);
                        }
                } /* implicit barrier */
                /* output projection, residual, norm, gate/up product */
                product(m, m->w_o[L], m->b_o[L], H * hd, d, M, attn, attn_b, B);
                for (int s = 0; s < M; s++) {
                    for (int i = 0; i < d; i++) x[s * d + i] = round_to(m, x[s * d + i] + B[(size_t)s * d + i]);
                    rms_norm(m, x + s * d, m->ln2[L], m->eps2[L], in + s * d, in_b + s * d);
                }
                product(m, m->w_gu[L], m->b_gu[L], d, 2 * I, M, in, in_b, A);
                /* SwiGLU (shared out in spans), down product, residual */
#pragma omp for schedule(dynamic, 1)
                for (int item = 0; item < M * 16; item++) {
                    int s = item / 16, i0 = I * (item % 16) / 16, i1 = I * (item % 16 + 1) / 16;
                    const float *gate = A + (size_t)s * 2 * I;
                    swiglu_span(m, gate + i0, gate + I + i0, i1 - i0, act + (size_t)s * I + i0,
                                act_b + (size_t)s * I + i0);
                } /* implicit barrier */
                product(m, m->w_down[L], m->b_down[L], I, d, M, act, act_b, B);
                for (int s = 0; s < M; s++)
                    for (int i = 0; i < d; i++) x[s * d + i] = round_to(m, x[s * d + i] + B[(size_t)s * d + i]);
            }
            /* final norm and the vocabulary projection, straight into the logits */
            for (int s = 0; s < M; s++) rms_norm(m, x + s * d, m->norm, m->norm_eps, in + s * d, in_b + s * d);
            product(m, m->lm_head, m->lm_bias, d, m->vocab, M, in, in_b, logits);
#if defined(__AMX_BF16__) && defined(__AMX_TILE__)
            if (m->amx && M <= 16) amx_end(&saved);
#endif
        }
    }
    free(A), free(B), free(attn), free(act), free(attn_b), free(act_b);
    free(xs), free(ins), free(ins_b), free(rots), free(scores_all);
    return failed ? -1 : 0;
}
