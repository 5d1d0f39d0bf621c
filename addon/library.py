"""The model browser: each feature's shipped and trained models, with thumbnails, in any .blend.

The listing itself is ``core/library.py``; this module shows it with ``bpy.utils.previews`` and
``template_icon_view`` and adds Import, Rename and Delete.  Models live in the models folder of
the preferences (shared by every .blend), so a model trained in one file can be picked in any
other.  The enum items and preview icons are kept in ``_state`` while the add-on is enabled:
Blender requires Python to hold the strings of dynamic enum items.
"""

import shutil
import zlib
from pathlib import Path

import bpy

from ..core.errors import AtelierError
from ..core.validate import shown
from ..core.library import FEATURES, Library
from ..core.modelfile import MODEL_SUFFIX
from .preferences import models_dir
from .registration import register_classes, unregister_classes

FEATURE_LABELS = {"nca": "μNCA texture", "sketch": "Sketch-RNN", "strokes": "Image to Strokes agent",
                  "stylize": "stylisation"}
NO_MODEL = "NONE"
_state: dict = {}  # "library", "previews" and per-feature enum items while registered


def library():
    folder = models_dir()
    if _state.get("library") is None or _state["library"].user_folder != folder:
        _state["library"] = Library(folder)
    return _state["library"]


def _icon(entry):
    """The preview icon id of ``entry``'s thumbnail (drawn and cached on first use), or 0."""
    previews = _state.get("previews")
    if previews is None:
        return 0
    key = str(entry.path)
    if key not in previews:
        try:
            picture = library().thumbnail(entry)
        except (AtelierError, OSError, ValueError):
            picture = None
        if picture is None:
            return 0
        previews.load(key, str(picture), "IMAGE")
    return previews[key].icon_id


def describe(entry):
    facts = entry.details
    words = ["shipped" if entry.shipped else "yours"]
    if "params" in facts:
        words.append(f"{facts['params']} parameters")
    if "iterations" in facts or "steps" in facts:
        words.append(f"{facts.get('iterations', facts.get('steps'))} training steps")
    return f"{FEATURE_LABELS.get(entry.kind, entry.kind)} model: {', '.join(words)}. {entry.path}"


def model_items(feature):
    """An EnumProperty ``items`` callback listing ``feature``'s models (identifier: the file path)."""
    def items(self, context):
        try:
            entries = library().entries(feature)
        except OSError:
            entries = []
        listed = [(str(e.path), e.label + ("" if e.shipped else " (yours)"), describe(e), _icon(e),
                   0 if index == 0 and e.shipped else _number(e.path)) for index, e in enumerate(entries)]
        _state[feature] = listed or [(NO_MODEL, "No model", f"No {FEATURE_LABELS[feature]} model yet", 0, 0)]
        return _state[feature]
    return items


def _number(path):
    """The enum number stored in the .blend for ``path``: derived from the path, not its place in the
    list, so a model deleted or added elsewhere never turns the choice into another model.  The first
    shipped preset has 0, the property's default."""
    return 1 + zlib.crc32(str(path).encode("utf-8")) % 0x7FFFFFFE


def chosen_model(path, feature):
    """The chosen model file, or AtelierError saying what to do."""
    if not path or path == NO_MODEL or not Path(path).is_file():
        raise AtelierError(f"choose a {FEATURE_LABELS[feature]} model (train one, or import a model file)")
    return Path(path)


def select(owner, prop, path):
    """Point ``owner.prop`` (a model enum) at ``path`` if the library lists it."""
    try:
        setattr(owner, prop, str(path))
    except TypeError:  # not (yet) an item: e.g. the file is not of this feature's kind
        pass


