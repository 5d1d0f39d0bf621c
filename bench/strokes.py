"""StrokeNet benchmark: prints one JSON object.

* generator fidelity on held-out random strokes (a seed never used in training): MSE against the
  real painter, and the stroke judge's figures for the generator's image against the painter's;
* agents on held-out images they never trained on (every 5th item of each dataset), their
  strokes rendered by the REAL painter, written as PNG and scored by ../shared/eval/stroke_score.py:
  single-step agent on digits, recurrent agent (at most 8 strokes) on KanjiVG and Hershey
  characters, each as the agent alone and with the command's default inference refinement;
  inference seconds per image (CPU, timed under contention).

* line art (``--sections lines``), issue 18: the held-out KanjiVG and Hershey characters drawn at
  128 px by the painting program's pen, redrawn by the classical tracer (``core/strokes/tracer.py``:
  skeleton, graph walk, joins, simplification; no learning) and by ``paint --mode lines`` (tracer and
  agent first guesses, refined through the real painter, merged, pruned), both rendered by the real
  painter at 128 px and scored by the judge and, beside it, by this file's own numpy implementation of
  iou and chamfer (``own_iou``, ``own_chamfer``); strokes and seconds per image, whose first guess
  won, and on how many images lines mode used no more strokes than the tracer and beat its iou.

The held-out sets are those of ``core/strokes/data.py``: no test item equals a training item (the
Hershey set lost its copies of training glyphs: 43 held-out glyphs, none seen by the shipped agent).

    .venv/bin/python bench/strokes.py [--count 40] [--refine 60] [--rounds 1] [--picture PNG] [--threads 2]
                                      [--sections generator agents lines paint] [--paint-picture PNG]
                                      [--paint-budget S] [--paint-seeds 3] [--paint-names NAME ...]

``--picture`` also writes the first 6 held-out kanji and Hershey glyphs: target, the agent alone, refined.

* shaded pictures (``--sections paint``): PSNR and SSIM (skimage; ``own_psnr`` computed here) of
  ``paint --mode paint`` at 32 and 128 strokes against the tracer's strokes and random strokes fitted
  through the same painter for the same number of steps or (``--paint-budget``) the same CPU time, on
  two photos and a rendered scene at 64 px (``--paint-names``: any skimage picture, e.g. held-out ones);
  ``--paint-seeds`` runs of each, interleaved, reported as mean, min and max.
"""

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.imageio import write_image  # noqa: E402
from core.strokes.agent import draw, load_agent  # noqa: E402
from core.strokes.cli import ASSETS, REFINE, SHIPPED_GENERATOR  # noqa: E402
from core.strokes import lines as lines_mode  # noqa: E402
from core.strokes import runtime as numpy_runtime  # noqa: E402
from core.strokes import tracer  # noqa: E402
from core.strokes.data import PEN_RADIUS, character_strokes, ink_images  # noqa: E402
from core.strokes.generator import load_generator, stroke_batch  # noqa: E402
from core.strokes.painter import ink_union, render_alpha, render_polylines  # noqa: E402

BAR = {"digits_coverage": 0.7, "characters_coverage": 0.75, "characters_chamfer": 0.02}
FIGURES = ("coverage", "precision", "iou", "chamfer")


