"""Keyframe video stylisation in Blender: paint one frame, Atelier paints the rest.

Sidebar tab "Atelier ▸ Stylise" in the Image editor and the Sequencer:

* *Render with Motion* renders the scene's animation to a NEW folder: ``frames/`` (PNG, the
  scene's colour management) and ``motion/`` (multilayer EXR with the exact Vector pass).
* keyframes: painted images (datablocks or files) at a frame index of the sequence, optional masks;
* *Train & Stylise* runs ``atelier stylize train ... --stylize-to`` in the worker (progress bar,
  ESC cancels), writes a NEW ``<frames>_stylised`` folder and puts it as a strip on top in the VSE.
* *Stylise after render* (Output properties): a ``render_write`` handler that stylises each frame
  as the animation render writes it, also in ``blender -b``.
* *Ray cluster* (preferences): Stylise with Model runs ``atelier stylize run ... --ray ADDRESS --resume``
  (docs/scale.md); a run stopped by Esc, an error or a crash continues in the same folder next time.
  Stylise after render then hands the whole rendered sequence to the cluster when the render ends.
"""

import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import bpy

from ..core.errors import AtelierError
from ..core.scale.cluster import MalformedAddress, Unreachable, check_reachable, is_loopback, split_address
from ..core.validate import encodes_as_utf8, shown
from .images import image_file_for_worker
from ..core.stylize.cli import END_MARKER, FOLLOW_TIMEOUT_S
from ..core.stylize.defaults import TRAIN_MINUTES
from ..core.stylize.frames import frame_files
from .jobs import WorkerOperator, result_message, start_worker
from .library import chosen_model, draw_browser, model_items, select
from .preferences import custom_python, models_dir, preferences, training_unavailable
from .registration import register_classes, sidebar_panels, unregister_classes

NEEDS = ("torch", "cv2")  # the stylisation network and its optical-flow guides


def unique_path(path):
    """``path`` or, if taken, ``path_2``, ``path_3``... (never an existing file or folder)."""
    path = Path(path)
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}_{n}{path.suffix}")
    return candidate


def _abs(path):
    return Path(bpy.path.abspath(path)) if path else None


class AtelierStylizeKeyframe(bpy.types.PropertyGroup):
    frame: bpy.props.IntProperty(name="Frame", default=1,
                                 description="The Blender frame this painting is of (its render is in the frames folder)")
    image: bpy.props.PointerProperty(name="Painted", type=bpy.types.Image,
                                     description="The painted frame (an image datablock)")
    file: bpy.props.StringProperty(name="Painted file", subtype="FILE_PATH",
                                   description="The painted frame as a file (used when no image is set)")
    mask: bpy.props.PointerProperty(name="Mask", type=bpy.types.Image,
                                    description="Optional: white where the frame is painted")


class AtelierStylizeSettings(bpy.types.PropertyGroup):
    frames_dir: bpy.props.StringProperty(name="Frames", subtype="DIR_PATH",
                                         description="Folder of the rendered frames (8-bit PNG)")
    motion_dir: bpy.props.StringProperty(name="Motion", subtype="DIR_PATH",
                                         description="Optional: multilayer EXRs with the Vector pass, one per frame")
    keyframes: bpy.props.CollectionProperty(type=AtelierStylizeKeyframe)
    minutes: bpy.props.FloatProperty(name="Minutes", default=TRAIN_MINUTES, min=0.05, max=240.0,
                                     description="Training time")
    active_keyframe: bpy.props.IntProperty(name="Active keyframe", min=0)
    model: bpy.props.EnumProperty(name="Model", items=model_items("stylize"),
                                  description="A stylisation model you trained (in the models folder)")
    output_dir: bpy.props.StringProperty(name="Last output", subtype="DIR_PATH")
    last_summary: bpy.props.StringProperty(name="Last summary")
    live_previews: bpy.props.StringProperty(
        name="Preview frames", default="",
        description="Blender frames to preview while training live, e.g. 5, 12, 20 (empty: five evenly spaced)")
    live_stop: bpy.props.BoolProperty(name="Stop live", default=False, options={"SKIP_SAVE", "HIDDEN"})
    resume_frames: bpy.props.StringProperty(
        name="Unfinished run's frames", options={"HIDDEN"},
        description="Frames folder of the last cluster run that has not finished")
    resume_output: bpy.props.StringProperty(
        name="Unfinished run's output", options={"HIDDEN"},
        description="Output folder the next cluster run of the same frames continues")
    after_render: bpy.props.BoolProperty(
        name="Stylise after render", default=False,
        description="Stylise each frame with the model as the animation render writes it "
                    "(into a new '<output folder>_stylised' folder)")


