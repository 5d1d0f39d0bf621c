/* μNCA texture (Mordvintsev & Niklasson 2021), $PARAMS parameters, int8 weights dequantised.
 * One self-contained file:  cc -O2 -o nca nca.c -lm
 *   ./nca WIDTH HEIGHT STEPS OUT.ppm            grow from a uniform-noise seed, write the colours
 *   ./nca WIDTH HEIGHT STEPS OUT.f32 [IN.f32]   raw float32 state, C planes of HEIGHT rows (top first)
 * Library use: copy nca_step() and the three tables.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define C $CHANNELS
/* W: C rows of 4C columns [s, p, |s|, |p|]; B: bias; K: 3x3 perception filter per channel. */
static const float W[$W_SIZE] = {$W_VALUES};
static const float B[C] = {$B_VALUES};
static const float K[$K_SIZE] = {$K_VALUES};

/* One step on the torus: out = s + W·[s, p, |s|, |p|] + B, with p_c = K_c * s_c. */
void nca_step(const float *s, float *out, int width, int height) {
    for (int y = 0; y < height; y++) {
        for (int x = 0; x < width; x++) {
            float here[C], p[C];
            for (int c = 0; c < C; c++) {
                const float *plane = s + (size_t)c * width * height;
                float sum = 0.0f;
                for (int dy = -1; dy <= 1; dy++)
                    for (int dx = -1; dx <= 1; dx++)
                        sum += K[c * 9 + (dy + 1) * 3 + dx + 1]
                             * plane[(size_t)((y + dy + height) % height) * width + (x + dx + width) % width];
                p[c] = sum;
                here[c] = plane[(size_t)y * width + x];
            }
            for (int i = 0; i < C; i++) {
                const float *w = W + i * 4 * C;
                float ds = B[i];
                for (int j = 0; j < C; j++)
                    ds += w[j] * here[j] + w[C + j] * p[j] + w[2 * C + j] * fabsf(here[j]) + w[3 * C + j] * fabsf(p[j]);
                out[(size_t)i * width * height + (size_t)y * width + x] = here[i] + ds;
            }
        }
    }
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s WIDTH HEIGHT STEPS OUT.ppm|OUT.f32 [IN.f32]\n", argv[0]);
        return 2;
    }
    int width = atoi(argv[1]), height = atoi(argv[2]), steps = atoi(argv[3]);
    size_t n = (size_t)C * width * height;
    float *s = malloc(n * sizeof(float)), *t = malloc(n * sizeof(float));
    if (!s || !t || width < 1 || height < 1) { fprintf(stderr, "bad size\n"); return 2; }
    if (argc > 5) {
        FILE *f = fopen(argv[5], "rb");
        if (!f || fread(s, sizeof(float), n, f) != n) { fprintf(stderr, "%s: cannot read %zu floats\n", argv[5], n); return 2; }
        fclose(f);
    } else {
        unsigned long long state = 88172645463325252ULL;  /* xorshift seed, uniform in [-0.5, 0.5) */
        for (size_t i = 0; i < n; i++) {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            s[i] = (float)(state >> 40) / 16777216.0f - 0.5f;
        }
    }
    for (int k = 0; k < steps; k++) { nca_step(s, t, width, height); float *swap = s; s = t; t = swap; }
    FILE *f = fopen(argv[4], "wb");
    if (!f) { fprintf(stderr, "%s: cannot write\n", argv[4]); return 2; }
    if (strstr(argv[4], ".f32")) {
        fwrite(s, sizeof(float), n, f);
    } else {
        fprintf(f, "P6\n%d %d\n255\n", width, height);
        for (int i = 0; i < width * height; i++)
            for (int c = 0; c < 3; c++) {
                float v = s[(size_t)c * width * height + i] + 0.5f;
                fputc((int)lrintf(255.0f * (v < 0 ? 0 : v > 1 ? 1 : v)), f);
            }
    }
    fclose(f);
    free(s); free(t);
    return 0;
}