def draw_browser(layout, owner, prop, feature):
    """Thumbnail grid, the chosen model's name, and Rename / Delete for the artist's own models."""
    layout.template_icon_view(owner, prop, show_labels=True, scale=5.0, scale_popup=4.0)
    row = layout.row(align=True)
    row.prop(owner, prop, text="")
    path = getattr(owner, prop)
    entry = library().find(path) if path and path != NO_MODEL and Path(path).is_file() else None
    own = entry is not None and not entry.shipped
    for operator, icon in ((ATELIER_OT_model_rename, "GREASEPENCIL"), (ATELIER_OT_model_delete, "TRASH")):
        sub = row.row(align=True)
        sub.enabled = own
        button = sub.operator(operator.bl_idname, text="", icon=icon)
        button.path = path if own else ""
    importer = row.operator(ATELIER_OT_model_import.bl_idname, text="", icon="IMPORT")
    importer.feature = feature


class ModelFileOperator:
    path: bpy.props.StringProperty(options={"HIDDEN", "SKIP_SAVE"})

    @classmethod
    def poll(cls, context):
        return True


class ATELIER_OT_model_rename(ModelFileOperator, bpy.types.Operator):
    """Rename this model (your own models only; shipped ones stay as they are)"""
    bl_idname = "atelier.model_rename"
    bl_label = "Rename Model"
    bl_options = {"INTERNAL"}

    new_name: bpy.props.StringProperty(name="New name")

    def invoke(self, context, event):
        self.new_name = Path(self.path).stem
        return context.window_manager.invoke_props_dialog(self)

    def execute(self, context):
        try:
            target = library().rename(self.path, self.new_name)
        except AtelierError as error:
            self.report({"ERROR"}, shown(str(error)))
            return {"CANCELLED"}
        self.report({"INFO"}, shown(f"Renamed to {target.name}"))
        return {"FINISHED"}


class ATELIER_OT_model_delete(ModelFileOperator, bpy.types.Operator):
    """Delete this model file (your own models only; asks first)"""
    bl_idname = "atelier.model_delete"
    bl_label = "Delete Model"
    bl_options = {"INTERNAL"}

    def invoke(self, context, event):
        return context.window_manager.invoke_confirm(self, event, title="Delete Model",
                                                     message=f"Delete {Path(self.path).name}? This cannot be undone.",
                                                     confirm_text="Delete")

    def execute(self, context):
        try:
            library().delete(self.path)
        except AtelierError as error:
            self.report({"ERROR"}, shown(str(error)))
            return {"CANCELLED"}
        self.report({"INFO"}, shown(f"Deleted {Path(self.path).name}"))
        return {"FINISHED"}


class ATELIER_OT_model_import(bpy.types.Operator):
    """Copy a model file into your models folder (the file itself is left where it is)"""
    bl_idname = "atelier.model_import"
    bl_label = "Import Model"
    bl_options = {"INTERNAL"}

    filepath: bpy.props.StringProperty(subtype="FILE_PATH", options={"SKIP_SAVE"})
    filter_glob: bpy.props.StringProperty(default=f"*{MODEL_SUFFIX}", options={"HIDDEN"})
    feature: bpy.props.StringProperty(options={"HIDDEN"})

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        source = Path(bpy.path.abspath(self.filepath))
        entry = library().find(source) if source.is_file() else None
        kinds = FEATURES.get(self.feature, ((),))[0]
        if entry is None or (kinds and entry.kind not in kinds):
            self.report({"ERROR"},
                        shown(f"{source}: not a {FEATURE_LABELS.get(self.feature, 'an Atelier')} model file"))
            return {"CANCELLED"}
        target, n = models_dir() / source.name, 1
        while target.exists():
            n += 1
            target = models_dir() / f"{source.stem}_{n}{source.suffix}"
        shutil.copy2(source, target)
        self.report({"INFO"}, shown(f"Imported {source.name} into {models_dir()}"))
        return {"FINISHED"}


classes = (ATELIER_OT_model_rename, ATELIER_OT_model_delete, ATELIER_OT_model_import)


def register():
    import bpy.utils.previews
    _state["previews"] = bpy.utils.previews.new()
    register_classes(classes)


def unregister():
    unregister_classes(classes)
    previews = _state.pop("previews", None)
    if previews is not None:
        bpy.utils.previews.remove(previews)
    _state.clear()