class MotionRender:
    """Render the animation into NEW ``directory/frames`` (PNG) and ``directory/motion`` (EXR + Vector),
    one frame per :meth:`render_next`, so a modal operator can show progress and stop between frames.

    Each frame is rendered once and saved twice from the Render Result; the Vector pass needs motion
    blur off.  :meth:`restore` puts the scene's settings back (also after Esc or an error).
    """

    IMAGE_KEYS = ("media_type", "file_format", "color_mode", "color_depth", "exr_codec")

    def __init__(self, scene, directory):
        self.scene = scene
        directory = unique_path(directory)
        self.frames_dir, self.motion_dir = directory / "frames", directory / "motion"
        self.frames = list(range(scene.frame_start, scene.frame_end + 1, scene.frame_step))
        self.done = 0
        image_settings = scene.render.image_settings
        self.saved = {"blur": scene.render.use_motion_blur, "frame": scene.frame_current,
                      "vector": [layer.use_pass_vector for layer in scene.view_layers],
                      "image": {key: getattr(image_settings, key) for key in self.IMAGE_KEYS}}
        self.frames_dir.mkdir(parents=True)
        self.motion_dir.mkdir()
        scene.render.use_motion_blur = False
        for layer in scene.view_layers:
            layer.use_pass_vector = True

    @property
    def fraction(self):
        return self.done / max(1, len(self.frames))

    @property
    def finished(self):
        return self.done >= len(self.frames)

    def render_next(self):
        scene, frame = self.scene, self.frames[self.done]
        image_settings = scene.render.image_settings
        scene.frame_set(frame)
        bpy.ops.render.render(scene=scene.name)
        result = bpy.data.images["Render Result"]
        image_settings.media_type, image_settings.file_format = "IMAGE", "PNG"
        image_settings.color_mode, image_settings.color_depth = "RGB", "8"
        result.save_render(str(self.frames_dir / f"{frame:04d}.png"), scene=scene)
        image_settings.media_type = "MULTI_LAYER_IMAGE"
        image_settings.color_depth, image_settings.exr_codec = "32", "ZIP"
        result.save_render(str(self.motion_dir / f"{frame:04d}.exr"), scene=scene)
        self.done += 1

    def restore(self):
        scene = self.scene
        scene.render.use_motion_blur = self.saved["blur"]
        for layer, value in zip(scene.view_layers, self.saved["vector"]):
            layer.use_pass_vector = value
        for key in self.IMAGE_KEYS:
            try:
                setattr(scene.render.image_settings, key, self.saved["image"][key])
            except TypeError:  # an enum item that the restored media type does not offer
                pass
        scene.frame_set(self.saved["frame"])


def stylised_scene(scene, context=None):
    """The scene that holds Atelier's strips for ``scene``, "<scene> · Stylised", made on first use with
    ``scene``'s size, frame rate and range, and shown in the Sequencer of the current workspace.

    Never ``scene`` itself: a scene with strips renders its strips instead of its 3D view, so a
    stylised strip there would replace the artist's next render (and Render with Motion's frames)."""
    name = f"{scene.name} · Stylised"
    strips = bpy.data.scenes.get(name)
    if strips is None:
        strips = bpy.data.scenes.new(name)
        for key in ("resolution_x", "resolution_y", "resolution_percentage", "fps", "fps_base"):
            setattr(strips.render, key, getattr(scene.render, key))
        strips.frame_start, strips.frame_end = scene.frame_start, scene.frame_end
        strips.view_settings.view_transform = "Standard"  # the PNGs are display-referred already
    workspace = getattr(context, "workspace", None) if context is not None else None
    if workspace is not None and hasattr(workspace, "sequencer_scene"):
        workspace.sequencer_scene = strips
    return strips


def add_sequence_strip(scene, folder, name, context=None):
    """A NEW image strip of ``folder``'s PNGs in the channel above every existing strip of ``scene``'s
    :func:`stylised_scene`."""
    files = sorted(Path(folder).glob("*.png"))
    if not files:
        raise AtelierError(f"{folder}: no stylised frames were written")
    scene = stylised_scene(scene, context)
    editor = scene.sequence_editor or scene.sequence_editor_create()
    channel = max((strip.channel for strip in editor.strips_all), default=0) + 1
    # function arguments must be UTF-8, properties take any file name (not-UTF-8 bytes as \udcXX surrogates):
    # such names go in through the properties
    utf8 = all(encodes_as_utf8(str(path)) for path in files)
    strip = editor.strips.new_image(name=name, filepath=str(files[0]) if utf8 else "//frame.png", channel=channel,
                                    frame_start=scene.frame_start)
    for path in files[1:]:
        strip.elements.append(path.name if utf8 else "frame.png")
    if not utf8:
        strip.directory = str(files[0].parent) + "/"
        for element, path in zip(strip.elements, files):
            element.filename = path.name
    strip.frame_final_duration = len(files)
    return strip


