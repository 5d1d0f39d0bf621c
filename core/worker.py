"""The bpy-free worker process that runs heavy work for the Blender add-on.

Protocol (JSON lines):

* The parent starts ``python -m core.worker`` (from the extension root) and writes one
  request line on stdin: ``{"argv": ["nca", "train", ...]}``, the same words as the
  command line.
* The worker answers on stdout with ``{"type": "progress", "fraction": f, "stage": s,
  "figures": {...}}`` lines, then exactly one of ``{"type": "result", "summary": {...}}``,
  ``{"type": "error", "message": "..."}`` or ``{"type": "cancelled"}`` (with ``"model": path`` when a
  stopped training kept its model so far).
* Any later line on stdin (conventionally ``cancel``) or stdin closing asks it to stop;
  the command then raises :class:`Cancelled` at its next progress update, and outputs are
  never half-written (see ``core.atomic``).
* Nothing else reaches the protocol stream: run as a program (:func:`main`) the worker keeps a
  private copy of its stdout for the protocol and points file descriptor 1 at stderr, so help text,
  a library's ``printf`` or a stray ``print`` land in the log, never among the JSON lines.

The request is untrusted input like any file: it is read up to :data:`MAX_REQUEST_BYTES`, must be
a JSON object whose ``argv`` is a list of strings (no NUL characters, file names as the add-on
sends them), and ``-h``/``--help``/``--version``, which only print text, are refused with a message.
"""

import json
import os
import sys
import threading
import traceback

from .errors import AtelierError, Cancelled, missing_module_message
from .progress import JsonLinesProgress
from .validate import shown

MAX_REQUEST_BYTES = 1024 * 1024
_PRINT_ONLY = {"-h", "--help", "--version"}


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
        argv = read_request(stdin)
    except AtelierError as error:
        send({"type": "error", "message": str(error)})
        return 2
    progress = JsonLinesProgress(description=" ".join(argv[:2]), stream=stdout)
    threading.Thread(target=_watch_for_cancel, args=(stdin, progress.cancel_event), daemon=True).start()
    from .cli import run_command
    try:
        summary = run_command(argv, progress)
    except Cancelled as error:
        kept = getattr(error, "kept", None)  # a training keeps its model so far: the add-on names it
        send({"type": "cancelled", **({"model": kept} if kept else {})})
        return 130
    except AtelierError as error:
        send({"type": "error", "message": str(error)})
        return 2
    except ModuleNotFoundError as error:  # a feature whose wheels this Python lacks
        send({"type": "error", "missing_module": error.name, "message": missing_module_message(error.name, argv)})
        return 2
    except OSError as error:  # the system refused something (disk full, permissions): say which file
        send({"type": "error", "message": f"{shown(error.filename or ' '.join(argv[:2]))}: "
                                          f"{error.strerror or error}"})
        return 2
    except SystemExit as error:  # argparse rejected the arguments (its message is in the log)
        send({"type": "error", "message": f"invalid arguments for atelier {shown(' '.join(argv))[:500]} "
                                          f"(exit {error.code})"})
        return 2
    except Exception as error:  # a bug: say what, keep the traceback on stderr for the log
        traceback.print_exc()
        send({"type": "error", "message": f"{type(error).__name__}: {error}"})
        return 1
    send({"type": "result", "summary": summary})
    return 0


def read_request(stdin):
    """The request's ``argv`` words, checked; every problem is an :class:`AtelierError`."""
    problem = "worker: the request must be one JSON line with an 'argv' list of strings"
    try:
        line = stdin.readline(MAX_REQUEST_BYTES + 1)
    except UnicodeDecodeError:
        raise AtelierError(f"{problem} (it is not UTF-8)") from None
    if len(line) > MAX_REQUEST_BYTES:
        raise AtelierError(f"worker: the request is longer than {MAX_REQUEST_BYTES:,} characters")
    try:
        request = json.loads(line or "{}")
    except RecursionError:
        raise AtelierError(f"{problem} (it is nested too deeply)") from None
    except ValueError:
        raise AtelierError(problem) from None
    argv = request.get("argv") if isinstance(request, dict) else None
    if not isinstance(argv, list) or not all(isinstance(word, str) for word in argv):
        raise AtelierError(problem)
    for word in argv:
        if "\0" in word:
            raise AtelierError("worker: a word of the request holds a NUL character")
        try:
            word.encode("utf-8", "surrogateescape")  # file names that are not UTF-8 come as \udc80-\udcff
        except UnicodeEncodeError:
            raise AtelierError(f"worker: the word {shown(word)[:60]!r} holds an invalid character") from None
    asked = [word for word in argv if _prints_only(word)]
    if asked:
        command = " ".join(["atelier", *(word for word in argv[:2] if not _prints_only(word)), asked[0]])
        raise AtelierError(f"worker: {asked[0]} only prints text; run '{command}' in a terminal")
    return argv


def _prints_only(word):
    """-h, --help, --version, or an abbreviation argparse would take for one of them."""
    return word in _PRINT_ONLY or (len(word) >= 3 and word.startswith("--")
                                   and any(option.startswith(word) for option in _PRINT_ONLY))


def main():
    """Serve one request on stdin/stdout with the protocol on a private copy of stdout."""
    sys.stdout.flush()
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # fd 1 (print, printf, help text) now goes to the log
    try:
        return serve(sys.stdin, protocol)
    finally:
        protocol.close()


if __name__ == "__main__":
    sys.exit(main())
