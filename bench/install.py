"""Atelier as an artist installs it: zip sizes and the time of each feature in Blender's own Python.

Builds the light zip and the linux-x64 zip (tools/package.py), installs each with Blender's
installer into a fresh user folder of the bpy-only venv (`.venv-blender`, made by `make setup`),
and clicks through tests/installed_scenario.py, timing every operator from the click to its data
(worker start-up included).  Prints one JSON object.

    .venv/bin/python bench/install.py [--skip-full]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLENDER_PYTHON = ROOT / ".venv-blender" / "bin" / "python"
STEPS = ("bake_default", "bake_image", "bake_osl", "auto_draw", "image_to_strokes", "nca_train", "stylize")


def build(folder, *options):
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "package.py"), str(folder), *options],
                         capture_output=True, text=True, check=True).stdout
    return [Path(line.split()[0]) for line in out.splitlines() if line.endswith("MiB")]


def scenario(archive, folder):
    # a fresh kernel cache too: the first μNCA training pays for loading (or compiling) its kernels
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(folder / "user"), "ATELIER_CACHE": str(folder / "cache")}
    env.pop("PYTHONPATH", None)
    out = subprocess.run([str(BLENDER_PYTHON), str(ROOT / "tests" / "installed_scenario.py"), str(archive),
                          str(folder / "work"), *STEPS], capture_output=True, text=True, env=env).stdout
    steps = [json.loads(line[5:]) for line in out.splitlines() if line.startswith("STEP ")]
    return {s["step"]: {k: s[k] for k in ("ok", "seconds", "greyed_out") if k in s} for s in steps}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-full", action="store_true", help="only the light zip")
    args = parser.parse_args()
    report = {"blender_python": str(BLENDER_PYTHON)}
    with tempfile.TemporaryDirectory() as temporary:
        temporary = Path(temporary)
        for label, options in (("light", ("--light",)), ("linux-x64", ())):
            if label != "light" and args.skip_full:
                continue
            (archive,) = build(temporary / label, *options)
            report[label] = {"zip": archive.name, "zip_mib": round(archive.stat().st_size / 2**20, 1),
                             "steps": scenario(archive, temporary / label)}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
