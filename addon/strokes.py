"""StrokeNet in Blender: "Image to Strokes" turns an image into a new grease-pencil drawing.

The agent runs in the worker (``atelier strokes paint ... --json``); ``finish`` builds a NEW
grease-pencil object from the JSON: per-point radius from the pen pressure, optional
per-stroke colour, optionally drawn stroke by stroke.  The drawing lies on the image's own
plane when the image is a reference image (image empty), else on a plane through the 3D
cursor facing the active camera.
"""

import json
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix, Vector

from ..core.errors import AtelierError
from ..core.strokes.cli import REFINE
from ..core.validate import shown
from . import gpencil
from .images import image_file_for_worker
from .jobs import WorkerOperator
from .registration import register_classes, sidebar_panels, unregister_classes


class AtelierStrokesSettings(bpy.types.PropertyGroup):
    source: bpy.props.EnumProperty(name="Source", items=[("IMAGE", "Image", "An image datablock"),
                                                         ("FILE", "File", "An image file on disk")], default="IMAGE")
    image: bpy.props.PointerProperty(name="Image", type=bpy.types.Image, description="The picture to redraw")
    filepath: bpy.props.StringProperty(name="File", subtype="FILE_PATH", description="The picture to redraw")
    style: bpy.props.EnumProperty(
        name="Style", default="FREE",
        items=[("FREE", "Free strokes", "StrokeNet's agent draws the strokes, which are then polished against the "
                                        "picture (any picture; a line drawing may get extra strokes)"),
               ("LINES", "Line art", "The fewest clean strokes that redraw a line drawing: traced and drawn first "
                                     "guesses, polished, joined where they continue each other, unneeded ones "
                                     "removed (fast)"),
               ("PAINT", "Painterly", "Shaded pictures and photos: coloured strokes of any width, wide ones first, "
                                      "placed where the picture differs most and polished (Polish steps) against it")],
        description="How the picture is redrawn")
    strokes: bpy.props.IntProperty(name="Strokes", default=8, min=1, max=32,
                                   description="At most this many strokes (fewer when a new one no longer helps)")
    colour: bpy.props.BoolProperty(name="Colour", default=False, description="Each stroke takes the picture's colour under it")
    invert: bpy.props.BoolProperty(name="Light on dark", default=False,
                                   description="Force light ink on dark paper (otherwise detected from the border)")
    refine: bpy.props.IntProperty(name="Polish steps", default=REFINE, min=0, max=500,
                                  description="How long the strokes are polished against the picture after the first "
                                              "guess (0: the first guess as it is; more: closer, slower)")
    rounds: bpy.props.IntProperty(name="Polish rounds", default=1, min=1, max=5,
                                  description="After polishing, add strokes where unhelpful ones were removed and "
                                              "polish again (slower, more faithful)")
    size: bpy.props.FloatProperty(name="Size", default=2.0, min=0.001, subtype="DISTANCE",
                                  description="Width of the drawing's longer side (not used on a reference image)")
    animate: bpy.props.BoolProperty(name="Animate", default=False, description="Strokes appear one after another")
    frames: bpy.props.IntProperty(name="Frames", default=48, min=1, description="Frames the drawing takes to appear")
    save_svg: bpy.props.BoolProperty(name="Save SVG", default=False,
                                     description="Also save the strokes as an SVG file (one editable path per stroke)")
    svg_path: bpy.props.StringProperty(name="SVG file", subtype="FILE_PATH", default="//strokes.svg",
                                       description="Where to save the SVG; an existing file is never replaced "
                                                   "(a number is added)")


def settings_of(context):
    return context.scene.atelier_strokes


def reference_empty(context, image):
    """The active object when it is an image empty showing ``image`` (the drawing then goes on its plane)."""
    obj = context.active_object
    if obj is not None and obj.type == "EMPTY" and obj.empty_display_type == "IMAGE" and obj.data == image:
        return obj
    return None


def placement(context, image):
    """(matrix_world, size): where the drawing's square frame lies and how wide it is."""
    settings = settings_of(context)
    empty = reference_empty(context, image) if image is not None else None
    if empty is not None:
        offset = Vector(empty.empty_image_offset) + Vector((0.5, 0.5))  # (0, 0) = centred on the origin
        size = empty.empty_display_size
        aspect = Vector(image.size) / max(image.size) if max(image.size) else Vector((1, 1))
        shift = Matrix.Translation((offset.x * size * aspect.x, offset.y * size * aspect.y, 0))
        return empty.matrix_world @ shift, size
    camera = context.scene.camera
    rotation = camera.matrix_world.to_quaternion().to_matrix().to_4x4() if camera else Matrix.Rotation(np.pi / 2, 4, "X")
    return Matrix.Translation(context.scene.cursor.location) @ rotation, settings.size


def gp_strokes(result, matrix, size):
    """The worker's strokes (positions in [-1, 1] over the square frame, y down) -> create_drawing strokes."""
    strokes = []
    for stroke in result["strokes"]:
        uv = np.asarray(stroke["positions"], np.float32)
        local = np.column_stack([uv[:, 0] * size / 2, -uv[:, 1] * size / 2, np.zeros(len(uv))])
        world = np.array([matrix @ Vector(p) for p in local], np.float32)
        strokes.append({"points": world, "radius": np.asarray(stroke["radii"], np.float32) * size * matrix.to_scale().x,
                        "color": (*stroke["colour"], 1.0)})
    return strokes


