"""Build and validate dist/atelier-<version>.zip with Blender's own extension tool."""

import subprocess
import sys
import tomllib
from pathlib import Path

import bpy

ROOT = Path(__file__).resolve().parent.parent


def extension_tool():
    return Path(bpy.utils.system_resource("SCRIPTS")) / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"


def build(output_dir=ROOT / "dist"):
    version = tomllib.loads((ROOT / "blender_manifest.toml").read_text())["version"]
    output = Path(output_dir) / f"atelier-{version}.zip"
    output.parent.mkdir(parents=True, exist_ok=True)
    tool = [sys.executable, str(extension_tool())]
    subprocess.run(tool + ["build", "--source-dir", str(ROOT), "--output-filepath", str(output)], check=True)
    subprocess.run(tool + ["validate", str(output)], check=True)
    return output


if __name__ == "__main__":
    print(build(*sys.argv[1:]))
