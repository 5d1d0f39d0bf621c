/* μNCA training kernels: a rollout of the rule and its exact backward pass through time.
 *
 * Built by core/nca/kernels.py (shipped prebuilt for each x86-64 level, or compiled here with
 * cc -O3 -march=native -fopenmp -shared; -DC=channels) and called through ctypes by
 * core/nca/fast.py; the rule is eqs. 1-3 of core/nca/rule.py:
 *
 *     p = K_c * s_c,   y = [s, p, |s|, |p|],   s' = s + W·y + b          (torus wrap)
 *
 * Layout: N samples of H rows, each row the C channels' lines of X cells one after another,
 * (N, H, C, X), so the cells a row of the rule reads and writes are one memory stream instead
 * of C (a few per cent faster in both passes than C planes of H rows; bench/RESULTS.md).
 * Sample n uses model n / batch, whose W (C x 4C, row-major) and b (C) start at
 * w + (n / batch)·4C², b + (n / batch)·C.
 * The forward pass keeps only the C-channel state of every step; the backward pass recomputes
 * the perception of each step from it.  All inner loops run along a row of cells so the
 * compiler vectorises them.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nca_vector.h"  /* chunks of a row are V cells, one vector register's worth, so that a
                            chunk's C sums stay in registers (wider chunks spill them to memory,
                            and the backward pass then runs several times slower) */

#define Y (4 * C)
/* The dW tile: DW_I rows of W by DW_J columns of its s and p half, each with its |s| or |p|
 * twin (|y| is taken on the fly, so the row buffer holds only s and p) */
#define DW_I 2
#define DW_J (2 * C % 3 == 0 ? 3 : 2)

/* The rows around row `row` of every channel, padded by one cell on each side (torus wrap),
 * in a ring of three slots: rows row-1, row, row+1 (counted without wrapping) are in slots
 * (row + 2) % 3, row % 3, (row + 1) % 3.  Rows are visited in order, so after row 0 only the
 * row below is new.  A slot row has `stride` floats: width rounded up to V, plus 2 (zeros
 * past the end). */
static void load_rows(const float *s, int height, int width, int row, int stride, float *pad) {
    for (int u = row == 0 ? -1 : row + 1; u <= row + 1; u++) {
        int yy = (u + height) % height;
        for (int c = 0; c < C; c++) {
            const float *line = s + ((size_t)yy * C + c) * width;
            float *dst = pad + (((u + 3) % 3) * C + c) * stride;
            for (int x = 0; x < width; x++) dst[x + 1] = line[x];
            dst[0] = line[width - 1];
            dst[width + 1] = line[0];
        }
    }
}

/* Keeps a loaded vector in a register: GCC would fold the load into each multiply-add that uses
 * it, one load per FMA, and the loads, not the FMAs, then bound the loop. */
#if defined(__x86_64__) || defined(__i386__)
#define IN_REGISTER(v) __asm__("" : "+x"(v))
#else
#define IN_REGISTER(v) (void)0
#endif

/* Eq. 1 on one chunk of channel c: p[v] = Σ K[r][d] s[row + r - 1][x0 + v + d - 1]; also the
 * chunk's own states.  Results stay in registers: storing them for the next loop to read back
 * stalled on store forwarding. */
static inline void perceive(const float *kc, const float *pad, int stride, int row, int c, int x0,
                            vec *s, vec *p) {
    const float *up = pad + (((row + 2) % 3) * C + c) * stride + x0;
    const float *mid = pad + ((row % 3) * C + c) * stride + x0;
    const float *down = pad + (((row + 1) % 3) * C + c) * stride + x0;
    *s = AT(mid + 1);
    *p = kc[0] * AT(up) + kc[1] * AT(up + 1) + kc[2] * AT(up + 2)
       + kc[3] * AT(mid) + kc[4] * AT(mid + 1) + kc[5] * AT(mid + 2)
       + kc[6] * AT(down) + kc[7] * AT(down + 1) + kc[8] * AT(down + 2);
}

static inline vec vsign(vec v) { return __builtin_convertvector((v < 0.0f) - (v > 0.0f), vec); }
static inline vec vabs(vec v) { return (vec)((ivec)v & 0x7fffffff); }

/* From 6 channels on, step_row computes the W·y product on two chunks at once in blocks of
 * OUT_BLOCK outputs (rows of W): 12 or 8 sums in registers, and each broadcast weight serves both
 * chunks, a third fewer loads than one chunk at a time (a quarter less time for the 588-parameter
 * forward pass; bench/RESULTS.md).  With 4 channels, feeding each chunk's C sums straight from its
 * perception is faster (they all fit in registers; pairing chunks takes 12 % longer). */
