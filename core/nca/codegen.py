"""Code generation: the int8 model as GLSL (plain 330 pair, Shadertoy), OSL and C.

Templates live in ``shaders/`` (``$NAME`` placeholders); every target embeds the same
dequantised float32 tables W, B (eq. 2) and K (eq. 1), printed with 9 significant digits so
each constant is the exact float32 the numpy runtime uses.
"""

from string import Template

from ..paths import SHADERS
from .rule import perception_kernels


def _numbers(values):
    return ", ".join(f"{float(v):.9g}" for v in values.ravel())


def _template(name, **values):
    return Template((SHADERS / name).read_text()).substitute(values)


def generate(model, target, state=None, steps_before=0):
    """Sources for ``target`` as {file-name suffix: text}; "" is the main file.

    OSL embeds ``state`` (C, N, N), the texture ``steps_before`` steps from the seed."""
    w, b = model.weights(quantized=True)
    rgba_texels = -(-model.channels // 4)
    tables = dict(CHANNELS=model.channels, PARAMS=model.params, W_SIZE=w.size, W_VALUES=_numbers(w),
                  B_VALUES=_numbers(b), K_SIZE=9 * model.channels,
                  K_VALUES=_numbers(perception_kernels(model.channels)))
    if target == "c":
        return {"": _template("nca.c", **tables)}
    if target == "osl":
        return {"": _template("nca.osl", GRID=state.shape[1], STEPS_BEFORE=steps_before, STATE_SIZE=state.size,
                              STATE_VALUES=_numbers(state.transpose(1, 2, 0)), **tables)}
    rule = _template("nca_rule.glsl", TEXELS=rgba_texels, **tables)
    if target == "glsl":
        return {"": _template("nca_update.frag", RULE=rule), ".display": _template("nca_display.frag", TEXELS=rgba_texels)}
    if target == "shadertoy":
        return {"": _template("nca_shadertoy_buffer_a.glsl", RULE=rule),
                ".image": _template("nca_shadertoy_image.glsl", TEXELS=rgba_texels)}
    raise ValueError(f"unknown target {target!r}")
