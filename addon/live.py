"""Live stylisation in Blender: paint on a keyframe while the network trains; previews of other frames
follow in the Image editor and the Sequencer.

The worker runs ``atelier stylize live --watch`` (``core/stylize/live.py``) for the whole session.
:class:`LiveSession` is the add-on's half, free of any UI so tests drive it without a window:
``tick()`` writes a keyframe image the artist painted over (``Image.is_dirty``, then its pixels)
to the file the worker watches, and reloads the preview images the worker rewrote; ``stop()``
keeps the model and selects it, ready for *Stylise with Model* at full resolution.  The modal
operator only calls ``tick()`` from a timer and counts main-thread stalls over STALL_SECONDS.
"""

import hashlib
import shutil
import tempfile
import time
from pathlib import Path

import bpy
import numpy as np

from ..core.errors import AtelierError
from ..core.validate import shown
from ..core.imageio import write_image
from ..core.stylize.frames import frame_files
from .images import image_to_array
from .jobs import result_message, start_worker
from .library import select
from .preferences import models_dir
from .registration import register_classes, unregister_classes
from .stylize import frame_position, stylised_scene, training_unavailable_for_stylise

TICK_SECONDS = 0.2
STALL_SECONDS = 0.1
STOP_SECONDS = 120  # saving the model and the last previews


class LiveSession:
    """One live session of ``scene``: the worker, the keyframe files it watches, the preview images."""

    def __init__(self, scene):
        settings = scene.atelier_stylize
        self.scene_name = scene.name
        frames = Path(bpy.path.abspath(settings.frames_dir)) if settings.frames_dir else None
        if frames is None or not frames.is_dir():
            raise AtelierError("Live: choose the folder of rendered frames (or use Render with Motion)")
        if not settings.keyframes:
            raise AtelierError("Live: add at least one painted keyframe")
        self.files = frame_files(frames)
        self.folder = Path(tempfile.mkdtemp(prefix="atelier_live_"))
        self.previews = self.folder / "previews"
        self.keyframes = []  # (image datablock or None, file the worker watches, last pixel digest)
        words = []
        for item in settings.keyframes:
            position = frame_position(self.files, item.frame, scene)
            path = self.folder / f"keyframe_{position:04d}.png"
            if item.image is not None:
                digest = self._write(item.image, path)
            elif item.file:
                shutil.copyfile(bpy.path.abspath(item.file), path)
                digest = None
            else:
                raise AtelierError(f"keyframe at frame {item.frame}: choose a painted image or file")
            self.keyframes.append([item.image, path, digest])
            words += ["--keyframe", f"{position}={path}"]
        self.preview_positions = self._preview_positions(settings.live_previews, scene)
        self.model = models_dir() / f"stylize_live_{bpy.path.clean_name(scene.name)}.safetensors"
        n = 1
        while self.model.exists():
            n += 1
            self.model = self.model.with_name(f"stylize_live_{bpy.path.clean_name(scene.name)}_{n}.safetensors")
        self.job = start_worker(["stylize", "live", "--frames", str(frames), *words, "--watch",
                                 "--preview", ",".join(map(str, self.preview_positions)), "-o", str(self.previews),
                                 "--model", str(self.model)])
        self.seen = {}  # preview file -> modification time shown
        self.figures, self.stalls, self.ticks, self.slowest = {}, 0, 0, 0.0

    def _preview_positions(self, words, scene):
        if not words.strip():
            count = len(self.files)
            return sorted({int(round(i)) for i in np.linspace(0, count - 1, min(5, count))})
        try:
            frames = [int(word) for word in words.replace(" ", "").split(",") if word]
        except ValueError:
            raise AtelierError(f"Live previews {words!r}: give Blender frame numbers, e.g. 5, 12, 20") from None
        return sorted({frame_position(self.files, frame, scene) for frame in frames})

    @staticmethod
    def _write(image, path):
        """Write ``image``'s pixels to ``path`` atomically; returns their digest."""
        pixels = image_to_array(image)
        write_image(path, pixels[:, :, :3])
        return hashlib.blake2b(pixels.tobytes(), digest_size=16).digest()

    def image_name(self, position):
        return f"Atelier Live · {self.files[position].stem}"

    def tick(self):
        """One look at the paintings and previews; returns False once the worker has ended."""
        started = time.monotonic()
        for entry in self.keyframes:
            image, path, digest = entry
            if image is not None and image.is_dirty:  # painted over since the last look: changed pixels?
                pixels = image_to_array(image)
                now = hashlib.blake2b(pixels.tobytes(), digest_size=16).digest()
                if now != digest:
                    write_image(path, pixels[:, :, :3])
                    entry[2] = now
        for message in self.job.poll():
            if message.get("type") == "progress":
                self.figures = message.get("figures", {})
        self._show_previews()
        spent = time.monotonic() - started
        self.ticks += 1
        self.slowest = max(self.slowest, spent)
        self.stalls += spent > STALL_SECONDS
        return not self.job.done

    def _show_previews(self):
        scene = bpy.data.scenes.get(self.scene_name)
        for position in self.preview_positions:
            path = self.previews / (self.files[position].stem + ".png")
            try:
                stamp = path.stat().st_mtime_ns
            except OSError:
                continue
            if self.seen.get(path) == stamp:
                continue
            self.seen[path] = stamp
            name = self.image_name(position)
            image = bpy.data.images.get(name)
            if image is None:
                image = bpy.data.images.load(str(path), check_existing=False)
                image.name = name
                if scene is not None:
                    self._add_strip(scene, name, path, position)
            else:
                image.reload()

    def _add_strip(self, scene, name, path, position):
        """The preview as an image strip at its frame, in the channel above every other strip of the
        scene's stylised_scene (never the scene itself, which would then render the strips)."""
        scene = stylised_scene(scene, bpy.context)
        editor = scene.sequence_editor or scene.sequence_editor_create()
        channel = max((strip.channel for strip in editor.strips_all), default=0) + 1
        digits = "".join(ch for ch in self.files[position].stem if ch.isdigit())
        frame = int(digits) if digits else scene.frame_start + position
        editor.strips.new_image(name=name, filepath=str(path), channel=channel, frame_start=frame)

    def stop(self):
        """End the session: the worker saves the model and the last previews; returns the report message."""
        self.job.cancel()
        try:
            result = self.job.wait(timeout=STOP_SECONDS)
        except Exception:  # queue.Empty: the worker did not answer in time
            return f"Live: the worker did not stop within {STOP_SECONDS} s; its model may be missing"
        self._show_previews()
        shutil.rmtree(self.folder, ignore_errors=True)
        if result["type"] != "result":
            return f"Live stopped: {result_message(result)}"
        scene = bpy.data.scenes.get(self.scene_name)
        if scene is not None:
            select(scene.atelier_stylize, "model", result["summary"]["model"])
        summary = result["summary"]
        return (f"Live stopped after {summary['steps']} steps ({summary['keyframe_changes']} painted changes); "
                f"kept the model {Path(summary['model']).name}: Stylise with Model renders the whole shot")


