"""μNCA neural textures in the shader editor: train a tiny model on an exemplar, bake it into a material.

Sidebar tab "Atelier" of the Shader editor:

* the model browser (``library.py``): the shipped presets and the artist's own models, with
  their textures as thumbnails;
* *Train on an Image*: an exemplar (image datablock or file) to train on (``atelier nca train`` in
  the worker: progress bar; Esc stops early, keeps the best model so far and selects it).  The
  panel shows the texture growing while it trains (the worker rewrites a small preview PNG every
  few seconds; the operator loads it into an icon of a private preview collection, no datablock),
  and, for an exemplar that cannot tile or has no repeating structure, says that the result will
  be a texture "in the style of" the image (it trains all the same).  Its sub-panel *Structure and
  Colour* sets the loss's optional terms (``--pyramid``, ``--palette-weight``, ``--structure-weight``,
  ``--structure-from``; docs/nca.md says which exemplars each one helps);
* *Bake* grows the texture (``atelier nca render`` in the worker) and adds a NEW node group
  "μNCA · name" (inputs Vector, Scale, Time; output Color) to the active material, with a UV
  input and a group node placed beside the user's nodes, none of which is touched:

  - Image mode (EEVEE and Cycles): the seamless tile packed into the .blend; with frames, an
    animated loop of packed images chosen by Time (in frames; a driver feeds the scene frame);
  - OSL mode (Cycles): a Script node (internal text generated from the int8 model, with the
    state tile grown to one step before the end embedded) that computes the rule's last
    update step at render time.

The material is the one active when Bake was clicked, whatever is selected when the worker ends.
Everything is created in one operator call, so one undo removes it.
"""

import textwrap
from pathlib import Path
from typing import Any

import bpy
import bpy.utils.previews

from ..core.errors import AtelierError
from ..core.nca.defaults import MAX_PALETTE_WEIGHT, MAX_STRUCTURE_WEIGHT, PYRAMIDS, TRAINING
from ..core.nca.rule import PARAMS_TO_CHANNELS
from ..core.osl import add_oslquery_to_path
from .images import image_file_for_worker, image_to_array, load_image_copy
from .jobs import WorkerOperator
from .library import chosen_model, draw_browser, model_items, select
from .preferences import models_dir
from .registration import register_classes, unregister_classes

MAX_FRAMES = 32
MAX_OSL_TILE = 128  # the OSL shader embeds the state tile as constants; larger ones compile too slowly
QUALITY_WORDS = {68: ("Tiny", "stripes, spots, simple patterns"), 150: ("Small", "patterns with a little more detail"),
                 264: ("Medium", "irregular cells and tiles"), 588: ("Rich", "photos, bricks, richer structure")}
assert tuple(QUALITY_WORDS) == tuple(PARAMS_TO_CHANNELS), "one quality word per μNCA size (core/nca/rule.py)"
QUALITY_ITEMS = [(str(params), f"{QUALITY_WORDS[params][0]}: {params} bytes",
                  f"{channels} channels, {params} parameters stored in one byte each: {QUALITY_WORDS[params][1]}")
                 for params, channels in PARAMS_TO_CHANNELS.items()]
PYRAMID_WORDS = {3: ("Fine", "7x7 patches at 1, 2 and 4 times coarser: the pieces of a texture"),
                 5: ("Coarse", "also 5x5 and 3x3 patches at 8 and 16 times coarser, which see 40-48 cells: "
                               "the arrangement of a lattice of grids or dots"),
                 6: ("Wide", "the coarse levels and 9x9 patches at 8 times coarser (72 cells): "
                             "lattices of large tiles")}
assert tuple(PYRAMID_WORDS) == PYRAMIDS, "one word per pyramid (core/nca/defaults.py)"
PYRAMID_ITEMS = [(str(levels), f"{word}: {levels} levels", what) for levels, (word, what) in PYRAMID_WORDS.items()]


_previews: dict = {}  # "collection": the bpy.utils.previews collection holding the live training preview