#define CHUNKS (C >= 6 ? 2 : 1)
#define OUT_BLOCK (C % 6 == 0 ? 6 : 4)

/* One step of eqs. 1-3 on row `row` of one sample: out = s + W·[s, p, |s|, |p|] + b. */
static void step_row(const float *s, float *out, int height, int width, int row, int stride, float *pad,
                     const float *w, const float *b, const float *k) {
    size_t line = width, at_row = (size_t)row * C * width;
    load_rows(s, height, width, row, stride, pad);
#if C >= 6
    for (int x0 = 0; x0 < width; x0 += CHUNKS * V) {
        vec y[Y][CHUNKS];
        for (int h = 0; h < CHUNKS; h++)
            for (int c = 0; c < C; c++) {
                vec here, p;
                perceive(k + 9 * c, pad, stride, row, c, x0 + h * V, &here, &p);
                y[c][h] = here;
                y[C + c][h] = p;
                y[2 * C + c][h] = vabs(here);
                y[3 * C + c][h] = vabs(p);
            }
        for (int i0 = 0; i0 < C; i0 += OUT_BLOCK) {
            vec ds[OUT_BLOCK][CHUNKS];
            for (int i = 0; i < OUT_BLOCK; i++)
                for (int h = 0; h < CHUNKS; h++) ds[i][h] = b[i0 + i] - (vec){0};
            for (int j = 0; j < Y; j++) {
                #pragma GCC unroll 8
                for (int i = 0; i < OUT_BLOCK; i++) {
                    float wij = w[(i0 + i) * Y + j];
                    for (int h = 0; h < CHUNKS; h++) ds[i][h] += wij * y[j][h];
                }
            }
            for (int h = 0; h < CHUNKS; h++) {
                int start = x0 + h * V, count = width - start < V ? width - start : V;
                for (int i = 0; i < OUT_BLOCK; i++)
                    for (int v = 0; v < count; v++) {
                        size_t at = at_row + (i0 + i) * line + start + v;
                        out[at] = s[at] + ds[i][h][v];
                    }
            }
        }
    }
#else  /* 4 channels: each chunk's perception feeds its C sums at once, all in registers */
    for (int x0 = 0; x0 < width; x0 += V) {
        vec ds[C];
        for (int i = 0; i < C; i++) ds[i] = b[i] - (vec){0};
        for (int c = 0; c < C; c++) {
            vec here, p;
            perceive(k + 9 * c, pad, stride, row, c, x0, &here, &p);
            vec here_abs = vabs(here), p_abs = vabs(p);
            #pragma GCC unroll 16
            for (int i = 0; i < C; i++) {
                const float *wi = w + i * Y;
                ds[i] += wi[c] * here;  /* four fused multiply-adds into the accumulator */
                ds[i] += wi[C + c] * p;
                ds[i] += wi[2 * C + c] * here_abs;
                ds[i] += wi[3 * C + c] * p_abs;
            }
        }
        int count = width - x0 < V ? width - x0 : V;
        for (int i = 0; i < C; i++)
            for (int v = 0; v < count; v++)
                out[at_row + i * line + x0 + v] = s[at_row + i * line + x0 + v] + ds[i][v];
    }
#endif
}

/* states: (steps + 1) x N x C x H x X floats, states[0] given; fills states[1 .. steps].
 * Samples are independent, so each thread runs whole rollouts (no barrier between steps). */
void nca_forward(float *states, int steps, int samples, int batch, int height, int width,
                 const float *w, const float *b, const float *k, int threads) {
    size_t step_size = (size_t)samples * C * height * width;
    int stride = (width + CHUNKS * V - 1) / (CHUNKS * V) * (CHUNKS * V) + 2;  /* whole groups of chunks */
    #pragma omp parallel num_threads(threads)
    {
        float *pad = calloc((size_t)3 * C * stride, sizeof(float));
        #pragma omp for schedule(dynamic, 1)
        for (int n = 0; n < samples; n++) {
            const float *wn = w + (size_t)(n / batch) * C * Y, *bn = b + (size_t)(n / batch) * C;
            for (int t = 0; t < steps; t++) {
                float *s = states + t * step_size + (size_t)n * C * height * width;
                for (int row = 0; row < height; row++)
                    step_row(s, s + step_size, height, width, row, stride, pad, wn, bn, k);
            }
        }
        free(pad);
    }
}

