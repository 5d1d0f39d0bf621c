"""μNCA as an artist installs it: Blender's Python (numpy, no torch/OpenCV/Pillow/SciPy/scikit-image)
bakes and exports; training needs torch only, and no C compiler (prebuilt kernels, else torch)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.nca import kernels
from core.nca.resample import area_resize

ROOT = Path(__file__).resolve().parents[1]
PRESET = ROOT / "core/assets/nca/presets/checks.safetensors"
EXEMPLAR = ROOT / "core/assets/nca/exemplars/stripes.png"
BLENDER_PYTHON = ROOT / ".venv-blender/bin/python"  # bpy only, as Blender's own Python (tools/setup.sh)

# Blender's Python has none of these: any import of them fails, as it would there (training
# adds torch, shipped as a wheel, and nothing else)
BLOCKER = """
import sys
class _Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {BLOCKED}:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: Blender's Python has none)")
        return None
sys.meta_path.insert(0, _Blocked())
""".replace("{BLOCKED}", '{"torch", "cv2", "PIL", "skimage", "scipy"}')
CLI = BLOCKER + """
from core.cli import main
sys.exit(main(sys.argv[1:]))
"""
TRAIN_CLI = CLI.replace('"torch", ', "")
LIGHT_MODULES = BLOCKER + """
import json
from core.nca.exemplars import PRESETS, exemplar_paths
from core.nca import cli, codegen, files, kernels, quantize, render, resample, rule, runtime
print(json.dumps({"presets": str(PRESETS), "report": kernels.kernel_report(4),
                  "heavy": sorted(m for m in sys.modules if m.partition(".")[0] in {"torch", "cv2", "PIL"})}))