def preview_icon(create=False):
    """The ImagePreview showing the texture as it trains (None before the first training)."""
    if "collection" not in _previews:
        if not create:
            return None
        _previews["collection"] = bpy.utils.previews.new()
    collection = _previews["collection"]
    if "training" not in collection:
        return collection.new("training") if create else None
    return collection["training"]


def show_preview(path):
    """Load the worker's preview PNG into the training preview icon; True when it changed."""
    from ..core.imageio import read_image
    try:
        image = read_image(path, channels=4)
    except (AtelierError, OSError):
        return False  # (being replaced: the worker writes it atomically, so the next look finds it)
    preview = preview_icon(create=True)
    height, width = image.shape[:2]
    preview.image_size = (width, height)
    image[..., 3] = 1.0
    preview.image_pixels_float = image[::-1].ravel()  # Blender's rows go bottom up
    return True


def exemplar_note(s):
    """The "in the style of" note for the chosen exemplar, or "" (numpy only; a few milliseconds)."""
    from ..core.imageio import read_image
    from ..core.nca.exemplars import as_exemplar, style_note
    try:
        if s.exemplar_source == "IMAGE":
            if s.image is None or not s.image.size[0]:
                return ""
            pixels = image_to_array(s.image)
        else:
            path = _abs(s.file)
            if not path or not path.is_file():
                return ""
            pixels = read_image(path)
        return style_note(as_exemplar(pixels)) or ""
    except (AtelierError, OSError, ValueError):
        return ""


def _exemplar_changed(s, context):
    s.exemplar_note = exemplar_note(s)


class AtelierNCASettings(bpy.types.PropertyGroup):
    model: bpy.props.EnumProperty(name="Texture", items=model_items("nca"),
                                  description="The μNCA to bake: a shipped preset or one you trained")
    exemplar_source: bpy.props.EnumProperty(name="Train on", items=[
        ("IMAGE", "Image", "An image datablock of this .blend"),
        ("FILE", "File", "An image file on disk")], default="IMAGE")
    image: bpy.props.PointerProperty(name="Exemplar", type=bpy.types.Image, update=_exemplar_changed,
                                     description="The texture to imitate (it is only read)")
    file: bpy.props.StringProperty(name="Exemplar file", subtype="FILE_PATH", update=_exemplar_changed,
                                   description="The texture to imitate (it is only read)")
    params: bpy.props.EnumProperty(name="Quality", default=str(TRAINING.params), items=QUALITY_ITEMS,
                                   description="Model size: bigger models learn richer textures, more slowly")
    minutes: bpy.props.FloatProperty(name="Minutes", default=TRAINING.minutes, min=0.05, max=600.0,
                                     description="Training time; Esc stops early and keeps the best model so far")
    # the loss's optional terms (docs/nca.md, "The benchmark set by kind"): the defaults are the CLI's
    pyramid: bpy.props.EnumProperty(name="Patch scales", default=str(TRAINING.pyramid), items=PYRAMID_ITEMS,
                                    description="The scales at which the texture's patches must match the image's")
    palette_weight: bpy.props.FloatProperty(
        name="Keep colours", default=TRAINING.palette_weight, min=0.0, max=MAX_PALETTE_WEIGHT, soft_max=100.0,
        description="Weight of a term that keeps the image's colours in their proportions (0: off; try 10)")
    structure_weight: bpy.props.FloatProperty(
        name="Arrangement", default=TRAINING.structure_weight, min=0.0, max=MAX_STRUCTURE_WEIGHT, soft_max=50.0,
        description="Weight of a term that matches the arrangement up to 32 cells: a lattice's period, "
                    "round blobs rather than bands (0: off; try 10 when blobs grow as bands)")
    structure_from: bpy.props.FloatProperty(
        name="Arrangement from", default=TRAINING.structure_from, min=0.0, max=0.95, subtype="FACTOR",
        description="Part of the training time after which the arrangement term joins, so the pieces form first")
    mode: bpy.props.EnumProperty(name="Bake as", items=[
        ("IMAGE", "Image", "Packed seamless image tile(s): EEVEE and Cycles"),
        ("OSL", "OSL", "Script node computing the last step at render time: Cycles with Open Shading Language")])
    size: bpy.props.IntProperty(name="Tile size", default=256, min=16, max=4096,
                                description=f"Cells a side of the seamless tile (OSL: at most {MAX_OSL_TILE})")
    steps: bpy.props.IntProperty(name="Growth steps", default=1000, min=1, max=100000,
                                 description="Steps the texture grows from noise before it is baked")
    frames: bpy.props.IntProperty(name="Frames", default=0, min=0, max=MAX_FRAMES,
                                  description="Animated loop of this many frames (0: a still tile)")
    last_message: bpy.props.StringProperty(name="Last training", options={"SKIP_SAVE"})
    exemplar_note: bpy.props.StringProperty(name="About the exemplar", options={"SKIP_SAVE"},
                                            description="Why the result will be in the style of the image")
    previews_shown: bpy.props.IntProperty(name="Previews shown", options={"SKIP_SAVE"},
                                          description="Preview images of the texture shown during the last training")


