"""Render the benchmark sequence with bpy (run as a script: it imports bpy; bench/stylize.py runs it).

    python bench/stylize_data/render.py OUT_DIR [--frames 24] [--size 256] [--samples 16]

Builds demo/stylize.py's scene (moving camera and objects, Cycles) and renders it with the
add-on's own Render with Motion operator: OUT_DIR/frames/*.png and OUT_DIR/motion/*.exr.
The EXRs also hold a "paper" AOV: a noise texture in each object's own coordinates, so it sticks
to the surfaces; bench/stylize.py's ``paper`` painter lays it over the painting, a stand-in for
a painter whose brush texture moves with the objects (the case the temporal guide is for).
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


def add_paper(bpy, scene, scale=1.5):
    """The ``paper`` AOV: Noise(object coordinates) on every material; not seen in the colour frames."""
    for layer in scene.view_layers:
        aov = layer.aovs.add()
        aov.name, aov.type = "paper", "VALUE"
    for material in {slot.material for obj in scene.objects for slot in obj.material_slots if slot.material}:
        nodes, links = material.node_tree.nodes, material.node_tree.links
        coordinates, noise, output = (nodes.new("ShaderNodeTexCoord"), nodes.new("ShaderNodeTexNoise"),
                                      nodes.new("ShaderNodeOutputAOV"))
        noise.inputs["Scale"].default_value, noise.inputs["Detail"].default_value = scale, 1.0
        output.aov_name = "paper"
        links.new(coordinates.outputs["Object"], noise.inputs["Vector"])
        links.new(noise.outputs["Fac"], output.inputs["Value"])


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
    add_paper(bpy, scene)
    started = time.monotonic()
    with bpy.context.temp_override(scene=scene):
        bpy.ops.atelier.stylize_render_motion(directory=str(args.out.resolve()))
    print(json.dumps({"frames_dir": scene.atelier_stylize.frames_dir, "motion_dir": scene.atelier_stylize.motion_dir,
                      "seconds": round(time.monotonic() - started, 1)}))


if __name__ == "__main__":
    main()
