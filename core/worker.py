"""The bpy-free worker process that runs heavy work for the Blender add-on.

Protocol (JSON lines):

* The parent starts ``python -m core.worker`` (from the extension root) and writes one
  request line on stdin: ``{"argv": ["nca", "train", ...]}``, the same words as the
  command line.
* The worker answers on stdout with ``{"type": "progress", "fraction": f, "stage": s,
  "figures": {...}}`` lines, then exactly one of ``{"type": "result", "summary": {...}}``,
  ``{"type": "error", "message": "..."}`` or ``{"type": "cancelled"}``.
* Any later line on stdin (conventionally ``cancel``) or stdin closing asks it to stop;
  the command then raises :class:`Cancelled` at its next progress update, and outputs are
  never half-written (see ``core.atomic``).
"""

import json
import sys
import threading
import traceback

from .errors import AtelierError, Cancelled, missing_module_message
from .progress import JsonLinesProgress


def _watch_for_cancel(stream, event):
    for _line in stream:
        break
    event.set()


def serve(stdin=None, stdout=None):
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    lock = threading.Lock()

    def send(message):
        with lock:
            stdout.write(json.dumps(message, default=str) + "\n")
            stdout.flush()

    try:
        request = json.loads(stdin.readline() or "{}")
        argv = [str(word) for word in request["argv"]]
    except (ValueError, KeyError, TypeError):
        send({"type": "error", "message": "worker: the request must be one JSON line with an 'argv' list"})
        return 2
    progress = JsonLinesProgress(description=" ".join(argv[:2]), stream=stdout)
    threading.Thread(target=_watch_for_cancel, args=(stdin, progress.cancel_event), daemon=True).start()
    from .cli import run_command
    try:
        summary = run_command(argv, progress)
    except Cancelled:
        send({"type": "cancelled"})
        return 130
    except AtelierError as error:
        send({"type": "error", "message": str(error)})
        return 2
    except ModuleNotFoundError as error:  # a feature whose wheels this Python lacks
        send({"type": "error", "missing_module": error.name, "message": missing_module_message(error.name, argv)})
        return 2
    except SystemExit as error:  # argparse rejected the arguments
        send({"type": "error", "message": f"invalid arguments for atelier {' '.join(argv)} (exit {error.code})"})
        return 2
    except Exception as error:  # a bug: say what, keep the traceback on stderr for the log
        traceback.print_exc()
        send({"type": "error", "message": f"{type(error).__name__}: {error}"})
        return 1
    send({"type": "result", "summary": summary})
    return 0


if __name__ == "__main__":
    sys.exit(serve())