def settings(context):
    return context.scene.atelier_nca


def _abs(path):
    return Path(bpy.path.abspath(path)) if path else None


def _unique(path):
    path, n = Path(path), 1
    candidate = path
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}_{n}{path.suffix}")
    return candidate


def bake_problem(s):
    """Why the bake settings cannot work, checked before the click, or None."""
    if s.mode == "OSL" and s.size > MAX_OSL_TILE:
        return f"OSL embeds the tile in the shader: use a tile size of at most {MAX_OSL_TILE}"
    return None


class ATELIER_OT_nca_train(WorkerOperator, bpy.types.Operator):
    """Train a μNCA on the exemplar in the worker (Esc stops early and keeps the best model so far)"""
    bl_idname = "atelier.nca_train"
    bl_label = "Train μNCA"
    needs = ("torch",)

    @classmethod
    def unavailable(cls, context):
        s = settings(context)
        if s.exemplar_source == "IMAGE" and s.image is None:
            return "Choose an exemplar image to train on"
        if s.exemplar_source == "FILE" and not s.file:
            return "Choose an exemplar image file to train on"
        return super().unavailable(context)

    def worker_argv(self, context):
        s = settings(context)
        if s.exemplar_source == "IMAGE":
            if s.image is None:
                raise AtelierError("μNCA: choose an exemplar image")
            exemplar = image_file_for_worker(s.image, self.temporary_folder())
            name = s.image.name
        else:
            exemplar = _abs(s.file)
            if not exemplar or not exemplar.is_file():
                raise AtelierError(f"{s.file or 'μNCA'}: exemplar file not found")
            name = exemplar.stem
        self.output = _unique(models_dir() / f"nca_{bpy.path.clean_name(name)}_{s.params}.safetensors")
        self.scene_name = context.scene.name
        s.exemplar_note, s.previews_shown = exemplar_note(s), 0
        self.preview, self.preview_stamp = self.temporary_folder() / "preview.png", None
        return ["nca", "train", str(exemplar), "--params", s.params, "--minutes", f"{s.minutes:g}",
                "--pyramid", s.pyramid, "--palette-weight", f"{s.palette_weight:g}",
                "--structure-weight", f"{s.structure_weight:g}", "--structure-from", f"{s.structure_from:g}",
                "--name", name, "--preview", str(self.preview), "-o", str(self.output)]

    def refresh_preview(self, context):
        """Show the worker's latest preview (when it rewrote it since the last look) in the panel."""
        try:
            stamp = self.preview.stat().st_mtime_ns
        except (AttributeError, OSError):
            return
        if stamp == self.preview_stamp or not show_preview(self.preview):
            return
        self.preview_stamp = stamp
        s = (bpy.data.scenes.get(self.scene_name) or context.scene).atelier_nca
        s.previews_shown += 1
        for window in getattr(context.window_manager, "windows", []):
            for area in window.screen.areas:
                if area.type == "NODE_EDITOR":
                    area.tag_redraw()

    def modal(self, context, event):
        if event.type == "TIMER":
            self.refresh_preview(context)
        return super().modal(context, event)

    def execute(self, context):  # no window (tests, blender -b): the same previews, as messages arrive
        job = self._start(context)
        if job is None:
            return {"CANCELLED"}
        job.wait(on_message=lambda message: self.refresh_preview(context))
        self.refresh_preview(context)
        return self._conclude(context, job)

    def _keep(self, context, message):
        s = (bpy.data.scenes.get(self.scene_name) or context.scene).atelier_nca
        select(s, "model", self.output)
        s.last_message = message
        return message

    def finish(self, context, summary):
        note = f" ({summary['note']})" if summary.get("note") else ""
        self.report({"INFO"}, self._keep(context, f"μNCA trained: {summary['iterations']} iterations, "
                                                  f"model {summary['model']}{note}"))
        return {"FINISHED"}

    def cancelled(self, context, figures):
        if not self.output.is_file():
            return None
        kept = f"iteration {figures['iteration']}" if "iteration" in figures else "the first iterations"
        return self._keep(context, f"Stopped; kept the best model so far ({kept}): {self.output}")


