"""Render the benchmark sequence with bpy (run as a script: it imports bpy; bench/stylize.py runs it).

    python bench/stylize_data/render.py OUT_DIR [--frames 24] [--size 256] [--samples 16]

Builds demo/stylize.py's scene (moving camera and objects, Cycles) and renders it with the
add-on's own Render with Motion operator: OUT_DIR/frames/*.png and OUT_DIR/motion/*.exr.
"""

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tools"), str(ROOT / "demo")]

import blender_session  # noqa: E402


def enable_stylize(bpy):
    """Atelier enabled; the stylise module registered too if addon/__init__.py does not list it yet."""
    blender_session.fresh_blender(bpy)
    if not hasattr(bpy.types.Scene, "atelier_stylize"):
        importlib.import_module(f"{blender_session.ADDON_MODULE}.addon.stylize").register()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--samples", type=int, default=16)
    args = parser.parse_args()
    blender_session.isolate_user_resources()
    import bpy
    enable_stylize(bpy)
    from stylize import build_scene
    scene = build_scene(bpy, frames=args.frames, size=args.size, samples=args.samples)
    started = time.monotonic()
    with bpy.context.temp_override(scene=scene):
        bpy.ops.atelier.stylize_render_motion(directory=str(args.out.resolve()))
    print(json.dumps({"frames_dir": scene.atelier_stylize.frames_dir, "motion_dir": scene.atelier_stylize.motion_dir,
                      "seconds": round(time.monotonic() - started, 1)}))


if __name__ == "__main__":
    main()
