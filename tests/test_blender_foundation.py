"""Atelier in the real Blender: the extension enables, preferences and shared helpers work."""

import json
import sys
import zipfile

import numpy as np
import pytest

from blender_helpers import ADDON_MODULE, REPO_ROOT, run_blender_script


def test_extension_enables_from_a_local_repository(blender):
    addon = blender.context.preferences.addons[ADDON_MODULE]
    assert addon.preferences.device == "AUTO"
    from bl_ext.atelier_dev.atelier.addon.preferences import models_dir
    folder = models_dir()
    assert folder.is_dir() and "atelier" in str(folder)


def test_core_never_imports_bpy():
    offenders = [str(path) for path in (REPO_ROOT / "core").rglob("*.py")
                 if any(line.strip().startswith(("import bpy", "from bpy")) for line in path.read_text().splitlines())]
    assert offenders == []


def test_image_round_trip_keeps_orientation(blender, tmp_path):
    from bl_ext.atelier_dev.atelier.addon import images
    array = np.zeros((4, 6, 4), np.float32)
    array[0, :, 0] = 1.0  # top row red
    array[..., 3] = 1.0
    image = images.array_to_image("probe", array)
    again = images.image_to_array(image)
    np.testing.assert_allclose(again, array, atol=1 / 255)
    path = images.image_file_for_worker(image, tmp_path)
    from core.imageio import read_image
    np.testing.assert_allclose(read_image(path), array, atol=1 / 255)
    second = images.array_to_image("probe", array)
    assert second.name != image.name  # new datablocks never replace the user's


def test_grease_pencil_drawing_is_new_and_animated(blender):
    from bl_ext.atelier_dev.atelier.addon import gpencil
    line = np.c_[np.linspace(0, 1, 20), np.zeros(20), np.zeros(20)]
    strokes = [{"points": line, "radius": 0.02}, {"points": line + [0, 0, 0.5], "radius": 0.01, "color": (1, 0, 0, 1)}]
    obj = gpencil.create_drawing(blender.context, "Sketch", strokes, animate=True, frame_count=10)
    frames = obj.data.layers[0].frames
    assert len(frames) == 10
    blender.context.scene.frame_set(1)
    assert sum(len(s["points"]) for s in gpencil.read_strokes(obj)) < 40
    blender.context.scene.frame_set(10)
    assert [len(s["points"]) for s in gpencil.read_strokes(obj)] == [20, 20]
    still = gpencil.create_drawing(blender.context, "Sketch", strokes)
    assert still.name == "Sketch.001" and len(still.data.layers[0].frames) == 1


def test_grease_pencil_renders_in_a_subprocess(tmp_path):
    out = tmp_path / "gp.png"
    result = run_blender_script(f"""
import numpy as np
from bl_ext.atelier_dev.atelier.addon import gpencil
scene = bpy.context.scene
scene.render.engine = 'BLENDER_EEVEE'
scene.render.resolution_x = scene.render.resolution_y = 64
scene.view_settings.view_transform = 'Standard'
camera = bpy.data.objects.new('Camera', bpy.data.cameras.new('Camera'))
scene.collection.objects.link(camera)
camera.location = (0, -4, 0); camera.rotation_euler = (1.5708, 0, 0)
scene.camera = camera
t = np.linspace(0, 6.28, 60)
gpencil.create_drawing(bpy.context, 'Ring', [{{"points": np.c_[np.cos(t), np.zeros(60), np.sin(t)], "radius": 0.08}},
                                            {{"points": np.c_[0.3 * np.cos(t), np.zeros(60), 0.3 * np.sin(t)],
                                              "radius": 0.08, "color": (0.9, 0.5, 0.1, 1.0)}}])
scene.render.filepath = {str(out)!r}
bpy.ops.render.render(write_still=True)
""", timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    from core.imageio import read_image
    image = read_image(out, channels=3)
    assert image.min() < 0.2  # dark ink on the default world
    warmth = image[:, :, 0] - image[:, :, 2]  # the inner ring keeps its orange though the scene has no lamps
    assert warmth.max() > 0.5, image[np.unravel_index(warmth.argmax(), warmth.shape)]


def test_check_reports_the_workers_python_and_a_broken_interpreter_is_named(blender, tmp_path):
    bpy = blender
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    assert bpy.ops.atelier.check_worker() == {"FINISHED"}
    report = json.loads(prefs.check_report)
    assert report["numpy"] and report["python_version"].startswith("3.11") and report["kernel"]
    assert report["features"]["nca_bake"] and report["image_codec"] == "OpenImageIO"

    bpy.ops.mesh.primitive_plane_add()
    bpy.context.object.data.materials.append(bpy.data.materials.new("Mat"))
    prefs.worker_python = str(tmp_path / "no" / "python")
    for operator in (bpy.ops.atelier.nca_bake, bpy.ops.atelier.check_worker):
        with pytest.raises(RuntimeError, match=r"cannot start the worker's Python.*Python with torch"):
            operator()
    not_python = tmp_path / "not_python"
    not_python.write_text("#!/bin/sh\necho 'this is not Python' >&2\nexit 3\n")
    not_python.chmod(0o755)
    prefs.worker_python = str(not_python)
    with pytest.raises(RuntimeError, match="worker stopped unexpectedly.*this is not Python"):
        bpy.ops.atelier.nca_bake()
    assert not [g for g in bpy.data.node_groups if g.name.startswith("μNCA")]  # nothing made, nothing lost
    prefs.worker_python = ""
