"""Interactive stylisation from the command line: a running `atelier stylize live --watch` picks up a
painted change without restarting, the previews change where the painting changed, and stopping
keeps a loadable model while every preview on disk stays a whole image."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

from blender_helpers import REPO_ROOT, stylised_strips
from core.imageio import read_image, write_image

SIZE, FRAMES = 48, 6
REGION = (slice(8, 28), slice(8, 28))


def sequence(folder):
    rng = np.random.default_rng(0)
    base = rng.random((SIZE // 4, SIZE // 4, 3)).astype(np.float32).repeat(4, 0).repeat(4, 1)
    frames = folder / "frames"
    for t in range(FRAMES):
        write_image(frames / f"{t + 1:04d}.png", np.roll(base, t, axis=1))
    key = write_image(folder / "key.png", 1.0 - base)
    return frames, key


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_live_session_follows_a_painted_change_and_keeps_the_model_when_stopped(tmp_path):
    frames, key = sequence(tmp_path)
    previews, model = tmp_path / "previews", tmp_path / "live.safetensors"
    session = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "stylize", "live", "--frames", str(frames), "--keyframe", f"0={key}",
         "--preview", "1,4", "--watch", "-o", str(previews), "--model", str(model)],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env=dict(os.environ, ATELIER_THREADS="1"))
    try:
        preview = previews / "0002.png"
        wait_for(preview.exists, 120, "the first previews")
        time.sleep(4)  # a few preview rounds on the first painting
        before = read_image(preview, 3)
        painted = read_image(key, 3)
        painted[REGION] = (1.0, 0.0, 0.0)
        write_image(key, painted)  # atomic, as a painting program saves

        def changed_there():
            now = read_image(preview, 3)  # never a half-written file: the reads always decode
            return np.abs(now - before)[REGION].max() > 0.2
        wait_for(changed_there, 60, "the previews to show the painted change")
        assert session.poll() is None  # the same process all along: no restart
        session.send_signal(signal.SIGTERM)
        out, _ = session.communicate(timeout=60)
    finally:
        if session.poll() is None:
            session.kill()
    assert session.returncode == 0
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["keyframe_changes"] >= 1 and summary["model"] == str(model)
    from core.stylize.model import load
    generator, meta = load(model)
    assert meta["training"]["live"] and meta["training"]["steps"] == summary["steps"]
    assert sorted(p.name for p in previews.iterdir()) == ["0002.png", "0005.png"]  # no temporary files left


def test_blender_live_session_sends_painted_pixels_and_shows_previews(blender, tmp_path):
    """The add-on's half, window-less: painting over a keyframe image reaches the worker, the previews
    appear as images and strips, no tick stalls Blender, and Stop keeps and selects the model."""
    bpy = blender
    import importlib
    live = importlib.import_module("bl_ext.atelier_dev.atelier.addon.live")
    images = importlib.import_module("bl_ext.atelier_dev.atelier.addon.images")
    frames, key = sequence(tmp_path)
    scene = bpy.context.scene
    settings = scene.atelier_stylize
    settings.frames_dir, settings.live_previews = str(frames), "2, 5"
    item = settings.keyframes.add()
    painting = images.array_to_image("Painted key", read_image(key, 4), pack=False)
    item.frame, item.image = 1, painting
    session = live.LiveSession(scene)
    try:
        names = [session.image_name(p) for p in session.preview_positions]
        wait_for(lambda: session.tick() and all(n in bpy.data.images for n in names), 120, "preview images")
        assert len(stylised_strips(bpy, scene)) == 2
        watched = session.keyframes[0][1]
        before = read_image(watched, 3)
        pixels = images.image_to_array(painting)
        pixels[REGION] = (1.0, 0.0, 0.0, 1.0)
        painting.pixels.foreach_set(np.ascontiguousarray(pixels[::-1]).ravel())  # as a paint stroke leaves it
        assert painting.is_dirty
        session.tick()
        assert np.abs(read_image(watched, 3) - before)[REGION].max() > 0.5  # the worker's file has the stroke
        wait_for(lambda: session.tick() and session.figures.get("changes", 0) >= 1, 60, "the worker to see it")
    finally:
        message = session.stop()
    assert message.startswith("Live stopped after"), message
    assert settings.model.endswith(".safetensors") and "stylize_live_" in settings.model
    assert session.stalls <= 1, (session.stalls, session.slowest)  # main-thread work per tick stays short


def test_the_averaged_weights_follow_a_change_at_once_and_settle_later():
    """The previews' moving average restarts its warm-up at a keyframe change: its first step after the
    change moves it most of the way to the trained weights, while long after a change it moves little."""
    import torch
    from core.stylize.live import LiveTrainer
    from core.stylize.model import CONFIGS
    rng = np.random.default_rng(0)
    inputs = rng.random((2, 48, 48, 7)).astype(np.float32)
    painting = rng.random((48, 48, 3)).astype(np.float32)
    config = dict(CONFIGS["fast"], batch=2)
    trainer = LiveTrainer(inputs, {0: painting}, {0: np.ones((48, 48), np.float32)}, config, torch.device("cpu"))

    def gap():
        return sum(float((a - g).detach().abs().sum()) for a, g in zip(trainer.averaged.parameters(),
                                                               trainer.generator.parameters()))
    for _ in range(60):
        trainer.step()
    settled_before = gap()
    trainer.step()
    settled_after = gap()
    painting[REGION] = 1.0 - painting[REGION]
    assert trainer.update_keyframe(0, painting) is not None
    for _ in range(25):
        trainer.step()
    before_change_step = gap()
    trainer.update_keyframe(0, 1.0 - painting)  # another change: the average restarts its warm-up
    trainer.step()
    assert gap() < 0.5 * before_change_step
    assert settled_after > 0.5 * settled_before  # settled: one step barely closes the gap