class ATELIER_OT_nca_bake(WorkerOperator, bpy.types.Operator):
    """Grow the μNCA texture and add it to the active material as a new node group"""
    bl_idname = "atelier.nca_bake"
    bl_label = "Bake μNCA"

    @classmethod
    def unavailable(cls, context):
        if context.object is None or context.object.active_material is None:
            return "Select an object with a material to bake the texture into"
        return bake_problem(settings(context)) or super().unavailable(context)

    def worker_argv(self, context):
        s = settings(context)
        if context.object is None or context.object.active_material is None:
            raise AtelierError("μNCA: the active object has no material to bake into")
        problem = bake_problem(s)
        if problem:
            raise AtelierError(f"μNCA: {problem}")
        self.model = chosen_model(s.model, "nca")
        self.texture_name = self.model.stem
        # the target is captured now: the artist may select something else while the worker runs
        self.material_name, self.mode = context.object.active_material.name, s.mode
        folder = self.temporary_folder()
        if s.mode == "OSL":
            return ["nca", "export", str(self.model), "--format", "osl", "--size", str(s.size), "--steps",
                    str(s.steps), "-o", str(folder / "nca.osl")]
        argv = ["nca", "render", str(self.model), "--size", str(s.size), "--steps", str(s.steps), "--quantized",
                "-o", str(folder / "tile.png")]
        if s.frames:
            argv += ["--frames", str(s.frames)]
        return argv

    def finish(self, context, summary):
        material = bpy.data.materials.get(self.material_name)
        if material is None:
            raise AtelierError(f"μNCA: the material '{self.material_name}' was removed while the texture grew")
        if self.mode == "OSL":
            group = osl_group(self.texture_name, Path(summary["files"][0]).read_text())
        else:
            images = [load_image_copy(path, name=f"μNCA · {self.texture_name}") for path in summary["files"]]
            group = image_group(self.texture_name, images)
        add_group_to_material(material, group)
        self.report({"INFO"}, f"Added node group '{group.name}' to material '{material.name}'")
        return {"FINISHED"}


def _new_group(name):
    group = bpy.data.node_groups.new(f"μNCA · {name}", "ShaderNodeTree")
    group.interface.new_socket("Vector", in_out="INPUT", socket_type="NodeSocketVector")
    scale = group.interface.new_socket("Scale", in_out="INPUT", socket_type="NodeSocketFloat")
    scale.default_value = 1.0
    group.interface.new_socket("Time", in_out="INPUT", socket_type="NodeSocketFloat",
                               description="Animation frame (Image mode with frames)")
    group.interface.new_socket("Color", in_out="OUTPUT", socket_type="NodeSocketColor")
    inputs, outputs = group.nodes.new("NodeGroupInput"), group.nodes.new("NodeGroupOutput")
    inputs.location, outputs.location = (-600, 0), (600, 0)
    return group, inputs, outputs