/* Backward through one step for row `row` of one sample, given g = dL/ds' (the sample's
 * cells): writes the direct part of dL/ds (identity, s and |s| columns) to g_next, and
 * dL/dp = dy_p + sign(p)·dy_|p| (dy = Wᵀg) to the row's slot of the ring `dp`, laid out as
 * load_rows lays out states; adds g·yᵀ and g to dw_row (per lane).
 * rows: scratch for the row's s and p (2C lines) and g (C lines) of `stride` floats.
 * Cells go two chunks at a time: each weight of Wᵀg, broadcast once, serves both, and the dW tile
 * below stays in registers (a fifth less time for the 588-parameter backward pass; bench/RESULTS.md). */
static void backward_row(const float *s, const float *g_all, float *g_next, float *dp, int height, int width,
                         int row, int stride, float *pad, float *rows, const float *w, const float *k,
                         float (*dw_row)[V]) {
    size_t line = width, at = (size_t)row * C * width;
    float (*y)[stride] = (float (*)[stride])rows, (*g)[stride] = y + 2 * C;
    float *dp_row = dp + (size_t)(row % 3) * C * stride;
    load_rows(s, height, width, row, stride, pad);
    for (int c = 0; c < C; c++)  /* (the row buffer's cells past the width stay 0) */
        memcpy(g[c], g_all + at + c * line, sizeof(float) * width);
    for (int x0 = 0; x0 < width; x0 += 2 * V) {
        for (int h = 0; h < 2; h++)
            for (int c = 0; c < C; c++) {
                vec here, p;
                perceive(k + 9 * c, pad, stride, row, c, x0 + h * V, &here, &p);
                *(vec *)&y[c][x0 + h * V] = here;
                *(vec *)&y[C + c][x0 + h * V] = p;
            }
        for (int c = 0; c < C; c++) {  /* the four columns of Wᵀg that channel c needs */
            vec dy[4][2] = {{0}};
            for (int i = 0; i < C; i++) {
                vec gi[2];
                for (int h = 0; h < 2; h++) {
                    gi[h] = *(const vec *)&g[i][x0 + h * V];
                    IN_REGISTER(gi[h]);
                }
                for (int q = 0; q < 4; q++) {
                    float wq = w[i * Y + q * C + c];
                    for (int h = 0; h < 2; h++) dy[q][h] += wq * gi[h];
                }
            }
            for (int h = 0; h < 2; h++) {
                int start = x0 + h * V, count = width - start < V ? width - start : V;
                if (count <= 0) break;
                vec here = *(const vec *)&y[c][start], p = *(const vec *)&y[C + c][start];
                vec direct = *(const vec *)&g[c][start] + dy[0][h] + vsign(here) * dy[2][h];
                vec through_p = dy[1][h] + vsign(p) * dy[3][h];
                if (count == V) {
                    *(vec *)&g_next[at + c * line + start] = direct;
                    *(vec *)&dp_row[c * stride + start + 1] = through_p;
                } else {
                    for (int v = 0; v < count; v++) {
                        g_next[at + c * line + start + v] = direct[v];
                        dp_row[c * stride + start + v + 1] = through_p[v];
                    }
                }
            }
        }
    }
    for (int c = 0; c < C; c++) {  /* torus wrap of the padded row */
        dp_row[c * stride] = dp_row[c * stride + width];
        dp_row[c * stride + width + 1] = dp_row[c * stride + 1];
    }
    /* dW += g·yᵀ tile by tile: the tile's sums stay in registers */
    for (int i0 = 0; i0 < C; i0 += DW_I)
        for (int j0 = 0; j0 < 2 * C; j0 += DW_J) {
            vec acc[DW_I][DW_J][2] = {{{0}}};
            for (int x0 = 0; x0 < width; x0 += V) {
                vec gi[DW_I];
                for (int i = 0; i < DW_I; i++) {
                    gi[i] = *(const vec *)&g[i0 + i][x0];
                    IN_REGISTER(gi[i]);
                }
                for (int j = 0; j < DW_J; j++) {
                    vec yj = *(const vec *)&y[j0 + j][x0];
                    IN_REGISTER(yj);
                    vec yj_abs = vabs(yj);
                    for (int i = 0; i < DW_I; i++) {
                        acc[i][j][0] += gi[i] * yj;
                        acc[i][j][1] += gi[i] * yj_abs;
                    }
                }
            }
            for (int i = 0; i < DW_I; i++)
                for (int j = 0; j < DW_J; j++) {
                    *(vec *)dw_row[(i0 + i) * Y + j0 + j] += acc[i][j][0];
                    *(vec *)dw_row[(i0 + i) * Y + 2 * C + j0 + j] += acc[i][j][1];
                }
        }
    for (int i = 0; i < C; i++)
        for (int x0 = 0; x0 < width; x0 += V)
            for (int v = 0; v < V; v++) dw_row[C * Y + i][v] += g[i][x0 + v];
}

