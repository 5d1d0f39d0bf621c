"""Grease pencil v3 drawings from stroke lists, and stroke lists from drawings.

A stroke is a dict: ``points`` (N x 3, object space), ``radius`` (N or a scalar, in
Blender units), optional ``color`` (RGBA, stored as the points' vertex colour) and
optional ``time`` (N, increasing within the stroke: when the pen reaches each point).
Used by Sketch-RNN (auto-draw) and StrokeNet (image to strokes).
"""

import bpy
import numpy as np


def new_stroke_material(name, color=(0.02, 0.02, 0.02, 1.0)):
    material = bpy.data.materials.new(name)
    bpy.data.materials.create_gpencil_data(material)
    material.grease_pencil.color = color
    return material


def _point_attribute(drawing, name, data_type):
    attribute = drawing.attributes.get(name)
    return attribute if attribute is not None else drawing.attributes.new(name, data_type, "POINT")


def _fill_drawing(drawing, strokes):
    strokes = [s for s in strokes if len(s["points"])]
    if not strokes:
        return
    drawing.add_strokes([len(s["points"]) for s in strokes])
    positions = np.concatenate([np.asarray(s["points"], np.float32).reshape(-1, 3) for s in strokes])
    radii = np.concatenate([np.broadcast_to(np.asarray(s.get("radius", 0.01), np.float32), (len(s["points"]),))
                            for s in strokes])
    drawing.attributes["position"].data.foreach_set("vector", positions.ravel())
    _point_attribute(drawing, "radius", "FLOAT").data.foreach_set("value", radii)
    if any(s.get("color") is not None for s in strokes):
        colors = np.concatenate([np.tile(np.asarray(s.get("color") if s.get("color") is not None else (0, 0, 0, 0),
                                                    np.float32), (len(s["points"]), 1)) for s in strokes])
        _point_attribute(drawing, "vertex_color", "FLOAT_COLOR").data.foreach_set("color", colors.ravel())


def _strokes_until(strokes, time):
    """The strokes as drawn by ``time``: whole strokes, the current one cut at the pen."""
    drawn = []
    for stroke in strokes:
        visible = int(np.searchsorted(np.asarray(stroke["time"]), time, side="right"))
        if visible == 0:
            continue
        cut = dict(stroke, points=np.asarray(stroke["points"])[:visible])
        if np.ndim(stroke.get("radius", 0.01)):
            cut["radius"] = np.asarray(stroke["radius"])[:visible]
        drawn.append(cut)
    return drawn


def create_drawing(context, name, strokes, *, animate=False, frame_start=1, frame_count=48,
                   material=None, layer_name="Strokes", collection=None):
    """Create and return a NEW grease-pencil object holding ``strokes``.

    With ``animate`` the strokes appear over ``frame_count`` frames from ``frame_start`` as if a
    pen drew them, following each stroke's ``time`` (strokes without one are timed by arc
    length, one after the other).  Existing objects and strokes are never touched.
    """
    data = bpy.data.grease_pencils.new(name)
    obj = bpy.data.objects.new(name, data)
    (collection or context.scene.collection).objects.link(obj)
    data.materials.append(material or new_stroke_material(f"{name} ink"))
    layer = data.layers.new(layer_name)
    layer.use_lights = False  # ink shows its own colour; a lit layer is near black in a scene without lamps
    if not animate:
        _fill_drawing(layer.frames.new(frame_start).drawing, strokes)
        return obj
    strokes = with_pen_timing(strokes)
    end_time = max((float(np.max(s["time"])) for s in strokes if len(s["points"])), default=0.0) or 1.0
    previous_count = -1
    for index in range(frame_count):
        drawn = _strokes_until(strokes, end_time * (index + 1) / frame_count)
        count = sum(len(s["points"]) for s in drawn)
        if count == previous_count:
            continue  # a grease-pencil frame holds until the next one
        _fill_drawing(layer.frames.new(frame_start + index).drawing, drawn)
        previous_count = count
    return obj


def add_frame(obj, frame, strokes, layer_name=None):
    """Add ``strokes`` at ``frame`` to a layer of ``obj`` (default: its first layer).

    They go into the layer's keyframe at exactly ``frame`` if there is one, else into a new keyframe.
    """
    layer = obj.data.layers[layer_name] if layer_name else obj.data.layers[0]
    keyframe = next((f for f in layer.frames if f.frame_number == frame), None) or layer.frames.new(frame)
    _fill_drawing(keyframe.drawing, strokes)
    return keyframe


def with_pen_timing(strokes, pause=0.15):
    """Give strokes without ``time`` a pen timing: constant speed along the stroke, a short lift between."""
    timed, clock = [], 0.0
    for stroke in strokes:
        points = np.asarray(stroke["points"], np.float32).reshape(-1, 3)
        if stroke.get("time") is not None:
            timed.append(stroke)
            continue
        steps = np.linalg.norm(np.diff(points, axis=0), axis=1) if len(points) > 1 else np.zeros(0)
        time = clock + np.concatenate([[0.0], np.cumsum(steps)])
        timed.append(dict(stroke, time=time))
        clock = float(time[-1]) + pause * max(float(steps.sum()), 1e-6) + 1e-6
    return timed


def read_strokes(obj, frame=None):
    """The visible strokes of a grease-pencil object at ``frame`` (default: the current frame).

    Points are in the object's space; ``radius`` per point.  Hidden layers are skipped.
    """
    frame = bpy.context.scene.frame_current if frame is None else frame
    strokes = []
    for layer in obj.data.layers:
        if layer.hide:
            continue
        keyframe = layer.get_frame_at(frame)
        if keyframe is None:
            continue
        drawing = keyframe.drawing
        for stroke in drawing.strokes:
            points = np.array([point.position[:] for point in stroke.points], np.float32)
            radius = np.array([point.radius for point in stroke.points], np.float32)
            strokes.append({"points": points, "radius": radius, "layer": layer.name})
    return strokes
