#version 330
// μNCA display pass (plain GLSL 330): RGB = s[0..2] + 0.5, the state tiled over the target.
uniform sampler2D state;
uniform float zoom = 1.0;   // screen pixels per cell
out vec4 fragColor;
const int TEXELS = $TEXELS;

void main() {
    ivec2 size = textureSize(state, 0);
    ivec2 grid = ivec2(size.x / TEXELS, size.y);
    ivec2 cell = ivec2(floor(gl_FragCoord.xy / zoom)) % grid;
    fragColor = vec4(clamp(texelFetch(state, ivec2(cell.x * TEXELS, cell.y), 0).rgb + 0.5, 0.0, 1.0), 1.0);
}
