/* Kernels of the μNCA training loss (core/nca/train.py, SlicedWasserstein), built by
 * core/nca/kernels.py (prebuilt or compiled here) and called through ctypes by core/nca/fast.py:
 *
 * - the projections of sampled image patches on random directions, and their backward pass;
 * - the sort of each direction's projections (_sorted): for each row of floats, the
 *   permutation that sorts it.  Each value becomes a 16-bit key scaled to its row's range, so
 *   values closer than 1/65535 of that range may keep their input order (the loss then differs
 *   by under 1e-5 relative).  Key and index are packed in one 32-bit word and sorted by a
 *   least-significant-digit radix sort, one byte of the key a pass: two passes over a row that
 *   stays in the L1 cache, stable, so equal keys keep their input order.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nca_vector.h"

#define LANES 4                 /* vectors of directions a pick's sums take */
#define BLOCK (LANES * V)      /* directions a pass over the picks projects on */
#define TILE 8                 /* picks whose sums are stored, then written out transposed */

/* Flat offsets of a patch's D = 3·patch² values from its top-left cell, in (c, dy, dx) order. */
static int *patch_offsets(int height, int width, int patch) {
    int *offsets = malloc(sizeof(int) * 3 * patch * patch), d = 0;
    for (int c = 0; c < 3; c++)
        for (int dy = 0; dy < patch; dy++)
            for (int dx = 0; dx < patch; dx++) offsets[d++] = (c * height + dy) * width + dx;
    return offsets;
}

/* out[i][p][k] = Σ_d dirs[p][d] · images[i][corners[k] + offset d]: the projection of each
 * sampled patch of each image on each direction.  images: N x 3 x H x W; corners: n top-left
 * cells (row·W + col); dirs: P x D; out: N x P x n.  Each pair of picks is projected on BLOCK
 * directions at a time, 2·LANES sums in registers, the pixel broadcast and the directions' column
 * shared by them. */
void nca_project_patches(const float *images, int count, int height, int width, const int64_t *corners,
                         int n, int patch, const float *dirs, int directions, float *out, int threads) {
    int depth = 3 * patch * patch, blocks = (directions + BLOCK - 1) / BLOCK;
    int *offsets = patch_offsets(height, width, patch);
    float *columns = calloc((size_t)blocks * depth * BLOCK, sizeof(float));  /* dirsᵀ by blocks, zero-padded */
    for (int p = 0; p < directions; p++)
        for (int d = 0; d < depth; d++) columns[((size_t)(p / BLOCK) * depth + d) * BLOCK + p % BLOCK] = dirs[p * depth + d];
    int tiles = (n + TILE - 1) / TILE;
    #pragma omp parallel for schedule(static) num_threads(threads)
    for (long job = 0; job < (long)count * tiles * blocks; job++) {
        int image = job / ((long)tiles * blocks), k0 = job / blocks % tiles * TILE, block = job % blocks;
        const float *pixels = images + (size_t)image * 3 * height * width;
        const float *column = columns + (size_t)block * depth * BLOCK;
        float sums[TILE][BLOCK];
        for (int k = k0; k < k0 + TILE && k < n; k += 2) {
            const float *a = pixels + corners[k], *b = pixels + corners[k + 1 < n ? k + 1 : k];
            vec first[LANES] = {{0}}, second[LANES] = {{0}};
            for (int d = 0; d < depth; d++) {
                float x = a[offsets[d]], y = b[offsets[d]];
                for (int j = 0; j < LANES; j++) {
                    vec dir = AT(column + d * BLOCK + j * V);
                    first[j] += x * dir;
                    second[j] += y * dir;
                }
            }
            memcpy(sums[k - k0], first, sizeof first);
            memcpy(sums[k - k0 + 1], second, sizeof second);
        }
        for (int p = block * BLOCK; p < directions && p < (block + 1) * BLOCK; p++)
            for (int k = k0; k < k0 + TILE && k < n; k++)
                out[((size_t)image * directions + p) * n + k] = sums[k - k0][p - block * BLOCK];
    }
    free(columns);
    free(offsets);
}

/* The backward pass of nca_project_patches: grad_images[i][corners[k] + offset d] +=
 * Σ_p grad[i][p][k] · dirs[p][d].  A tile of picks' gradients is first transposed into the
 * L1 cache; then each pick's patch gradient, SUMS vectors of cells at a time, is summed in
 * registers and added to its image.  Threads take whole images, so overlapping patches never
 * race. */
