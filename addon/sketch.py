"""Sketch-RNN in Blender: Auto-Draw, Complete, Reinterpret and Morph grease-pencil drawings.

The numpy runtime (``core/sketch/runtime.py``) draws in Blender's own process: a sketch takes
milliseconds, so no worker is needed.  Every operator makes a NEW grease-pencil object; the
user's drawings are only read.
"""


from typing import Any

import bpy
import numpy as np
from mathutils import Vector

from ..core.errors import AtelierError
from ..core.validate import shown
from ..core.sketch.runtime import SketchModel, slerp
from ..core.sketch.personal import personal_dataset, training_options
from ..core.drawing.npz import save_npz
from ..core.drawing.pen import stroke3_to_polylines
from ..core.sketch.data import grease_pencil_to_stroke3, stroke3_to_grease_pencil
from . import gpencil
from .jobs import WorkerOperator
from .library import chosen_model, draw_browser, model_items, select
from .preferences import models_dir
from .registration import register_classes, unregister_classes

def load_model(path):
    """The chosen Sketch-RNN model (parsing a file takes milliseconds, so nothing is cached)."""
    return SketchModel(chosen_model(path, "sketch"))


class AtelierSketchSettings(bpy.types.PropertyGroup):
    model: bpy.props.EnumProperty(name="Model", items=model_items("sketch"),
                                  description="A Sketch-RNN model: shipped ones, then those you trained")
    count: bpy.props.IntProperty(name="Count", default=9, min=1, max=100, description="How many sketches to draw")
    temperature: bpy.props.FloatProperty(name="Temperature", default=0.3, min=0.01, max=1.5,
                                         description="Randomness: low is tidy and typical, high is varied and wild")
    seed: bpy.props.IntProperty(name="Seed", default=0, min=0)
    columns: bpy.props.IntProperty(name="Columns", default=3, min=1, max=20, description="Layout grid width")
    size: bpy.props.FloatProperty(name="Size", default=1.0, min=0.01, subtype="DISTANCE",
                                  description="Each auto-drawn sketch fits a square of this size")
    spacing: bpy.props.FloatProperty(name="Spacing", default=0.25, min=0.0, description="Gap between cells, in sizes")
    radius: bpy.props.FloatProperty(name="Line radius", default=0.012, min=0.0001, subtype="DISTANCE")
    frames: bpy.props.IntProperty(name="Drawing frames", default=48, min=1,
                                  description="How many frames the pen takes to draw (0 steps = all at once)")
    animate: bpy.props.BoolProperty(name="Animate pen", default=True,
                                    description="Strokes appear over the frames as the model drew them")
    morph_target: bpy.props.PointerProperty(name="Morph to", type=bpy.types.Object,
                                            poll=lambda self, obj: obj.type == "GREASEPENCIL",
                                            description="The drawing the active one morphs into")
    morph_frames: bpy.props.IntProperty(name="Morph frames", default=24, min=2, max=500)
    train_from: bpy.props.EnumProperty(name="Drawings", default="FRAMES", items=[
        ("FRAMES", "Every Frame", "Each keyframe of the active drawing's layers is one drawing"),
        ("LAYERS", "Every Layer", "Each layer of the active drawing, at the current frame, is one drawing")])
    train_minutes: bpy.props.FloatProperty(name="Minutes", default=15.0, min=0.05, max=600.0,
                                           description="Training time; Esc stops early and keeps the model so far")


def pen_radius(points, base):
    """A pressure-like radius: thinner where the pen moves fast, tapered at the stroke's ends."""
    count = len(points)
    steps = np.linalg.norm(np.diff(points, axis=0), axis=1) if count > 1 else np.zeros(0)
    speed = np.concatenate([steps[:1], (steps[1:] + steps[:-1]) / 2, steps[-1:]]) if count > 1 else np.zeros(1)
    relative = speed / max(float(np.median(speed)), 1e-9)
    taper = np.minimum(1.0, np.minimum(np.arange(count) + 1, count - np.arange(count)) / 2.0) ** 0.5
    return (base * (0.6 + 0.5 * np.exp(-relative)) * (0.5 + 0.5 * taper)).astype(np.float32)


def timed_strokes(lines, base_radius, start_time=0.0):
    """3D polylines from one sketch -> gpencil stroke dicts; the pen reaches point k of the sketch at time k."""
    strokes, clock = [], start_time
    for line in lines:
        strokes.append({"points": line, "radius": pen_radius(line, base_radius),
                        "time": clock + np.arange(len(line), dtype=np.float32)})
        clock += len(line)
    return strokes


