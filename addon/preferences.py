"""Add-on preferences (keyed by the extension's package) and the paths derived from them."""

import shutil
import sys
from pathlib import Path

import bpy

from .registration import register_classes, unregister_classes

ADDON_PACKAGE = __package__.rpartition(".")[0]  # the extension's package, e.g. bl_ext.user_default.atelier
EXTENSION_ROOT = Path(__file__).resolve().parent.parent


def _python_has_torch_hint():
    return "" if Path(sys.executable).name.startswith("python") else " (Blender's own Python has no torch)"


class AtelierPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_PACKAGE

    device: bpy.props.EnumProperty(
        name="Compute device",
        description="Where the worker trains and runs heavy models",
        items=[("AUTO", "Automatic", "CUDA when the worker's torch sees a GPU, else CPU"),
               ("CPU", "CPU", "Always the CPU"),
               ("CUDA", "CUDA", "An NVIDIA GPU through torch")],
        default="AUTO",
    )
    worker_python: bpy.props.StringProperty(
        name="Python with torch",
        description="Python interpreter used for training and heavy inference; empty uses Blender's own",
        subtype="FILE_PATH",
        default="",
    )
    models_directory: bpy.props.StringProperty(
        name="Models folder",
        description="Where trained models are stored; empty uses the extension's user folder",
        subtype="DIR_PATH",
        default="",
    )

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "device")
        layout.prop(self, "worker_python")
        if not self.worker_python:
            layout.label(text="Using " + sys.executable + _python_has_torch_hint(), icon="INFO")
        layout.prop(self, "models_directory")
        layout.label(text="Models: " + str(models_dir()), icon="FILE_FOLDER")


def preferences(context=None):
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_PACKAGE)
    return addon.preferences if addon else None


def models_dir():
    """The folder for user-trained models (created on demand)."""
    prefs = preferences()
    if prefs and prefs.models_directory:
        folder = Path(bpy.path.abspath(prefs.models_directory))
    else:
        folder = Path(bpy.utils.extension_path_user(ADDON_PACKAGE, path="models", create=True))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def worker_python():
    """The interpreter that runs ``python -m core.worker``."""
    prefs = preferences()
    if prefs and prefs.worker_python:
        return bpy.path.abspath(prefs.worker_python)
    return sys.executable if Path(sys.executable).exists() else shutil.which("python3")


def worker_device():
    prefs = preferences()
    return prefs.device if prefs else "AUTO"


classes = (AtelierPreferences,)


def register():
    register_classes(classes)


def unregister():
    unregister_classes(classes)
