"""StrokeNet benchmark: prints one JSON object.

* generator fidelity on held-out random strokes (MSE against the real painter, and the stroke
  judge's coverage / chamfer of the generator's image against the painter's);
* agents on held-out images they never trained on (every 5th item of each dataset), their
  strokes rendered by the REAL painter and scored by ../shared/eval/stroke_score.py:
  single-step agent on digits, recurrent agent (at most 8 strokes) on kanji and Hershey
  characters, each without and with inference refinement; inference seconds per image.

    .venv/bin/python bench/strokes.py [--count 40] [--refine 30]
"""

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.strokes.agent import draw, load_agent  # noqa: E402
from core.strokes.cli import ASSETS, SHIPPED_GENERATOR  # noqa: E402
from core.strokes.data import ink_images  # noqa: E402
from core.strokes.generator import load_generator, stroke_batch  # noqa: E402
from core.strokes.painter import ink_union, render_alpha  # noqa: E402


def judge():
    path = Path(__file__).resolve().parents[2] / "shared/eval/stroke_score.py"
    spec = importlib.util.spec_from_file_location("stroke_score", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.score  # (target mask, drawn mask) -> figures; masks = ink past half way, as the script reads PNGs


def mean_scores(score, targets, drawings):
    rows = [score(t > 0.5, d > 0.5) for t, d in zip(targets, drawings)]
    return {k: round(float(np.mean([r[k] for r in rows])), 4) for k in ("coverage", "precision", "iou", "chamfer")}


def bench_agent(score, agent_file, datasets, count, strokes, refine):
    agent, hyper = load_agent(agent_file)
    results = {}
    for name in datasets:
        targets = torch.from_numpy(ink_images(name, "test")[:count])
        for steps in (0, refine):
            started = time.perf_counter()
            drawings, used = [], []
            for target in targets:
                points, brush = draw(agent, hyper["recurrent"], target, strokes, refine_steps=steps)
                with torch.no_grad():
                    drawings.append(ink_union(render_alpha(points, brush, 64)).numpy())
                used.append(len(points))
            seconds = (time.perf_counter() - started) / len(targets)
            results[f"{name}_refine{steps}"] = {**mean_scores(score, targets.numpy(), drawings), "images": len(targets),
                                                "mean_strokes": round(float(np.mean(used)), 2),
                                                "seconds_per_image": round(seconds, 3)}
    return results


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=40, help="held-out images per dataset")
    parser.add_argument("--refine", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(2)
    score = judge()
    generator, meta = load_generator(SHIPPED_GENERATOR)
    points, brush, target = stroke_batch(np.random.default_rng(12345), 64, "cpu")
    with torch.no_grad():
        output = generator(points, brush)
    fidelity = {"heldout_mse": round(float(((output - target) ** 2).mean()), 5),
                **mean_scores(score, target.numpy(), output.numpy()), "strokes": 64}
    report = {
        "note": "CPU timings, 2 threads on a 2-core machine shared with other jobs (contention)",
        "generator": {**fidelity, "training": meta["training"]},
        "single_step_agent": bench_agent(score, ASSETS / "agent_digits.safetensors", ["digits"], args.count, 1,
                                         args.refine),
        "recurrent_agent_max8": bench_agent(score, ASSETS / "agent_recurrent.safetensors", ["kanji", "hershey"],
                                            args.count, 8, args.refine),
        "bar": {"digits_coverage": 0.7, "characters_coverage": 0.75, "characters_chamfer": 0.02},
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