class ATELIER_OT_stylize_render_motion(bpy.types.Operator):
    """Render the animation into a new folder as PNG frames plus EXR motion vectors (for Train & Stylise);
    Esc stops after the current frame"""

    bl_idname = "atelier.stylize_render_motion"
    bl_label = "Render with Motion"
    bl_options = {"REGISTER"}

    directory: bpy.props.StringProperty(name="Folder", subtype="DIR_PATH",
                                        description="New folder for the renders (default: beside the .blend)")

    @classmethod
    def poll(cls, context):
        if context.scene.camera is None:
            cls.poll_message_set("The scene needs a camera to render")
            return False
        return True

    def _begin(self, context):
        scene = context.scene
        folder = _abs(self.directory) or (_abs("//") if bpy.data.filepath else Path(tempfile.gettempdir()))
        if not self.directory:
            folder = folder / f"atelier_{bpy.path.clean_name(scene.name)}"
        try:
            self._render = MotionRender(scene, folder)
        except OSError as error:
            self.report({"ERROR"}, shown(f"{folder}: cannot make the render folders ({error.strerror or error})"))
            return False
        return True

    def _step(self):
        """Render one frame; False (with the error reported) when rendering failed."""
        try:
            self._render.render_next()
        except (RuntimeError, OSError) as error:
            self.report({"ERROR"}, shown(f"{self._render.frames_dir.parent}: rendering failed ({error})"))
            return False
        return True

    def _end(self, context, completed):
        render = self._render
        render.restore()
        count = len(list(render.frames_dir.glob("*.png")))
        if not completed:
            self.report({"WARNING"}, shown(f"Stopped after {count} frames; they are in {render.frames_dir.parent}"))
            return {"CANCELLED"}
        settings = context.scene.atelier_stylize
        settings.frames_dir, settings.motion_dir = str(render.frames_dir), str(render.motion_dir)
        self.report({"INFO"}, shown(f"Rendered {count} frames into {render.frames_dir.parent}"))
        return {"FINISHED"}

    def execute(self, context):  # no window: every frame now
        if not self._begin(context):
            return {"CANCELLED"}
        completed = True
        while completed and not self._render.finished:
            completed = self._step()
        return self._end(context, completed)

    def invoke(self, context, event):
        if context.window is None or bpy.app.background:
            return self.execute(context)
        if not self._begin(context):
            return {"CANCELLED"}
        window_manager = context.window_manager
        window_manager.progress_begin(0.0, 1.0)
        self._timer = window_manager.event_timer_add(0.05, window=context.window)
        window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        stop = event.type == "ESC" and event.value == "PRESS"
        if not stop and event.type != "TIMER":
            return {"PASS_THROUGH"}
        completed = not stop and self._step()
        if completed and not self._render.finished:
            context.window_manager.progress_update(self._render.fraction)
            context.workspace.status_text_set(f"Atelier: rendered {self._render.done} of "
                                              f"{len(self._render.frames)} frames  (Esc stops)")
            return {"RUNNING_MODAL"}
        context.window_manager.event_timer_remove(self._timer)
        context.window_manager.progress_end()
        context.workspace.status_text_set(None)
        return self._end(context, completed and self._render.finished)


class ATELIER_OT_stylize_keyframe_add(bpy.types.Operator):
    """Add a painted keyframe at the current frame (the image shown in the Image editor, if any)"""

    bl_idname = "atelier.stylize_keyframe_add"
    bl_label = "Add Keyframe"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        settings = context.scene.atelier_stylize
        item = settings.keyframes.add()
        space = context.space_data
        if getattr(space, "type", None) == "IMAGE_EDITOR" and space.image:
            item.image = space.image
        item.frame = context.scene.frame_current
        settings.active_keyframe = len(settings.keyframes) - 1
        return {"FINISHED"}


