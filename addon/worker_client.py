"""The parent side of the worker protocol (see ``core/worker.py``); bpy-free, so it is testable alone."""

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

EXTENSION_ROOT = Path(__file__).resolve().parent.parent


class WorkerStartError(Exception):
    """The worker's interpreter could not be started (missing, not executable, not a program)."""


class WorkerJob:
    """One ``atelier`` command running in a worker process.

    ``poll()`` returns the messages that arrived since the last call without blocking;
    ``wait()`` blocks until the end.  ``result`` ends up as the final message:
    ``{"type": "result" | "error" | "cancelled", ...}``.
    """

    def __init__(self, argv, python=None, extra_env=None):
        env = {**os.environ, "PYTHONPATH": str(EXTENSION_ROOT), "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8",
               **(extra_env or {})}
        python = python or sys.executable
        try:
            self.process = subprocess.Popen(
                [python, "-m", "core.worker"], cwd=str(EXTENSION_ROOT), env=env, stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8", errors="replace",
                bufsize=1)
        except OSError as error:
            raise WorkerStartError(f"{python}: cannot start the worker's Python ({error.strerror or error})") from None
        self.messages = queue.Queue()
        self.result = None
        self.last_figures = {}  # of the latest progress message: what a cancelled job got to
        self.finished = False
        self.stderr_tail = []
        try:
            self.process.stdin.write(json.dumps({"argv": [str(word) for word in argv]}) + "\n")
            self.process.stdin.flush()
        except OSError:  # it exited at once (not Python?): the readers below report its stderr
            pass
        self._stderr_reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._stderr_reader.start()
        threading.Thread(target=self._read_stdout, daemon=True).start()

    def _read_stdout(self):
        for line in self.process.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue  # stray prints from libraries are not protocol messages
            self.messages.put(message)
        self.process.wait()
        self._stderr_reader.join(timeout=5)  # its last lines explain an unexpected end
        self.messages.put(None)

    def _read_stderr(self):
        for line in self.process.stderr:
            self.stderr_tail = (self.stderr_tail + [line.rstrip()])[-20:]

    def cancel(self):
        """Ask the worker to stop; it leaves no half-written output."""
        try:
            self.process.stdin.write("cancel\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass

    def _take(self, message):
        if message is None:
            self.finished = True
            if self.result is None:
                tail = "; ".join(self.stderr_tail[-3:]) or f"exit code {self.process.returncode}"
                self.result = {"type": "error", "message": f"the worker stopped unexpectedly ({tail})"}
            return False
        if message.get("type") in ("result", "error", "cancelled"):
            self.result = message
        elif message.get("type") == "progress":
            self.last_figures = message.get("figures", {})
        return True

    def poll(self):
        arrived = []
        while True:
            try:
                message = self.messages.get_nowait()
            except queue.Empty:
                return arrived
            if self._take(message):
                arrived.append(message)

    def wait(self, on_message=None, timeout=None):
        """Block until the worker ends, calling ``on_message`` for each message; returns the result."""
        while True:
            message = self.messages.get(timeout=timeout)
            if not self._take(message):
                return self.result
            if on_message:
                on_message(message)

    @property
    def done(self):
        return self.finished
