"""Progress reporting and cancellation, shared by the command line and the Blender worker.

Long-running functions take a ``progress`` argument and call ``progress.update(done,
**figures)``; that also checks for cancellation and raises :class:`Cancelled`.

* :class:`ConsoleProgress` draws a bar on stderr (Ctrl-C arrives as KeyboardInterrupt).
* :class:`JsonLinesProgress` (the worker) writes ``{"type": "progress", ...}`` lines and
  raises :class:`Cancelled` once the parent asks to cancel.
* :class:`SilentProgress` for tests and library use.
"""

import json
import sys
import threading
import time

from .errors import Cancelled


class Progress:
    """Base reporter: ``total`` units of work (iterations, frames, seconds...)."""

    def __init__(self, total=1, description=""):
        self.total, self.description = max(total, 1e-9), description
        self.started = time.monotonic()
        self.cancel_event = threading.Event()

    def stage(self, description, total=None):
        """Start a new stage of the work, e.g. 'training' then 'rendering'."""
        self.description = description
        if total is not None:
            self.total = max(total, 1e-9)
        self.update(0)

    def update(self, done, **figures):
        if self.cancel_event.is_set():
            raise Cancelled(self.description or "cancelled")
        self.show(min(done / self.total, 1.0), figures)

    def show(self, fraction, figures):
        pass

    @property
    def elapsed(self):
        return time.monotonic() - self.started


class SilentProgress(Progress):
    pass


def _format_figure(value):
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class ConsoleProgress(Progress):
    """A one-line bar on stderr, redrawn at most ten times a second."""

    def __init__(self, total=1, description="", stream=None):
        super().__init__(total, description)
        self.stream = stream or sys.stderr
        self.last_draw = 0.0

    def show(self, fraction, figures):
        now = time.monotonic()
        if fraction < 1.0 and now - self.last_draw < 0.1:
            return
        self.last_draw = now
        width = 28
        filled = int(round(fraction * width))
        text = " ".join(f"{k}={_format_figure(v)}" for k, v in figures.items())
        line = f"\r{self.description[:24]:<24} [{'#' * filled}{'.' * (width - filled)}] {fraction * 100:5.1f}% {self.elapsed:6.1f}s {text}"
        self.stream.write(line[:160].ljust(100))
        if fraction >= 1.0:
            self.stream.write("\n")
        self.stream.flush()


class JsonLinesProgress(Progress):
    """Progress as JSON lines on ``stream``; the worker sets ``cancel_event`` when asked to stop."""

    def __init__(self, total=1, description="", stream=None, interval=0.2):
        super().__init__(total, description)
        self.stream = stream or sys.stdout
        self.interval = interval
        self.last_sent = 0.0

    def show(self, fraction, figures):
        now = time.monotonic()
        if fraction < 1.0 and now - self.last_sent < self.interval:
            return
        self.last_sent = now
        message = {"type": "progress", "fraction": fraction, "stage": self.description,
                   "figures": {k: v for k, v in figures.items() if isinstance(v, (int, float, str))}}
        self.stream.write(json.dumps(message) + "\n")
        self.stream.flush()
