"""Exporters and the bake path refuse a μNCA whose rollout diverges within the judge's horizons
(1000 and 2000 steps from a seed), naming the file; nothing is written."""

import json

import numpy as np
import pytest

from core import cli
from core.errors import AtelierError
from core.nca import files
from core.nca.runtime import Runtime, seed

PRESET = files.Path(__file__).resolve().parents[1] / "core/assets/nca/presets/stripes.safetensors"


def forged(growth, channels=4):
    """A rule within the loader's weight range whose state grows by ``growth`` each step."""
    w = np.zeros((channels, 4 * channels), np.float32)
    w[:, :channels] = (growth - 1) * np.eye(channels, dtype=np.float32)
    return files.from_float(w, np.zeros(channels, np.float32), {"name": "forged"})


def atelier(capsys, *words):
    code = cli.main(["nca", *map(str, words)])
    return code, json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.fixture
def diverging(tmp_path):
    path = tmp_path / "grows.safetensors"
    files.save(path, forged(1.5))  # overflows float32 within about 200 steps
    return path


def test_a_fast_diverging_model_loads_but_no_exporter_takes_it(diverging, tmp_path, capsys):
    model = files.load(diverging)  # its weights are in range: the loader cannot tell
    assert np.abs(model.w).max() < files.WEIGHT_LIMIT
    for fmt in ("glsl", "shadertoy", "osl", "c", "bin"):
        out = tmp_path / f"out_{fmt}.txt"
        code, summary = atelier(capsys, "export", diverging, "--format", fmt, "--size", 8, "--steps", 4, "-o", out)
        assert code == 2 and str(diverging) in summary["error"] and "diverges" in summary["error"]
        assert not list(tmp_path.glob("out_*"))
    for extra in ([], ["--quantized"], ["--frames", "2"]):
        code, summary = atelier(capsys, "render", diverging, "--size", 8, "--steps", 4, *extra,
                                "-o", tmp_path / "out.png")
        assert code == 2 and str(diverging) in summary["error"] and "not rendered" in summary["error"]
    assert not list(tmp_path.glob("out*"))


def test_divergence_between_the_two_horizons_is_caught(tmp_path):
    """Growing 0.6 % a step, the seed's ±0.5 passes 1e4 after about 1650 steps: fine at 1000, not at 2000."""
    model = forged(1.006)
    state = Runtime(*model.weights(True)).run(seed(4, 8), 1000)
    assert np.abs(state).max() < files.STATE_LIMIT
    with pytest.raises(AtelierError, match=r"late\.nca: the int8 rule diverges: its state reaches .* within 1[6-9]\d\d steps"):
        files.check_rollout(model, "late.nca")


def test_a_long_render_past_the_horizons_is_checked_too(tmp_path, capsys):
    path = tmp_path / "slow.safetensors"
    files.save(path, forged(1.003))  # bounded over 2000 steps (about 200), not over 5000
    files.check_rollout(files.load(path), str(path))
    code, summary = atelier(capsys, "render", path, "--size", 8, "--steps", 5000, "-o", tmp_path / "long.png")
    assert code == 2 and "within 5000 steps" in summary["error"] and not (tmp_path / "long.png").exists()


def test_stable_models_pass(tmp_path, capsys):
    files.check_rollout(files.load(PRESET), str(PRESET))
    files.check_rollout(files.load(PRESET), str(PRESET), quantized=False)
    code, summary = atelier(capsys, "export", PRESET, "--format", "bin", "-o", tmp_path / "m.nca")
    assert code == 0 and files.load(tmp_path / "m.nca").params == 68


def test_blender_bake_of_a_diverging_model_is_refused_with_its_name(blender):
    from bl_ext.atelier_dev.atelier.addon.preferences import models_dir
    bpy = blender
    path = models_dir() / "grows.safetensors"
    files.save(path, forged(1.5))
    bpy.ops.mesh.primitive_plane_add()
    plane = bpy.context.object
    plane.data.materials.append(bpy.data.materials.new("Mat"))
    s = bpy.context.scene.atelier_nca
    s.model, s.size, s.steps = str(path), 16, 8
    for mode in ("IMAGE", "OSL"):
        s.mode = mode
        with pytest.raises(RuntimeError, match="grows.safetensors: the int8 rule diverges"):
            bpy.ops.atelier.nca_bake()
    assert not [g for g in bpy.data.node_groups if g.name.startswith("μNCA")]


def test_a_render_that_would_not_fit_in_memory_is_refused_first(tmp_path, monkeypatch, capsys):
    """`nca render --size 8192` or `--frames 10000` held every array at once: refused before allocating."""
    from core.nca import render
    monkeypatch.setattr(render, "memory_budget", lambda: 1 << 30)
    for extra, problem in ((["--size", 8192], "8192x8192"), (["--size", 256, "--frames", 10000], "fewer frames")):
        code, summary = atelier(capsys, "render", PRESET, "--steps", 1, *extra, "-o", tmp_path / "big.png")
        assert code == 2 and problem in summary["error"] and "GiB" in summary["error"]
    assert not list(tmp_path.iterdir())


def test_an_output_that_names_no_file_is_a_clear_error(tmp_path, capsys, monkeypatch):
    """Found by the 10,000-input run (worker:7383): `nca render --frames 2 -o ''` named frames after
    Path('.') and ended in pathlib's ValueError."""
    monkeypatch.chdir(tmp_path)
    for command, output, problem in ((["render", "--frames", 2], "", "-o is empty"),
                                     (["render", "--frames", 2], ".", ".: is a folder"),
                                     (["export", "--format", "glsl"], str(tmp_path), f"{tmp_path}: is a folder")):
        code, summary = atelier(capsys, command[0], PRESET, *command[1:], "-o", output)
        assert code == 2 and summary["error"].startswith(problem)
    assert not list(tmp_path.iterdir())
