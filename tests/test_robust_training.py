"""Ctrl-C (or Esc) in the first seconds of a training keeps a usable model: the first checkpoint is
written as soon as the model exists, and the message says where it is."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from blender_helpers import interruptible
from core.errors import Cancelled
from core.imageio import write_image
from core.progress import SilentProgress

ROOT = Path(__file__).resolve().parents[1]


def drawings(folder, count=12):
    """Small SVG drawings (zig-zags), a folder `sketch train` reads."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in rng.uniform(0, 50, (8, 2)))
        (folder / f"{i}.svg").write_text(f'<svg xmlns="http://www.w3.org/2000/svg"><polyline points="{points}"/></svg>')
    return folder


def frames(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "frames"
    for t in range(3):
        write_image(folder / f"frame_{t + 1:04d}.png", rng.uniform(0, 1, (40, 48, 3)))
    painted = tmp_path / "painted.png"
    write_image(painted, rng.uniform(0, 1, (40, 48, 3)))
    return folder, painted


def interrupt_after_start(argv, model, seconds=1.5, timeout=240):
    """Run ``atelier ARGV``, wait until its model exists (at most ``timeout``) plus ``seconds``, send
    SIGINT; returns (exit code, last stdout JSON, stderr)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "core.cli", *argv], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    try:
        deadline = time.monotonic() + timeout
        while not model.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(seconds)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, json.loads(out.strip().splitlines()[-1]), err


def test_sketch_train_ctrl_c_in_the_first_seconds_keeps_a_model(tmp_path):
    from core.sketch.runtime import SketchModel
    model = tmp_path / "m.safetensors"
    code, summary, err = interrupt_after_start(
        ["sketch", "train", str(drawings(tmp_path / "d")), "-o", str(model), "--minutes", "10", "--preset", "small"],
        model)
    assert code == 130, err[-2000:]
    assert summary["cancelled"] and summary["model"] == str(model) and f"kept the model so far: {model}" in err
    SketchModel(model).sample(1, temperature=0.5, max_len=5)  # loadable where Blender loads it
    assert model.with_name(model.name + ".ckpt").is_file()


def test_sketch_first_checkpoint_exists_before_the_first_step(tmp_path, monkeypatch):
    """Stopped inside step 1: the step-0 model (and a checkpoint --resume takes) is on disk."""
    from core.sketch import model as sketch_model
    from core.sketch.runtime import SketchModel

    def stop(*args, **kwargs):
        raise Cancelled()
    monkeypatch.setattr(sketch_model, "reconstruction_loss", stop)
    rng = np.random.default_rng(0)
    sketches = [np.concatenate([rng.uniform(-5, 5, (6, 2)), np.zeros((6, 1))], 1).astype(np.float32) for _ in range(8)]
    hp = dict(sketch_model.PRESETS["small"], enc_rnn_size=8, dec_rnn_size=16, z_size=4, num_mixture=3,
              batch_size=4, max_seq_len=10)
    out = tmp_path / "m.safetensors"
    with pytest.raises(Cancelled) as stopped:
        sketch_model.train({"train": sketches}, out, hp, steps=5, progress=SilentProgress())
    assert stopped.value.kept == str(out)
    SketchModel(out).sample(1, max_len=4)
    monkeypatch.undo()
    summary = sketch_model.train({"train": sketches}, out, hp, steps=1, resume=True, progress=SilentProgress())
    assert summary["steps"] == 1


def test_stylize_train_ctrl_c_in_the_first_seconds_keeps_a_model(tmp_path):
    from core.stylize.model import load
    folder, painted = frames(tmp_path)
    model = tmp_path / "s.safetensors"
    code, summary, err = interrupt_after_start(
        ["stylize", "train", "--frames", str(folder), "--keyframe", f"0={painted}", "--minutes", "10",
         "--patch", "16", "-o", str(model)], model)
    assert code == 130, err[-2000:]
    assert summary["cancelled"] and summary["model"] == str(model) and f"kept the model so far: {model}" in err
    load(model)


def test_stylize_first_checkpoint_before_the_first_step(tmp_path):
    from core.stylize import model as sty

    class StopAtOnce(SilentProgress):
        def update(self, done, **figures):
            raise Cancelled()
    saved = []

    def checkpoint(generator, summary):
        saved.append(summary)
        sty.save(tmp_path / "s.safetensors", generator, {"hyperparameters": {}, "training": summary})
    checkpoint.path = str(tmp_path / "s.safetensors")
    inputs = np.random.default_rng(0).uniform(0, 1, (1, 32, 32, 3)).astype(np.float32)
    with pytest.raises(Cancelled) as stopped:
        sty.train(inputs, inputs, np.ones((1, 32, 32), np.float32), dict(sty.FAST, patch=16, batch=2), StopAtOnce(),
                  steps=5, checkpoint=checkpoint)
    assert saved[0]["steps"] == 0 and stopped.value.kept == checkpoint.path


def test_worker_names_the_kept_model(tmp_path):
    """Esc in Blender: the worker's cancelled message carries the model path."""
    model = tmp_path / "m.safetensors"
    request = json.dumps({"argv": ["sketch", "train", str(drawings(tmp_path / "d")), "-o", str(model),
                                   "--minutes", "10", "--preset", "small"]})
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "core.worker"], cwd=ROOT, env=env, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        process.stdin.write(request + "\n")
        process.stdin.flush()
        deadline = time.monotonic() + 240
        while not model.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        process.stdin.write("cancel\n")
        process.stdin.flush()
        out, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    final = json.loads(out.strip().splitlines()[-1])
    assert final == {"type": "cancelled", "model": str(model)}


def test_esc_in_the_first_seconds_of_train_and_stylise_keeps_the_model_in_blender(blender, tmp_path, monkeypatch):
    """Train & Stylise cancelled as soon as training starts: the operator keeps and selects the model
    (its report names the file) instead of 'nothing was changed'."""
    import importlib
    bpy = blender
    folder, painted = frames(tmp_path)
    client = importlib.import_module("bl_ext.atelier_dev.atelier.addon.worker_client")
    original = client.WorkerJob.wait

    def wait_and_press_esc(job, on_message=None, timeout=None):
        def cancel_when_training(message):
            if message.get("type") == "progress" and message.get("stage") == "training":
                job.cancel()
        return original(job, cancel_when_training, timeout)

    monkeypatch.setattr(client.WorkerJob, "wait", wait_and_press_esc)
    settings = bpy.context.scene.atelier_stylize
    settings.frames_dir, settings.minutes = str(folder), 5.0
    item = settings.keyframes.add()
    item.image = bpy.data.images.load(str(painted))
    item.frame = 1
    assert bpy.ops.atelier.stylize_train() == {"FINISHED"}
    kept = Path(settings.model)
    assert kept.is_file() and kept.name.startswith("stylize_")
    from core.stylize.model import load
    assert load(kept)[1]["training"]["steps"] >= 0