def svg_target(settings):
    """A NEW file for the SVG (numbered when the chosen name is taken), or AtelierError."""
    if not settings.svg_path:
        raise AtelierError("Save SVG: choose a file name for the SVG")
    if settings.svg_path.startswith("//") and not bpy.data.filepath:
        raise AtelierError("Save SVG: save the .blend first, or choose an absolute path for the SVG")
    path, n = Path(bpy.path.abspath(settings.svg_path)).with_suffix(".svg"), 1
    candidate = path
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}_{n}.svg")
    return candidate


class ATELIER_OT_strokes_image_to_strokes(WorkerOperator, bpy.types.Operator):
    """Redraw an image with StrokeNet strokes as a new grease-pencil object (the image is only read)"""
    bl_idname = "atelier.strokes_image_to_strokes"
    bl_label = "Image to Strokes"

    @classmethod
    def unavailable(cls, context):
        settings = settings_of(context)
        if settings.source == "IMAGE" and settings.image is None:
            return "Choose an image to redraw (Image), or switch Source to File"
        if settings.source == "FILE" and not settings.filepath:
            return "Choose an image file to redraw"
        return super().unavailable(context)

    def worker_argv(self, context):
        settings = settings_of(context)
        folder = self.temporary_folder()
        if settings.source == "IMAGE":
            if settings.image is None:
                raise AtelierError("choose an image to redraw (Image), or switch Source to File")
            path = image_file_for_worker(settings.image, folder)
            image = settings.image
        else:
            path = Path(bpy.path.abspath(settings.filepath)) if settings.filepath else None
            if path is None or not path.is_file():
                raise AtelierError(f"{settings.filepath or '(no file)'}: no such image file")
            image = None
        svg = svg_target(settings) if settings.save_svg else folder / "strokes.svg"
        # where the drawing goes is decided now, not when the worker ends (the selection may change)
        self.placement = placement(context, image)
        self.scene_name, self.frame = context.scene.name, context.scene.frame_current
        argv = ["strokes", "paint", str(path), "--strokes", str(settings.strokes), "--refine", str(settings.refine),
                "--rounds", str(settings.rounds), "--mode", {"LINES": "lines", "PAINT": "paint"}.get(settings.style, "agent"),
                "-o", str(svg), "--json", str(folder / "strokes.json")]
        return argv + (["--colour"] if settings.colour else []) + (["--invert"] if settings.invert else [])

    def finish(self, context, summary):
        settings = settings_of(context)
        result = json.loads(Path(summary["json"]).read_text())
        matrix, size = self.placement
        name = f"{Path(result['image']).stem} strokes"
        material = gpencil.new_stroke_material(f"{name} ink", (0.0, 0.0, 0.0, 1.0))
        obj = gpencil.create_drawing(context, name, gp_strokes(result, matrix, size), animate=settings.animate,
                                     frame_start=self.frame, frame_count=settings.frames, material=material)
        if settings.colour or settings.style == "PAINT":
            material.grease_pencil.color = (1.0, 1.0, 1.0, 1.0)  # vertex colours carry the strokes' colours
        for selected in context.selected_objects:
            selected.select_set(False)
        obj.select_set(True)
        context.view_layer.objects.active = obj
        saved = f"; SVG saved as {summary['svg']}" if settings.save_svg else ""
        self.report({"INFO"}, shown(f"Drew {summary['strokes']} strokes{saved}"))
        return {"FINISHED"}


def _draw(layout, context):
    settings = settings_of(context)
    layout.prop(settings, "source", expand=True)
    if settings.source == "IMAGE":
        layout.template_ID(settings, "image", open="image.open")
    else:
        layout.prop(settings, "filepath")
    layout.prop(settings, "style")
    layout.prop(settings, "strokes")
    column = layout.column(heading="Ink")
    column.prop(settings, "colour")
    column.prop(settings, "invert")
    on_reference = settings.source == "IMAGE" and reference_empty(context, settings.image) is not None
    row = layout.row()
    row.active = not on_reference  # a reference image gives the drawing its own size
    row.prop(settings, "size")
    column = layout.column(heading="Animate")
    column.prop(settings, "animate", text="")
    sub = column.row()
    sub.active = settings.animate
    sub.prop(settings, "frames")
    layout.operator(ATELIER_OT_strokes_image_to_strokes.bl_idname, icon="GREASEPENCIL")


def _draw_polish(layout, context):
    settings = settings_of(context)
    column = layout.column()
    column.active = settings.style != "LINES"    # line art polishes for a fixed short time
    column.prop(settings, "refine")
    row = column.row()
    row.active = settings.style == "FREE"
    row.prop(settings, "rounds")


def _draw_svg(layout, context):
    settings = settings_of(context)
    layout.prop(settings, "save_svg")
    row = layout.row()
    row.active = settings.save_svg
    row.prop(settings, "svg_path")


panels = sidebar_panels("strokes", "Image to Strokes", _draw, {"image": "IMAGE_EDITOR", "view3d": "VIEW_3D"},
                        subpanels=(("Polish", _draw_polish), ("Export SVG", _draw_svg)))

classes = (AtelierStrokesSettings, ATELIER_OT_strokes_image_to_strokes, *panels)


def register():
    register_classes(classes, atelier_strokes=AtelierStrokesSettings)


def unregister():
    unregister_classes(classes, "atelier_strokes")
