"""File names that are not ASCII, or not even UTF-8 (bytes 0xff 0xfe, which Python carries as
surrogates \\udcff \\udcfe), work end to end: on the command line (argv given as raw bytes), through
the worker, and in Blender."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.imageio import read_image, write_image

ROOT = Path(__file__).resolve().parents[1]
NCA = ROOT / "core/assets/nca/presets/stripes.safetensors"
KANJI = ROOT / "core/assets/sketch/kanji.safetensors"
BAD = os.fsdecode(b"\xff\xfe")  # not UTF-8: the surrogates \udcff \udcfe


@pytest.fixture(params=["ünïcødé", "bad" + BAD], ids=["unicode", "not-utf8"])
def folder(request, tmp_path):
    path = tmp_path / request.param
    path.mkdir()
    return path


def atelier(*words):
    """``atelier WORDS`` in a subprocess, each word passed as the bytes a shell would pass."""
    result = subprocess.run([sys.executable, "-m", "core.cli", *(os.fsencode(str(w)) for w in words)], cwd=ROOT,
                            capture_output=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    return json.loads(result.stdout.decode().strip().splitlines()[-1])


def names(folder):
    """The folder's entries as bytes, as the file system holds them."""
    return sorted(os.listdir(os.fsencode(folder)))


def test_nca_render_and_export(folder):
    model = folder / f"strïpes{BAD}.safetensors"
    shutil.copyfile(NCA, model)
    summary = atelier("nca", "render", model, "--size", 16, "--steps", 4, "-o", folder / "out" / f"tëx{BAD}.png")
    assert summary["files"] == [str(folder / "out" / f"tëx{BAD}.png")]
    assert names(folder / "out") == [os.fsencode(f"tëx{BAD}.png")]
    assert read_image(folder / "out" / f"tëx{BAD}.png").shape == (16, 16, 3)
    summary = atelier("nca", "export", model, "--format", "osl", "--size", 8, "--steps", 3, "-o", folder / f"sh{BAD}.osl")
    assert "shader" in Path(summary["files"][0]).read_text()


def test_sketch_sample_and_eval(tmp_path):
    folder = tmp_path / f"ünïcødé{BAD}"  # both kinds in one name: one run of the slower commands
    folder.mkdir()
    model = folder / f"kanjï{BAD}.safetensors"
    shutil.copyfile(KANJI, model)
    data = folder / f"drawings{BAD}"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in rng.uniform(0, 50, (8, 2)))
        (data / f"{i}_ö{BAD}.svg").write_text(f'<svg xmlns="http://www.w3.org/2000/svg"><polyline points="{points}"/></svg>')
    summary = atelier("sketch", "sample", model, "-n", 2, "-o", folder / f"s{BAD}.svg")
    assert Path(summary["output"]).read_text().count("<polyline") >= 2
    summary = atelier("sketch", "sample", model, "-n", 2, "--int16", "-o", folder / f"s{BAD}.npz")
    assert Path(summary["output"]).stat().st_size > 100
    summary = atelier("sketch", "eval", model, data, "--split", "train")
    assert summary["sketches"] >= 4 and np.isfinite(summary["recon_loss"])


def test_strokes_paint(tmp_path):
    folder = tmp_path / f"ünïcødé{BAD}"
    folder.mkdir()
    image = folder / f"ïnk{BAD}.png"
    ink = np.ones((64, 64, 3), np.float32)
    ink[20:44, 30:34] = 0
    write_image(image, ink)
    summary = atelier("strokes", "paint", image, "--runtime", "numpy", "--refine", 2, "--strokes", 4,
                      "-o", folder / f"p{BAD}.svg", "--png", folder / f"p{BAD}.png", "--json", folder / f"p{BAD}.json")
    for suffix in ("svg", "png", "json"):
        assert (folder / f"p{BAD}.{suffix}").stat().st_size > 0
    assert Path(summary["svg"]) == folder / f"p{BAD}.svg"


def test_stylize_run_on_a_folder_of_such_names(tmp_path):
    folder = tmp_path / f"ünïcødé{BAD}"
    folder.mkdir()
    from core.cli import run_command
    from core.progress import SilentProgress
    frames = folder / f"främes{BAD}"
    rng = np.random.default_rng(0)
    for t in range(3):
        write_image(frames / f"f_{t:04d}_é{BAD}.png", rng.uniform(0, 1, (40, 48, 3)))
    painted = folder / f"pä{BAD}.png"
    write_image(painted, rng.uniform(0, 1, (40, 48, 3)))
    model = folder / f"st{BAD}.safetensors"
    run_command(["stylize", "train", "--frames", str(frames), "--keyframe", f"0={painted}", "--steps", "1",
                 "--patch", "16", "--config", "fast", "-o", str(model)], SilentProgress())
    summary = atelier("stylize", "run", model, "--frames", frames, "-o", folder / f"out{BAD}")
    assert summary["frames"] == 3
    assert names(folder / f"out{BAD}") == [os.fsencode(f"f_{t:04d}_é{BAD}.png") for t in range(3)]


def test_worker_request_with_such_names(folder):
    """The add-on sends file names that are not UTF-8 as JSON \\udcXX escapes."""
    model = folder / f"strïpes{BAD}.safetensors"
    shutil.copyfile(NCA, model)
    out = folder / f"tëx{BAD}.png"
    request = json.dumps({"argv": ["nca", "render", str(model), "--size", "16", "--steps", "4", "-o", str(out)]})
    worker = subprocess.Popen([sys.executable, "-m", "core.worker"], cwd=ROOT, text=True, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        worker.stdin.write(request + "\n")
        worker.stdin.flush()  # stdin stays open: closing it would ask the worker to stop
        for line in worker.stdout:
            final = json.loads(line)
            if final["type"] != "progress":
                break
        worker.stdin.close()
        worker.wait(60)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert final["type"] == "result" and final["summary"]["files"] == [str(out)], final
    assert out.is_file()


def test_blender_operator_on_a_folder_of_such_names(blender, tmp_path):
    """Train & Stylise on frames in a folder named in neither ASCII nor UTF-8: the stylised frames,
    the model and the Sequencer strip are made."""
    bpy = blender
    folder = tmp_path / f"ünï{BAD}"
    frames = folder / f"främes{BAD}"
    rng = np.random.default_rng(0)
    for t in range(2):
        write_image(frames / f"{t + 1:04d}.png", rng.uniform(0, 1, (40, 48, 3)))
    painted = folder / f"pä{BAD}.png"
    write_image(painted, rng.uniform(0, 1, (40, 48, 3)))
    settings = bpy.context.scene.atelier_stylize
    settings.frames_dir, settings.minutes = str(frames), 0.02
    assert settings.frames_dir == str(frames)  # Blender keeps the surrogates
    item = settings.keyframes.add()
    item.image = bpy.data.images.load(str(painted))
    item.frame = 1
    settings.frames_dir = str(folder / f"missing{BAD}")  # the error names it, with \xff \xfe shown
    with pytest.raises(RuntimeError, match=r"missing\\xff\\xfe"):
        bpy.ops.atelier.stylize_train()
    settings.frames_dir = str(frames)
    assert bpy.ops.atelier.stylize_train() == {"FINISHED"}
    output = Path(settings.output_dir)
    assert output == frames.with_name(frames.name + "_stylised")
    assert names(output) == [b"0001.png", b"0002.png"]
    assert read_image(output / "0001.png").shape[:2] == (40, 48)