/* The transpose of eq. 1 for row `row`: g_next += Σ K[r][d] dp[row - r + 1][x - d + 1], i.e. eq. 1
 * with the filter flipped both ways, reading dp rows row-1, row, row+1 from the ring. */
static void add_transposed_perception(const float *dp, int height, int width, int row, int stride,
                                      const float *k, float *g_next) {
    for (int c = 0; c < C; c++) {
        float flipped[9];
        vec unused, back;
        for (int i = 0; i < 9; i++) flipped[i] = k[9 * c + 8 - i];
        float *out = g_next + ((size_t)row * C + c) * width;
        for (int x0 = 0; x0 < width; x0 += V) {
            int count = width - x0 < V ? width - x0 : V;
            perceive(flipped, dp, stride, row, c, x0, &unused, &back);
            for (int v = 0; v < count; v++) out[x0 + v] += back[v];
        }
    }
}

/* Backward through time.  grad: N x C x H x X, dL/ds_steps in, dL/ds_0 out; work: the same size
 * again.  Adds dL/dW and dL/db (summed over all steps and cells) to dw and db.
 * Row by row, dL/dp lives only in a ring of three padded rows: the transposed perception of
 * row r runs as soon as row r + 1 is done, while g_next's row is still in cache.  Rows 0 and 1
 * are kept aside for the torus wrap of the last row and of row 0, which is finished last. */
void nca_backward(const float *states, float *grad, float *work, int steps, int samples, int batch,
                  int height, int width, const float *w, const float *k, float *dw, float *db, int threads) {
    size_t sample = (size_t)C * height * width, step_size = samples * sample;
    int models = (samples + batch - 1) / batch, stride = (width + 2 * V - 1) / (2 * V) * (2 * V) + 2;  /* pairs of chunks */
    size_t slot = (size_t)C * stride;
    float *buffers[2] = {grad, work};
    #pragma omp parallel num_threads(threads)
    {
        float *pad = calloc((size_t)3 * slot, sizeof(float));
        float *dp = calloc((size_t)3 * slot, sizeof(float)), *first = malloc(sizeof(float) * 3 * slot);
        float (*dw_row)[V] = malloc(sizeof(float[C * Y + C][V]));  /* one step's dW and db, per lane */
        float *rows = calloc((size_t)3 * C * stride, sizeof(float));
        double *dw_local = calloc((size_t)models * (C * Y + C), sizeof(double));
        #pragma omp for schedule(dynamic, 1)
        for (int n = 0; n < samples; n++) {
            const float *wn = w + (size_t)(n / batch) * C * Y;
            double *dwn = dw_local + (size_t)(n / batch) * C * Y;
            double *dbn = dw_local + (size_t)models * C * Y + (n / batch) * C;
            for (int t = steps - 1; t >= 0; t--) {
                const float *g = buffers[(steps - 1 - t) % 2] + n * sample;
                float *g_next = buffers[(steps - t) % 2] + n * sample;
                memset(dw_row, 0, sizeof(float[C * Y + C][V]));
                for (int row = 0; row < height; row++) {
                    backward_row(states + t * step_size + n * sample, g, g_next, dp, height, width, row,
                                 stride, pad, rows, wn, k, dw_row);
                    if (row < 2)
                        memcpy(first + row * slot, dp + row * slot, sizeof(float) * slot);
                    else
                        add_transposed_perception(dp, height, width, row - 1, stride, k, g_next);
                }
                /* row height-1 reads row 0 as the row below it, in slot height % 3 */
                memcpy(dp + (height % 3) * slot, first, sizeof(float) * slot);
                add_transposed_perception(dp, height, width, height - 1, stride, k, g_next);
                /* row 0 reads rows height-1, 0, 1 in slots 2, 0, 1 */
                memcpy(first + 2 * slot, dp + ((height - 1) % 3) * slot, sizeof(float) * slot);
                add_transposed_perception(first, height, width, 0, stride, k, g_next);
                for (int i = 0; i < C * Y + C; i++) {
                    float sum = 0.0f;
                    for (int v = 0; v < V; v++) sum += dw_row[i][v];
                    if (i < C * Y) dwn[i] += sum; else dbn[i - C * Y] += sum;
                }
            }
        }
        #pragma omp critical
        {
            for (int i = 0; i < models * C * Y; i++) dw[i] += (float)dw_local[i];
            for (int i = 0; i < models * C; i++) db[i] += (float)dw_local[models * C * Y + i];
        }
        free(pad);
        free(dp);
        free(first);
        free(dw_row);
        free(rows);
        free(dw_local);
    }
    if (steps % 2 == 1)  /* the last dL/ds_0 was written to work */
        memcpy(grad, work, sizeof(float) * step_size);
}