class ATELIER_OT_stylize_keyframe_remove(bpy.types.Operator):
    """Remove the active keyframe from the list (its image itself is kept)"""

    bl_idname = "atelier.stylize_keyframe_remove"
    bl_label = "Remove Keyframe"
    bl_options = {"REGISTER", "UNDO"}

    index: bpy.props.IntProperty(default=-1, options={"SKIP_SAVE"})

    @classmethod
    def poll(cls, context):
        if not context.scene.atelier_stylize.keyframes:
            cls.poll_message_set("There is no keyframe to remove")
            return False
        return True

    def execute(self, context):
        settings = context.scene.atelier_stylize
        index = self.index if self.index >= 0 else settings.active_keyframe
        if not 0 <= index < len(settings.keyframes):
            return {"CANCELLED"}
        settings.keyframes.remove(index)
        settings.active_keyframe = max(0, min(settings.active_keyframe, len(settings.keyframes) - 1))
        return {"FINISHED"}


class ATELIER_UL_keyframes(bpy.types.UIList):
    """Painted keyframes: the Blender frame, then the painting (image or file)."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_property, index=0):
        row = layout.row(align=True)
        row.prop(item, "frame", text="", emboss=False)
        if item.image:
            row.label(text=item.image.name, icon_value=layout.icon(item.image))
        else:
            row.label(text=Path(item.file).name if item.file else "(no painting)", icon="FILE_IMAGE")


def frame_position(files, frame, scene):
    """The 0-based position in ``files`` of Blender frame ``frame``: the file whose name ends in that number,
    else the frame's place in the scene's range (frame start and step)."""
    for position, path in enumerate(files):
        digits = re.search(r"(\d+)\D*$", path.name)
        if digits and int(digits.group(1)) == frame:
            return position
    position, remainder = divmod(frame - scene.frame_start, max(1, scene.frame_step))
    if remainder or not 0 <= position < len(files):
        raise AtelierError(f"keyframe at frame {frame}: no render of that frame in {files[0].parent}")
    return position


def _keyframe_words(settings, folder, frames, scene):
    """``--keyframe``/``--mask`` words (positions in the sequence), exporting painted datablocks to files."""
    if not settings.keyframes:
        raise AtelierError("Add at least one painted keyframe")
    files = frame_files(frames)
    words = []
    for item in settings.keyframes:
        if item.image:
            painted = image_file_for_worker(item.image, folder)
        elif item.file:
            painted = _abs(item.file)
        else:
            raise AtelierError(f"keyframe at frame {item.frame}: choose a painted image or file")
        position = frame_position(files, item.frame, scene)
        words += ["--keyframe", f"{position}={painted}"]
        if item.mask:
            words += ["--mask", f"{position}={image_file_for_worker(item.mask, folder)}"]
    return words


def _sequence_words(settings):
    """``(frames folder, a NEW output folder beside it, --motion words)`` from the panel's settings."""
    frames = _abs(settings.frames_dir)
    if not frames or not frames.is_dir():
        raise AtelierError(f"{settings.frames_dir or 'Frames'}: choose the folder of rendered frames "
                           "(or use Render with Motion)")
    motion = ["--motion", str(_abs(settings.motion_dir))] if settings.motion_dir else []
    return frames, unique_path(frames.with_name(frames.name + "_stylised")), motion


def _finish_output(operator, scene, summary, label):
    """Record the output folder and add its strip for ``scene`` (the scene the job was started in)."""
    settings = scene.atelier_stylize
    settings.output_dir = summary["output"]
    settings.last_summary = json.dumps(summary)
    add_sequence_strip(scene, summary["output"], label, bpy.context)
    operator.report({"INFO"}, shown(f"Stylised {summary.get('frames', '?')} frames into {summary['output']}"))
    return {"FINISHED"}


class ATELIER_OT_stylize_train(WorkerOperator, bpy.types.Operator):
    """Train on the painted keyframe(s), then stylise every frame into a new folder and a new VSE strip"""

    bl_idname = "atelier.stylize_train"
    bl_label = "Train & Stylise"
    needs = NEEDS

    @classmethod
    def unavailable(cls, context):
        settings = context.scene.atelier_stylize
        if not settings.frames_dir:
            return "Choose the folder of rendered frames (or use Render with Motion)"
        if not settings.keyframes:
            return "Add at least one painted keyframe"
        return super().unavailable(context)

    def worker_argv(self, context):
        settings = context.scene.atelier_stylize
        frames, output, motion = _sequence_words(settings)
        words = _keyframe_words(settings, self.temporary_folder(), frames, context.scene)
        model = unique_path(models_dir() / f"stylize_{bpy.path.clean_name(context.scene.name)}.safetensors")
        self.scene_name, self.model = context.scene.name, model
        return ["stylize", "train", "--frames", str(frames), *words, *motion, "--minutes", f"{settings.minutes:g}",
                "-o", str(model), "--stylize-to", str(output)]

    def finish(self, context, summary):
        scene = bpy.data.scenes.get(self.scene_name) or context.scene
        select(scene.atelier_stylize, "model", summary["model"])
        return _finish_output(self, scene, summary, "Stylised")

    def cancelled(self, context, figures):
        if not self.model.is_file():
            return None
        scene = bpy.data.scenes.get(self.scene_name) or context.scene
        select(scene.atelier_stylize, "model", str(self.model))
        steps = f"step {figures['step']}" if "step" in figures else "the first steps"
        return f"Stopped; kept the model so far ({steps}): {self.model}"


