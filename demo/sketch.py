"""Sketch-RNN demo: auto-draw a grid of kanji and a row of Hershey glyphs, render the pen at work."""

from pathlib import Path

from paper import paper_scene

SHIPPED = Path(__file__).resolve().parent.parent / "core" / "assets" / "sketch"


def build_scene(bpy, resolution=480):
    """A new square paper scene for a 48-frame pen animation."""
    return paper_scene(bpy, "Sketch-RNN", resolution, resolution, ortho_scale=5.0, frame_end=48)


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
