"""μNCA training the first time an artist clicks Train: kernels prebuilt, compiled here, or none (torch).

Each case starts `atelier nca train` in a fresh process with an empty ``ATELIER_CACHE`` (no cached
kernel, no compiled torch graph), as a new install does, and reports the seconds from the start to
the summary (imports, kernel load or compile, training) and the loop's seconds per iteration.

- ``prebuilt``: kernels built by ``core.nca.kernels.build_prebuilt`` as ``make package`` ships them;
- ``compile``: no prebuilt kernels, the system ``cc`` compiles them (once; cached after);
- ``compile_warm``: the same again with the cache the first run left (every later session);
- ``no_compiler``: no prebuilt kernels and no ``cc`` on PATH: the torch step (Windows/macOS without tools).

    .venv/bin/python bench/first_run.py [--iterations 40] [--params 68]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXEMPLAR = ROOT / "core" / "assets" / "nca" / "exemplars" / "stripes.png"


def train(env, iterations, params, output):
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "core.cli", "nca", "train", str(EXEMPLAR), "--iterations",
                          str(iterations), "--params", str(params), "-o", str(output)],
                         capture_output=True, text=True, cwd=ROOT, env=env)
    seconds = time.monotonic() - started
    if run.returncode != 0:
        return {"ok": False, "error": run.stderr[-500:]}
    summary = json.loads(run.stdout.splitlines()[-1])
    return {"ok": True, "seconds_to_model": round(seconds, 2), "seconds_per_iteration": summary["seconds_per_iteration"],
            "kernel": summary.get("kernel")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--params", type=int, default=68)
    args = parser.parse_args()
    results = {"iterations": args.iterations, "params": args.params, "cores": len(os.sched_getaffinity(0)),
               "load_average_at_start": round(os.getloadavg()[0], 1)}  # recorded, never used to choose threads
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        base = {k: v for k, v in os.environ.items() if k not in ("CC", "ATELIER_NCA_PREBUILT", "ATELIER_CACHE")}
        prebuilt = folder / "prebuilt"
        started = time.monotonic()
        subprocess.run([sys.executable, "-c", "import sys; from core.nca.kernels import build_prebuilt; "
                        "build_prebuilt(sys.argv[1])", str(prebuilt)], check=True, cwd=ROOT, capture_output=True)
        results["build_prebuilt_seconds"] = round(time.monotonic() - started, 1)
        no_cc = folder / "bin"  # a PATH with the Python but no C compiler
        no_cc.mkdir()
        (no_cc / "python").symlink_to(sys.executable)
        cases = {
            "prebuilt": {"ATELIER_NCA_PREBUILT": str(prebuilt), "ATELIER_CACHE": str(folder / "c1")},
            "compile": {"ATELIER_NCA_PREBUILT": "", "ATELIER_CACHE": str(folder / "c2")},
            "compile_warm": {"ATELIER_NCA_PREBUILT": "", "ATELIER_CACHE": str(folder / "c2")},
            "no_compiler": {"ATELIER_NCA_PREBUILT": "", "ATELIER_CACHE": str(folder / "c3"),
                            "CC": str(folder / "no-such-cc"), "PATH": str(no_cc)},
        }
        for name, extra in cases.items():
            results[name] = train({**base, **extra}, args.iterations, args.params, folder / f"{name}.safetensors")
            print(name, results[name], file=sys.stderr, flush=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