def image_group(name, images):
    """Vector·Scale -> image tile(s); several images form a loop selected by floor(Time) mod F."""
    group, inputs, outputs = _new_group(name)
    nodes, links = group.nodes, group.links
    scaled = nodes.new("ShaderNodeVectorMath")
    scaled.operation, scaled.location = "SCALE", (-400, 0)
    links.new(inputs.outputs["Vector"], scaled.inputs[0])
    links.new(inputs.outputs["Scale"], scaled.inputs["Scale"])
    frame = nodes.new("ShaderNodeMath")
    frame.operation, frame.location = "FLOORED_MODULO", (-400, -250)
    links.new(inputs.outputs["Time"], frame.inputs[0])
    frame.inputs[1].default_value = len(images)
    total = None
    for i, image in enumerate(images):
        texture = nodes.new("ShaderNodeTexImage")
        texture.image, texture.extension, texture.location = image, "REPEAT", (-150, -300 * i)
        links.new(scaled.outputs[0], texture.inputs["Vector"])
        colour = texture.outputs["Color"]
        if len(images) > 1:  # weight = 1 when floor(Time mod F) == i
            pick = nodes.new("ShaderNodeMath")
            pick.operation, pick.location = "COMPARE", (100, -300 * i - 100)
            links.new(frame.outputs[0], pick.inputs[0])
            pick.inputs[1].default_value, pick.inputs[2].default_value = i + 0.5, 0.5
            weighted = nodes.new("ShaderNodeMix")
            weighted.data_type, weighted.blend_type, weighted.location = "RGBA", "MULTIPLY", (300, -300 * i)
            weighted.inputs["Factor"].default_value = 1.0
            links.new(colour, weighted.inputs["A"])
            links.new(pick.outputs[0], weighted.inputs["B"])
            colour = weighted.outputs["Result"]
        if total is None:
            total = colour
        else:
            add = nodes.new("ShaderNodeMix")
            add.data_type, add.blend_type, add.location = "RGBA", "ADD", (450, -300 * i)
            add.inputs["Factor"].default_value = 1.0
            links.new(total, add.inputs["A"])
            links.new(colour, add.inputs["B"])
            total = add.outputs["Result"]
    links.new(total, outputs.inputs["Color"])
    return group


def osl_group(name, source):
    """A Script node running the generated OSL ``source`` (an internal text: saved in the .blend)."""
    _osl_on_path()  # assigning the script below already asks Cycles to compile it
    group, inputs, outputs = _new_group(name)
    text = bpy.data.texts.new(f"μNCA · {name}.osl")
    text.write(source)
    script = group.nodes.new("ShaderNodeScript")
    script.mode, script.script, script.location = "INTERNAL", text, (0, 0)
    compile_script(script)
    group.links.new(inputs.outputs["Vector"], script.inputs["Vector"])
    group.links.new(inputs.outputs["Scale"], script.inputs["Scale"])
    group.links.new(script.outputs["Color"], outputs.inputs["Color"])
    return group


def _osl_on_path():
    add_oslquery_to_path(bpy.utils.system_resource("PYTHON"))


def compile_script(node):
    """Compile an OSL Script node with Cycles' compiler (what the node's refresh button does)."""
    _osl_on_path()
    try:
        import cycles.osl
        import oslquery  # noqa: F401
    except ImportError:
        raise AtelierError("μNCA: OSL mode needs Cycles with Open Shading Language (oslquery)") from None
    messages = []
    cycles.osl.update_script_node(node, lambda kind, message: messages.append((kind, message)))
    if "Scale" not in node.inputs:
        raise AtelierError("μNCA: the OSL shader did not compile: " + "; ".join(m for _, m in messages))


