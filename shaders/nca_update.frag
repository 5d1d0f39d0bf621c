#version 330
// μNCA update pass (plain GLSL 330): draw a full-screen quad into a target the size of
// `state` (float RGBA), reading the previous state; swap the two textures every step.
uniform sampler2D state;
out vec4 fragColor;

$RULE

void main() {
    ivec2 size = textureSize(state, 0);
    fragColor = nca_update(state, ivec2(size.x / TEXELS, size.y), ivec2(gl_FragCoord.xy));
}