RAY_PREFERENCE = "Preferences > Add-ons > Atelier > Ray cluster"


def ray_cluster():
    """``(address, GPUs per task)`` from the preferences; the address is None for "stylise here"."""
    prefs = preferences()
    address = prefs.ray_address.strip() if prefs else ""
    return address or None, (prefs.ray_gpus if prefs else 0.0)


def ray_unavailable():
    """Why the worker cannot submit to the preference's cluster (Blender's own Python has no Ray), or None."""
    address, _ = ray_cluster()
    if address and custom_python() is None and importlib.util.find_spec("ray") is None:
        return (f"The Ray cluster {address} is set ({RAY_PREFERENCE}), but Blender's Python has no Ray: set "
                "Python with torch to a Python with `pip install 'atelier[ray]'`, or empty Ray cluster to stylise "
                "on this computer")
    return None


def check_ray_cluster(address):
    """AtelierError naming the preference when the worker cannot use ``address``: Ray missing from the worker's
    Python, a malformed address, or nothing listening there (core.scale.cluster.check_reachable)."""
    reason = ray_unavailable()
    if reason:
        raise AtelierError(reason)
    try:
        if address not in ("auto", "local"):
            split_address(address)
            if not is_loopback(address) and not bpy.app.online_access:
                raise AtelierError(f"Ray cluster {address} ({RAY_PREFERENCE}): Blender's online access is off; allow "
                                   "it in Preferences > System > Network (blender -b: --online-mode), or empty the "
                                   "preference to stylise on this computer")
        check_reachable(address)
    except MalformedAddress:
        raise AtelierError(f"Ray cluster {address!r} ({RAY_PREFERENCE}): write auto or the head's host:port "
                           "(for example 10.0.0.5:6379), or leave it empty to stylise on this computer") from None
    except Unreachable as error:
        raise AtelierError(f"Ray cluster {address} ({RAY_PREFERENCE}) cannot be reached ({error.reason}): start "
                           f"it (ray start --head --port {error.port}), correct the address, or empty the "
                           "preference to stylise on this computer") from None


def ray_message(message, address):
    """The worker's error with the preference named where it is about the cluster."""
    prefix = f"--ray {address}: "
    if message.startswith(prefix):
        return f"Ray cluster {address} ({RAY_PREFERENCE}): {message[len(prefix):]}"
    if "atelier[ray]" in message:
        return f"{message}; or empty {RAY_PREFERENCE} to stylise on this computer"
    return message


def written_frames(folder):
    return sum(1 for p in Path(folder).glob("*.png") if not p.name.startswith("."))


class RayRun:
    """Mix-in for WorkerOperators that may run on the preference's cluster (``self.ray`` set by
    ``worker_argv``, ``self.output_dir`` the folder continued by ``--resume``)."""

    ray = None
    output_dir = None
    continues = "Stylise with Model continues there"

    def ray_words(self):
        """``--ray ADDRESS --resume [--num-gpus G]``, after checking the cluster can be used (else AtelierError)."""
        self.ray, gpus = ray_cluster()
        if self.ray is None:
            raise AtelierError(f"Set a Ray cluster in {RAY_PREFERENCE}")
        check_ray_cluster(self.ray)
        return ["--ray", self.ray, "--resume", *(["--num-gpus", f"{gpus:g}"] if gpus else [])]

    def _apply(self, context, job):
        result = job.result
        if self.ray and result and result.get("type") == "error" and "message" in result:
            job.result = {**result, "message": ray_message(result["message"], self.ray)}
        return super()._apply(context, job)

    def cancelled(self, context, figures):
        if not self.ray or self.output_dir is None:
            return None
        done = written_frames(self.output_dir)
        if not done:
            return shown(f"Cancelled before a frame was finished; {self.continues}: {self.output_dir}")
        return shown(f"Cancelled; {done} frames are done in {self.output_dir}, and {self.continues}")


