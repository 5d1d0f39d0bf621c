"""Atelier as an artist installs it: the zips built by tools/package.py, installed with Blender's own
installer into a fresh user folder, run by Blender's own Python (a venv with bpy alone: numpy,
OpenImageIO and what else Blender bundles; no torch, OpenCV, Pillow or safetensors)."""

import json
import os
import re
import subprocess
import sys
import zipfile

import pytest

from blender_helpers import REPO_ROOT

BLENDER_PYTHON = os.environ.get("ATELIER_BLENDER_PYTHON", str(REPO_ROOT / ".venv-blender" / "bin" / "python"))
SCENARIO = REPO_ROOT / "tests" / "installed_scenario.py"
LIGHT_STEPS = ("bake_image", "bake_osl", "auto_draw", "image_to_strokes")
TORCH_STEPS = ("nca_train", "stylize_train", "stylize_run")


@pytest.fixture(scope="module")
def blender_python():
    if not os.path.exists(BLENDER_PYTHON):
        pytest.fail(f"{BLENDER_PYTHON}: Blender's own Python for tests is missing; run `make setup`")
    missing = subprocess.run([BLENDER_PYTHON, "-c", "import importlib.util as u; "
                              "print([m for m in ('torch', 'cv2', 'PIL', 'safetensors') if u.find_spec(m)])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert missing == "[]", f"{BLENDER_PYTHON} has {missing}: it must have only what Blender bundles"
    return BLENDER_PYTHON


def build(tmp_path, *options):
    built = subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "package.py"), str(tmp_path), *options],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    return [tmp_path / line.split()[0] for line in built.stdout.splitlines() if line.endswith("MiB")]


def run_scenario(python, archive, tmp_path, *steps):
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "user"))
    env.pop("PYTHONPATH", None)
    run = subprocess.run([python, str(SCENARIO), str(archive), str(tmp_path / "work"), *steps],
                         capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)
    results = {}
    for line in run.stdout.splitlines():
        if line.startswith("STEP "):
            result = json.loads(line[5:])
            results[result["step"]] = result
    assert "install" in results and ("modules" in results or not results["install"]["ok"]), \
        run.stdout[-3000:] + run.stderr[-3000:]
    results["output"] = run.stdout + run.stderr
    return results


def assert_no_traceback(result):
    assert "Traceback" not in result.get("message", ""), result["message"]


def test_light_zip_runs_every_model_in_blenders_own_python(blender_python, tmp_path):
    """No wheels: baking, Sketch-RNN and Image to Strokes work; training is greyed out with the reason."""
    (archive,) = build(tmp_path, "--light")
    assert archive.name == "atelier-0.1.0.zip"
    names = zipfile.ZipFile(archive).namelist()
    assert "blender_manifest.toml" in names and "core/modelfile.py" in names and "addon/jobs.py" in names
    assert not any(name.startswith(("tests/", "bench/", "demo/", ".venv", ".git/", "wheels/")) for name in names)

    results = run_scenario(blender_python, archive, tmp_path)
    assert results["install"]["ok"]
    for step in LIGHT_STEPS:
        assert results[step]["ok"], results[step]
    assert results["bake_image"]["groups"] and results["bake_osl"]["groups"]
    assert results["auto_draw"]["type"] == results["image_to_strokes"]["type"] == "GREASEPENCIL"
    for step in TORCH_STEPS:
        assert results[step].get("greyed_out"), results[step]
        assert "Needs torch" in results[step]["message"] and "Python with torch" in results[step]["message"]
    assert not results["modules"]["torch_loaded"] and not results["modules"]["cv2_loaded"]


def test_platform_zip_trains_and_stylises_in_blenders_own_python(blender_python, tmp_path):
    """The linux-x64 zip bundles CPU torch and OpenCV as wheels: every feature works with no setup."""
    (archive,) = build(tmp_path)
    assert archive.name == "atelier-0.1.0-linux_x64.zip"
    wheels = [name for name in zipfile.ZipFile(archive).namelist() if name.endswith(".whl")]
    assert any(re.match(r"wheels/torch-[\d.]+\+cpu-cp311-.*linux.*x86_64\.whl", name) for name in wheels), wheels
    assert any(name.startswith("wheels/opencv_python_headless-") for name in wheels), wheels

    results = run_scenario(blender_python, archive, tmp_path)
    for step in ("install", *LIGHT_STEPS, *TORCH_STEPS):
        assert results[step]["ok"], results[step]
        assert_no_traceback(results[step])
    assert results["nca_train"]["exists"]
    assert results["stylize_train"]["frames"] == results["stylize_run"]["frames"] == 4
    assert results["stylize_run"]["strips"] == 2 and not results["stylize_run"]["strips_in_scene"]
    assert not results["modules"]["torch_loaded"]  # torch ran in the worker, never in Blender's process


def test_a_zip_for_another_platform_is_refused_by_blender(blender_python, tmp_path):
    (archive,) = build(tmp_path, "--light")
    foreign = tmp_path / "atelier-0.1.0-windows_x64.zip"
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(foreign, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "blender_manifest.toml":
                data = b'platforms = ["windows-x64"]\n' + data
            target.writestr(item, data)
    results = run_scenario(blender_python, foreign, tmp_path, "bake_image")
    assert not results["install"]["ok"]
    assert "This platform (linux-x64) isn't one of (windows-x64)" in results["output"]


def core_modules_imported_by_the_addon():
    """Every ``core`` module the add-on's code names, at module level or inside a function."""
    names = set()
    for source in (REPO_ROOT / "addon").glob("*.py"):
        names |= set(re.findall(r"from \.\.core((?:\.\w+)+) import", source.read_text()))
    return sorted("core" + name for name in names)


def test_every_core_module_blender_imports_loads_with_blenders_own_python(blender_python):
    modules = core_modules_imported_by_the_addon()
    assert "core.sketch.runtime" in modules and "core.nca.rule" in modules
    code = ("import importlib, json, sys\n"
            f"for name in {modules!r}: importlib.import_module(name)\n"
            "print(json.dumps(sorted(m for m in ('torch', 'cv2', 'PIL', 'skimage') if m in sys.modules)))")
    run = subprocess.run([blender_python, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(run.stdout.splitlines()[-1]) == []
