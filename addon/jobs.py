"""Operators that run an ``atelier`` command in the worker process.

In the UI the operator is modal: a timer polls the worker, the window manager's progress
bar and the status bar show how far it got, ESC cancels.  With no window (tests,
``blender -b`` render farms) ``execute`` runs the same command synchronously.  Either way
Blender data changes only in ``finish``, on the main thread, once the worker succeeded.
"""

import shutil
import tempfile
from pathlib import Path
from typing import Any

import bpy

from ..core.errors import AtelierError
from ..core.validate import shown
from .preferences import FULL_ZIP_HINT, custom_python, training_unavailable, worker_environment, worker_python
from .worker_client import WorkerJob, WorkerStartError


def start_worker(argv):
    """A :class:`WorkerJob` for ``argv`` in the worker's Python; AtelierError (naming the preference) when
    that Python cannot start."""
    try:
        return WorkerJob(argv, python=worker_python(), extra_env=worker_environment())
    except WorkerStartError as error:
        where = "Preferences > Add-ons > Atelier > Python with torch" if custom_python() else "Blender's own Python"
        raise AtelierError(f"{error}; check {where}") from None


def result_message(result):
    """The worker's error as the artist should read it: a missing module names the zip or preference to use."""
    if result.get("missing_module"):
        module = "OpenCV" if result["missing_module"] == "cv2" else result["missing_module"]
        return f"This needs {module}, which the worker's Python lacks: {FULL_ZIP_HINT}"
    return result.get("message", result["type"])


class WorkerOperator:
    """Mix-in for ``bpy.types.Operator`` subclasses.

    Subclasses implement ``worker_argv(context)`` (the ``atelier`` command words; raise
    ``AtelierError`` for bad input) and ``finish(context, summary)`` (apply the result;
    return an operator result set).  ``prepare(context)`` may collect data first.
    """

    bl_options: Any = {"REGISTER", "UNDO"}  # (a mixin: Blender checks the flags when the class registers)
    needs: tuple[str, ...] = ()  # modules beyond numpy that the worker imports for this job ("torch", "cv2")

    @classmethod
    def poll(cls, context):
        reason = cls.unavailable(context)
        if reason:
            cls.poll_message_set(reason)
        return reason is None

    @classmethod
    def unavailable(cls, context):
        """Why the operator cannot run now (greyed out, with this as its tooltip), or None."""
        return training_unavailable(cls.needs) if cls.needs else None

    def worker_argv(self, context):
        raise NotImplementedError

    def finish(self, context, summary):
        return {"FINISHED"}

    def cancelled(self, context, figures):
        """After Esc: keep what the worker saved and return the message saying where, or None."""
        return None

    def temporary_folder(self):
        """A folder for the files handed to and from the worker, removed when the job ends."""
        if getattr(self, "_temporary", None) is None:
            self._temporary = Path(tempfile.mkdtemp(prefix="atelier_"))
        return self._temporary

    def _clean_up(self):
        folder, self._temporary = getattr(self, "_temporary", None), None
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    def _start(self, context):
        try:
            return start_worker(self.worker_argv(context))
        except AtelierError as error:
            self._clean_up()
            self.report({"ERROR"}, shown(error))
            return None

    def _conclude(self, context, job):
        try:
            return self._apply(context, job)
        finally:
            self._clean_up()

    def _apply(self, context, job):
        result = job.result or {"type": "error", "message": "the worker gave no result"}
        if result["type"] == "cancelled":
            kept = self.cancelled(context, job.last_figures)
            self.report({"WARNING"}, shown(kept or "Cancelled; nothing was changed"))
            return {"FINISHED"} if kept else {"CANCELLED"}
        if result["type"] == "error":
            self.report({"ERROR"}, shown(result_message(result)))
            return {"CANCELLED"}
        try:
            return self.finish(context, result["summary"])
        except AtelierError as error:
            self.report({"ERROR"}, shown(error))
            return {"CANCELLED"}

    def execute(self, context):
        job = self._start(context)
        if job is None:
            return {"CANCELLED"}
        job.wait()
        return self._conclude(context, job)

    def invoke(self, context, event):
        if context.window is None or bpy.app.background:
            return self.execute(context)
        self._job = self._start(context)
        if self._job is None:
            return {"CANCELLED"}
        window_manager = context.window_manager
        window_manager.progress_begin(0.0, 1.0)
        self._timer = window_manager.event_timer_add(0.1, window=context.window)
        window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type == "ESC" and event.value == "PRESS":
            self._job.cancel()
            context.workspace.status_text_set("Atelier: cancelling…")
            return {"RUNNING_MODAL"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        for message in self._job.poll():
            if message.get("type") == "progress":
                context.window_manager.progress_update(message["fraction"])
                figures = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                    for k, v in message.get("figures", {}).items())
                context.workspace.status_text_set(
                    f"Atelier: {message.get('stage', '')} {message['fraction'] * 100:.0f}%  {figures}  (Esc cancels)")
        if not self._job.done:
            return {"RUNNING_MODAL"}
        context.window_manager.event_timer_remove(self._timer)
        context.window_manager.progress_end()
        context.workspace.status_text_set(None)
        return self._conclude(context, self._job)