class ATELIER_OT_stylize_run(RayRun, WorkerOperator, bpy.types.Operator):
    """Stylise the frames with the trained model into a new folder and a new VSE strip (on the Ray cluster of
    the preferences when one is set)"""

    bl_idname = "atelier.stylize_run"
    bl_label = "Stylise with Model"
    needs = NEEDS

    @classmethod
    def unavailable(cls, context):
        if not context.scene.atelier_stylize.frames_dir:
            return "Choose the folder of rendered frames (or use Render with Motion)"
        return super().unavailable(context) or ray_unavailable()

    def worker_argv(self, context):
        settings = context.scene.atelier_stylize
        frames, output, motion = _sequence_words(settings)
        model = chosen_model(settings.model, "stylize")
        self.scene_name = context.scene.name
        if ray_cluster()[0] is None:
            return ["stylize", "run", str(model), "--frames", str(frames), *motion, "-o", str(output)]
        ray_words = self.ray_words()
        # the folder of an unfinished cluster run of these frames is continued: --resume skips every frame
        # whose manifest record matches (same model, frames, motion), and redoes the others
        unfinished = _abs(settings.resume_output)
        if settings.resume_frames == str(frames) and unfinished and unfinished.is_dir():
            output = unfinished
        settings.resume_frames, settings.resume_output = str(frames), str(output)
        self.output_dir = output
        return ["stylize", "run", str(model), "--frames", str(frames), *motion, "-o", str(output), *ray_words]

    def finish(self, context, summary):
        scene = bpy.data.scenes.get(self.scene_name) or context.scene
        if self.ray and scene.atelier_stylize.resume_output == summary["output"]:
            scene.atelier_stylize.resume_frames = scene.atelier_stylize.resume_output = ""
        return _finish_output(self, scene, summary, "Stylised")


def position_ranges(files, wanted):
    """``--only`` words for the files named in ``wanted``: their 0-based positions in ``files`` as ranges A-B."""
    names = {Path(p).name for p in wanted}
    positions = [i for i, p in enumerate(files) if p.name in names]
    ranges, start = [], None
    for k, i in enumerate(positions):
        if start is None:
            start = i
        if k + 1 == len(positions) or positions[k + 1] != i + 1:
            ranges.append(f"{start}-{i}" if i > start else str(i))
            start = None
    return ",".join(ranges)


class ATELIER_OT_stylize_render_on_ray(RayRun, WorkerOperator, bpy.types.Operator):
    """Stylise the frames an animation render wrote, on the Ray cluster of the preferences, into
    '<render folder>_stylised' (Stylise after render runs it when the render ends)"""

    bl_idname = "atelier.stylize_render_on_ray"
    bl_label = "Stylise Render on Ray"
    bl_options = {"REGISTER"}  # changes no Blender data
    needs = NEEDS
    continues = "`atelier stylize run ... --resume` into that folder continues it"

    frames: bpy.props.StringProperty(name="Frames", subtype="DIR_PATH", options={"SKIP_SAVE"},
                                     description="The folder the render wrote its frames into")
    only: bpy.props.StringProperty(name="Only", options={"SKIP_SAVE"},
                                   description="Positions of the rendered frames in that folder, e.g. 0-23")
    model: bpy.props.StringProperty(name="Model", subtype="FILE_PATH", options={"SKIP_SAVE"},
                                    description="The stylisation model file")

    @classmethod
    def unavailable(cls, context):
        if ray_cluster()[0] is None:
            return f"Set a Ray cluster in {RAY_PREFERENCE}"
        return super().unavailable(context) or ray_unavailable()

    def worker_argv(self, context):
        model, frames = chosen_model(self.model, "stylize"), Path(self.frames)
        ray_words = self.ray_words()
        self.output_dir = frames.with_name(frames.name + "_stylised")
        return ["stylize", "run", str(model), "--frames", str(frames), *(["--only", self.only] if self.only else []),
                "-o", str(self.output_dir), *ray_words]

    def finish(self, context, summary):
        self.report({"INFO"}, shown(f"Stylised {summary.get('frames', '?')} rendered frames on the Ray cluster into "
                                    f"{summary['output']}"))
        return {"FINISHED"}


