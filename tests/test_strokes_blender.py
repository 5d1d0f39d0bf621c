"""StrokeNet in real Blender: Image to Strokes makes a new grease-pencil drawing; bad input is reported."""

import numpy as np
import pytest


def cross_image(bpy, name="Cross"):
    from bl_ext.atelier_dev.atelier.addon.images import array_to_image
    pixels = np.ones((48, 64, 4), np.float32)
    pixels[8:40, 30:34, :3] = 0
    pixels[22:26, 10:54, :3] = (0.8, 0.1, 0.1)
    return array_to_image(name, pixels)


def test_image_to_strokes_makes_a_new_drawing_and_leaves_the_image_alone(blender):
    bpy = blender
    from bl_ext.atelier_dev.atelier.addon import gpencil
    image = cross_image(bpy)
    before = np.array(image.pixels[:])
    settings = bpy.context.scene.atelier_strokes
    settings.image, settings.strokes, settings.refine, settings.colour = image, 3, 5, True
    assert bpy.ops.atelier.strokes_image_to_strokes() == {"FINISHED"}
    drawing = bpy.context.active_object
    assert drawing.type == "GREASEPENCIL" and drawing.name.startswith("Cross")
    strokes = gpencil.read_strokes(drawing)
    assert 1 <= len(strokes) <= 3
    radii = np.concatenate([s["radius"] for s in strokes])
    assert 0 <= radii.min() < radii.max() < settings.size  # radius follows the pressure (0: pen lifted)
    points = np.concatenate([s["points"] for s in strokes])
    assert np.abs(points[:, 1]).max() < 1e-4  # no camera: the XZ plane through the cursor
    assert np.array_equal(before, np.array(image.pixels[:]))

    # on a reference image the drawing lies on the image's own plane
    empty = bpy.data.objects.new("Reference", None)
    empty.empty_display_type, empty.data, empty.empty_display_size = "IMAGE", image, 3.0
    empty.location = (5, 0, 0)
    bpy.context.scene.collection.objects.link(empty)
    bpy.context.view_layer.objects.active = empty
    settings.animate, settings.frames = True, 10
    assert bpy.ops.atelier.strokes_image_to_strokes() == {"FINISHED"}
    placed = bpy.context.active_object
    assert len(placed.data.layers[0].frames) > 1  # drawn stroke by stroke
    bpy.context.scene.frame_set(10)
    points = np.concatenate([s["points"] for s in gpencil.read_strokes(placed)])
    assert np.abs(points[:, 2]).max() < 1e-4 and 3.4 < points[:, 0].mean() < 6.6


def test_line_art_style_draws_the_cross_as_two_clean_strokes(blender):
    bpy = blender
    from bl_ext.atelier_dev.atelier.addon import gpencil
    image = cross_image(bpy, "Lines")
    settings = bpy.context.scene.atelier_strokes
    settings.image, settings.strokes, settings.style = image, 6, "LINES"
    assert bpy.ops.atelier.strokes_image_to_strokes() == {"FINISHED"}
    drawing = bpy.context.active_object
    assert drawing.type == "GREASEPENCIL" and drawing.name.startswith("Lines")
    assert len(gpencil.read_strokes(drawing)) == 2

    settings.style, settings.strokes, settings.refine = "PAINT", 5, 3      # painterly: coloured strokes
    assert bpy.ops.atelier.strokes_image_to_strokes() == {"FINISHED"}
    assert len(gpencil.read_strokes(bpy.context.active_object)) == 5


def test_bad_input_is_reported_not_raised_as_a_traceback(blender):
    bpy = blender
    from bl_ext.atelier_dev.atelier.addon.images import array_to_image
    settings = bpy.context.scene.atelier_strokes
    with pytest.raises(RuntimeError, match="(?i)choose an image"):
        bpy.ops.atelier.strokes_image_to_strokes()
    settings.image = array_to_image("Flat", np.full((16, 16, 4), 0.5, np.float32))
    with pytest.raises(RuntimeError, match="uniform"):
        bpy.ops.atelier.strokes_image_to_strokes()
    settings.source, settings.filepath = "FILE", "/nonexistent/picture.png"
    with pytest.raises(RuntimeError, match="no such image"):
        bpy.ops.atelier.strokes_image_to_strokes()
    assert not [o for o in bpy.data.objects if o.type == "GREASEPENCIL"]