"""


def _run(python, code, *words, env=None, timeout=300):
    result = subprocess.run([str(python), "-c", code, *map(str, words)], cwd=ROOT, capture_output=True, text=True,
                            timeout=timeout, env={**os.environ, **(env or {})})
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _no_compiler(tmp_path, prebuilt=""):
    """Environment without a C compiler: nothing on PATH, CC a missing program, a fresh cache."""
    (tmp_path / "bin").mkdir(exist_ok=True)
    return {"PATH": str(tmp_path / "bin"), "CC": str(tmp_path / "missing-cc"), "CXX": str(tmp_path / "missing-c++"),
            "ATELIER_CACHE": str(tmp_path / "cache"), "ATELIER_NCA_PREBUILT": str(prebuilt)}


PYTHONS = [pytest.param(sys.executable, id="blocked-imports"),
           pytest.param(BLENDER_PYTHON, id="bpy-only-venv",
                        marks=pytest.mark.skipif(not BLENDER_PYTHON.exists(), reason="no .venv-blender"))]


@pytest.mark.parametrize("python", PYTHONS)
def test_bake_and_export_need_numpy_only(python, tmp_path):
    """render (still, --quantized, --frames loop) and every export format, with torch, OpenCV,
    Pillow, scikit-image and SciPy impossible to import."""
    out = _run(python, LIGHT_MODULES, env=_no_compiler(tmp_path))
    assert out["heavy"] == [] and out["report"]["kernel_origin"] == "torch"
    summary = _run(python, CLI, "nca", "render", PRESET, "--size", 24, "--steps", 8, "--quantized",
                   "-o", tmp_path / "tile.png")
    assert Path(summary["files"][0]).stat().st_size > 100
    summary = _run(python, CLI, "nca", "render", PRESET, "--size", 16, "--steps", 4, "--frames", 2,
                   "-o", tmp_path / "loop.png")
    assert [Path(f).name for f in summary["files"]] == ["loop_0000.png", "loop_0001.png"]
    for fmt in ("glsl", "shadertoy", "osl", "c", "bin"):
        summary = _run(python, CLI, "nca", "export", PRESET, "--format", fmt, "--size", 8, "--steps", 3,
                       "-o", tmp_path / f"model_{fmt}.txt")
        assert all(Path(f).stat().st_size > 90 for f in summary["files"])


def test_area_resize_is_the_mean_over_each_pixels_area():
    rng = np.random.default_rng(0)
    image = rng.random((64, 96, 3), dtype=np.float32)
    np.testing.assert_allclose(area_resize(image, 32, 48), image.reshape(32, 2, 48, 2, 3).mean((1, 3)), atol=1e-6)
    np.testing.assert_allclose(area_resize(image, 16, 32), image.reshape(16, 4, 32, 3, 3).mean((1, 3)), atol=1e-6)
    # a factor of 64/28: every pixel repeated 28 times (one cell of both grids' common refinement)
    # and the 64-cell blocks averaged is the exact area mean
    fine = image[:, :70].astype(np.float64).repeat(28, 0).repeat(30, 1)
    exact = fine.reshape(28, 64, 30, 70, 3).mean((1, 3))
    np.testing.assert_allclose(area_resize(image[:, :70], 28, 30), exact, atol=1e-6)
    assert area_resize(image[..., 0], 28, 30).shape == (28, 30)
    try:
        import cv2
    except ImportError:
        return
    np.testing.assert_allclose(area_resize(image, 41, 57), cv2.resize(image, (57, 41), interpolation=cv2.INTER_AREA),
                               atol=1e-6)


def _train(tmp_path, env):
    # one thread: with two, every small torch operation waits for a core whenever another program
    # holds one (40x slower on a busy 2-core machine)
    env = {**env, "OMP_NUM_THREADS": "1"}
    return _run(sys.executable, TRAIN_CLI, "nca", "train", EXEMPLAR, "--iterations", 3, "--grid", 32, "--patch-weight", 1,
                "-o", tmp_path / "m.safetensors", env=env, timeout=600)


def test_training_without_a_compiler_runs_on_torch(tmp_path):
    """No compiler and no prebuilt kernels: training still finishes (torch step, not torch.compile,
    which would need a compiler too) and says which kernel it ran on."""
    summary = _train(tmp_path, _no_compiler(tmp_path))
    assert summary["iterations"] == 3 and summary["kernel"].startswith("torch (no C compiler")
    assert not (tmp_path / "cache").exists()


@pytest.fixture(scope="module")
def prebuilt(tmp_path_factory):
    """The 68-parameter and loss libraries built as for shipping."""
    if kernels.compiler() is None:
        pytest.skip("no C compiler to build the prebuilt kernels with")
    folder = tmp_path_factory.mktemp("prebuilt")
    manifest = kernels.build_prebuilt(folder, names=("train4", "loss"))
    return folder, manifest


def test_prebuilt_kernels_are_portable(prebuilt):
    folder, manifest = prebuilt
    assert manifest["platform"] == kernels.platform_tag() and set(manifest["libraries"]) == {"train4", "loss"}
    for entry in manifest["libraries"].values():
        assert all("native" not in " ".join(build["flags"]) for build in entry["builds"])
        assert {build["openmp"] for build in entry["builds"]} == {True, False}
        for build in entry["builds"]:
            assert (folder / manifest["platform"] / build["file"]).exists()


def test_training_uses_prebuilt_kernels_without_a_compiler(prebuilt, tmp_path):
    folder, manifest = prebuilt
    summary = _train(tmp_path, _no_compiler(tmp_path, folder))
    assert summary["iterations"] == 3 and summary["kernel"].startswith(f"prebuilt C ({manifest['platform']}")


def test_prebuilt_choice(prebuilt, tmp_path, monkeypatch):
    """The best build this CPU runs; without the OpenMP runtime the one-thread build; stale
    builds (from other sources) are not used."""
    folder, manifest = prebuilt
    monkeypatch.setenv("CC", str(tmp_path / "missing-cc"))
    builds = manifest["libraries"]["train4"]["builds"]

    def copy(name):  # a fresh folder (the dynamic loader reuses a library already loaded from a path)
        shutil.copytree(folder, tmp_path / name)
        monkeypatch.setenv("ATELIER_NCA_PREBUILT", str(tmp_path / name))
        monkeypatch.setattr(kernels, "_libraries", {})
        return tmp_path / name / manifest["platform"]

    oldest = copy("oldest")
    monkeypatch.setattr(kernels, "_cpu_levels", {oldest: builds[-1]["level"]})  # the oldest CPU
    kernel = kernels.library("train4")
    assert kernel.origin == "prebuilt" and kernel.path.name == [b for b in builds if b["openmp"]][-1]["file"]

    no_openmp = copy("no_openmp")
    for build in builds:
        if build["openmp"]:  # as if libgomp were missing
            (no_openmp / build["file"]).write_bytes(b"not a library")
    kernel = kernels.library("train4")
    assert kernel.origin == "prebuilt" and not kernel.openmp and "one thread" in kernel.description

    stale = copy("stale")
    changed = json.loads((stale / "manifest.json").read_text())
    changed["libraries"]["train4"]["key"] = "0" * 16
    (stale / "manifest.json").write_text(json.dumps(changed))
    assert kernels.library("train4") is None and kernels.library("loss").origin == "prebuilt"
