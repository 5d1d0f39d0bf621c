/* The sort of the μNCA training loss (core/nca/train.py, _sorted): for each row of floats, the
 * permutation that sorts it.  Compiled at run time by core/nca/fast.py and called through ctypes.
 *
 * Each value becomes a 16-bit key scaled to its row's range, so values closer than 1/65535 of
 * that range may keep their input order (the loss then differs by under 1e-5 relative).  Key and
 * index are packed in one 32-bit word and sorted by a least-significant-digit radix sort, one
 * byte of the key a pass: two passes over a row that stays in the L1 cache, stable, so equal keys
 * keep their input order.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

/* values: rows x n floats (n ≤ 65536); order: rows x n indices, written. */
void nca_argsort_rows(const float *values, int rows, int n, int64_t *order, int threads) {
    #pragma omp parallel num_threads(threads)
    {
        uint32_t *packed = malloc(sizeof(uint32_t) * n), *spare = malloc(sizeof(uint32_t) * n);
        #pragma omp for schedule(static)
        for (int r = 0; r < rows; r++) {
            const float *row = values + (size_t)r * n;
            float low = INFINITY, high = -INFINITY;
            for (int i = 0; i < n; i++) {  /* (comparisons skip NaN; fminf compiled to a library call per value) */
                low = row[i] < low ? row[i] : low;
                high = row[i] > high ? row[i] : high;
            }
            float scale = 65535.0f / (high - low > 1e-30f ? high - low : 1e-30f);
            for (int i = 0; i < n; i++) {
                float key = (row[i] - low) * scale;  /* NaN (a diverged rollout) gets key 0 */
                uint32_t k = key >= 0.0f ? (key < 65535.0f ? (uint32_t)key : 65535u) : 0u;
                packed[i] = k << 16 | (uint32_t)i;
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
