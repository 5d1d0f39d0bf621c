"""Build and validate Atelier's extension zips with Blender's own extension tool.

    python tools/package.py [OUTPUT_DIR] [--light] [--platforms linux-x64,windows-x64,macos-arm64]

* Default: one zip per platform (``atelier-<version>-<platform>.zip``, Blender's
  ``--split-platforms``) that bundles the wheels training needs (CPU torch, OpenCV and their
  dependencies, listed in ``tools/wheels.txt``) and, where this machine can build them, the μNCA
  C kernels prebuilt.  Blender installs the wheels into its extensions' site-packages when the
  extension is enabled; the add-on hands that folder to the worker.
* ``--light``: one platform-independent zip without wheels (``atelier-<version>.zip``): baking,
  Sketch-RNN and Image to Strokes work, training and stylisation are greyed out.
* ``--platforms``: which platforms' wheels to collect (default: linux-x64, the one tested here).
  Wheels come from the configured package index; the Linux torch is the ``+cpu`` build (from
  https://download.pytorch.org/whl/cpu on a machine where PyPI alone would pick the CUDA build).

The source tree's own manifest has no ``wheels`` list (a development checkout has no wheels
folder); the build copies the tree into a temporary folder, removed afterwards, and writes the list there.
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import bpy

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the source tree's `core`, whichever Python runs this script
from core.paths import PREBUILT_KERNELS  # noqa: E402

WHEELS_LIST = ROOT / "tools" / "wheels.txt"
WHEEL_CACHE = ROOT / "wheels"
PYTHON_TAG = "3.11"  # Blender 5.0's Python
# pip matches platform tags exactly: every tag a wheel of that platform may carry
PIP_PLATFORMS = {
    "linux-x64": ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"],
    "windows-x64": ["win_amd64"],
    "macos-arm64": [f"macosx_{major}_0_arm64" for major in range(11, 16)],
}
# big or private folders never copied into the staging tree (the manifest excludes the rest)
NOT_STAGED = {".git", ".venv", ".venv-blender", "wheels", "build", "dist", "out", "__pycache__", ".pytest_cache",
              ".whl", ".gl"}


def extension_tool():
    return Path(bpy.utils.system_resource("SCRIPTS")) / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"


def manifest():
    return tomllib.loads((ROOT / "blender_manifest.toml").read_text())


def requirements(platform):
    """The pinned wheels of ``tools/wheels.txt`` for ``platform`` (lines may end in ``; platform``)."""
    wanted = []
    for line in WHEELS_LIST.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement, _, only = (part.strip() for part in line.partition(";"))
        if not only or only == platform:
            wanted.append(requirement)
    return wanted


def collect_wheels(platform):
    """Download (or reuse) the wheels for ``platform`` into ``wheels/<platform>``; returns their paths."""
    folder = WHEEL_CACHE / platform
    folder.mkdir(parents=True, exist_ok=True)
    tags = [word for tag in PIP_PLATFORMS[platform] for word in ("--platform", tag)]
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                    "--python-version", PYTHON_TAG, "--implementation", "cp", *tags, "-d", str(folder),
                    *requirements(platform)], check=True)
    return sorted(folder.glob("*.whl"))


def stage(staging, wheels, platforms):
    """Copy the source tree into ``staging`` and write its manifest with ``wheels`` and ``platforms``;
    returns the copy's root."""
    staged = Path(staging) / "extension"
    shutil.copytree(ROOT, staged, ignore=lambda folder, names: [n for n in names if n in NOT_STAGED])
    text = (ROOT / "blender_manifest.toml").read_text()
    if wheels:
        (staged / "wheels").mkdir()
        for wheel in wheels:
            shutil.copy2(wheel, staged / "wheels" / wheel.name)
        listed = ",\n".join(f'  "./wheels/{wheel.name}"' for wheel in wheels)
        quoted = ", ".join(f'"{platform}"' for platform in platforms)
        text = f"platforms = [{quoted}]\nwheels = [\n{listed},\n]\n\n" + text
    (staged / "blender_manifest.toml").write_text(text)
    return staged


def prebuild_kernels(staged, platform):
    """Compile the μNCA C kernels into the staged extension when this machine builds for ``platform``."""
    try:
        from core.nca.fast import build_prebuilt, platform_tag
    except ImportError:
        return []
    if platform_tag() != platform:
        return []
    # the compiled C kernels' folder inside the extension, where core.nca.fast looks first
    return build_prebuilt(staged / PREBUILT_KERNELS.relative_to(ROOT) / platform)


def build(output_dir=ROOT / "dist", light=False, platforms=("linux-x64",)):
    """Build, validate and return the zips in ``output_dir``."""
    version = manifest()["version"]
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    tool = [sys.executable, str(extension_tool())]
    with tempfile.TemporaryDirectory(prefix="atelier-extension-") as staging:
        if light:
            staged = stage(staging, [], ())
            zips = [output_dir / f"atelier-{version}.zip"]
            subprocess.run(tool + ["build", "--source-dir", str(staged), "--output-filepath", str(zips[0])],
                           check=True)
        else:
            wheels = [wheel for platform in platforms for wheel in collect_wheels(platform)]
            staged = stage(staging, wheels, platforms)
            for platform in platforms:
                prebuild_kernels(staged, platform)
            subprocess.run(tool + ["build", "--source-dir", str(staged), "--output-dir", str(output_dir),
                                   "--split-platforms"], check=True)
            zips = [output_dir / f"atelier-{version}-{platform.replace('-', '_')}.zip" for platform in platforms]
    for archive in zips:
        subprocess.run(tool + ["validate", str(archive)], check=True)
    return zips


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output_dir", nargs="?", default=str(ROOT / "dist"))
    parser.add_argument("--light", action="store_true", help="no wheels: one zip for every platform")
    parser.add_argument("--platforms", default="linux-x64",
                        help=f"comma-separated, of {', '.join(PIP_PLATFORMS)} (default linux-x64)")
    args = parser.parse_args(argv)
    platforms = [p.strip() for p in args.platforms.split(",") if p.strip()]
    unknown = [p for p in platforms if p not in PIP_PLATFORMS]
    if unknown:
        parser.error(f"unknown platform(s) {', '.join(unknown)}; choose from {', '.join(PIP_PLATFORMS)}")
    for archive in build(args.output_dir, args.light, platforms):
        print(f"{archive}  {archive.stat().st_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
