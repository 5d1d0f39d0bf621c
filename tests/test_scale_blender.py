"""Stylise with Model from Blender on a Ray cluster: the REAL loopback cluster of tests/test_scale.py
(`ray start --head` on 127.0.0.1, 2 worker slots, stopped by its process ids), the "Ray cluster"
preference set; Stylise with Model's frames equal those of the local run; Esc keeps the frames done and
the next run continues that folder; Stylise after render hands the rendered frames to the cluster when
the render ends; an unreachable or malformed address is reported naming the preference, and without
Ray in Blender's Python the button is greyed out."""

import importlib
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from blender_helpers import ADDON_MODULE, stylised_strips
from core.cli import run_command
from core.imageio import read_image, write_image
from core.progress import SilentProgress
from core.scale.cluster import free_port
from core.scale.stylize import MANIFEST
from test_scale import make_sequence, names, ray_cluster, same_frames, wait_for  # noqa: F401 (ray_cluster: fixture)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "demo"))  # demo/stylize.py: build_scene

FRAMES = 8


def test_stylise_with_model_on_the_ray_cluster(blender, ray_cluster, tmp_path):  # noqa: F811
    bpy = blender
    addon = importlib.import_module(f"{ADDON_MODULE}.addon.preferences")
    jobs = importlib.import_module(f"{ADDON_MODULE}.addon.jobs")
    frames = make_sequence(tmp_path / "frames", 32, count=FRAMES)
    painted = tmp_path / "painted.png"
    write_image(painted, 1.0 - read_image(frames / "frame_0001.png"))
    model = addon.models_dir() / "ray_test.safetensors"
    run_command(["stylize", "train", "--frames", str(frames), "--keyframe", f"0={painted}", "--steps", "3",
                 "--patch", "16", "-o", str(model)], SilentProgress())
    scene = bpy.context.scene
    settings = scene.atelier_stylize
    settings.frames_dir = str(frames)
    settings.model = str(model)
    prefs = addon.preferences()

    here = tmp_path / "here"  # the local run (the operator with the preference empty: tests/test_stylize_blender.py)
    run_command(["stylize", "run", str(model), "--frames", str(frames), "-o", str(here)], SilentProgress())

    # Esc during the cluster run (the worker's cancel, as the modal operator sends it): the frames done stay
    prefs.ray_address = ray_cluster.address
    original = jobs.start_worker
    sent = []

    def cancelling(argv):
        sent.append(list(argv))
        job = original(argv)
        plain_wait = job.wait

        def wait(on_message=None, timeout=None):
            def watch(message):
                if message.get("type") == "progress" and "on Ray" in message.get("stage", ""):
                    job.cancel()
            return plain_wait(watch, timeout)

        job.wait = wait
        return job

    jobs.start_worker = cancelling
    try:
        assert bpy.ops.atelier.stylize_run() == {"FINISHED"}  # FINISHED: something was kept
    finally:
        jobs.start_worker = original
    wait_for(lambda: not ray_cluster.workers("stylize_chunk"), 30, "the cancelled Ray tasks to stop")
    unfinished = frames.with_name("frames_stylised")
    assert sent[0][-3:] == ["--ray", ray_cluster.address, "--resume"]
    assert sent[0][sent[0].index("-o") + 1] == str(unfinished)
    assert (unfinished / MANIFEST).is_dir() and settings.resume_output == str(unfinished)
    assert settings.output_dir == "" and not stylised_strips(bpy, scene)

    # the next run continues that folder on the cluster; its frames equal the local run's, bitwise
    assert bpy.ops.atelier.stylize_run() == {"FINISHED"}
    summary = json.loads(settings.last_summary)
    assert Path(summary["output"]) == unfinished and summary["ray"] == ray_cluster.address
    assert summary["skipped"] + summary["computed"] == FRAMES and summary["workers"] == 2
    assert names(unfinished) == names(here)
    same_frames(unfinished, here, names(here))
    assert settings.resume_output == "" and len(stylised_strips(bpy, scene)) == 1

    # Stylise after render with the cluster set: what the render wrote goes to the cluster when it ends
    from stylize import build_scene
    rendered = build_scene(bpy, frames=3, size=32, samples=1)
    rendered.cycles.use_denoising = False
    rendered.atelier_stylize.after_render = True
    rendered.atelier_stylize.model = str(model)
    rendered.render.filepath = str(tmp_path / "farm" / "shot_")
    bpy.ops.render.render(animation=True, scene=rendered.name)
    farm = tmp_path / "farm_stylised"
    assert names(farm) == ["shot_0001.png", "shot_0002.png", "shot_0003.png"]
    assert len(list((farm / MANIFEST).glob("shot_*.json"))) == 3  # written by the cluster run, with records
    run_command(["stylize", "run", str(model), "--frames", str(tmp_path / "farm"), "-o", str(tmp_path / "farm_here")],
                SilentProgress())
    same_frames(farm, tmp_path / "farm_here", names(farm))

    # a cluster that cannot be reached, or an address that is not one: told at once, naming the preference
    prefs.ray_address = f"127.0.0.1:{free_port()}"
    with pytest.raises(RuntimeError, match=r"Ray cluster 127\.0\.0\.1:\d+ \(Preferences > Add-ons > Atelier > "
                                           r"Ray cluster\) cannot be reached"):
        bpy.ops.atelier.stylize_run()
    prefs.ray_address = "render-head"
    with pytest.raises(RuntimeError, match="write auto or the head's host:port"):
        bpy.ops.atelier.stylize_run()
    # another machine is the network: only with Blender's online access allowed (off in this bpy)
    prefs.ray_address = "10.0.0.5:6379"
    assert not bpy.app.online_access
    with pytest.raises(RuntimeError, match="Blender's online access is off"):
        bpy.ops.atelier.stylize_run()
    assert len(stylised_strips(bpy, scene)) == 1


def test_ray_missing_greys_out_stylise_with_model(blender, tmp_path, monkeypatch):
    bpy = blender
    addon = importlib.import_module(f"{ADDON_MODULE}.addon.preferences")
    bpy.context.scene.atelier_stylize.frames_dir = str(tmp_path)
    assert bpy.ops.atelier.stylize_run.poll()
    addon.preferences().ray_address = "auto"
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else find_spec(name, *a))
    assert not bpy.ops.atelier.stylize_run.poll()
    with pytest.raises(RuntimeError, match=r"Blender's Python has no Ray.*empty Ray cluster"):
        bpy.ops.atelier.stylize_run()


def test_rendered_frames_as_position_ranges(blender):
    stylize = importlib.import_module(f"{ADDON_MODULE}.addon.stylize")
    files = [Path(f"/r/shot_{i:04d}.png") for i in range(1, 8)]
    wanted = [Path("/r/shot_0001.png"), Path("/r/shot_0002.png"), Path("/r/shot_0003.png"), Path("/r/shot_0005.png"),
              Path("/r/shot_0007.png")]
    assert stylize.position_ranges(files, wanted) == "0-2,4,6"