def judge():
    path = Path(__file__).resolve().parents[2] / "shared/eval/stroke_score.py"
    spec = importlib.util.spec_from_file_location("stroke_score", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def mean_scores(judge, targets, drawings):
    """The judge's figures averaged over pairs of ink maps (1 = ink), each pair read back from PNG files."""
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for target, drawing in zip(targets, drawings):
            files = []
            for name, ink in (("target.png", target), ("drawn.png", drawing)):
                write_image(Path(folder) / name, np.repeat(1 - ink[..., None], 3, -1))
                files.append(str(Path(folder) / name))
            size = target.shape[::-1]
            rows.append(judge.score(judge.ink_mask(files[0], size, "dark"), judge.ink_mask(files[1], size, "dark")))
    return {k: round(float(np.mean([r[k] for r in rows])), 4) for k in FIGURES}


def bench_agent(judge, agent_file, name, count, strokes, refine, rounds=1, shown=None):
    """Judge figures of one agent on ``count`` held-out images of ``name``; ``shown`` collects the drawings."""
    agent, hyper = load_agent(agent_file)
    targets = torch.from_numpy(ink_images(name, "test")[:count])
    results = {}
    if shown is not None:
        shown.append(targets.numpy())
    for label, steps in (("agent_only", 0), (refined_label(refine, rounds), refine)):
        drawings, used, seconds = [], [], 0.0
        for target in targets:
            started = time.perf_counter()
            points, brush = draw(agent, hyper["recurrent"], target, strokes, refine_steps=steps, rounds=rounds)
            seconds += time.perf_counter() - started
            with torch.no_grad():
                drawings.append(ink_union(render_alpha(points, brush, 64)).numpy())
            used.append(len(points))
        results[label] = {**mean_scores(judge, targets.numpy(), drawings), "images": len(targets),
                          "mean_strokes": round(float(np.mean(used)), 2),
                          "seconds_per_image": round(seconds / len(targets), 3)}
        print(name, label, json.dumps(results[label]), file=sys.stderr, flush=True)
        if shown is not None:
            shown.append(np.stack(drawings))
    return results


def own_scores(target, drawn):
    """iou and chamfer as the judge defines them, computed here independently (numpy, exact distances):
    masks at 1/2, each grown by 1 % of the size for the iou; chamfer as a fraction of the diagonal."""
    t, d = target > 0.5, drawn > 0.5
    if not t.any() or not d.any():
        return {"own_iou": 0.0, "own_chamfer": 1.0}
    r = max(1, int(round(0.01 * max(t.shape))))
    to_t, to_d = numpy_runtime.distance_to(t), numpy_runtime.distance_to(d)
    grown_t, grown_d = to_t <= r, to_d <= r
    iou = (grown_t & grown_d).sum() / (grown_t | grown_d).sum()
    chamfer = (to_d[t].mean() + to_t[d].mean()) / 2 / np.hypot(*t.shape)
    return {"own_iou": float(iou), "own_chamfer": float(chamfer)}


def bench_lines(judge, name, count, strokes, size=128):
    """The tracer and lines mode on ``count`` held-out characters of ``name`` drawn at ``size`` px."""
    agent, _ = numpy_runtime.load_agent(ASSETS / "agent_recurrent.safetensors")
    targets = [render_polylines(c, PEN_RADIUS, size) for c in character_strokes(name, "test")[:count]]
    results, per_image, chosen = {}, {}, []
    for label in ("tracer", "lines"):
        drawings, used, seconds, cpu, own = [], [], 0.0, 0.0, []
        for target in targets:
            started, cpu_started = time.perf_counter(), time.process_time()
            if label == "tracer":
                points, brush = tracer.to_strokes(tracer.trace(target), size)
            else:
                points, brush, summary = lines_mode.draw_lines(target, strokes, agent)
                chosen.append(summary["chosen"])
            seconds += time.perf_counter() - started
            cpu += time.process_time() - cpu_started
            drawn = numpy_runtime.ink_union(numpy_runtime.render_alphas(points, brush, size)) if len(points) \
                else np.zeros_like(target)
            drawings.append(drawn)
            used.append(len(points))
            own.append(own_scores(target, drawn))
        per_image[label] = (used, [judge.score(t > 0.5, d > 0.5) for t, d in zip(targets, drawings)])
        results[label] = {**mean_scores(judge, targets, drawings),
                          **{k: round(float(np.mean([o[k] for o in own])), 5) for k in own[0]},
                          "images": len(targets), "strokes_per_image": round(float(np.mean(used)), 2),
                          "seconds_per_image": round(seconds / len(targets), 4),
                          "cpu_seconds_per_image": round(cpu / len(targets), 4)}
        print(name, label, json.dumps(results[label]), file=sys.stderr, flush=True)
    (t_used, t_scores), (l_used, l_scores) = per_image["tracer"], per_image["lines"]
    results["lines_first_guess_chosen"] = {k: chosen.count(k) for k in ("tracer", "agent")}
    results["lines_images_no_more_strokes_and_better_iou_than_tracer"] = sum(
        lu <= tu and ls["iou"] > ts["iou"] for lu, tu, ls, ts in zip(l_used, t_used, l_scores, t_scores))
    results["lines_images_more_strokes_than_tracer"] = sum(lu > tu for lu, tu in zip(l_used, t_used))
    return results


def shaded_scene(size=64):
    """A rendered scene without Blender: two Lambert-shaded spheres and a shadowed floor under a sky gradient."""
    yy, xx = (np.mgrid[:size, :size] + 0.5) / size * 2 - 1
    image = np.stack([0.55 + 0.3 * (1 - yy), 0.7 + 0.2 * (1 - yy), np.full_like(yy, 0.95)], -1) * 0.9
    floor = yy > 0.2
    image[floor] = (0.45, 0.4, 0.3)
    light = np.array([-0.5, -0.6, 0.62])
    for cx, cy, r, colour in ((-0.35, 0.1, 0.4, (0.85, 0.2, 0.15)), (0.4, 0.25, 0.3, (0.2, 0.45, 0.85))):
        shadow = floor & (np.hypot((xx - cx - 0.2) / 1.6, (yy - cy - r * 0.9) * 3) < r * 0.8)
        image[shadow] *= 0.55
        d2 = (xx - cx) ** 2 + (yy - cy) ** 2
        inside = d2 < r * r
        nz = np.sqrt(np.clip(r * r - d2, 0, None)) / r
        shade = np.clip((light[0] * (xx - cx) / r + light[1] * (yy - cy) / r + light[2] * nz), 0, 1)
        image[inside] = (np.asarray(colour) * (0.15 + 0.85 * shade[..., None]))[inside]
    return np.clip(image, 0, 1).astype(np.float32)


PAINT_BENCH = ("astronaut", "coffee", "shaded_scene")
PAINT_METHODS = {"greedy": "paint_mode", "tracer": "tracer_baseline", "random": "random_baseline"}


def paint_pictures(names=PAINT_BENCH, size=64):
    """The named pictures at ``size`` px: skimage's photos by name, and ``shaded_scene``."""
    from skimage import data, transform

    def photo(name):
        image = getattr(data, name)()
        image = np.repeat(image[..., None], 3, -1) if image.ndim == 2 else image[..., :3]
        return transform.resize(image, (size, size), anti_aliasing=True).astype(np.float32)
    return {name: shaded_scene(size) if name == "shaded_scene" else photo(name) for name in names}


def spread(values, digits):
    return {"mean": round(float(np.mean(values)), digits), "min": round(float(np.min(values)), digits),
            "max": round(float(np.max(values)), digits)}


def bench_paint(counts, steps, picture_path=None, budget=None, seeds=1, names=PAINT_BENCH):
    """PSNR and SSIM of paint mode against the tracer's strokes and random strokes, all fitted through the real
    painter for the same number of steps or, with ``budget`` (CPU seconds per 32 strokes), the same CPU time
    (steps then only a cap); ``seeds`` runs of each, interleaved seed by seed and method by method so that the
    shared machine's load falls on every method alike; mean, min and max over the seeds."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity
    from core.strokes import paint as painterly
    results, shown = {}, []
    for name, picture in paint_pictures(names).items():
        row = [picture]
        for count in counts:
            runs = {kind: [] for kind in PAINT_METHODS}
            for seed in range(seeds):
                for kind in PAINT_METHODS:
                    cpu = time.process_time()
                    points, brush, colours = painterly.paint(picture, count, steps, kind, seed=seed,
                                                             budget=None if budget is None else budget * count / 32)
                    cpu = time.process_time() - cpu
                    drawn = numpy_runtime.render(points, brush, picture.shape[0], colours)
                    runs[kind].append({
                        "psnr": float(peak_signal_noise_ratio(picture, drawn, data_range=1)),
                        "own_psnr": float(10 * np.log10(1 / float(((drawn - picture) ** 2).mean()))),
                        "ssim": float(structural_similarity(picture, drawn, channel_axis=-1, data_range=1)),
                        "cpu_seconds": cpu})
                    print(name, count, seed, kind, json.dumps(runs[kind][-1]), file=sys.stderr, flush=True)
                    if kind == "greedy" and seed == 0:
                        row.append(drawn)
            case = {PAINT_METHODS[kind]: {"psnr": spread([r["psnr"] for r in rows], 2),
                                          "own_psnr_mean": round(float(np.mean([r["own_psnr"] for r in rows])), 2),
                                          "ssim": spread([r["ssim"] for r in rows], 3),
                                          "cpu_seconds_mean": round(float(np.mean([r["cpu_seconds"] for r in rows])), 2)}
                    for kind, rows in runs.items()}
            paint_mode = case["paint_mode"]
            baselines = [case[label] for label in PAINT_METHODS.values() if label != "paint_mode"]
            case["paint_mode_mean_beats_both"] = all(
                paint_mode[f]["mean"] > b[f]["mean"] for b in baselines for f in ("psnr", "ssim"))
            case["paint_mode_worst_beats_best_of_both"] = all(
                paint_mode[f]["min"] > b[f]["max"] for b in baselines for f in ("psnr", "ssim"))
            results[f"{name}_{count}"] = case
        shown.append(np.concatenate([np.pad(im, ((2, 2), (2, 2), (0, 0)), constant_values=1) for im in row], 1))
    if picture_path:
        write_image(picture_path, np.concatenate(shown, 0).repeat(3, 0).repeat(3, 1))
    return results


def refined_label(refine, rounds):
    return f"refined_{refine}" + (f"_rounds_{rounds}" if rounds > 1 else "")


def write_picture(path, shown, rows=6):
    """(target, agent alone, refined) for the first ``rows`` held-out images, datasets side by side."""
    gap = np.ones((64, 4))
    columns = []
    for target, alone, refined in zip(shown[0::3], shown[1::3], shown[2::3]):
        triples = zip(target[:rows], alone[:rows], refined[:rows])
        columns.append(np.concatenate([np.concatenate([1 - t, gap, 1 - a, gap, 1 - r], 1) for t, a, r in triples], 0))
    picture = np.concatenate([columns[0], np.full((columns[0].shape[0], 16), 0.8), *columns[1:]], 1)
    write_image(path, np.repeat(picture.repeat(2, 0).repeat(2, 1)[..., None], 3, -1))   # 2x, pixels kept sharp


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=40, help="held-out images per dataset")
    parser.add_argument("--refine", type=int, default=REFINE, help="refinement steps (default: the paint command's)")
    parser.add_argument("--picture", help="PNG of held-out characters: target, agent alone, refined")
    parser.add_argument("--rounds", type=int, default=1, help="refinement rounds of the recurrent agent")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (1 is faster on a busy machine)")
    parser.add_argument("--sections", nargs="+", default=["generator", "agents", "lines", "paint"],
                        choices=["generator", "agents", "lines", "paint"])
    parser.add_argument("--paint-steps", type=int, default=30, help="paint mode: fitting steps of every method")
    parser.add_argument("--paint-picture", help="PNG: each picture, then paint mode at 32 and 128 strokes")
    parser.add_argument("--paint-budget", type=float,
                        help="paint: CPU seconds per 32 strokes for every method (the same time budget); "
                             "--paint-steps is then a cap")
    parser.add_argument("--paint-seeds", type=int, default=3, help="paint: runs of every method and case (seeds)")
    parser.add_argument("--paint-names", nargs="+", default=list(PAINT_BENCH),
                        help="paint: skimage.data pictures by name, or shaded_scene (e.g. chelsea rocket held out)")
    parser.add_argument("--strokes", type=int, default=8, help="lines mode: at most this many strokes")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    score = judge()
    result = {"load_average_start": [round(v, 2) for v in os.getloadavg()]}
    if "lines" in args.sections:
        result["line_art_128px"] = {
            "note": "held-out characters drawn at 128 px with the data's pen; tracer = skeleton, graph walk, joins, "
                    "RDP (no learning); lines = paint --mode lines (tracer + agent first guesses, refined through "
                    "the real painter, merged, pruned; numpy); both rendered by the real painter at 128 px; "
                    "seconds: wall clock on a 2-core machine shared with other jobs (see load_average); cpu_seconds: "
                    "this process's CPU time (all its threads), which leaves out the time other jobs held the cores",
            **{name: bench_lines(score, name, args.count, args.strokes) for name in ("kanji", "hershey")}}
    if "paint" in args.sections:
        result["painterly_64px"] = {
            "note": "64 px pictures (skimage's astronaut and coffee photos, a numpy-rendered shaded scene); paint mode "
                    "= coarse-to-fine greedy placement led by the tracer's strokes; baselines: the tracer's strokes "
                    "(padded with random ones) and random strokes, all fitted the same steps through the real painter",
            "budget_cpu_seconds_per_32_strokes": args.paint_budget,
            "seeds": args.paint_seeds,
            **bench_paint((32, 128), args.paint_steps, args.paint_picture, args.paint_budget, args.paint_seeds,
                          args.paint_names)}
    if set(args.sections) <= {"lines", "paint"}:
        result["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
        print(json.dumps(result))
        return
    generator, meta = load_generator(SHIPPED_GENERATOR)
    points, brush, target = stroke_batch(np.random.default_rng(12345), 64, "cpu")
    with torch.no_grad():
        output = generator(points, brush)
    fidelity = {"heldout_mse": round(float(((output - target) ** 2).mean()), 5),
                **mean_scores(score, target.numpy(), output.numpy()), "strokes": 64}
    single = bench_agent(score, ASSETS / "agent_digits.safetensors", "digits", args.count, 1, args.refine)
    shown = [] if args.picture else None
    recurrent = {name: bench_agent(score, ASSETS / "agent_recurrent.safetensors", name, args.count, 8, args.refine,
                                   args.rounds, shown) for name in ("kanji", "hershey")}
    if shown:
        write_picture(args.picture, shown)

    def bar_met(single_label, recurrent_label):
        characters = [recurrent[name][recurrent_label] for name in ("kanji", "hershey")]
        return {"digits_coverage": single[single_label]["coverage"] >= BAR["digits_coverage"],
                "characters_coverage": all(r["coverage"] >= BAR["characters_coverage"] for r in characters),
                "characters_chamfer": all(r["chamfer"] <= BAR["characters_chamfer"] for r in characters)}
    print(json.dumps({
        **result, "load_average_end": [round(v, 2) for v in os.getloadavg()],
        "note": f"CPU, {args.threads} torch thread(s) on a 2-core machine shared with other jobs (timings under "
                "contention); strokes rendered by the real painter at 64 px and scored by shared/eval/stroke_score.py",
        "generator": {**fidelity, "training": meta["training"]},
        "single_step_agent_digits": single,
        "recurrent_agent_max8": recurrent,
        "bar": BAR, "bar_met_agent_alone": bar_met("agent_only", "agent_only"),
        "bar_met_with_refinement": bar_met(f"refined_{args.refine}", refined_label(args.refine, args.rounds)),
    }))


if __name__ == "__main__":
    main()
