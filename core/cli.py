"""The ``atelier`` command-line program.

Each feature group lives in ``core/<group>/cli.py`` and exposes ``register(subparsers)``,
which adds ``atelier <group> ...`` commands.  A command is a function
``run(args, progress) -> dict``: it does the work, reports through ``progress`` and returns
the summary that is printed as the last line, one JSON object (files written, seconds and
the key figures).  The Blender worker runs the very same commands (see ``core.worker``).
"""

import argparse
import importlib
import json
import os
import sys
import time

from . import __version__
from .errors import AtelierError, Cancelled, missing_module_message
from .progress import ConsoleProgress
from .validate import shown

GROUPS = {
    "nca": "μNCA neural textures: train, render, export",
    "sketch": "Sketch-RNN: train on pen strokes, evaluate, sample",
    "strokes": "StrokeNet: painting environment, agents, image to strokes",
    "stylize": "few-shot keyframe video stylisation",
    "demo": "run the headless-Blender demo",
    "system": "what this Python can run: libraries, devices, kernels",
}


def build_parser(only=None):
    """The whole parser, or with ``only`` (a group name) one whose other groups have no commands.

    Each group's ``cli`` module is imported only when its commands are added, and only the group a
    command needs is loaded: a light job (baking a preset, auto-drawing) then never imports the
    modules that need torch or OpenCV, which Blender's own Python does not have.
    """
    parser = argparse.ArgumentParser(prog="atelier", description="Tiny neural models for artists.")
    parser.add_argument("--version", action="version", version=f"atelier {__version__}")
    groups = parser.add_subparsers(dest="group", metavar="GROUP", required=True)
    for name, help_text in GROUPS.items():
        group_parser = groups.add_parser(name, help=help_text, description=help_text)
        commands = group_parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
        if only in (None, name):
            importlib.import_module(f".{name}.cli", __package__).register(commands)
            for command in commands.choices.values():
                if not any("--threads" in action.option_strings for action in command._actions):
                    command.add_argument("--threads", type=int, help=THREADS_HELP)
    return parser


THREADS_HELP = ("CPU threads (default: ATELIER_THREADS, else every core this process may run on; "
                "never guessed from the load average)")


def use_threads(threads):
    """``--threads N``: every library this process loads later (torch, OpenMP kernels) uses N threads."""
    if threads is not None:
        if not 1 <= threads <= 1024:
            raise AtelierError(f"--threads {threads}: must lie in [1, 1024]")
        os.environ["ATELIER_THREADS"] = os.environ["OMP_NUM_THREADS"] = str(threads)
        if "torch" in sys.modules:  # already loaded (a worker that ran an earlier command)
            sys.modules["torch"].set_num_threads(threads)


def run_command(argv, progress):
    """Parse ``argv`` and run the command; returns its summary dict with ``seconds`` added."""
    group = argv[0] if argv and argv[0] in GROUPS else None
    args = build_parser(only=group).parse_args(argv)
    use_threads(getattr(args, "threads", None))
    if isinstance(getattr(args, "seed", None), int) and not 0 <= args.seed < 2 ** 32:
        # numpy refuses negative seeds, torch those past 64 bits: a message, not a traceback
        raise AtelierError(f"--seed {args.seed}: must lie in [0, {2 ** 32 - 1}]")
    started = time.monotonic()
    summary = args.run(args, progress) or {}
    summary.setdefault("command", f"{args.group} {args.command}")
    summary["seconds"] = round(time.monotonic() - started, 3)
    return summary


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    progress = ConsoleProgress(description=" ".join(argv[:2]))
    try:
        summary = run_command(argv, progress)
    except AtelierError as error:
        print(f"atelier: error: {error}", file=sys.stderr)
        print(json.dumps({"command": " ".join(argv[:2]), "error": str(error)}))
        return 2
    except ModuleNotFoundError as error:
        message = missing_module_message(error.name, argv)
        print(f"atelier: error: {message}", file=sys.stderr)
        print(json.dumps({"command": " ".join(argv[:2]), "error": message}))
        return 2
    except OSError as error:  # the system refused something (disk full, permissions): say which file
        message = f"{shown(error.filename or ' '.join(argv[:2]))}: {error.strerror or error}"
        print(f"atelier: error: {message}", file=sys.stderr)
        print(json.dumps({"command": " ".join(argv[:2]), "error": message}))
        return 2
    except (KeyboardInterrupt, Cancelled) as error:
        kept = getattr(error, "kept", None)  # a training keeps its model so far
        print(f"\natelier: interrupted; kept the model so far: {shown(kept)}" if kept else
              "\natelier: interrupted; nothing half-written was left behind", file=sys.stderr)
        print(json.dumps({"command": " ".join(argv[:2]), "cancelled": True, **({"model": kept} if kept else {})}))
        return 130
    print(json.dumps(summary, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