class RenderFollower:
    """Stylise after render: ONE worker for a whole render (``atelier stylize follow``).

    Each frame the render writes is copied, complete, into the worker's inbox; the worker stylises
    frames as they arrive into ``<render folder>_stylised/`` and names each one in a progress
    message, which shows it in the image "Atelier · Stylised" (open it in an Image editor to watch).
    When the render ends the inbox gets the END marker and the remaining frames are waited for.
    """

    IMAGE_NAME = "Atelier · Stylised"

    def __init__(self, model, output):
        self.inbox = Path(tempfile.mkdtemp(prefix="atelier_render_"))
        self.output = output
        self.job = start_worker(["stylize", "follow", str(model), "--inbox", str(self.inbox), "-o", str(output)])
        self.shown = None

    def add(self, written):
        staging = self.inbox / f".{written.name}.copy"
        shutil.copyfile(written, staging)
        os.replace(staging, self.inbox / written.name)  # the worker never sees half a frame
        self.show_arrivals()

    def _note(self, message):
        frame = message.get("figures", {}).get("frame")
        if message.get("type") == "progress" and frame:
            self.shown = Path(frame)

    def show_arrivals(self):
        for message in self.job.poll():
            self._note(message)
        if self.shown is not None and self.shown.is_file():
            image = bpy.data.images.get(self.IMAGE_NAME)
            if image is None:
                image = bpy.data.images.load(str(self.shown), check_existing=False)
                image.name = self.IMAGE_NAME
            else:
                image.filepath = str(self.shown)
                image.reload()

    def finish(self, cancel=False):
        """Wait for the last frames (or cancel them); returns an error message or None."""
        (self.inbox / END_MARKER).write_text("")
        if cancel:
            self.job.cancel()
        result = self.job.wait(self._note, timeout=FOLLOW_TIMEOUT_S)
        self.show_arrivals()
        shutil.rmtree(self.inbox, ignore_errors=True)
        return None if result["type"] in ("result", "cancelled") else result_message(result)


_followers: dict[str, "RenderFollower"] = {}  # scene name -> the RenderFollower of the render in progress
_ray_renders: dict[str, list[Path]] = {}  # scene name -> frames written so far, for the cluster at the end


def _report(message):
    print(f"Atelier: {message}", file=sys.stderr)


def stylize_written_frame(scene):
    """Hand the frame the render just wrote to the scene's follower (started at the first frame)."""
    settings = scene.atelier_stylize
    written = Path(scene.render.frame_path(frame=scene.frame_current))
    model = Path(settings.model) if settings.model and Path(settings.model).is_file() else None
    if not written.is_file() or model is None:
        _report(f"Stylise after render skipped for {written} (no such frame file or no model)")
        return
    if ray_cluster()[0]:  # the whole rendered sequence goes to the cluster at the end (submit_render_to_ray)
        _ray_renders.setdefault(scene.name, []).append(written)
        return
    follower = _followers.get(scene.name)
    if follower is None:
        try:
            follower = _followers[scene.name] = RenderFollower(
                model, written.parent.with_name(written.parent.name + "_stylised"))
        except AtelierError as error:
            _report(f"Stylise after render failed: {error}")
            return
    follower.add(written)


def submit_render_to_ray(scene, written):
    """Stylise the frames a finished render wrote on the Ray cluster: at once in ``blender -b`` (the farm's job
    ends when they are done), else as a modal job from the main thread (progress bar, Esc cancels)."""
    folder, model, scene_name = written[0].parent, scene.atelier_stylize.model, scene.name

    def run():
        window = None if bpy.app.background else next(iter(bpy.context.window_manager.windows), None)
        scene = bpy.data.scenes.get(scene_name)
        if scene is None:  # deleted meanwhile
            return None
        try:
            arguments = dict(frames=str(folder), only=position_ranges(frame_files(folder), written), model=model)
            if window is None:
                with bpy.context.temp_override(scene=scene):
                    bpy.ops.atelier.stylize_render_on_ray(**arguments)
            else:
                with bpy.context.temp_override(window=window, scene=scene):
                    bpy.ops.atelier.stylize_render_on_ray("INVOKE_DEFAULT", **arguments)
        except (RuntimeError, AtelierError) as error:  # reported by the operator; said here for the log too
            _report(f"Stylise after render on the Ray cluster failed: {shown(str(error))}")
        return None

    if bpy.app.background:
        run()
    else:  # render handlers may run outside the main thread; operators belong on it
        bpy.app.timers.register(run, first_interval=0.1)


def end_render(scene, cancel=False):
    written = _ray_renders.pop(scene.name, None)
    if written and not cancel:
        submit_render_to_ray(scene, written)
    follower = _followers.pop(scene.name, None)
    if follower is not None:
        problem = follower.finish(cancel)
        if problem:
            _report(f"Stylise after render failed: {problem}")