def grid_lines(sketch, centre, size):
    """A sampled sketch (model units) -> 3D polylines fitted in a ``size`` square on the XZ plane at ``centre``."""
    lines = stroke3_to_polylines(sketch)
    points = np.concatenate(lines)
    middle = (points.min(0) + points.max(0)) / 2
    scale = size / max(float((points.max(0) - points.min(0)).max()), 1e-9)
    return [np.column_stack([centre[0] + (line[:, 0] - middle[0]) * scale, np.full(len(line), centre[1]),
                             centre[2] - (line[:, 1] - middle[1]) * scale]).astype(np.float32) for line in lines]


def settings_of(context):
    return context.scene.atelier_sketch


def drawing_points(obj):
    """The point arrays of a grease-pencil object's visible strokes (read only)."""
    strokes = [s["points"] for s in gpencil.read_strokes(obj) if len(s["points"])]
    if not strokes:
        raise AtelierError(f"{obj.name}: the drawing has no strokes on the current frame")
    return strokes


def active_drawing(context):
    obj = context.active_object
    if obj is None or obj.type != "GREASEPENCIL":
        raise AtelierError("select a grease-pencil drawing first (it is only read, never changed)")
    return obj, drawing_points(obj)


def new_drawing(context, name, strokes, source=None, animate=None, offset=(0.0, 0.0, 0.0)):
    """A new grease-pencil object (placed like ``source`` when given), made the active one."""
    settings = settings_of(context)
    animate = settings.animate if animate is None else animate
    obj = gpencil.create_drawing(context, name, strokes, animate=animate, frame_start=context.scene.frame_current,
                                 frame_count=settings.frames)
    if source is not None:
        obj.matrix_world = source.matrix_world.copy()
        obj.location = obj.location + source.matrix_world.to_3x3() @ Vector(offset)
    for selected in context.selected_objects:
        selected.select_set(False)
    obj.select_set(True)
    context.view_layer.objects.active = obj
    return obj


class SketchOperator:
    """Reports AtelierError in the status bar and cancels, instead of raising in Blender."""

    bl_options: Any = {"REGISTER", "UNDO"}  # (a mixin: Blender checks the flags when the class registers)
    reads_active_drawing = True

    @classmethod
    def poll(cls, context):
        if cls.reads_active_drawing:
            obj = context.active_object
            if obj is None or obj.type != "GREASEPENCIL":
                cls.poll_message_set("Select a grease-pencil drawing first (it is only read, never changed)")
                return False
        return True

    def execute(self, context):
        try:
            settings = settings_of(context)
            return self.run(context, settings, load_model(settings.model))
        except AtelierError as error:
            self.report({"ERROR"}, shown(str(error)))
            return {"CANCELLED"}


class ATELIER_OT_sketch_auto_draw(SketchOperator, bpy.types.Operator):
    """Draw new sketches with a Sketch-RNN model, as a new grease-pencil object drawn stroke by stroke"""
    bl_idname = "atelier.sketch_auto_draw"
    bl_label = "Auto-Draw"
    reads_active_drawing = False

    def run(self, context, settings, model):
        sketches = model.sample_drawings(settings.count, settings.temperature, seed=settings.seed)
        cell = settings.size * (1 + settings.spacing)
        rows = (len(sketches) + settings.columns - 1) // settings.columns
        cursor = np.array(context.scene.cursor.location)
        strokes = []
        for index, sketch in enumerate(sketches):
            if len(sketch) < 2:
                continue
            column, row = index % settings.columns, index // settings.columns
            centre = cursor + np.array([(column - (settings.columns - 1) / 2) * cell, 0.0, ((rows - 1) / 2 - row) * cell])
            strokes += timed_strokes(grid_lines(sketch, centre, settings.size), settings.radius)
        if not strokes:
            raise AtelierError(f"{model.path.name}: the model drew nothing at this temperature; try another seed")
        new_drawing(context, f"Sketch {model.name}", strokes)
        self.report({"INFO"}, shown(f"Drew {len(sketches)} sketches with {model.name}"))
        return {"FINISHED"}


def _drawing_strokes(context, lines, start_time=0.0):
    return timed_strokes(lines, settings_of(context).radius, start_time)


