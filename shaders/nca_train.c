/* μNCA training kernels: a rollout of the rule and its exact backward pass through time.
 *
 * Compiled at run time by core/nca/fast.py (cc -O3 -march=native -fopenmp -shared, with
 * -DC=channels) and called through ctypes; the rule is eqs. 1-3 of core/nca/rule.py:
 *
 *     p = K_c * s_c,   y = [s, p, |s|, |p|],   s' = s + W·y + b          (torus wrap)
 *
 * Layout: N samples of C planes of H rows of X cells; sample n uses model n / batch, whose
 * W (C x 4C, row-major) and b (C) start at w + (n / batch)·4C², b + (n / batch)·C.
 * The forward pass keeps only the C-channel state of every step; the backward pass recomputes
 * the perception of each step from it.  All inner loops run along a row of cells so the
 * compiler vectorises them.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define Y (4 * C)
#define V 16  /* cells per chunk of a row: the compiler keeps a chunk's numbers in vector registers */
typedef float vec __attribute__((vector_size(4 * V), aligned(4)));  /* V floats (GCC/Clang vectors) */

/* The rows around row `row` of every channel, padded by one cell on each side (torus wrap),
 * in a ring of three slots: rows row-1, row, row+1 (counted without wrapping) are in slots
 * (row + 2) % 3, row % 3, (row + 1) % 3.  Rows are visited in order, so after row 0 only the
 * row below is new.  A slot row has `stride` floats: width rounded up to V, plus 2 (zeros
 * past the end). */
static void load_rows(const float *s, int height, int width, int row, int stride, float *pad) {
    for (int u = row == 0 ? -1 : row + 1; u <= row + 1; u++) {
        int yy = (u + height) % height;
        for (int c = 0; c < C; c++) {
            const float *line = s + ((size_t)c * height + yy) * width;
            float *dst = pad + (((u + 3) % 3) * C + c) * stride;
            for (int x = 0; x < width; x++) dst[x + 1] = line[x];
            dst[0] = line[width - 1];
            dst[width + 1] = line[0];
        }
    }
}

/* Eq. 1 on one chunk of channel c: p[v] = Σ K[r][d] s[row + r - 1][x0 + v + d - 1]. */
static inline void perceive(const float *kc, const float *pad, int stride, int row, int c, int x0,
                            float s[V], float p[V]) {
    const float *up = pad + (((row + 2) % 3) * C + c) * stride + x0;
    const float *mid = pad + ((row % 3) * C + c) * stride + x0;
    const float *down = pad + (((row + 1) % 3) * C + c) * stride + x0;
    for (int v = 0; v < V; v++) {
        s[v] = mid[v + 1];
        p[v] = kc[0] * up[v] + kc[1] * up[v + 1] + kc[2] * up[v + 2]
             + kc[3] * mid[v] + kc[4] * mid[v + 1] + kc[5] * mid[v + 2]
             + kc[6] * down[v] + kc[7] * down[v + 1] + kc[8] * down[v + 2];
    }
}

static inline float sign(float v) { return (float)((v > 0.0f) - (v < 0.0f)); }

/* One step of eqs. 1-3 on row `row` of one sample: out = s + W·[s, p, |s|, |p|] + b. */
static void step_row(const float *s, float *out, int height, int width, int row, int stride, float *pad,
                     const float *w, const float *b, const float *k) {
    size_t plane = (size_t)height * width;
    load_rows(s, height, width, row, stride, pad);
    for (int x0 = 0; x0 < width; x0 += V) {
        float ds[C][V];
        for (int i = 0; i < C; i++)
            for (int v = 0; v < V; v++) ds[i][v] = b[i];
        for (int c = 0; c < C; c++) {
            float here[V], p[V];
            perceive(k + 9 * c, pad, stride, row, c, x0, here, p);
            for (int i = 0; i < C; i++) {
                const float *wi = w + i * Y;
                for (int v = 0; v < V; v++)
                    ds[i][v] += wi[c] * here[v] + wi[C + c] * p[v] + wi[2 * C + c] * fabsf(here[v])
                              + wi[3 * C + c] * fabsf(p[v]);
            }
        }
        int count = width - x0 < V ? width - x0 : V;
        for (int i = 0; i < C; i++)
            for (int v = 0; v < count; v++)
                out[i * plane + (size_t)row * width + x0 + v] = s[i * plane + (size_t)row * width + x0 + v] + ds[i][v];
    }
}

/* states: (steps + 1) x N x C x H x X floats, states[0] given; fills states[1 .. steps].
 * Samples are independent, so each thread runs whole rollouts (no barrier between steps). */
void nca_forward(float *states, int steps, int samples, int batch, int height, int width,
                 const float *w, const float *b, const float *k, int threads) {
    size_t step_size = (size_t)samples * C * height * width;
    int stride = (width + V - 1) / V * V + 2;
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
 * planes): writes the direct part of dL/ds (identity, s and |s| columns) to g_next and
 * dL/dp = dy_p + sign(p)·dy_|p| to dp, with dy = Wᵀg; adds g·yᵀ and g to dw_row (per lane).
 * rows: scratch for the row's y (4C lines) and g (C lines) of `stride` floats. */