#define SUMS 10
void nca_project_patches_backward(const float *grad, int count, int height, int width, const int64_t *corners,
                                  int n, int patch, const float *dirs, int directions, float *grad_images,
                                  int threads) {
    int depth = 3 * patch * patch, padded = (depth + V - 1) / V * V;
    int *offsets = patch_offsets(height, width, patch);
    float *rows = calloc((size_t)directions * padded, sizeof(float));  /* dirs, each row zero-padded */
    for (int p = 0; p < directions; p++) memcpy(rows + (size_t)p * padded, dirs + (size_t)p * depth, sizeof(float) * depth);
    #pragma omp parallel for schedule(static) num_threads(threads)
    for (int image = 0; image < count; image++) {
        float *target = grad_images + (size_t)image * 3 * height * width;
        float (*tile)[TILE] = malloc(sizeof(float[TILE]) * directions), *cells = malloc(sizeof(float) * padded);
        for (int k0 = 0; k0 < n; k0 += TILE) {
            int picks = n - k0 < TILE ? n - k0 : TILE;
            for (int p = 0; p < directions; p++)
                memcpy(tile[p], grad + ((size_t)image * directions + p) * n + k0, sizeof(float) * picks);
            for (int k = 0; k < picks; k++) {
                for (int d0 = 0; d0 < padded; d0 += SUMS * V) {
                    int lanes = (padded - d0) / V < SUMS ? (padded - d0) / V : SUMS;
                    vec sum[SUMS] = {{0}};
                    if (lanes == SUMS)  /* (a constant count: the sums stay in registers) */
                        for (int p = 0; p < directions; p++)
                            for (int j = 0; j < SUMS; j++) sum[j] += tile[p][k] * AT(rows + (size_t)p * padded + d0 + j * V);
                    else
                        for (int p = 0; p < directions; p++)
                            for (int j = 0; j < lanes; j++) sum[j] += tile[p][k] * AT(rows + (size_t)p * padded + d0 + j * V);
                    memcpy(cells + d0, sum, sizeof(vec) * lanes);
                }
                float *at = target + corners[k0 + k];
                for (int d = 0; d < depth; d++) at[offsets[d]] += cells[d];
            }
        }
        free(tile);
        free(cells);
    }
    free(rows);
    free(offsets);
}

/* values: rows x n floats (n ≤ 65536); order: rows x n indices, written. */
void nca_argsort_rows(const float *values, int rows, int n, int64_t *order, int threads) {
    #pragma omp parallel num_threads(threads)
    {
        uint32_t *packed = malloc(sizeof(uint32_t) * n), *spare = malloc(sizeof(uint32_t) * n);
        #pragma omp for schedule(static)
        for (int r = 0; r < rows; r++) {
            const float *row = values + (size_t)r * n;
            float low = INFINITY, high = -INFINITY;
            #pragma omp simd reduction(min:low) reduction(max:high)
            for (int i = 0; i < n; i++) {  /* (comparisons skip NaN; fminf compiled to a library call per value) */
                low = row[i] < low ? row[i] : low;
                high = row[i] > high ? row[i] : high;
            }
            float scale = 65535.0f / (high - low > 1e-30f ? high - low : 1e-30f);
            for (int i = 0; i < n; i++) {
                float key = (row[i] - low) * scale;  /* NaN (a diverged rollout) gets key 0 */
                int k = key >= 0.0f ? (key < 65535.0f ? (int)key : 65535) : 0;  /* (int: vectorises) */
                packed[i] = (uint32_t)k << 16 | (uint32_t)i;
            }
            uint32_t counts[2][257] = {{0}};
            for (int i = 0; i < n; i++) {
                counts[0][(packed[i] >> 16 & 255) + 1]++;
                counts[1][(packed[i] >> 24) + 1]++;
            }
            for (int pass = 0; pass < 2; pass++)  /* counts -> where each byte value's run starts */
                for (int d = 0; d < 256; d++) counts[pass][d + 1] += counts[pass][d];
            for (int i = 0; i < n; i++) spare[counts[0][packed[i] >> 16 & 255]++] = packed[i];
            int64_t *out = order + (size_t)r * n;
            for (int i = 0; i < n; i++) out[counts[1][spare[i] >> 24]++] = spare[i] & 0xffff;
        }
        free(packed);
        free(spare);
    }
}