class ATELIER_OT_sketch_complete(SketchOperator, bpy.types.Operator):
    """Continue the active drawing: the model reads its strokes and draws what comes next, as a new object"""
    bl_idname = "atelier.sketch_complete"
    bl_label = "Complete Drawing"

    def run(self, context, settings, model):
        source, strokes = active_drawing(context)
        prefix, placement = grease_pencil_to_stroke3(strokes)
        z = model.encode([prefix])[0] if model.conditional else None
        continuation = model.sample(1, settings.temperature, seed=settings.seed, prefix=prefix,
                                    z=None if z is None else z[None])[0]
        if len(continuation) < 1:
            raise AtelierError(f"{model.name}: the model thinks {source.name} is finished; "
                               "raise the temperature or change the seed")
        lines = stroke3_to_grease_pencil(continuation, placement, start=prefix[:, :2].sum(0))
        new_drawing(context, f"{source.name} completion", _drawing_strokes(context, lines), source)
        return {"FINISHED"}


class ATELIER_OT_sketch_reinterpret(SketchOperator, bpy.types.Operator):
    """Encode the active drawing and draw the model's version of it beside it, as a new object"""
    bl_idname = "atelier.sketch_reinterpret"
    bl_label = "Reinterpret Drawing"

    def run(self, context, settings, model):
        source, strokes = active_drawing(context)
        drawing, placement = grease_pencil_to_stroke3(strokes)
        mu, _ = model.encode([drawing])
        sketch = model.sample_drawings(1, settings.temperature, seed=settings.seed, z=mu)[0]
        lines = stroke3_to_grease_pencil(sketch, placement)
        width = np.ptp(np.concatenate(strokes), axis=0).max()
        shift = np.zeros(3)
        shift[placement["axes"][0]] = 1.2 * width
        new_drawing(context, f"{source.name} reinterpreted", _drawing_strokes(context, lines), source,
                    offset=tuple(shift))
        return {"FINISHED"}


class ATELIER_OT_sketch_morph(SketchOperator, bpy.types.Operator):
    """Morph the active drawing into 'Morph to' through the model's latent space, one frame per step"""
    bl_idname = "atelier.sketch_morph"
    bl_label = "Morph Drawings"

    def run(self, context, settings, model):
        source, strokes = active_drawing(context)
        target = settings.morph_target
        if target is None or target == source:
            raise AtelierError("choose another grease-pencil drawing in 'Morph to'")
        first, placement = grease_pencil_to_stroke3(strokes)
        second, _ = grease_pencil_to_stroke3(drawing_points(target))  # each drawing is normalised on its own
        mu, _ = model.encode([first, second])
        frames = settings.morph_frames
        codes = np.stack([slerp(mu[0], mu[1], t) for t in np.linspace(0, 1, frames)])
        # one seed for every frame, so the pen's random draws change smoothly with z
        sketches = [model.sample_drawings(1, settings.temperature, seed=settings.seed, z=code[None])[0] for code in codes]
        obj = new_drawing(context, f"{source.name} morph", [], source, animate=False)
        start = context.scene.frame_current
        for index, sketch in enumerate(sketches):
            lines = stroke3_to_grease_pencil(sketch, placement) if len(sketch) else []
            gpencil.add_frame(obj, start + index, [{"points": line, "radius": pen_radius(line, settings.radius)}
                                                   for line in lines])
        return {"FINISHED"}


def artist_drawings(obj, mode):
    """The drawings of grease-pencil ``obj`` as stroke-3 sketches: one per keyframe (``FRAMES``) or per
    visible layer at the current frame (``LAYERS``)."""
    drawings = []
    for layer in obj.data.layers:
        if layer.hide:
            continue
        keyframes = list(layer.frames) if mode == "FRAMES" else [layer.get_frame_at(bpy.context.scene.frame_current)]
        for keyframe in keyframes:
            if keyframe is None:
                continue
            lines = [np.array([point.position[:] for point in stroke.points], np.float32)
                     for stroke in keyframe.drawing.strokes]
            lines = [line for line in lines if len(line) > 1]
            if lines:
                drawings.append(grease_pencil_to_stroke3(lines)[0])
    return drawings


class ATELIER_OT_sketch_train(WorkerOperator, bpy.types.Operator):
    """Train a Sketch-RNN on the active drawing's frames or layers (20-50 drawings make a style), in the
    worker; the model then appears in the Sketch model list"""
    bl_idname = "atelier.sketch_train"
    bl_label = "Train on My Drawings"
    needs = ("torch",)

    @classmethod
    def unavailable(cls, context):
        obj = context.active_object
        if obj is None or obj.type != "GREASEPENCIL":
            return "Select the grease-pencil object that holds your drawings (one per frame or per layer)"
        return super().unavailable(context)

    def worker_argv(self, context):
        settings = settings_of(context)
        obj = context.active_object
        drawings = artist_drawings(obj, settings.train_from)
        data = self.temporary_folder() / "drawings.npz"
        dataset = personal_dataset(drawings)
        save_npz(data, dataset)
        self.count = len(drawings)
        name = bpy.path.clean_name(obj.name)
        self.output = unique_model_path(f"sketch_{name}")
        self.scene_name = context.scene.name
        return ["sketch", "train", str(data), *training_options(dataset), "--minutes", f"{settings.train_minutes:g}",
                "-o", str(self.output)]

    def _keep(self, context, message):
        select(settings_of_scene(self.scene_name, context), "model", self.output)
        return message

    def finish(self, context, summary):
        message = self._keep(context, f"Sketch-RNN trained on {self.count} drawings "
                                      f"({summary.get('steps', '?')} steps): {self.output.name}")
        self.report({"INFO"}, shown(message))
        return {"FINISHED"}

    def cancelled(self, context, figures):
        if not self.output.is_file():
            return None
        return self._keep(context, f"Stopped; kept the model so far: {self.output}")