static void backward_row(const float *s, const float *g_all, float *g_next, float *dp, int height, int width,
                         int row, int stride, float *pad, float *rows, const float *w, const float *k,
                         float (*dw_row)[V]) {
    size_t plane = (size_t)height * width, at = (size_t)row * width;
    float (*y)[stride] = (float (*)[stride])rows, (*g)[stride] = y + Y;
    load_rows(s, height, width, row, stride, pad);
    for (int c = 0; c < C; c++)  /* (the row buffer's cells past the width stay 0) */
        memcpy(g[c], g_all + c * plane + at, sizeof(float) * width);
    for (int x0 = 0; x0 < width; x0 += V) {
        int count = width - x0 < V ? width - x0 : V;
        vec dy[Y];
        for (int c = 0; c < C; c++) {
            perceive(k + 9 * c, pad, stride, row, c, x0, y[c] + x0, y[C + c] + x0);
            for (int v = 0; v < V; v++) {
                y[2 * C + c][x0 + v] = fabsf(y[c][x0 + v]);
                y[3 * C + c][x0 + v] = fabsf(y[C + c][x0 + v]);
            }
        }
        vec gi[C];
        for (int i = 0; i < C; i++) gi[i] = *(const vec *)&g[i][x0];
        for (int j = 0; j < Y; j++) {
            vec sum = {0};
            for (int i = 0; i < C; i++) sum += gi[i] * w[i * Y + j];
            dy[j] = sum;
        }
        for (int c = 0; c < C; c++)
            for (int v = 0; v < count; v++) {
                float here = y[c][x0 + v], p = y[C + c][x0 + v];
                g_next[c * plane + at + x0 + v] = g[c][x0 + v] + dy[c][v] + sign(here) * dy[2 * C + c][v];
                dp[c * plane + at + x0 + v] = dy[C + c][v] + sign(p) * dy[3 * C + c][v];
            }
    }
    /* dW += g·yᵀ, two columns of W at a time: their 2C sums stay in vector registers */
    for (int j = 0; j < Y; j += 2) {
        vec acc[2][C] = {{0}};
        for (int x0 = 0; x0 < width; x0 += V) {
            vec y0 = *(const vec *)&y[j][x0], y1 = *(const vec *)&y[j + 1][x0];
            for (int i = 0; i < C; i++) {
                vec gi = *(const vec *)&g[i][x0];
                acc[0][i] += gi * y0;
                acc[1][i] += gi * y1;
            }
        }
        for (int i = 0; i < C; i++) {
            *(vec *)dw_row[i * Y + j] += acc[0][i];
            *(vec *)dw_row[i * Y + j + 1] += acc[1][i];
        }
    }
    for (int i = 0; i < C; i++)
        for (int x0 = 0; x0 < width; x0 += V)
            for (int v = 0; v < V; v++) dw_row[C * Y + i][v] += g[i][x0 + v];
}

/* Backward through time.  grad: N x C x H x X, dL/ds_steps in, dL/ds_0 out; work: the same
 * size again twice.  Adds dL/dW and dL/db (summed over all steps and cells) to dw and db. */
void nca_backward(const float *states, float *grad, float *work, int steps, int samples, int batch,
                  int height, int width, const float *w, const float *k, float *dw, float *db, int threads) {
    size_t plane = (size_t)height * width, sample = C * plane, step_size = samples * sample;
    int models = (samples + batch - 1) / batch, stride = (width + V - 1) / V * V + 2;
    float *buffers[2] = {grad, work}, *dp_all = work + step_size;
    #pragma omp parallel num_threads(threads)
    {
        float *pad = calloc((size_t)3 * C * stride, sizeof(float));
        float (*dw_row)[V] = malloc(sizeof(float[C * Y + C][V]));  /* one step's dW and db, per lane */
        float *rows = calloc((size_t)(Y + C) * stride, sizeof(float));
        double *dw_local = calloc((size_t)models * (C * Y + C), sizeof(double));
        #pragma omp for schedule(dynamic, 1)
        for (int n = 0; n < samples; n++) {
            const float *wn = w + (size_t)(n / batch) * C * Y;
            double *dwn = dw_local + (size_t)(n / batch) * C * Y;
            double *dbn = dw_local + (size_t)models * C * Y + (n / batch) * C;
            float *dp = dp_all + n * sample;
            for (int t = steps - 1; t >= 0; t--) {
                const float *g = buffers[(steps - 1 - t) % 2] + n * sample;
                float *g_next = buffers[(steps - t) % 2] + n * sample;
                memset(dw_row, 0, sizeof(float[C * Y + C][V]));
                for (int row = 0; row < height; row++)
                    backward_row(states + t * step_size + n * sample, g, g_next, dp, height, width, row,
                                 stride, pad, rows, wn, k, dw_row);
                for (int i = 0; i < C * Y + C; i++) {
                    float sum = 0.0f;
                    for (int v = 0; v < V; v++) sum += dw_row[i][v];
                    if (i < C * Y) dwn[i] += sum; else dbn[i - C * Y] += sum;
                }
                /* the transpose of eq. 1: dL/ds += Σ K[r][d] dp[row - r + 1][x - d + 1], i.e. eq. 1
                 * with the filter flipped both ways */
                for (int row = 0; row < height; row++) {
                    load_rows(dp, height, width, row, stride, pad);
                    for (int c = 0; c < C; c++) {
                        float flipped[9], unused[V], back[V];
                        for (int i = 0; i < 9; i++) flipped[i] = k[9 * c + 8 - i];
                        float *out = g_next + c * plane + (size_t)row * width;
                        for (int x0 = 0; x0 < width; x0 += V) {
                            int count = width - x0 < V ? width - x0 : V;
                            perceive(flipped, pad, stride, row, c, x0, unused, back);
                            for (int v = 0; v < count; v++) out[x0 + v] += back[v];
                        }
                    }
                }
            }
        }
        #pragma omp critical
        {
            for (int i = 0; i < models * C * Y; i++) dw[i] += (float)dw_local[i];
            for (int i = 0; i < models * C; i++) db[i] += (float)dw_local[models * C * Y + i];
        }
        free(pad);
        free(dw_row);
        free(rows);
        free(dw_local);
    }
    if (steps % 2 == 1)  /* the last dL/ds_0 was written to work */
        memcpy(grad, work, sizeof(float) * step_size);
}
