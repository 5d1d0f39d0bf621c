"""Model browser demo: every model the browser lists, as its thumbnail, and an auto-drawing in a style the
"artist" taught Sketch-RNN with 24 drawings of their own (Sketch-RNN ▸ Train on My Drawings)."""

import importlib
from pathlib import Path

import numpy as np

from paper import paper_scene

OWN_DRAWINGS = 24
TRAIN_MINUTES = 3.0


def addon(bpy, module):
    package = next(name for name in bpy.context.preferences.addons.keys() if name.endswith(".atelier"))
    return importlib.import_module(f"{package}.addon.{module}")


def browser_sheet(bpy, out_dir):
    """The browser's thumbnails, one row per feature (μNCA textures, then Sketch-RNN models)."""
    from core.imageio import read_image, write_image
    library = addon(bpy, "library").library()
    rows = []
    for feature in ("nca", "sketch"):
        pictures = [read_image(library.thumbnail(entry), 3) for entry in library.entries(feature)]
        row = np.ones((pictures[0].shape[0] + 8, 8 + len(pictures) * (pictures[0].shape[1] + 8), 3), np.float32)
        for index, picture in enumerate(pictures):
            x = 8 + index * (picture.shape[1] + 8)
            row[4:4 + picture.shape[0], x:x + picture.shape[1]] = picture
        rows.append(row)
    width = max(row.shape[1] for row in rows)
    sheet = np.concatenate([np.pad(row, ((0, 0), (0, width - row.shape[1]), (0, 0)), constant_values=1.0)
                            for row in rows])
    return write_image(out_dir / "library_browser.png", sheet)


def own_drawings(bpy, gpencil, rng):
    """A grease-pencil object with 24 drawings of one little motif (a flower: stem, leaf, petals), one a frame."""
    obj = None
    for frame in range(1, OWN_DRAWINGS + 1):
        petals, tilt = int(rng.integers(5, 8)), rng.normal(0, 0.08)
        t = np.linspace(0, 2 * np.pi, 40)
        radius = 0.35 + 0.12 * np.cos(petals * t)
        flower = np.c_[radius * np.cos(t) + tilt, np.zeros(40), 1.0 + radius * np.sin(t)]
        stem = np.c_[np.linspace(tilt, 0, 10), np.zeros(10), np.linspace(0.62, -0.6, 10)]
        s = np.linspace(0, 1, 12)
        leaf = np.c_[0.02 + 0.4 * s, np.zeros(12), -0.1 + 0.25 * np.sin(np.pi * s) * rng.uniform(0.7, 1.3)]
        strokes = [{"points": line + rng.normal(0, 0.01, line.shape), "radius": 0.012} for line in (stem, leaf, flower)]
        if obj is None:
            obj = gpencil.create_drawing(bpy.context, "My flowers", strokes, frame_start=frame)
        else:
            gpencil.add_frame(obj, frame, strokes)
    return obj


def run(bpy, out_dir):
    out_dir = Path(out_dir)
    images = [str(browser_sheet(bpy, out_dir))]
    scene = paper_scene(bpy, "My style", 480, 480, ortho_scale=5.0, frame_end=40)
    gpencil = addon(bpy, "gpencil")
    with bpy.context.temp_override(scene=scene, view_layer=scene.view_layers[0]):
        drawings = own_drawings(bpy, gpencil, np.random.default_rng(3))
        drawings.location = (0, 0, 10)  # out of the camera's view: the style, not the examples, is shown
        bpy.context.view_layer.objects.active = drawings
        settings = scene.atelier_sketch
        settings.train_from, settings.train_minutes = "FRAMES", TRAIN_MINUTES
        if bpy.ops.atelier.sketch_train() != {"FINISHED"}:
            raise RuntimeError("training on the artist's drawings failed")
        model = Path(settings.model).name
        settings.count, settings.columns, settings.size, settings.temperature = 9, 3, 1.2, 0.2
        settings.frames, settings.seed = 30, 1
        scene.cursor.location = (0, 0, 0)
        bpy.ops.atelier.sketch_auto_draw()
    scene.frame_set(40)
    scene.render.filepath = str(out_dir / "library_own_style.png")
    bpy.ops.render.render(write_still=True, scene=scene.name)
    images.append(scene.render.filepath)
    return {"images": images, "own_style_model": model, "own_drawings": OWN_DRAWINGS,
            "training_minutes": TRAIN_MINUTES}
