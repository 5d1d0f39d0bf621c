// μNCA for Shadertoy, tab "Buffer A": set iChannel0 to Buffer A itself (filter: nearest).
// The state lives in the bottom-left GRID*TEXELS x GRID texels of the buffer.
#define GRID 128

$RULE

float hash(ivec2 q, int k) {  // uniform noise in [-0.5, 0.5): the seed
    uint n = uint(q.x) * 1973u + uint(q.y) * 9277u + uint(k) * 26699u;
    n = (n << 13u) ^ n;
    n = n * (n * n * 15731u + 789221u) + 1376312589u;
    return float(n & 0x00ffffffu) / float(0x01000000) - 0.5;
}

void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    ivec2 texel = ivec2(fragCoord);
    if (texel.x >= GRID * TEXELS || texel.y >= GRID) { fragColor = vec4(0.0); return; }
    if (iFrame == 0) {
        fragColor = vec4(hash(texel, 0), hash(texel, 1), hash(texel, 2), hash(texel, 3));
        return;
    }
    fragColor = nca_update(iChannel0, ivec2(GRID), texel);
}
