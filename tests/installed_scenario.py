"""An artist's session with Atelier installed from a zip, run by Blender's own Python (the bpy-only venv).

    BLENDER_USER_RESOURCES=FRESH python installed_scenario.py ZIP WORKDIR [STEP ...]

Installs ZIP with Blender's extension installer, enables it and clicks through the features with
no "Python with torch" set.  Prints one ``STEP {json}`` line per step: ``{"step", "ok", "seconds",
...}``; an operator that cannot run reports its poll message.  Nothing here imports Atelier's
code directly: only Blender and numpy, as in Blender.
"""

import json
import sys
import time
import traceback
from pathlib import Path

import bpy
import numpy as np

ADDON = "bl_ext.user_default.atelier"
ALL_STEPS = ("bake_image", "bake_osl", "auto_draw", "image_to_strokes", "nca_train", "stylize")
# "bake_default" (not in ALL_STEPS: slower) bakes a preset at the panel's own default size and steps


def report(step, **fields):
    print("STEP " + json.dumps({"step": step, **fields}), flush=True)


def save_png(path, pixels):
    """``pixels`` (H, W, 3 or 4; row 0 at the top) as an 8-bit PNG written by Blender."""
    height, width = pixels.shape[:2]
    rgba = np.ones((height, width, 4), np.float32)
    rgba[..., :pixels.shape[2]] = pixels
    image = bpy.data.images.new(Path(path).stem, width, height, alpha=pixels.shape[2] == 4)
    image.pixels.foreach_set(np.ascontiguousarray(rgba[::-1]).ravel())
    image.filepath_raw, image.file_format = str(path), "PNG"
    image.save()
    bpy.data.images.remove(image)
    return path


def plane_with_material():
    bpy.ops.mesh.primitive_plane_add(size=1)
    plane = bpy.context.object
    plane.data.materials.append(bpy.data.materials.new("Artist's material"))
    return plane


def groups():
    return sorted(g.name for g in bpy.data.node_groups if g.name.startswith("μNCA"))


def run_operator(step, operator, check):
    """Call ``operator`` (synchronously: no window) and ``check()`` what it made."""
    started = time.monotonic()
    if not operator.poll():
        try:
            operator()
        except RuntimeError as error:  # Blender puts the poll message in the error
            report(step, ok=False, greyed_out=True, message=str(error))
            return
    try:
        result = operator()
    except RuntimeError as error:
        report(step, ok=False, message=str(error))
        return
    seconds = round(time.monotonic() - started, 2)
    try:
        report(step, ok=result == {"FINISHED"}, seconds=seconds, **check())
    except Exception:
        report(step, ok=False, seconds=seconds, message=traceback.format_exc())


def bake(mode, size, steps):
    scene = bpy.context.scene
    settings = scene.atelier_nca
    settings.mode, settings.size, settings.steps, settings.frames = mode, size, steps, 0
    before = groups()
    return lambda: {"groups": sorted(set(groups()) - set(before)), "model": Path(settings.model).stem}


def main():
    archive, workdir = Path(sys.argv[1]), Path(sys.argv[2])
    steps = sys.argv[3:] or ALL_STEPS
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    bpy.ops.extensions.package_install_files(filepath=str(archive), repo="user_default", enable_on_install=True)
    enabled = ADDON in bpy.context.preferences.addons
    report("install", ok=enabled, seconds=round(time.monotonic() - started, 2),
           torch_modules=[name for name in sys.modules if name == "torch" or name.startswith("torch.")][:1],
           cv2_loaded="cv2" in sys.modules)
    if not enabled:
        return
    scene = bpy.context.scene
    plane_with_material()

    if "bake_image" in steps:
        run_operator("bake_image", bpy.ops.atelier.nca_bake, bake("IMAGE", 64, 200))
    if "bake_default" in steps:
        defaults = scene.atelier_nca.bl_rna.properties
        run_operator("bake_default", bpy.ops.atelier.nca_bake,
                     bake("IMAGE", defaults["size"].default, defaults["steps"].default))
    if "bake_osl" in steps:
        run_operator("bake_osl", bpy.ops.atelier.nca_bake, bake("OSL", 32, 100))
    if "auto_draw" in steps:
        sketch = scene.atelier_sketch
        sketch.count, sketch.columns, sketch.frames = 2, 2, 4
        run_operator("auto_draw", bpy.ops.atelier.sketch_auto_draw,
                     lambda: {"object": bpy.context.active_object.name, "type": bpy.context.active_object.type})
    if "image_to_strokes" in steps:
        cross = np.ones((48, 64, 3), np.float32)
        cross[8:40, 30:34], cross[22:26, 10:54] = 0.0, 0.0
        strokes = scene.atelier_strokes
        strokes.source, strokes.filepath = "FILE", str(save_png(workdir / "cross.png", cross))
        strokes.strokes, strokes.refine = 3, 10
        run_operator("image_to_strokes", bpy.ops.atelier.strokes_image_to_strokes,
                     lambda: {"object": bpy.context.active_object.name, "type": bpy.context.active_object.type})
    if "nca_train" in steps:
        y, x = np.mgrid[:64, :64]
        stripes = np.repeat((0.5 + 0.5 * np.sin(x / 3.0))[..., None], 3, axis=2).astype(np.float32)
        nca = scene.atelier_nca
        nca.exemplar_source, nca.file = "FILE", str(save_png(workdir / "stripes.png", stripes))
        nca.params, nca.minutes = "68", 0.05
        run_operator("nca_train", bpy.ops.atelier.nca_train,
                     lambda: {"model": nca.model, "exists": Path(nca.model).is_file()})
    if "stylize" in steps:
        frames = workdir / "frames"
        frames.mkdir(exist_ok=True)
        rng = np.random.default_rng(0)
        base = rng.random((40, 40, 3)).astype(np.float32)
        for t in range(4):
            save_png(frames / f"{t + 1:04d}.png", np.roll(base, t, axis=1))
        painted = save_png(workdir / "painted.png", 1.0 - base)
        stylize = scene.atelier_stylize
        stylize.frames_dir, stylize.minutes = str(frames), 0.05
        keyframe = stylize.keyframes.add()
        keyframe.frame, keyframe.file = 1, str(painted)
        run_operator("stylize_train", bpy.ops.atelier.stylize_train,
                     lambda: {"model": stylize.model, "frames": len(list(Path(stylize.output_dir).glob("*.png")))})

        def run_summary():
            holder = bpy.data.scenes.get(f"{scene.name} · Stylised")
            return {"frames": len(list(Path(stylize.output_dir).glob("*.png"))),
                    "strips": len(holder.sequence_editor.strips) if holder and holder.sequence_editor else 0,
                    "strips_in_scene": bool(scene.sequence_editor and scene.sequence_editor.strips)}
        run_operator("stylize_run", bpy.ops.atelier.stylize_run, run_summary)
    report("modules", ok=True, torch_loaded="torch" in sys.modules, cv2_loaded="cv2" in sys.modules,
           core=sorted(name.split(".core.", 1)[1] for name in sys.modules if f"{ADDON}.core." in name))


if __name__ == "__main__":
    main()
