"""Scale-out on Ray (core/scale): a REAL local cluster in separate processes (`ray start --head` on
127.0.0.1, 2 worker slots), driven by `atelier stylize run --ray ADDRESS` in a subprocess; outputs
compared bitwise with the local run; a killed worker, a killed driver with --resume, remote training;
the cluster is stopped by its process ids and nothing of it may be left."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from core.cli import run_command
from core.errors import AtelierError
from core.imageio import read_image, write_image
from core.progress import SilentProgress
from core.scale import cluster as scale_cluster
from core.scale.stylize import MANIFEST, finish_inputs, frame_done, input_keys, iter_inputs
from core.stylize import frames as seq
from core.stylize import guides

ROOT = Path(__file__).resolve().parents[1]
FRAMES = 24


def texture(h, w, seed=0):
    import cv2
    rng = np.random.default_rng(seed)
    image = cv2.GaussianBlur(rng.uniform(0, 1, (h, w, 3)).astype(np.float32), (0, 0), 2.0)
    return (image - image.min()) / (image.max() - image.min())


def make_sequence(folder, size, count=FRAMES, seed=0):
    base = texture(size + 10, size + 2 * count + 10, seed)
    for t in range(count):
        write_image(folder / f"frame_{t + 1:04d}.png", base[5:5 + size, 2 * count - 2 * t:2 * count - 2 * t + size])
    return folder


def atelier(*argv, timeout=300, **popen):
    """Run the CLI in a separate process; returns (returncode, last JSON line)."""
    done = subprocess.run([sys.executable, "-m", "core.cli", *map(str, argv)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, **popen)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, done.stderr[-3000:]
    return done.returncode, json.loads(lines[-1])


def same_frames(a, b, names):
    for name in names:
        assert np.array_equal(read_image(Path(a) / name), read_image(Path(b) / name)), name


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """24 frames of 48x48 and 24 of 128x128, a tiny model trained on the small ones, local outputs."""
    root = tmp_path_factory.mktemp("scale")
    small = make_sequence(root / "small", 48)
    large = make_sequence(root / "large", 128, seed=1)
    painted = root / "painted.png"
    write_image(painted, 1.0 - read_image(small / "frame_0001.png"))
    model = root / "model.safetensors"
    run_command(["stylize", "train", "--frames", str(small), "--keyframe", f"0={painted}", "--steps", "3",
                 "--patch", "16", "-o", str(model)], SilentProgress())
    for name in ("small", "large"):
        run_command(["stylize", "run", str(model), "--frames", str(root / name), "-o", str(root / f"{name}_local")],
                    SilentProgress())
    return root


@pytest.fixture(scope="module")
def ray_cluster():
    try:
        import ray  # noqa: F401
    except ModuleNotFoundError:
        pytest.fail("Ray is not installed in .venv: run `make setup` (it installs the extra atelier[ray])")
    cluster = scale_cluster.LocalCluster(cpus=2).start()
    try:
        yield cluster
    finally:
        left = cluster.stop()
        assert not left, f"Ray processes left running: {left}"
        assert not cluster.processes()


def names(folder):
    return sorted(p.name for p in Path(folder).iterdir() if p.suffix == ".png" and not p.name.startswith("."))


def test_streamed_inputs_equal_build_inputs(tmp_path):
    folder = make_sequence(tmp_path / "f", 40, count=9)
    frames, files = seq.read_frames(folder)
    for guide, prefilter, reference in (("gaussian", False, 3), ("gaussian", True, 0), ("none", True, 0),
                                        ("none", False, 0)):
        hyper = {"guide": guide, "prefilter": prefilter, "seed": 5, "reference": reference}
        whole = guides.build_inputs(frames, None, reference, guide, 5, prefilter)
        wanted = [0, 2, 3, 4, 8]
        streamed = dict(iter_inputs(files, wanted, hyper))
        assert sorted(streamed) == wanted
        for t in wanted:
            assert np.array_equal(streamed[t], whole[t]), (guide, prefilter, t)
        if guide != "none":  # the Gaussian mixture computed in the tasks instead
            deferred = dict(iter_inputs(files, wanted, hyper, defer_mixture=True))
            finished = finish_inputs(np.stack([deferred[t] for t in wanted]), 5)
            assert np.array_equal(finished, whole[wanted])


def test_only_ranges_and_local_resume(work, tmp_path):
    model, small = work / "model.safetensors", work / "small"
    out = tmp_path / "chunk"
    summary = run_command(["stylize", "run", str(model), "--frames", str(small), "--only", "2-5,frame_0011.png,20",
                           "-o", str(out)], SilentProgress())
    assert summary["frames"] == 6 and names(out) == [f"frame_{i:04d}.png" for i in (3, 4, 5, 6, 11, 21)]
    same_frames(out, work / "small_local", names(out))
    with pytest.raises(AtelierError, match="range A-B"):
        run_command(["stylize", "run", str(model), "--frames", str(small), "--only", "5-99", "-o", str(tmp_path / "x")],
                    SilentProgress())
    # --resume without Ray: a render farm's chunks write into one folder, each frame with its record
    resumed = tmp_path / "resumed"
    for only in ("0-11", "12-23"):
        summary = run_command(["stylize", "run", str(model), "--frames", str(small), "--only", only, "--resume",
                               "-o", str(resumed)], SilentProgress())
        assert summary["computed"] == 12 and summary["skipped"] == 0 and summary["tasks"] == 0
    same_frames(resumed, work / "small_local", names(work / "small_local"))
    # a record is trusted only with the PNG's hash: a damaged frame and a frame without record are redone
    write_image(resumed / "frame_0007.png", np.zeros((48, 48, 3)))
    (resumed / MANIFEST / "frame_0019.json").unlink()
    summary = run_command(["stylize", "run", str(model), "--frames", str(small), "--resume", "-o", str(resumed)],
                          SilentProgress())
    assert (summary["computed"], summary["skipped"]) == (2, 22)
    same_frames(resumed, work / "small_local", names(work / "small_local"))
    # a changed source frame changes the inputs of every frame whose guide passes through it
    files = seq.frame_files(small)
    hyper = {"guide": "gaussian", "prefilter": False, "seed": 0, "reference": 0}
    before = input_keys(model, files, range(FRAMES), hyper, None, 512)
    assert all(frame_done(resumed, files[t].name, before[t]) for t in range(FRAMES))
    with pytest.raises(AtelierError, match="choose one"):
        run_command(["stylize", "run", str(model), "--frames", str(small), "--resume", "--force", "-o", str(resumed)],
                    SilentProgress())


def test_ray_missing_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(AtelierError, match="atelier\\[ray\\]"):
        scale_cluster.import_ray("127.0.0.1:1")


def test_an_address_where_nothing_listens_fails_at_once():
    """ray.init would retry such an address for minutes, deaf to Ctrl-C: a TCP probe says so in seconds."""
    port = scale_cluster.free_port()  # nothing listens there
    with pytest.raises(scale_cluster.Unreachable, match=f"--ray 127.0.0.1:{port}: cannot be reached"):
        scale_cluster.connect(f"127.0.0.1:{port}")  # raised by the probe, before ray.init
    with pytest.raises(scale_cluster.MalformedAddress):
        scale_cluster.connect("no-port-here")


def test_ray_run_equals_local_run(work, ray_cluster, tmp_path):
    out = tmp_path / "ray"
    rc, summary = atelier("stylize", "run", work / "model.safetensors", "--frames", work / "small", "--ray",
                          ray_cluster.address, "-o", out)
    assert rc == 0, summary
    assert summary["frames"] == summary["computed"] == FRAMES and summary["workers"] == 2
    assert summary["tasks"] == math.ceil(FRAMES / summary["chunk"]) and summary["worker_processes"] >= 1
    assert names(out) == names(work / "small_local")
    same_frames(out, work / "small_local", names(out))  # bitwise, frame for frame
    assert len(list((out / MANIFEST).glob("frame_*.json"))) == FRAMES
    assert not [p for p in out.rglob("*") if "partial" in p.name]
    rc, summary = atelier("stylize", "run", work / "model.safetensors", "--frames", work / "small", "--ray",
                          ray_cluster.address, "--resume", "-o", out)
    assert rc == 0 and (summary["computed"], summary["skipped"], summary["tasks"]) == (0, FRAMES, 0)
    # the Gaussian mixture computed in the tasks: equal within 1/255 (single-threaded rounding)
    rc, summary = atelier("stylize", "run", work / "model.safetensors", "--frames", work / "large", "--ray",
                          ray_cluster.address, "--guides-in-tasks", "-o", tmp_path / "deferred")
    assert rc == 0, summary
    for name in names(work / "large_local"):
        difference = np.abs(read_image(tmp_path / "deferred" / name) - read_image(work / "large_local" / name))
        assert difference.max() <= 1.01 / 255 and (difference > 0).mean() < 1e-3, name


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    pytest.fail(f"timed out waiting for {what}")


def records(out):
    return len(list((Path(out) / MANIFEST).glob("frame_*.json")))


def test_killed_worker_loses_nothing(work, ray_cluster, tmp_path):
    out = tmp_path / "faulty"
    driver = subprocess.Popen([sys.executable, "-m", "core.cli", "stylize", "run", str(work / "model.safetensors"),
                               "--frames", str(work / "large"), "--ray", ray_cluster.address, "--chunk", "2",
                               "-o", str(out)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (out / MANIFEST).is_dir() and records(out) >= 1, 120, "the first frame")
        victim = wait_for(lambda: ray_cluster.workers("stylize_chunk"), 60, "a worker running a task")[0]
        written_before = records(out)
        os.kill(victim, signal.SIGKILL)
        stdout, stderr = driver.communicate(timeout=240)
    finally:
        driver.kill()
    assert driver.returncode == 0, stderr[-3000:]
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert written_before < FRAMES, "the job had finished before the worker was killed"
    assert victim not in ray_cluster.processes()
    assert summary["computed"] == FRAMES and names(out) == names(work / "large_local")
    assert summary["partial_files_removed"] <= 2  # what the killed task was writing
    same_frames(out, work / "large_local", names(out))
    assert records(out) == FRAMES and not [p for p in out.rglob("*") if "partial" in p.name]


def test_killed_driver_then_resume_computes_only_the_missing_frames(work, ray_cluster, tmp_path):
    out = tmp_path / "resume"
    argv = [sys.executable, "-m", "core.cli", "stylize", "run", str(work / "model.safetensors"), "--frames",
            str(work / "large"), "--ray", ray_cluster.address, "--chunk", "2", "-o", str(out)]
    driver = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: (out / MANIFEST).is_dir() and records(out) >= 4, 120, "four frames")
    finally:
        driver.kill()
        driver.wait()
    # Ray ends the dead driver's tasks; wait until none runs, so nothing is written behind our back
    wait_for(lambda: not ray_cluster.workers("stylize_chunk"), 60, "the dead driver's tasks to end")
    files = seq.frame_files(work / "large")
    keys = input_keys(work / "model.safetensors", files, range(FRAMES),
                      {"guide": "gaussian", "prefilter": False, "seed": 0, "reference": 0}, None, 512)
    done = sum(frame_done(out, files[t].name, keys[t]) for t in range(FRAMES))
    assert 4 <= done < FRAMES
    rc, summary = atelier(*argv[3:-2], "--resume", "-o", out)
    assert rc == 0, summary
    assert (summary["skipped"], summary["computed"]) == (done, FRAMES - done)
    assert summary["tasks"] == math.ceil((FRAMES - done) / 2)
    same_frames(out, work / "large_local", names(work / "large_local"))
    assert records(out) == FRAMES


def test_training_runs_as_one_ray_task(work, ray_cluster, tmp_path):
    model = tmp_path / "remote.safetensors"
    rc, summary = atelier("stylize", "train", "--frames", work / "small", "--keyframe",
                          f"0={work / 'painted.png'}", "--steps", "3", "--patch", "16", "-o", model,
                          "--ray", ray_cluster.address, "--num-gpus", "0", "--stylize-to", tmp_path / "styl")
    assert rc == 0, summary
    assert summary["steps"] == 3 and summary["num_gpus"] == 0 and summary["ray"] == ray_cluster.address
    assert model.exists() and names(tmp_path / "styl") == names(work / "small")
    from core.stylize import model as sty
    assert sty.load(model)[1]["training"]["steps"] == 3


def test_nca_train_batch_on_ray(work, ray_cluster, tmp_path):
    from argparse import ArgumentParser
    from core.scale import nca_batch
    exemplars = tmp_path / "library"
    for i in range(3):
        write_image(exemplars / f"material_{i}.png", texture(48, 48, seed=10 + i))
    parser = ArgumentParser()
    nca_batch.register(parser.add_subparsers())
    argv = ["train-batch", str(exemplars), "-o", str(tmp_path / "out"), "--iterations", "2", "--grid", "32",
            "--sheet-size", "32", "--sheet-steps", "16", "--ray", ray_cluster.address]
    args = parser.parse_args(argv)
    summary = args.run(args, SilentProgress())
    assert (summary["trained"], summary["tasks"]) == (3, 3)
    sheet = read_image(summary["contact_sheet"])
    assert sheet.shape[0] == 32 + 8 and len(summary["models"]) == 3
    from core.nca import files
    assert all(files.load(path).params == 68 for path in summary["models"])
    args = parser.parse_args(argv + ["--resume"])
    assert (args.run(args, SilentProgress())["skipped"]) == 3


def test_cancel_stops_the_ray_tasks_and_resume_finishes(work, ray_cluster, tmp_path):
    """Esc in Blender = Cancelled from progress.update in the driver: the running tasks are cancelled."""
    from core.errors import Cancelled

    class EscAfterTwoFrames(SilentProgress):
        def update(self, done, **figures):
            if done >= 2:
                raise Cancelled("esc")

    out = tmp_path / "cancelled"
    argv = ["stylize", "run", str(work / "model.safetensors"), "--frames", str(work / "large"), "--ray",
            ray_cluster.address, "--chunk", "1", "-o", str(out)]
    with pytest.raises(Cancelled):
        run_command(argv, EscAfterTwoFrames())
    wait_for(lambda: not ray_cluster.workers("stylize_chunk"), 30, "the cancelled tasks to stop")
    assert 2 <= records(out) < FRAMES
    summary = run_command(argv[:-2] + ["--resume", "-o", str(out)], SilentProgress())
    assert summary["skipped"] + summary["computed"] == FRAMES and summary["skipped"] >= 2
    same_frames(out, work / "large_local", names(work / "large_local"))
