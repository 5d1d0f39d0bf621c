"""Stylise in real Blender: render with motion vectors, Train & Stylise, VSE strip, render plugin."""

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

from core.imageio import read_image, write_image
from core.stylize.frames import read_frames, read_motion
from core.stylize.guides import warp

from blender_helpers import stylised_strips

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "demo"))


def test_render_train_stylise_and_render_plugin(blender, tmp_path):
    bpy = blender
    from stylize import build_scene
    scene = build_scene(bpy, frames=3, size=48, samples=2)
    settings = scene.atelier_stylize
    with bpy.context.temp_override(scene=scene):
        bpy.ops.atelier.stylize_render_motion(directory=str(tmp_path / "renders"))
        frames = Path(settings.frames_dir)
        assert sorted(p.name for p in frames.iterdir()) == ["0001.png", "0002.png", "0003.png"]
        previous, following = read_motion(settings.motion_dir, (48, 48))
        assert previous.shape == (3, 48, 48, 2) and np.abs(previous[1:]).max() > 0.1  # the camera moves
        rendered, _ = read_frames(frames)  # the vectors' signs: each neighbour warped onto frame 1 matches it
        for neighbour, flow in ((0, previous[1]), (2, following[1])):  # (0.28 measured, 1.0 with a sign wrong)
            error = np.abs(warp(rendered[neighbour], flow) - rendered[1]).mean()
            assert error < 0.6 * np.abs(rendered[neighbour] - rendered[1]).mean()
        assert not scene.view_layers[0].use_pass_vector and scene.render.image_settings.file_format == "PNG"

        with pytest.raises(RuntimeError, match="at least one painted keyframe"):
            bpy.ops.atelier.stylize_train()
        painted = tmp_path / "painted.png"
        write_image(painted, 1.0 - read_image(frames / "0001.png", 3))
        item = settings.keyframes.add()
        item.image = bpy.data.images.load(str(painted))
        item.frame = 1  # the Blender frame painted over (its render is frames/0001.png)
        settings.minutes = 0.05
        before = {p.name: p.read_bytes() for p in frames.iterdir()}
        assert bpy.ops.atelier.stylize_train() == {"FINISHED"}
        output = Path(settings.output_dir)
        assert output == frames.with_name("frames_stylised")
        assert sorted(p.name for p in output.iterdir()) == sorted(before)
        assert {p.name: p.read_bytes() for p in frames.iterdir()} == before  # renders untouched
        strip = stylised_strips(bpy, scene)[0]
        assert strip.frame_final_duration == 3 and strip.channel == 1
        assert not scene.sequence_editor, "a strip in the scene would replace its next render"

        assert bpy.ops.atelier.stylize_run() == {"FINISHED"}  # a second output never replaces the first
        assert Path(settings.output_dir).name == "frames_stylised_2"
        assert max(s.channel for s in stylised_strips(bpy, scene)) == 2

        settings.after_render = True
        scene.render.filepath = str(tmp_path / "farm" / "shot_")
        client = importlib.import_module("bl_ext.atelier_dev.atelier.addon.worker_client")
        started = []
        original = client.WorkerJob.__init__

        def counting(job, argv, *args, **kwargs):
            started.append(argv[:2])
            original(job, argv, *args, **kwargs)

        client.WorkerJob.__init__ = counting
        try:
            bpy.ops.render.render(animation=True, scene=scene.name)
        finally:
            client.WorkerJob.__init__ = original
        assert started == [["stylize", "follow"]]  # one worker for the whole render
        shown = bpy.data.images["Atelier · Stylised"]  # the latest stylised frame, for an Image editor
        assert Path(shown.filepath).name == "shot_0003.png"
    stylised = sorted(p.name for p in (tmp_path / "farm_stylised").iterdir())
    assert stylised == ["shot_0001.png", "shot_0002.png", "shot_0003.png"]
    assert read_image(tmp_path / "farm_stylised" / "shot_0002.png").shape == (48, 48, 3)
