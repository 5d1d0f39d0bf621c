"""What ``pip install`` puts into site-packages: one ``atelier`` package holding ``core`` and ``shaders``,
so no top-level ``core`` collides with another project's, and the ``atelier`` command runs from it."""

import configparser
import shutil
import subprocess
import sys
import zipfile

import pytest

from blender_helpers import REPO_ROOT

# what a wheel build must not copy from the checkout: environments, outputs, caches
NOT_SOURCE = {".git", ".venv", ".venv-blender", "build", "dist", "out", "wheels", "__pycache__", ".pytest_cache",
              ".mypy_cache", ".whl", ".gl"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel of a copy of the checkout (a build in place would reuse stale files from build/)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(REPO_ROOT, source, ignore=lambda folder, names: [
        name for name in names if name in NOT_SOURCE or name.endswith(".egg-info")])
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                            "--wheel-dir", str(work / "dist"), str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    return next((work / "dist").glob("atelier-*.whl"))


@pytest.fixture(scope="module")
def names(wheel):
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_only_atelier_is_top_level(names):
    assert {name.split("/")[0] for name in names if ".dist-info/" not in name} == {"atelier"}


def test_every_core_package_and_shader_is_installed(names):
    packages = {"atelier/" + init.relative_to(REPO_ROOT).as_posix() for init in (REPO_ROOT / "core").rglob("__init__.py")}
    assert packages <= set(names), f"add these to pyproject.toml's packages: {sorted(packages - set(names))}"
    shaders = {"atelier/shaders/" + shader.name for shader in (REPO_ROOT / "shaders").iterdir() if shader.is_file()}
    assert shaders and shaders <= set(names)
    assert any(name.startswith("atelier/core/assets/nca/presets/") for name in names)
    assert not any(name.startswith(("atelier/addon/", "atelier/tests/", "atelier/bench/")) for name in names)


def test_atelier_command_runs_from_the_installed_package(wheel, tmp_path):
    site = tmp_path / "site-packages"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
        entry_points = configparser.ConfigParser()
        entry_points.read_string(archive.read(next(name for name in archive.namelist()
                                                   if name.endswith(".dist-info/entry_points.txt"))).decode())
    module, function = entry_points["console_scripts"]["atelier"].split(":")
    code = (f"import sys; sys.path.insert(0, {str(site)!r}); import {module} as cli, atelier.core.paths as paths; "
            f"assert paths.SHADERS.joinpath('nca_rule.glsl').is_file() and paths.ROOT == paths.SHADERS.parent; "
            f"print(paths.ROOT); cli.{function}(['--help'])")
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.splitlines()[0] == str(site / "atelier")
    assert "usage: atelier" in run.stdout