def settings_of_scene(scene_name, context):
    return (bpy.data.scenes.get(scene_name) or context.scene).atelier_sketch


def unique_model_path(stem):
    path, n = models_dir() / f"{stem}.safetensors", 1
    while path.exists():
        n += 1
        path = models_dir() / f"{stem}_{n}.safetensors"
    return path


def draw_sketch_ui(layout, context):
    settings = settings_of(context)
    draw_browser(layout, settings, "model", "sketch")
    column = layout.column(align=True)
    column.prop(settings, "temperature")
    column.prop(settings, "seed")
    column = layout.column(align=True)
    column.prop(settings, "count")
    column.prop(settings, "columns")
    column.prop(settings, "size")
    column.prop(settings, "radius")
    row = layout.row(align=True)
    row.prop(settings, "animate")
    row.prop(settings, "frames")
    layout.operator(ATELIER_OT_sketch_auto_draw.bl_idname, icon="GREASEPENCIL")
    layout.separator()
    layout.label(text="Active drawing:")
    layout.operator(ATELIER_OT_sketch_complete.bl_idname, icon="FORWARD")
    layout.operator(ATELIER_OT_sketch_reinterpret.bl_idname, icon="FILE_REFRESH")
    column = layout.column(align=True)
    column.prop(settings, "morph_target")
    column.prop(settings, "morph_frames")
    column.operator(ATELIER_OT_sketch_morph.bl_idname, icon="IPO_EASE_IN_OUT")


def draw_train_ui(layout, context):
    settings = settings_of(context)
    layout.use_property_split, layout.use_property_decorate = True, False
    layout.label(text="Your style: 20-50 drawings in the active object")
    layout.prop(settings, "train_from")
    layout.prop(settings, "train_minutes")
    layout.operator(ATELIER_OT_sketch_train.bl_idname, icon="PLAY")


class ATELIER_PT_sketch(bpy.types.Panel):
    bl_label = "Sketch-RNN"
    bl_idname = "ATELIER_PT_sketch"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Atelier"

    def draw(self, context):
        draw_sketch_ui(self.layout, context)


class ATELIER_PT_sketch_train(bpy.types.Panel):
    bl_label = "Train on My Drawings"
    bl_idname = "ATELIER_PT_sketch_train"
    bl_parent_id = "ATELIER_PT_sketch"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Atelier"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        draw_train_ui(self.layout, context)


def _menu_add(self, context):
    self.layout.operator(ATELIER_OT_sketch_auto_draw.bl_idname, icon="GREASEPENCIL")


def _menu_drawing(self, context):
    layout = self.layout
    layout.separator()
    layout.operator(ATELIER_OT_sketch_complete.bl_idname)
    layout.operator(ATELIER_OT_sketch_reinterpret.bl_idname)
    layout.operator(ATELIER_OT_sketch_morph.bl_idname)


MENUS = (("VIEW3D_MT_grease_pencil_add", _menu_add), ("VIEW3D_MT_paint_grease_pencil", _menu_drawing),
         ("VIEW3D_MT_edit_greasepencil", _menu_drawing), ("VIEW3D_MT_object", _menu_drawing))

classes = (AtelierSketchSettings, ATELIER_OT_sketch_auto_draw, ATELIER_OT_sketch_complete,
           ATELIER_OT_sketch_reinterpret, ATELIER_OT_sketch_morph, ATELIER_OT_sketch_train, ATELIER_PT_sketch,
           ATELIER_PT_sketch_train)


def register():
    register_classes(classes, atelier_sketch=AtelierSketchSettings)
    for menu, function in MENUS:
        getattr(bpy.types, menu).append(function)


def unregister():
    for menu, function in reversed(MENUS):
        getattr(bpy.types, menu).remove(function)
    unregister_classes(classes, "atelier_sketch")
