"""Sketch-RNN in real Blender: Auto-Draw, Complete, Reinterpret, Morph; the user's strokes stay untouched."""

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

from blender_helpers import ADDON_MODULE, run_blender_script

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "demo"))


def sketch_module():
    return importlib.import_module(f"{ADDON_MODULE}.addon.sketch")


def user_drawing(bpy, name, shape):
    from bl_ext.atelier_dev.atelier.addon import gpencil
    t = np.linspace(0, 1, 12)
    if shape == "cross":
        lines = [np.c_[t, np.zeros(12), t], np.c_[t, np.zeros(12), 1 - t]]
    else:
        lines = [np.c_[np.cos(6.28 * t), np.zeros(12), np.sin(6.28 * t)], np.c_[t - 0.5, np.zeros(12), t * 0]]
    obj = gpencil.create_drawing(bpy.context, name, [{"points": line, "radius": 0.01} for line in lines])
    bpy.context.view_layer.objects.active = obj
    return obj


def snapshot(bpy, obj):
    from bl_ext.atelier_dev.atelier.addon import gpencil
    return [s["points"].copy() for s in gpencil.read_strokes(obj)]


def test_auto_draw_complete_reinterpret_morph(blender):
    bpy = blender
    module = sketch_module()
    from bl_ext.atelier_dev.atelier.addon import gpencil
    settings = bpy.context.scene.atelier_sketch
    from bl_ext.atelier_dev.atelier.addon.library import library
    models = {entry.name: entry.path for entry in library().entries("sketch")}
    assert {"kanji", "hershey"} <= set(models)
    settings.model = str(models["kanji"])
    settings.count, settings.columns, settings.frames = 4, 2, 12
    assert bpy.ops.atelier.sketch_auto_draw() == {"FINISHED"}
    drawn = bpy.context.active_object
    assert drawn.type == "GREASEPENCIL" and drawn.name.startswith("Sketch kanji")
    assert len(drawn.data.layers[0].frames) > 3  # the pen draws over frames
    bpy.context.scene.frame_set(1)
    early = sum(len(s["points"]) for s in gpencil.read_strokes(drawn))
    bpy.context.scene.frame_set(12)
    final = gpencil.read_strokes(drawn)
    assert sum(len(s["points"]) for s in final) > early > 0
    radii = np.concatenate([s["radius"] for s in final])
    assert radii.min() < radii.max() <= 0.012 * 1.2  # pressure-like, around the chosen radius

    cross = user_drawing(bpy, "Cross", "cross")
    before = snapshot(bpy, cross)
    objects = set(bpy.data.objects)
    assert bpy.ops.atelier.sketch_complete() == {"FINISHED"}
    bpy.context.view_layer.objects.active = cross
    assert bpy.ops.atelier.sketch_reinterpret() == {"FINISHED"}
    new = set(bpy.data.objects) - objects
    assert sorted(o.name for o in new) == ["Cross completion", "Cross reinterpreted"]
    bpy.context.scene.frame_set(200)
    assert all(gpencil.read_strokes(o) for o in new)

    ring = user_drawing(bpy, "Ring", "ring")
    bpy.context.view_layer.objects.active = cross
    settings.morph_target, settings.morph_frames = ring, 5
    bpy.context.scene.frame_set(1)
    assert bpy.ops.atelier.sketch_morph() == {"FINISHED"}
    morph = bpy.data.objects["Cross morph"]
    assert [f.frame_number for f in morph.data.layers[0].frames] == [1, 2, 3, 4, 5]
    bpy.context.scene.frame_set(1)
    for frame in range(1, 6):
        assert gpencil.read_strokes(morph, frame)

    for original, now in zip(before, snapshot(bpy, cross)):
        np.testing.assert_array_equal(original, now)  # the user's strokes were only read
    assert len(before) == len(snapshot(bpy, cross))


def test_operators_report_bad_input_instead_of_crashing(blender):
    bpy = blender
    settings = bpy.context.scene.atelier_sketch
    with pytest.raises(RuntimeError, match="(?i)select a grease-pencil drawing"):
        bpy.ops.atelier.sketch_complete()
    mesh = bpy.data.objects.new("Mesh", bpy.data.meshes.new("Mesh"))
    bpy.context.scene.collection.objects.link(mesh)
    bpy.context.view_layer.objects.active = mesh
    with pytest.raises(RuntimeError, match="(?i)select a grease-pencil drawing"):
        bpy.ops.atelier.sketch_reinterpret()
    cross = user_drawing(bpy, "Cross", "cross")
    with pytest.raises(RuntimeError, match="Morph to"):
        bpy.ops.atelier.sketch_morph()
    settings.morph_target = cross
    with pytest.raises(RuntimeError, match="Morph to"):
        bpy.ops.atelier.sketch_morph()
    assert set(o.name for o in bpy.data.objects) == {"Mesh", "Cross"}


def test_auto_draw_renders_ink_in_a_subprocess(tmp_path):
    out = tmp_path / "sketch.png"
    result = run_blender_script(f"""
import sys
sys.path.insert(0, {str(Path(__file__).resolve().parent.parent / "demo")!r})
import sketch
scene = sketch.build_scene(bpy, resolution=64)
settings = scene.atelier_sketch
settings.count, settings.columns, settings.size, settings.radius = 1, 1, 3.0, 0.06
bpy.ops.atelier.sketch_auto_draw()
scene.frame_set(scene.frame_start + scene.atelier_sketch.frames)
scene.render.filepath = {str(out)!r}
bpy.ops.render.render(write_still=True, scene=scene.name)
""", timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    from core.imageio import read_image
    image = read_image(out, channels=3)
    assert image.min() < 0.3 and image.mean() > 0.7  # dark ink on white paper
