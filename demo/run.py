"""The Atelier demo: headless Blender using every feature, writing a .blend and PNG renders.

Each feature contributes ``demo/<feature>.py`` with ``run(bpy, out_dir) -> dict``; it builds
its own scene in the shared file, as an artist would, through the add-on's operators.
Run it with ``make demo`` (or ``atelier demo run``).
"""

import argparse
import importlib
import json
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "demo"))

import blender_session  # noqa: E402
from core.atomic import write_text_atomic  # noqa: E402

FEATURES = ("nca", "sketch", "strokes", "stylize", "library")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "demo")
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    wanted = [name for name in (args.only.split(",") if args.only else FEATURES) if name]
    out_dir = args.out.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)

    blender_session.isolate_user_resources()
    import bpy
    blender_session.fresh_blender(bpy)
    bpy.context.scene.name = "Atelier"

    summary, failed = {"features": {}, "images": []}, []
    for name in wanted:
        if not (ROOT / "demo" / f"{name}.py").exists():
            print(f"[demo] {name}: not available yet, skipped", flush=True)
            continue
        print(f"[demo] {name} ...", flush=True)
        started = time.monotonic()
        try:
            result = importlib.import_module(name).run(bpy, out_dir) or {}
        except Exception:
            traceback.print_exc()
            failed.append(name)
            continue
        result["seconds"] = round(time.monotonic() - started, 1)
        summary["features"][name] = result
        summary["images"] += [str(path) for path in result.get("images", [])]
        print(f"[demo] {name}: {len(result.get('images', []))} images in {result['seconds']} s", flush=True)

    blend = out_dir / "atelier_demo.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend), compress=True)
    summary["blend"] = str(blend)
    for image in summary["images"]:
        print(f"[demo] wrote {image}")
    print(f"[demo] wrote {blend}")
    if failed:
        summary["failed"] = failed
    # Blender may print its own lines at exit, so the summary also goes to a file.
    write_text_atomic(out_dir / "summary.json", json.dumps(summary, default=str, indent=1))
    print(json.dumps(summary, default=str))
    return 1 if failed or not summary["features"] else 0


if __name__ == "__main__":
    sys.exit(main())
