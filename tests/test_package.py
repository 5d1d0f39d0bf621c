"""The extension zip: built and validated by Blender's own tool, installed into a fresh Blender, enabled."""

import json
import os
import subprocess
import sys
import zipfile

from blender_helpers import REPO_ROOT


def test_zip_builds_validates_installs_and_registers(tmp_path):
    built = subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "package.py"), str(tmp_path)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    archive = tmp_path / "atelier-0.1.0.zip"
    names = zipfile.ZipFile(archive).namelist()
    assert "blender_manifest.toml" in names and "core/modelfile.py" in names and "addon/jobs.py" in names
    assert not any(name.startswith(("tests/", "bench/", "demo/", ".venv/", ".git/")) for name in names)

    script = f"""
import json, bpy
bpy.ops.extensions.package_install_files(filepath={str(archive)!r}, repo="user_default", enable_on_install=True)
addon = bpy.context.preferences.addons.get("bl_ext.user_default.atelier")
panels = sorted(name for name in dir(bpy.types) if name.startswith("ATELIER_PT_"))
operators = sorted(dir(bpy.ops.atelier))
print("RESULT" + json.dumps({{"enabled": addon is not None, "panels": panels, "operators": operators}}))
"""
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "user"))
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT")]
    assert lines, run.stdout[-2000:] + run.stderr[-2000:]
    result = json.loads(lines[-1][len("RESULT"):])
    assert result["enabled"]
    registered = __import__("addon").MODULE_NAMES
    for feature, operator in {"nca": "nca_bake", "sketch": "sketch_auto_draw", "strokes": "strokes_image_to_strokes",
                              "stylize": "stylize_run"}.items():
        if feature in registered:
            assert operator in result["operators"], result
            assert any(feature in panel for panel in result["panels"]), result
