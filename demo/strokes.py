"""StrokeNet demo: four pictures redrawn as grease-pencil strokes by the recurrent agent.

The pictures are drawn here (a KanjiVG character, a Hershey glyph, a house and a coloured
face), loaded as image datablocks and turned into drawings with the add-on's *Image to
Strokes*, as an artist would; the drawings appear stroke by stroke over 24 frames.  The demo
writes the Blender render of the drawings and ``strokes_demo.png``: pictures above, strokes below.
"""

import importlib
from pathlib import Path

import cv2
import numpy as np
from blender_session import ADDON_MODULE
from paper import paper_scene

TILE = 256
KANJI = "06c38"  # 永, "eternity": the classic five-stroke calligraphy exercise


def _canvas():
    return np.ones((TILE, TILE, 3), np.float32)


def _polylines(canvas, lines, colour=(0, 0, 0), thickness=7):
    for line in lines:
        cv2.polylines(canvas, [np.round(line).astype(np.int32)], False, colour, thickness, cv2.LINE_AA)
    return canvas


def kanji_picture():
    from core.drawing.glyphs import kanjivg_folder
    from core.drawing.svg import load_svg
    return _polylines(_canvas(), [line * TILE / 109 for line in load_svg(kanjivg_folder() / f"{KANJI}.svg")])


def hershey_picture(char="R"):
    from core.drawing.glyphs import hershey_glyphs
    (lines,) = hershey_glyphs(["futural"], char)
    points = np.concatenate(lines)
    centre, extent = (points.max(0) + points.min(0)) / 2, (points.max(0) - points.min(0)).max()
    return _polylines(_canvas(), [((l - centre) / extent * 0.75 + 0.5) * TILE for l in lines])


def house_picture():
    corners = np.array([[60, 200], [60, 110], [128, 50], [196, 110], [196, 200], [60, 200]], float)
    door = np.array([[110, 200], [110, 150], [146, 150], [146, 200]], float)
    return _polylines(_canvas(), [corners, door, np.array([[60, 110], [196, 110]], float)])


def face_picture():
    canvas = _canvas()
    cv2.circle(canvas, (128, 128), 90, (0.85, 0.55, 0.1), 8, cv2.LINE_AA)
    for x in (95, 161):
        cv2.circle(canvas, (x, 105), 10, (0.1, 0.3, 0.8), -1, cv2.LINE_AA)
    cv2.ellipse(canvas, (128, 140), (45, 35), 0, 20, 160, (0.8, 0.1, 0.15), 8, cv2.LINE_AA)
    return canvas


# (name, picture, colour strokes, rounds of refinement): the face, unlike any training image, takes three
PICTURES = (("kanji", kanji_picture, False, 1), ("glyph", hershey_picture, False, 1),
            ("house", house_picture, False, 1), ("face", face_picture, True, 3))


def build_scene(bpy):
    """A new paper scene with the pictures' tiles side by side, drawn over 24 frames."""
    return paper_scene(bpy, "StrokeNet", TILE * len(PICTURES), TILE, ortho_scale=2.0 * len(PICTURES), frame_end=24)


def run(bpy, out_dir):
    array_to_image = importlib.import_module(f"{ADDON_MODULE}.addon.images").array_to_image
    out_dir = Path(out_dir)
    scene = build_scene(bpy)
    settings = scene.atelier_strokes
    pictures, strokes = [], 0
    with bpy.context.temp_override(scene=scene, view_layer=scene.view_layers[0]):
        for index, (name, draw_picture, colour, rounds) in enumerate(PICTURES):
            picture = draw_picture()
            pictures.append(picture)
            settings.source, settings.image = "IMAGE", array_to_image(f"StrokeNet {name}", picture)
            settings.strokes, settings.colour, settings.rounds, settings.size = 8, colour, rounds, 1.8
            settings.animate, settings.frames = True, 24
            scene.cursor.location = (2.0 * index - (len(PICTURES) - 1), 0, 0)
            bpy.ops.atelier.strokes_image_to_strokes()
            strokes += len(bpy.context.active_object.data.layers[0].frames[-1].drawing.strokes)
    scene.frame_set(scene.frame_end)
    render = out_dir / "strokes_render.png"
    scene.render.filepath = str(render)
    bpy.ops.render.render(write_still=True, scene=scene.name)
    from core.imageio import read_image, write_image
    overview = out_dir / "strokes_demo.png"
    write_image(overview, np.concatenate([np.concatenate(pictures, 1), read_image(render, channels=3)], 0))
    return {"images": [str(render), str(overview)], "drawings": len(PICTURES), "strokes": strokes}
