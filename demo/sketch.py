"""Sketch-RNN demo: auto-draw a grid of kanji and a row of Hershey glyphs, render the pen at work."""

from pathlib import Path

SHIPPED = Path(__file__).resolve().parent.parent / "core" / "assets" / "sketch"


def build_scene(bpy, resolution=480):
    """A new scene: white paper, an orthographic camera looking at the XZ plane from the front."""
    scene = bpy.data.scenes.new("Sketch-RNN")
    scene.render.engine = "BLENDER_EEVEE"
    scene.render.resolution_x = scene.render.resolution_y = resolution
    scene.render.film_transparent = False
    scene.view_settings.view_transform = "Standard"
    world = bpy.data.worlds.new("Sketch paper")
    background = world.node_tree.nodes["Background"]
    background.inputs["Color"].default_value = (1, 1, 1, 1)
    scene.world = world
    camera = bpy.data.objects.new("Sketch camera", bpy.data.cameras.new("Sketch camera"))
    camera.data.type = "ORTHO"
    camera.data.ortho_scale = 5.0
    camera.location = (0, -10, 0)
    camera.rotation_euler = (1.5708, 0, 0)
    scene.collection.objects.link(camera)
    scene.camera = camera
    scene.frame_start, scene.frame_end = 1, 48
    if bpy.context.window is not None:  # grease-pencil frames follow the window's scene, so show this one
        bpy.context.window.scene = scene
    return scene


def run(bpy, out_dir):
    out_dir = Path(out_dir)
    scene = build_scene(bpy)
    settings = scene.atelier_sketch
    with bpy.context.temp_override(scene=scene, view_layer=scene.view_layers[0]):
        settings.model = str(SHIPPED / "kanji.safetensors")
        settings.count, settings.columns, settings.size, settings.temperature = 9, 3, 1.0, 0.25
        settings.frames, settings.seed, settings.radius = 40, 4, 0.014
        scene.cursor.location = (0, 0, 0.55)
        bpy.ops.atelier.sketch_auto_draw()
        settings.model = str(SHIPPED / "hershey.safetensors")
        settings.count, settings.columns, settings.size, settings.temperature = 6, 6, 0.5, 0.2
        scene.cursor.location = (0, 0, -1.95)
        bpy.ops.atelier.sketch_auto_draw()
    images = []
    for frame in (10, 20, 41):
        scene.frame_set(frame)
        scene.render.filepath = str(out_dir / f"sketch_frame{frame:03d}.png")
        bpy.ops.render.render(write_still=True, scene=scene.name)
        images.append(scene.render.filepath)
    drawings = [o for o in scene.objects if o.type == "GREASEPENCIL"]
    return {"images": images, "drawings": len(drawings),
            "frames_with_strokes": sum(len(o.data.layers[0].frames) for o in drawings)}
