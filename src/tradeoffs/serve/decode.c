/* One decode step of a Llama-family model for M sequences, one new token each, in C.
 *
 * This is the same computation as tradeoffs/serve/llama.py (read that first: it is the reference,
 * and it says why each step is there), for the case that dominates serving: every running request
 * decodes one token. At small batches such a step is bound by reading the weights, and the PyTorch
 * version spends about half of its time in per-operation overhead (30 layers x ~40 small ops) and in
 * matrix-vector kernels that are not tuned for one row. Here a step is one OpenMP parallel region:
 *
 *   - each weight matrix is split by rows between the threads and streamed once, with software
 *     prefetch, for all M sequences at once (matrix_rows below);
 *   - the small per-token work (norms, rotary embedding, residual adds) is repeated by every
 *     thread on its own copy of the activations, so threads meet only after each matrix product and
 *     after attention and SwiGLU (7 barriers per layer);
 *   - attention is split by (sequence, head), SwiGLU by element, between the threads.
 *
 * Numbers: activations are rounded to the model's dtype at the points where the PyTorch version
 * materialises a tensor in that dtype (round_to), and every sum is accumulated in float32, so the
 * results match the PyTorch path to within the summation-order differences of batch non-invariance.
 *
 * Built by tradeoffs/serve/native.py with the system's C compiler (cc -O3 -march=native -fopenmp);
 * with AVX512-BF16 the bfloat16 dot products use the CPU's bf16 instructions, elsewhere portable C
 * loops that the compiler vectorises.
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
/* Y[s * ldy + n] = round(W[n] . X[s] + bias[n]) for rows n in [n0, n1) and sequences s < M.
 * X holds the M input vectors, already rounded to the dtype: as floats (xf, K apart) and, for
 * bfloat16, as bf16 bits too (xb, K apart). */
