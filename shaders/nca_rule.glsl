// μNCA rule (Mordvintsev & Niklasson 2021), $PARAMS parameters, int8 weights dequantised.
// State: one RGBA texture, $TEXELS texel(s) per cell side by side; texel (x*$TEXELS + t, y)
// holds channels 4t..4t+3.  The grid wraps around (torus), so the texture tiles.
const int C = $CHANNELS;
const int TEXELS = $TEXELS;
// W: C rows of 4C columns [s, p, |s|, |p|]; B: bias; K: 3x3 perception filter per channel.
const float W[$W_SIZE] = float[$W_SIZE]($W_VALUES);
const float B[$CHANNELS] = float[$CHANNELS]($B_VALUES);
const float K[$K_SIZE] = float[$K_SIZE]($K_VALUES);

// One step at texel `texel` of a grid of `grid` cells: s + W·[s, p, |s|, |p|] + B.
vec4 nca_update(sampler2D state, ivec2 grid, ivec2 texel) {
    ivec2 cell = ivec2(texel.x / TEXELS, texel.y);
    int part = texel.x - cell.x * TEXELS;
    float s[4 * TEXELS];
    float p[4 * TEXELS];
    for (int c = 0; c < 4 * TEXELS; c++) { s[c] = 0.0; p[c] = 0.0; }
    for (int dy = -1; dy <= 1; dy++) {
        for (int dx = -1; dx <= 1; dx++) {
            ivec2 n = (cell + ivec2(dx, dy) + grid) % grid;
            for (int t = 0; t < TEXELS; t++) {
                vec4 v = texelFetch(state, ivec2(n.x * TEXELS + t, n.y), 0);
                for (int k = 0; k < 4; k++) {
                    int c = 4 * t + k;
                    if (c < C) {
                        p[c] += K[c * 9 + (dy + 1) * 3 + dx + 1] * v[k];
                        if (dx == 0 && dy == 0) s[c] = v[k];
                    }
                }
            }
        }
    }
    vec4 result = vec4(0.0);
    for (int k = 0; k < 4; k++) {
        int i = 4 * part + k;
        if (i < C) {
            float ds = B[i];
            for (int j = 0; j < C; j++) {
                ds += W[i * 4 * C + j] * s[j] + W[i * 4 * C + C + j] * p[j]
                    + W[i * 4 * C + 2 * C + j] * abs(s[j]) + W[i * 4 * C + 3 * C + j] * abs(p[j]);
            }
            result[k] = s[i] + ds;
        }
    }
    return result;
}
