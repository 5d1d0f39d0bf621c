// μNCA for Shadertoy, tab "Image": set iChannel0 to Buffer A (filter: nearest).
#define GRID 128
#define TEXELS $TEXELS
#define ZOOM 2.0

void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    ivec2 cell = ivec2(floor(fragCoord / ZOOM)) % GRID;
    fragColor = vec4(clamp(texelFetch(iChannel0, ivec2(cell.x * TEXELS, cell.y), 0).rgb + 0.5, 0.0, 1.0), 1.0);
}
