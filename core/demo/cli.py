"""``atelier demo run``: the headless-Blender demo (``demo/run.py``) in a subprocess with bpy."""

import json
import os
import subprocess
import sys
from pathlib import Path

from ..errors import AtelierError
from ..paths import ROOT

DEMO_SCRIPT = ROOT / "demo" / "run.py"


def run_demo(args, progress):
    if not DEMO_SCRIPT.exists():
        raise AtelierError(f"{DEMO_SCRIPT}: the demo ships with the source tree, not with the extension zip "
                           "or the installed package")
    command = [sys.executable, str(DEMO_SCRIPT), "--out", str(args.output)]
    if args.only:
        command += ["--only", args.only]
    # demo/run.py imports the source tree's top-level `core` (the installed package is `atelier.core`)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    summary = None
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as demo:
        for line in demo.stdout:  # the demo's log goes to stderr, its JSON summary is ours
            if line.startswith("{"):
                summary = json.loads(line)
            else:
                sys.stderr.write(line)
    if demo.returncode != 0 or summary is None:
        raise AtelierError(f"{DEMO_SCRIPT}: the demo failed (exit {demo.returncode}); see the messages above")
    return summary


def register(commands):
    parser = commands.add_parser("run", help="render every feature in headless Blender",
                                 description="Build out/demo/atelier_demo.blend and PNG renders of every feature.")
    parser.add_argument("-o", "--output", type=Path, default=Path("out/demo"), help="output folder (default out/demo)")
    parser.add_argument("--only", default="", help="comma-separated features, e.g. nca,sketch")
    parser.set_defaults(run=run_demo)