static void matrix_rows(const Model *m, const void *W, const void *bias, int K, int M, const float *xf,
                        const uint16_t *xb, float *Y, int ldy, int n0, int n1) {
    int n = n0;
#if defined(__AVX512BF16__)
    if (m->bf16 && K % 32 == 0) {
        const uint16_t *w = (const uint16_t *)W;
        for (; n + 4 <= n1; n += 4) {
            for (int s0 = 0; s0 < M; s0 += 4) {
                int ms = M - s0 < 4 ? M - s0 : 4;
                __m512 acc[4][4];
                for (int r = 0; r < 4; r++)
                    for (int s = 0; s < 4; s++) acc[r][s] = _mm512_setzero_ps();
                for (int k = 0; k < K; k += 32) {
                    __m512bh x[4];
                    for (int s = 0; s < ms; s++) x[s] = (__m512bh)_mm512_loadu_si512(xb + (size_t)(s0 + s) * K + k);
                    for (int r = 0; r < 4; r++) {
                        const uint16_t *row = w + (size_t)(n + r) * K + k;
                        if (s0 == 0) _mm_prefetch((const char *)(row + 8 * (size_t)K), _MM_HINT_T0);
                        __m512bh wv = (__m512bh)_mm512_loadu_si512(row);
                        for (int s = 0; s < ms; s++) acc[r][s] = _mm512_dpbf16_ps(acc[r][s], wv, x[s]);
                    }
                }
                for (int r = 0; r < 4; r++) {
                    float b = bias ? bf16_to_float(((const uint16_t *)bias)[n + r]) : 0.0f;
                    for (int s = 0; s < ms; s++)
                        Y[(size_t)(s0 + s) * ldy + n + r] = round_to(m, _mm512_reduce_add_ps(acc[r][s]) + b);
                }
            }
        }
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

/* This thread's share of the rows of an N-row matrix (in blocks of 4, the kernel's unit). */
static void my_rows(int N, int *n0, int *n1) {
    int t = omp_get_thread_num(), T = omp_get_num_threads();
    int blocks = (N + 3) / 4;
    *n0 = (int)((long)blocks * t / T) * 4;
    *n1 = (int)((long)blocks * (t + 1) / T) * 4;
    if (*n1 > N) *n1 = N;
    if (*n0 > N) *n0 = N;
}

static void product(const Model *m, const void *W, const void *bias, int K, int N, int M, const float *xf,
                    const uint16_t *xb, float *Y) {
    int n0, n1;
    my_rows(N, &n0, &n1);
    matrix_rows(m, W, bias, K, M, xf, xb, Y, N, n0, n1);
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

static void to_bf16(const float *x, uint16_t *out, int n) {
    for (int i = 0; i < n; i++) out[i] = float_to_bf16(x[i]);
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
    const int n_qkv = (H + 2 * KV) * hd, rep = H / KV;
    const int widest = n_qkv > 2 * I ? n_qkv : 2 * I;
    /* Two shared buffers for the products' outputs, used in turn (A: q/k/v and gate/up, B: the output
     * and down projections), so a product never overwrites what a slower thread may still be reading. */
    float *A = malloc(sizeof(float) * M * widest);
    float *B = malloc(sizeof(float) * M * d);
    float *attn = malloc(sizeof(float) * M * H * hd); /* shared: attention output */
    float *act = malloc(sizeof(float) * M * I);       /* shared: SwiGLU output, the down product's input */
    uint16_t *act_b = malloc(sizeof(uint16_t) * M * I);
    int failed = A == NULL || B == NULL || attn == NULL || act == NULL || act_b == NULL;
    const float scale = 1.0f / sqrtf((float)hd);
    if (!failed) {
#pragma omp parallel num_threads(threads) reduction(| : failed)
        {
            int longest = d > I ? d : I, width = 0;
            if (H * hd > longest) longest = H * hd;
            for (int s = 0; s < M; s++) width = positions[s] + 1 > width ? (int)positions[s] + 1 : width;
            float *x = malloc(sizeof(float) * M * d);         /* this thread's residual stream */
            float *in = malloc(sizeof(float) * M * longest);  /* the next product's input, rounded */
            uint16_t *in_b = malloc(sizeof(uint16_t) * M * longest);
            float *rot = malloc(sizeof(float) * M * (H + KV) * hd); /* rotated q and k */
            float *scores = malloc(sizeof(float) * width);
            /* every thread must reach every barrier: one short of memory computes nothing but still waits */
            int ok = x && in && in_b && rot && scores;
            for (int s = 0; s < M && ok; s++)
                for (int i = 0; i < d; i++) x[s * d + i] = weight_at(m, m->embed, (size_t)tokens[s] * d + i);
            for (int L = 0; L < m->n_layers; L++) {
                /* norm, fused q/k/v product */
                for (int s = 0; s < M && ok; s++) rms_norm(m, x + s * d, m->ln1[L], m->eps1[L], in + s * d, in_b + s * d);
                if (ok) product(m, m->w_qkv[L], m->b_qkv[L], d, n_qkv, M, in, in_b, A);
#pragma omp barrier
                /* rotary embedding; thread 0 writes this token's keys and values into the cache */
                for (int s = 0; s < M && ok; s++) {
                    const float *c = m->cos + positions[s] * hd, *sn = m->sin + positions[s] * hd;
                    for (int h = 0; h < H + KV; h++)
                        rotate(m, A + (size_t)s * n_qkv + h * hd, c, sn, rot + ((size_t)s * (H + KV) + h) * hd);
                }
                if (ok && omp_get_thread_num() == 0) {
                    for (int s = 0; s < M; s++)
                        for (int h = 0; h < KV; h++) {
                            size_t at = (((size_t)slots[s] * KV + h) * capacity + positions[s]) * hd;
                            const float *k = rot + ((size_t)s * (H + KV) + H + h) * hd;
                            const float *v = A + (size_t)s * n_qkv + (H + KV + h) * hd;
                            for (int i = 0; i < hd; i++) {
                                cache_put(m, keys[L], at + i, k[i]);
                                cache_put(m, values[L], at + i, v[i]);
                            }
                        }
                }
#pragma omp barrier
                /* attention, one (sequence, head) per work item */
#pragma omp for schedule(static)
                for (int item = 0; item < M * H; item++) {
                    if (!ok) continue;
                    int s = item / H, h = item % H, n = (int)positions[s] + 1;
                    const float *q = rot + ((size_t)s * (H + KV) + h) * hd;
                    size_t base = ((size_t)slots[s] * KV + h / rep) * capacity * hd;
                    float top = -INFINITY, total = 0.0f;
                    for (int j = 0; j < n; j++) {
                        scores[j] = dot_cache(m, q, keys[L], base + (size_t)j * hd, hd) * scale;
                        top = scores[j] > top ? scores[j] : top;
                    }
                    for (int j = 0; j < n; j++) total += scores[j] = expf(scores[j] - top);
                    float *out = attn + ((size_t)s * H + h) * hd;
                    for (int i = 0; i < hd; i++) out[i] = 0.0f;
                    for (int j = 0; j < n; j++) add_scaled_cache(m, scores[j] / total, values[L], base + (size_t)j * hd, hd, out);
                    for (int i = 0; i < hd; i++) out[i] = round_to(m, out[i]);
                } /* implicit barrier */
                /* output projection, residual, norm, gate/up product */
                if (ok) {
                    memcpy(in, attn, sizeof(float) * M * H * hd);
                    if (m->bf16) to_bf16(in, in_b, M * H * hd);
                    product(m, m->w_o[L], m->b_o[L], H * hd, d, M, in, in_b, B);
                }
#pragma omp barrier
                for (int s = 0; s < M && ok; s++) {
                    for (int i = 0; i < d; i++) x[s * d + i] = round_to(m, x[s * d + i] + B[(size_t)s * d + i]);
                    rms_norm(m, x + s * d, m->ln2[L], m->eps2[L], in + s * d, in_b + s * d);
                }
                if (ok) product(m, m->w_gu[L], m->b_gu[L], d, 2 * I, M, in, in_b, A);
#pragma omp barrier
                /* SwiGLU (split between the threads), down product, residual */
#pragma omp for schedule(static)
                for (int item = 0; item < M * I; item++) {
                    int s = item / I, i = item % I;
                    float gate = A[(size_t)s * 2 * I + i], up = A[(size_t)s * 2 * I + I + i];
                    act[item] = round_to(m, round_to(m, gate / (1.0f + expf(-gate))) * up);
                    act_b[item] = float_to_bf16(act[item]);
                } /* implicit barrier */
                if (ok) product(m, m->w_down[L], m->b_down[L], I, d, M, act, act_b, B);
#pragma omp barrier
                for (int s = 0; s < M && ok; s++)
                    for (int i = 0; i < d; i++) x[s * d + i] = round_to(m, x[s * d + i] + B[(size_t)s * d + i]);
            }
            /* final norm and the vocabulary projection, straight into the logits */
            for (int s = 0; s < M && ok; s++) rms_norm(m, x + s * d, m->norm, m->norm_eps, in + s * d, in_b + s * d);
            if (ok) product(m, m->lm_head, m->lm_bias, d, m->vocab, M, in, in_b, logits);
            free(x);
            free(in);
            free(in_b);
            free(rot);
            free(scores);
            failed |= !ok;
        }
    }
    free(A);
    free(B);
    free(attn);
    free(act);
    free(act_b);
    return failed ? -1 : 0;
}