def add_group_to_material(material, group):
    """Add a UV input and the group node, left of the user's nodes; link nothing of theirs."""
    if material.node_tree is None:
        material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    left = min((node.location.x for node in nodes), default=0.0)
    uv = nodes.new("ShaderNodeTexCoord")
    node = nodes.new("ShaderNodeGroup")
    node.node_tree, node.label = group, group.name
    uv.location, node.location = (left - 500, 300), (left - 300, 300)
    links.new(uv.outputs["UV"], node.inputs["Vector"])
    driver = node.inputs["Time"].driver_add("default_value").driver
    driver.expression = "frame"
    return node


class NCAPanel:
    bl_space_type: Any = "NODE_EDITOR"  # (a mixin: Blender checks these when the panel registers)
    bl_region_type: Any = "UI"
    bl_category = "Atelier"

    @classmethod
    def poll(cls, context):
        return context.space_data.tree_type == "ShaderNodeTree"


class ATELIER_PT_nca(NCAPanel, bpy.types.Panel):
    bl_label = "μNCA Texture"

    def draw(self, context):
        s, layout = settings(context), self.layout
        draw_browser(layout, s, "model", "nca")
        layout.use_property_split, layout.use_property_decorate = True, False
        layout.prop(s, "mode", expand=True)
        column = layout.column(align=True)
        column.prop(s, "size")
        if s.mode == "IMAGE":
            column.prop(s, "frames")
        problem = bake_problem(s)
        if problem:
            layout.label(text=problem, icon="ERROR")
        layout.operator(ATELIER_OT_nca_bake.bl_idname, icon="NODE_MATERIAL")


class ATELIER_PT_nca_train(NCAPanel, bpy.types.Panel):
    bl_label = "Train on an Image"
    bl_parent_id = "ATELIER_PT_nca"

    def draw(self, context):
        s, layout = settings(context), self.layout
        layout.use_property_split, layout.use_property_decorate = True, False
        layout.prop(s, "exemplar_source", expand=True)
        if s.exemplar_source == "IMAGE":
            layout.template_ID(s, "image", open="image.open")
        else:
            layout.prop(s, "file")
        if s.exemplar_note:
            box = layout.box().column(align=True)
            for k, line in enumerate(textwrap.wrap(s.exemplar_note, 44)):
                box.label(text=line, icon="INFO" if k == 0 else "BLANK1")
        layout.prop(s, "params")
        layout.prop(s, "minutes")
        layout.operator(ATELIER_OT_nca_train.bl_idname, icon="PLAY")
        preview = preview_icon()
        if preview is not None and s.previews_shown:
            column = layout.column(align=True)
            column.label(text="The texture as it grows (Esc stops and keeps it):")
            column.template_icon(icon_value=preview.icon_id, scale=8.0)
        if s.last_message:
            layout.label(text=s.last_message, icon="INFO")


class ATELIER_PT_nca_train_options(NCAPanel, bpy.types.Panel):
    bl_label = "Structure and Colour"
    bl_parent_id = "ATELIER_PT_nca_train"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        s, layout = settings(context), self.layout
        layout.use_property_split, layout.use_property_decorate = True, False
        layout.prop(s, "pyramid")
        layout.prop(s, "palette_weight")
        layout.prop(s, "structure_weight")
        row = layout.row()
        row.active = s.structure_weight > 0
        row.prop(s, "structure_from")


class ATELIER_PT_nca_advanced(NCAPanel, bpy.types.Panel):
    bl_label = "Advanced"
    bl_parent_id = "ATELIER_PT_nca"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        layout.use_property_split, layout.use_property_decorate = True, False
        layout.prop(settings(context), "steps")


classes = (AtelierNCASettings, ATELIER_OT_nca_train, ATELIER_OT_nca_bake, ATELIER_PT_nca, ATELIER_PT_nca_train,
           ATELIER_PT_nca_train_options, ATELIER_PT_nca_advanced)


def register():
    register_classes(classes, atelier_nca=AtelierNCASettings)


def unregister():
    unregister_classes(classes, "atelier_nca")
    collection = _previews.pop("collection", None)
    if collection is not None:
        bpy.utils.previews.remove(collection)
