"""Image to Strokes in Blender's own Python: the numpy runtime against the torch path, same images.

Blender's own Python has no torch, so the light zip paints with ``core/strokes/runtime.py`` (the
agent, the painter and its hand-derived gradients in numpy). This runs ``image_to_strokes`` (mode
``agent``, the shipped agent, default strokes and refinement) with ``runtime="numpy"`` and
``runtime="torch"`` on the same held-out images and reports seconds per image and, per runtime,
the stroke judge's figures on the painter's PNG (``../shared/eval/stroke_score.py``, run as a
script when present) beside this file's own dilated-mask IoU, so a change to the judge does not
go unnoticed. Prints one JSON object.

    .venv/bin/python bench/strokes_runtime.py [--count 16] [--sets kanji hershey shapes]
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
JUDGE = ROOT.parent / "shared" / "eval" / "stroke_score.py"

from core.imageio import write_image  # noqa: E402
from core.strokes.cli import image_to_strokes  # noqa: E402
from core.strokes.data import ink_images  # noqa: E402
from core.strokes.runtime import ink_union, render_alphas  # noqa: E402


def own_iou(target, drawn, radius=1):
    """IoU of the two ink masks, each grown by ``radius`` pixels (a square neighbourhood)."""
    def grow(mask):
        out = mask.copy()
        for dy in range(-radius, radius + 1):
            for dx in range(-radius, radius + 1):
                out |= np.roll(np.roll(mask, dy, 0), dx, 1)
        return out
    t, d = grow(target > 0.5), grow(drawn > 0.5)
    union = (t | d).sum()
    return float((t & d).sum() / union) if union else 1.0


def judge(target_png, drawn_png):
    if not JUDGE.exists():
        return None
    run = subprocess.run([sys.executable, str(JUDGE), str(target_png), str(drawn_png)], capture_output=True, text=True)
    return json.loads(run.stdout.splitlines()[-1]) if run.returncode == 0 else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--sets", nargs="+", default=["kanji", "hershey", "shapes"])
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for name in args.sets:
            images = ink_images(name, "test")[:args.count]
            rows = {}
            for runtime in ("numpy", "torch"):
                seconds, judged, own = [], [], []
                for index, ink in enumerate(images):
                    ink = np.asarray(ink, np.float32)
                    picture = np.repeat((1 - ink)[:, :, None], 3, axis=2)  # dark ink on white paper
                    target = folder / f"{name}_{index}_target.png"
                    write_image(target, picture)
                    started = time.perf_counter()
                    result = image_to_strokes(picture, str(target), runtime=runtime)
                    seconds.append(time.perf_counter() - started)
                    size = ink.shape[0]
                    drawn = ink_union(render_alphas(result["points"], result["brush"], size))
                    drawn_png = folder / f"{name}_{index}_{runtime}.png"
                    write_image(drawn_png, np.repeat((1 - drawn)[:, :, None], 3, axis=2))
                    own.append(own_iou(ink, drawn))
                    figures = judge(target, drawn_png)
                    if figures:
                        judged.append(figures)
                row = {"images": len(images), "seconds_per_image": round(float(np.mean(seconds)), 3),
                       "own_iou": round(float(np.mean(own)), 4)}
                for key in ("iou", "chamfer", "coverage", "precision"):
                    if judged:
                        row[f"judge_{key}"] = round(float(np.mean([j[key] for j in judged])), 4)
                rows[runtime] = row
            results[name] = rows
            print(name, json.dumps(rows), file=sys.stderr, flush=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
