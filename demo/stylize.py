"""Demo: render a short Cycles animation with motion vectors, paint frame 0 with a stand-in
painter (OpenCV ``stylization``, in the worker's Python), train on it and stylise the rest;
writes a before/after contact sheet.  ``build_scene`` is shared with bench and tests."""

import json
import math
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _material(bpy, name, colour, noise_scale=None):
    material = bpy.data.materials.new(name)
    nodes, links = material.node_tree.nodes, material.node_tree.links
    bsdf = nodes["Principled BSDF"]
    bsdf.inputs["Base Color"].default_value = (*colour, 1.0)
    bsdf.inputs["Roughness"].default_value = 0.6
    if noise_scale:  # a checker-and-noise pattern gives the painter strokes to follow
        checker = nodes.new("ShaderNodeTexChecker")
        checker.inputs["Scale"].default_value = noise_scale
        checker.inputs["Color1"].default_value = (*colour, 1.0)
        checker.inputs["Color2"].default_value = (*(c * 0.35 for c in colour), 1.0)
        links.new(checker.outputs["Color"], bsdf.inputs["Base Color"])
    return material


def build_scene(bpy, name="Atelier Stylise", frames=24, size=256, samples=16):
    """A NEW scene: textured ground, three coloured objects moving, a panning camera, Cycles."""
    scene = bpy.data.scenes.new(name)
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_denoising = True
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    scene.frame_start, scene.frame_end = 1, frames
    scene.view_settings.view_transform = "Standard"
    world = bpy.data.worlds.new(f"{name} world")
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.35, 0.45, 0.6, 1.0)
    scene.world = world

    def add(obj, material=None):
        scene.collection.objects.link(obj)
        if material:
            obj.data.materials.append(material)
        return obj

    def mesh_object(label, build):
        import bmesh
        mesh = bpy.data.meshes.new(label)
        bm = bmesh.new()
        build(bm)
        bm.to_mesh(mesh)
        bm.free()
        for polygon in mesh.polygons:
            polygon.use_smooth = label != "cube"
        return bpy.data.objects.new(f"{name} {label}", mesh)

    import bmesh
    ground = add(mesh_object("ground", lambda bm: bmesh.ops.create_grid(bm, x_segments=1, y_segments=1, size=8)),
                 _material(bpy, f"{name} ground", (0.8, 0.7, 0.45), noise_scale=12))
    cube = add(mesh_object("cube", lambda bm: bmesh.ops.create_cube(bm, size=1.2)),
               _material(bpy, f"{name} red", (0.8, 0.15, 0.1), noise_scale=3))
    sphere = add(mesh_object("sphere", lambda bm: bmesh.ops.create_uvsphere(bm, u_segments=32, v_segments=16,
                                                                            radius=0.7)),
                 _material(bpy, f"{name} blue", (0.15, 0.3, 0.85), noise_scale=6))
    cone = add(mesh_object("cone", lambda bm: bmesh.ops.create_cone(bm, cap_ends=True, segments=24, radius1=0.6,
                                                                    radius2=0.0, depth=1.4)),
               _material(bpy, f"{name} green", (0.2, 0.7, 0.25), noise_scale=4))
    ground.location.z = 0
    for obj, start, end in ((cube, (-1.5, 0.0, 0.6), (0.5, 0.8, 0.6)),
                            (sphere, (1.5, -1.0, 0.7), (0.8, 1.0, 0.7)),
                            (cone, (0.0, 2.0, 0.7), (-1.6, 1.2, 0.7))):
        for frame, location in ((1, start), (frames, end)):
            obj.location = location
            obj.rotation_euler = (0.0, 0.0, math.radians(40.0 * (frame - 1) / max(frames - 1, 1)))
            obj.keyframe_insert("location", frame=frame)
            obj.keyframe_insert("rotation_euler", frame=frame)

    camera = add(bpy.data.objects.new(f"{name} camera", bpy.data.cameras.new(f"{name} camera")))
    camera.data.lens = 35
    target = add(bpy.data.objects.new(f"{name} target", None))
    constraint = camera.constraints.new("TRACK_TO")
    constraint.target = target
    for frame, location in ((1, (6.0, -6.0, 4.5)), (frames, (7.5, -3.5, 4.0))):
        camera.location = location
        camera.keyframe_insert("location", frame=frame)
    scene.camera = camera
    sun = add(bpy.data.objects.new(f"{name} sun", bpy.data.lights.new(f"{name} sun", "SUN")))
    sun.data.energy = 3.0
    sun.rotation_euler = (math.radians(40), math.radians(15), math.radians(30))
    return scene


def run(bpy, out_dir):
    """Render, paint frame 0 with the stand-in painter, Train & Stylise, write a before/after sheet."""
    import importlib
    package = next(name for name in bpy.context.preferences.addons.keys() if name.endswith(".atelier"))
    worker_python = importlib.import_module(f"{package}.addon.preferences").worker_python()
    out_dir = Path(out_dir)
    scene = build_scene(bpy, frames=8, size=160, samples=8)
    settings = scene.atelier_stylize
    with bpy.context.temp_override(scene=scene):
        bpy.ops.atelier.stylize_render_motion(directory=str(out_dir / "stylize_renders"))
        frames_dir = Path(settings.frames_dir)
        painted = frames_dir.parent / "keyframe_painted.png"
        # the stand-in painter (OpenCV) runs in the worker's Python: Blender's own has no OpenCV
        subprocess.run([worker_python, "-c", "import cv2, sys; cv2.imwrite(sys.argv[2], cv2.stylization("
                        "cv2.imread(sys.argv[1]), sigma_s=60, sigma_r=0.45))",
                        str(sorted(frames_dir.glob("*.png"))[0]), str(painted)], check=True)
        keyframe = settings.keyframes.add()
        keyframe.frame, keyframe.file = scene.frame_start, str(painted)  # the Blender frame painted over
        settings.minutes = 1.0
        bpy.ops.atelier.stylize_train()
    stylised = Path(settings.output_dir)
    sheet = contact_sheet(bpy, [frames_dir, stylised], out_dir / "stylize_before_after.png")
    summary = json.loads(settings.last_summary)
    return {"images": [str(sheet)], "frames": summary["frames"], "training_steps": summary["steps"],
            "training_seconds": summary["train_seconds"], "model": settings.model}


def contact_sheet(bpy, folders, path, columns=4):
    """Rows = folders (before, after), columns = evenly spaced frames; saved with Blender's PNG writer."""
    import numpy as np
    names = sorted(p.name for p in Path(folders[-1]).glob("*.png"))
    picks = [names[i] for i in np.linspace(0, len(names) - 1, columns).round().astype(int)]
    rows = []
    for folder in folders:  # Blender rows run bottom-up: the first folder ends up on top
        row = []
        for name in picks:
            image = bpy.data.images.load(str(Path(folder) / name), check_existing=False)
            pixels = np.empty(image.size[0] * image.size[1] * 4, np.float32)
            image.pixels.foreach_get(pixels)
            row.append(pixels.reshape(image.size[1], image.size[0], 4))
            bpy.data.images.remove(image)
        rows.insert(0, np.concatenate(row, axis=1))
    sheet = np.concatenate(rows, axis=0)
    image = bpy.data.images.new("Atelier stylise sheet", sheet.shape[1], sheet.shape[0])
    try:
        image.pixels.foreach_set(sheet.ravel())
        image.filepath_raw, image.file_format = str(path), "PNG"
        image.save()
    finally:
        bpy.data.images.remove(image)
    return path