_sessions: dict = {}  # scene name -> the LiveSession running in it


class ATELIER_OT_stylize_live(bpy.types.Operator):
    """Train while you paint on the keyframes; previews of other frames update in the Image editor and the
    Sequencer (Esc or Stop ends it and keeps the model)"""
    bl_idname = "atelier.stylize_live"
    bl_label = "Start Live"

    @classmethod
    def poll(cls, context):
        if context.scene.name in _sessions:
            cls.poll_message_set("A live session is running in this scene")
            return False
        settings = context.scene.atelier_stylize
        reason = (None if settings.frames_dir else "Choose the folder of rendered frames") or \
            (None if settings.keyframes else "Add at least one painted keyframe") or training_unavailable_for_stylise()
        if reason:
            cls.poll_message_set(reason)
        return reason is None

    def execute(self, context):
        self.report({"ERROR"}, "Live needs Blender's window; from a script use `atelier stylize live --watch`")
        return {"CANCELLED"}

    def invoke(self, context, event):
        if context.window is None or bpy.app.background:
            return self.execute(context)
        try:
            _sessions[context.scene.name] = LiveSession(context.scene)
        except AtelierError as error:
            self.report({"ERROR"}, shown(str(error)))
            return {"CANCELLED"}
        self._timer = context.window_manager.event_timer_add(TICK_SECONDS, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        session = _sessions.get(context.scene.name)
        stopping = session is None or (event.type == "ESC" and event.value == "PRESS") or \
            context.scene.atelier_stylize.live_stop
        if not stopping and event.type != "TIMER":
            return {"PASS_THROUGH"}
        if not stopping and session.tick():
            figures = session.figures
            context.workspace.status_text_set(
                f"Atelier Live: step {figures.get('step', 0)}  loss {figures.get('loss', 0):.4g}  "
                f"changes {figures.get('changes', 0)}  (Esc stops and keeps the model)")
            return {"RUNNING_MODAL"}
        context.window_manager.event_timer_remove(self._timer)
        context.workspace.status_text_set(None)
        context.scene.atelier_stylize.live_stop = False
        session = _sessions.pop(context.scene.name, None)
        if session is not None:
            self.report({"INFO"},
                        shown(session.stop() + f"; UI stalls over 100 ms: {session.stalls} of {session.ticks}"))
        return {"FINISHED"}


class ATELIER_OT_stylize_live_stop(bpy.types.Operator):
    """Stop the live session and keep its model"""
    bl_idname = "atelier.stylize_live_stop"
    bl_label = "Stop Live"

    @classmethod
    def poll(cls, context):
        if context.scene.name not in _sessions:
            cls.poll_message_set("No live session is running")
            return False
        return True

    def execute(self, context):
        context.scene.atelier_stylize.live_stop = True
        return {"FINISHED"}


def draw_live(layout, context):
    settings = context.scene.atelier_stylize
    layout.prop(settings, "live_previews")
    row = layout.row(align=True)
    row.operator(ATELIER_OT_stylize_live.bl_idname, icon="PLAY")
    row.operator(ATELIER_OT_stylize_live_stop.bl_idname, icon="PAUSE")
    session = _sessions.get(context.scene.name)
    if session is not None:
        layout.label(text=f"Training: step {session.figures.get('step', 0)}; paint on a keyframe image to update",
                     icon="BRUSH_DATA")


classes = (ATELIER_OT_stylize_live, ATELIER_OT_stylize_live_stop)


def register():
    register_classes(classes)


def unregister():
    for name in list(_sessions):
        _sessions.pop(name).stop()
    unregister_classes(classes)