@bpy.app.handlers.persistent
def _render_write(scene, *_):
    if scene.atelier_stylize.after_render:
        stylize_written_frame(scene)


@bpy.app.handlers.persistent
def _render_complete(scene, *_):
    end_render(scene)


@bpy.app.handlers.persistent
def _render_cancel(scene, *_):
    end_render(scene, cancel=True)


HANDLERS = (("render_write", _render_write), ("render_complete", _render_complete),
            ("render_cancel", _render_cancel))


def _draw_settings(layout, context):
    settings = context.scene.atelier_stylize
    layout.operator(ATELIER_OT_stylize_render_motion.bl_idname, icon="RENDER_ANIMATION")
    layout.prop(settings, "frames_dir")
    layout.prop(settings, "motion_dir")
    layout.label(text="Painted keyframes:")
    row = layout.row()
    row.template_list("ATELIER_UL_keyframes", "", settings, "keyframes", settings, "active_keyframe", rows=3)
    buttons = row.column(align=True)
    buttons.operator(ATELIER_OT_stylize_keyframe_add.bl_idname, text="", icon="ADD")
    buttons.operator(ATELIER_OT_stylize_keyframe_remove.bl_idname, text="", icon="REMOVE")
    if 0 <= settings.active_keyframe < len(settings.keyframes):
        item = settings.keyframes[settings.active_keyframe]
        layout.prop(item, "frame")
        layout.template_ID(item, "image", open="image.open")
        if not item.image:
            layout.prop(item, "file")
        layout.prop(item, "mask")
    layout.prop(settings, "minutes")
    layout.operator(ATELIER_OT_stylize_train.bl_idname, icon="BRUSH_DATA")


def training_unavailable_for_stylise():
    return training_unavailable(NEEDS)


def _draw_live(layout, context):
    from .live import draw_live
    draw_live(layout, context)


def _draw_model(layout, context):
    settings = context.scene.atelier_stylize
    draw_browser(layout, settings, "model", "stylize")
    layout.operator(ATELIER_OT_stylize_run.bl_idname, icon="SEQUENCE")
    address, _ = ray_cluster()
    if address:
        layout.label(text=f"On the Ray cluster {address} (Preferences)", icon="NETWORK_DRIVE")
        if settings.resume_output and settings.resume_frames == str(_abs(settings.frames_dir)):
            layout.label(text=f"Continues {Path(settings.resume_output).name}", icon="FILE_REFRESH")
    layout.label(text="Stylise after render: Output Properties > Atelier Stylise", icon="INFO")


panels = sidebar_panels("stylize", "Stylise", _draw_settings,
                        {"image": "IMAGE_EDITOR", "sequencer": "SEQUENCE_EDITOR"},
                        subpanels=(("Live", _draw_live), ("Stylise with a Model", _draw_model)))


class ATELIER_PT_stylize_output(bpy.types.Panel):
    """Output properties: the render plugin switch."""

    bl_space_type = "PROPERTIES"
    bl_region_type = "WINDOW"
    bl_context = "output"
    bl_label = "Atelier Stylise"
    bl_options = {"DEFAULT_CLOSED"}

    def draw_header(self, context):
        self.layout.prop(context.scene.atelier_stylize, "after_render", text="")

    def draw(self, context):
        self.layout.prop(context.scene.atelier_stylize, "model")
        if ray_cluster()[0]:
            self.layout.label(text="On the Ray cluster (Preferences) when the render ends", icon="NETWORK_DRIVE")


classes = (
    AtelierStylizeKeyframe, AtelierStylizeSettings, ATELIER_OT_stylize_render_motion,
    ATELIER_OT_stylize_keyframe_add, ATELIER_OT_stylize_keyframe_remove, ATELIER_UL_keyframes, ATELIER_OT_stylize_train,
    ATELIER_OT_stylize_run, ATELIER_OT_stylize_render_on_ray, *panels, ATELIER_PT_stylize_output,
)


def register():
    register_classes(classes, atelier_stylize=AtelierStylizeSettings)
    for name, handler in HANDLERS:
        getattr(bpy.app.handlers, name).append(handler)


def unregister():
    for name, handler in HANDLERS:
        if handler in getattr(bpy.app.handlers, name):
            getattr(bpy.app.handlers, name).remove(handler)
    _ray_renders.clear()
    for scene_name in list(_followers):
        _followers.pop(scene_name).finish(cancel=True)
    unregister_classes(classes, "atelier_stylize")
