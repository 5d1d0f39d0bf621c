"""Add-on preferences (keyed by the extension's package), the paths derived from them, and what
the worker can run.

The worker is Blender's own Python by default.  It sees the wheels the extension ships (torch,
OpenCV) only through the extensions' site-packages, which this module passes on.  Whether
training can run is known without starting anything: Blender's process has the same site-packages
on ``sys.path``, so ``importlib.util.find_spec`` answers for the worker too.
"""

import importlib.util
import json
import os
import sys
from pathlib import Path

import bpy

from ..core.validate import shown
from .registration import register_classes, unregister_classes
from .worker_client import EXTENSION_ROOT

ADDON_PACKAGE = __package__.rpartition(".")[0]  # the extension's package, e.g. bl_ext.user_default.atelier
CHECK_SECONDS = 120  # importing torch from a cold disk can take a minute
FULL_ZIP_HINT = ("install the Atelier zip for your platform that bundles torch (atelier-<version>-<platform>.zip), "
                 "or set Preferences > Add-ons > Atelier > Python with torch")


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
    threads: bpy.props.IntProperty(
        name="CPU threads", default=0, min=0, max=256,
        description="Threads the worker computes with on the CPU; 0 uses every core Blender may run on",
    )
    models_directory: bpy.props.StringProperty(
        name="Models folder",
        description="Where trained models are stored; empty uses the extension's user folder",
        subtype="DIR_PATH",
        default="",
    )

    ray_address: bpy.props.StringProperty(
        name="Ray cluster",
        description="Where Stylise with Model (and Stylise after render, once the render ends) sends its frames. "
                    "Empty: stylise on this computer. "
                    "auto: the Ray cluster this computer has joined (with ray start). "
                    "Or the address of the cluster's head computer, host:port (for example 10.0.0.5:6379). "
                    "The frames and output folders must be on storage every computer of the cluster sees. "
                    "An interrupted run continues where it stopped when you run it again",
        default="",
    )
    ray_gpus: bpy.props.FloatProperty(
        name="GPUs per task", default=0.0, min=0.0, max=16.0, step=50,
        description="GPUs each frame batch asks the Ray cluster for; 0 stylises on the cluster's CPUs, "
                    "0.5 lets two batches share one GPU",
    )

    check_report: bpy.props.StringProperty(
        name="Check report", description="What the worker's Python reported the last time Check ran (JSON)",
        default="", options={"HIDDEN", "SKIP_SAVE"},
    )

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.prop(self, "device")
        layout.prop(self, "threads")
        layout.prop(self, "worker_python")
        if not self.worker_python:
            missing = missing_training_modules()
            layout.label(text=f"Using Blender's own Python: {sys.executable}", icon="INFO")
            if missing:
                layout.label(text=f"It has no {' or '.join(missing)}: training and stylisation are off "
                                  "(baking, Sketch-RNN and Image to Strokes work)", icon="ERROR")
        row = layout.row()
        row.operator(ATELIER_OT_check_worker.bl_idname, icon="CHECKMARK")
        for line in check_report_lines(self.check_report):
            layout.label(text=line)
        layout.prop(self, "models_directory")
        layout.label(text="Models: " + str(models_dir()), icon="FILE_FOLDER")
        layout.prop(self, "ray_address")
        if self.ray_address.strip():
            layout.prop(self, "ray_gpus")


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


def custom_python():
    """The "Python with torch" the artist chose, or None for Blender's own."""
    prefs = preferences()
    return bpy.path.abspath(prefs.worker_python) if prefs and prefs.worker_python else None


def worker_python():
    """The interpreter that runs ``python -m core.worker``: the preference, else Blender's own Python."""
    return custom_python() or sys.executable


def extension_site_packages():
    """Where Blender installs the wheels of extensions (``extensions/.local/lib/python3.X/site-packages``)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return Path(bpy.utils.user_resource("EXTENSIONS", path=os.path.join(".local", "lib", version, "site-packages")))


def worker_environment():
    """Environment additions for the worker: the extension root on ``PYTHONPATH`` and, for Blender's own
    Python, the extensions' wheels too (a separate "Python with torch" keeps its own packages: Blender's
    are built for Blender's Python version)."""
    paths = [str(EXTENSION_ROOT)]
    if custom_python() is None:
        paths += [str(folder) for folder in [extension_site_packages()] if folder.is_dir()]
    prefs = preferences()
    environment = {"PYTHONPATH": os.pathsep.join(paths), "ATELIER_DEVICE": worker_device().lower()}
    if prefs and prefs.threads:
        environment["ATELIER_THREADS"] = str(prefs.threads)
    return environment


def worker_device():
    prefs = preferences()
    return prefs.device if prefs else "AUTO"


def missing_training_modules():
    """Modules training needs that the worker lacks (Blender's own Python without the wheels)."""
    if custom_python() is not None:
        return []  # the artist chose it for torch; a wrong choice is reported when a job starts
    return [name for name in ("torch", "cv2") if importlib.util.find_spec(name) is None]


def training_unavailable(needs=("torch",)):
    """None when the worker can run jobs that import ``needs``, else the reason (for ``poll_message_set``)."""
    missing = [name for name in missing_training_modules() if name in needs]
    if not missing:
        return None
    return f"Needs {' and '.join('OpenCV' if name == 'cv2' else name for name in missing)}: {FULL_ZIP_HINT}"


def check_report_lines(report):
    """The Check report as short lines for the preferences panel."""
    if not report:
        return []
    data = json.loads(report)
    if "error" in data:
        return [f"Check failed: {data['error']}"]
    features = data.get("features", {})
    return [f"Python {data.get('python_version')}  ({data.get('python')})",
            f"numpy {data.get('numpy') or '—'},  torch {data.get('torch') or 'not installed'},  "
            f"CUDA {data.get('cuda') or 'no'}{'  (' + data['gpu'] + ')' if data.get('gpu') else ''}",
            f"μNCA kernel: {data.get('kernel', '?')}",
            f"Images: {data.get('image_codec', '?')}",
            "Can run: " + ", ".join(name for name, ok in features.items() if ok),
            "Cannot run: " + (", ".join(name for name, ok in features.items() if not ok) or "—")]


def run_worker_check():
    """Run ``atelier system check`` in the worker's Python; returns its summary or ``{"error": ...}``."""
    import queue
    from ..core.errors import AtelierError
    from .jobs import result_message, start_worker
    try:
        job = start_worker(["system", "check"])
    except AtelierError as error:
        return {"error": str(error)}
    try:
        result = job.wait(timeout=CHECK_SECONDS)
    except queue.Empty:
        job.cancel()
        return {"error": f"{worker_python()}: no answer within {CHECK_SECONDS} s"}
    if result["type"] != "result":
        return {"error": result_message(result)}
    return result["summary"]


class ATELIER_OT_check_worker(bpy.types.Operator):
    """Run the worker's Python and show its numpy, torch and CUDA versions and the μNCA kernel it will use"""
    bl_idname = "atelier.check_worker"
    bl_label = "Check"

    def execute(self, context):
        report = run_worker_check()
        prefs = preferences(context)
        if prefs is not None:
            prefs.check_report = json.dumps(report)
        if "error" in report:
            self.report({"ERROR"}, shown(f"Atelier worker: {report['error']}"))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Atelier worker: Python {report['python_version']}, torch "
                              f"{report.get('torch') or 'none'}, μNCA kernel {report.get('kernel')}")
        return {"FINISHED"}


classes = (ATELIER_OT_check_worker, AtelierPreferences)


def register():
    register_classes(classes)


def unregister():
    unregister_classes(classes)
