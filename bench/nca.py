"""μNCA benchmark: training speed, runtime speeds and texture quality; prints one JSON object.

    python bench/nca.py                      # speed + quality of the shipped presets (minutes)
    python bench/nca.py --train              # + the issue's quality bar: 68 params x 10 min on the
                                             #   pattern exemplars, 588 params x 30 min on the whole
                                             #   benchmark set (hours)
    python bench/nca.py --train --minutes68 1 --minutes588 2    # a shorter version of the same
    python bench/nca.py --skip-speed --skip-runtimes --picture docs/images/nca_presets.png
    python bench/nca.py --set --only grid,polka --params 68 --minutes 2 --threads 1 \\
        --sheet docs/images/nca_set.png [--option pyramid=5 --option palette_weight=10]
                                             # issue 22's benchmark set (bench/textures): train,
                                             #   judge, structure and palette figures, contact sheet
    python bench/nca.py --calibrate --skip-speed --skip-runtimes --skip-presets
                                             # what the judge gives real photos: one crop
                                             #   against another crop of the same photo

Quality is the judge's ``normalized`` figure (../shared/eval/texture_score.py, lower is
better) of a 256x256 render from a fresh seed after 1000 steps; also the int8 model's and the
2000-step render's figures.  Timings depend on the machine's load: say so when quoting them.
"""

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.nca import codegen, files  # noqa: E402
from core.nca.exemplars import KIND, PHOTO_CROP, PHOTOS, PRESETS, exemplar_paths, photo_crop  # noqa: E402
from core.nca.render import run_states  # noqa: E402
from core.nca.quantize import to_binary  # noqa: E402
from core.nca.runtime import Runtime, to_rgb  # noqa: E402
from core.nca.rule import perception_kernels, seed_state  # noqa: E402

JUDGE = Path(__file__).resolve().parents[2] / "shared/eval/texture_score.py"


def judge_figures(synth, exemplar):
    """The shared judge's JSON ({"normalized", "stats", ...}) for a synthesised RGB array against an
    exemplar file, or None without the judge.  The judge runs as an external script (it is never
    imported, so nothing of it can leak into the project)."""
    if not JUDGE.exists():
        return None
    from core.imageio import write_image
    with tempfile.TemporaryDirectory() as folder:
        path = write_image(Path(folder) / "synth.png", np.clip(synth, 0, 1).astype(np.float32))
        result = subprocess.run([sys.executable, str(JUDGE), str(path), str(exemplar)], capture_output=True,
                                text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def judge():
    if not JUDGE.exists():
        return None
    return lambda synth, exemplar: judge_figures(synth, exemplar)["normalized"]


def autocorrelation(image, reach=32):
    """Normalised circular autocorrelation of an image's luminance (mean removed, 1 at offset 0),
    the (2·reach+1)² window of offsets around 0."""
    grey = np.asarray(image, np.float64)[..., :3].mean(2)
    grey = grey - grey.mean()
    power = np.abs(np.fft.fft2(grey)) ** 2
    ac = np.fft.fftshift(np.fft.ifft2(power).real)
    ac /= max(ac[grey.shape[0] // 2, grey.shape[1] // 2], 1e-12)
    cy, cx = grey.shape[0] // 2, grey.shape[1] // 2
    return ac[cy - reach:cy + reach + 1, cx - reach:cx + reach + 1]


def structure_distance(synth, exemplar, reach=32):
    """Our own structure figure, independent of the judge: the distance between the
    autocorrelations of synthesis and exemplar (offsets up to ``reach`` cells: a lattice's period and
    angles, a band's orientation and spacing, the size of blobs), over that between white noise's
    and the exemplar's.  0 = the same arrangement, about 1 = no more structure than noise, above 1 =
    a wrong arrangement (wrong period or angle, or blur).  Blind to colour (see palette_kept)."""
    a, e = autocorrelation(synth, reach), autocorrelation(exemplar, reach)
    noise = np.zeros_like(e)
    noise[reach, reach] = 1.0
    return float(np.linalg.norm(a - e) / max(np.linalg.norm(noise - e), 1e-9))


def palette(image, share=0.02, merge=0.15, levels=16):
    """The exemplar's palette, deterministic: its pixels' RGB histogram (``levels`` bins a
    channel); bins taken from the fullest down, each joining the first colour within ``merge``
    (RGB distance) or starting a new one; colours with under ``share`` of the pixels dropped
    -> (k, 3) colours (pixel means) and their shares."""
    pixels = np.asarray(image, np.float64)[..., :3].reshape(-1, 3)
    bins = np.clip((pixels * levels).astype(int), 0, levels - 1) @ np.array([levels * levels, levels, 1])
    counts = np.bincount(bins, minlength=levels ** 3)
    sums = np.stack([np.bincount(bins, pixels[:, c], minlength=levels ** 3) for c in range(3)], 1)
    colours, totals, weights = [], [], []
    for k in np.argsort(-counts):
        if not counts[k]:
            break
        mean = sums[k] / counts[k]
        near = [i for i, c in enumerate(colours) if np.linalg.norm(c - mean) < merge]
        if near:
            i = near[0]
            weights[i] = weights[i] + sums[k]
            totals[i] += counts[k]
        else:
            colours.append(mean)
            weights.append(sums[k].copy())
            totals.append(counts[k])
    shares = np.array(totals) / len(pixels)
    keep = shares >= share
    return (np.array(weights)[keep] / np.array(totals)[keep][:, None]), shares[keep]


def palette_kept(synth, exemplar, near=0.15):
    """(colours of the exemplar's palette that the synthesis keeps, palette size): a colour is kept
    when at least a quarter of its exemplar share (and 0.5 % of all pixels) of synthesised pixels lie
    within ``near`` (RGB distance) of it and nearer to it than to any other palette colour."""
    colours, shares = palette(exemplar)
    pixels = np.asarray(synth, np.float64)[..., :3].reshape(-1, 3)
    d = np.sqrt(((pixels[:, None] - colours[None]) ** 2).sum(-1))
    nearest = d.argmin(1)
    close = d[np.arange(len(pixels)), nearest] < near
    found = np.bincount(nearest[close], minlength=len(colours)) / len(pixels)
    return int((found >= np.maximum(shares / 4, 0.005)).sum()), len(colours)


def grown(model, quantized=False):
    """The 256x256 states 1000 and 2000 steps after the seed of ``run_states`` (seed 0): with the
    C training kernels where they compile (the same rule as the numpy runtime, which the tests
    check; 50x faster), else with numpy."""
    import torch
    from core.nca import fast
    if not fast.available(model.channels, torch.device("cpu")):
        return run_states(model, 256, 1000, quantized, frames=1, frame_steps=1000)
    w, b = (torch.from_numpy(a)[None] for a in model.weights(quantized))
    s = torch.from_numpy(seed_state(np.random.default_rng(0), 1, model.channels, 256, 256))[None]
    with torch.no_grad():
        s1000 = fast.run(s, w, b, 1000)
        return [s1000[0, 0].numpy(), fast.run(s1000, w, b, 1000)[0, 0].numpy()]


def quality(model, exemplar, score):
    """Judge figures: float and int8 at 1000 steps, float at 2000 steps (256x256, fresh seed)."""
    s1000, s2000 = grown(model)
    q1000 = grown(model, quantized=True)[0]
    return {"float_1000": score(to_rgb(s1000), exemplar), "int8_1000": score(to_rgb(q1000), exemplar),
            "float_2000": score(to_rgb(s2000), exemplar)}


def training_speed(params, iterations=5, steps=64, device="cpu"):
    """Seconds per iteration (batch 4, 128x128, the same loss value; ``steps``-step rollouts,
    scaled to the mean rollout of 32-127 steps) of the reference loop and of the training loop:

    reference: torch's pad / depthwise conv / concatenate / 1x1 conv step, and the loss computed
               by convolution and torch.sort (SlicedWasserstein.by_convolution);
    fast:      what training runs: the C kernels (or the compiled torch step where no C compiler
               works, and on a GPU) and the gathered, radix-sorted loss (torch.sort on a GPU).

    The two loops take turns, an iteration each, and the speed-up is the median of the ratios
    of neighbouring iterations: this machine's speed drifts by up to 1.6x within a minute, so
    timing one loop after the other measured the drift as much as the code.  Each loop's time
    is its fastest iteration, split into forward rollout, loss (forward and backward) and
    backward through time."""
    import torch
    from core.nca import fast
    from core.nca.model import reference_step, step
    from core.nca.train import SlicedWasserstein, overflow_loss
    channels, device = {68: 4, 588: 12}[params], torch.device(device)
    loss_fn = SlicedWasserstein(torch.rand(1, 3, 128, 128, device=device))
    kernels = torch.from_numpy(perception_kernels(channels)).to(device)
    w = (torch.randn(1, channels, 4 * channels, device=device) * 0.01).requires_grad_()
    b = torch.zeros(1, channels, device=device, requires_grad=True)
    c_kernels = fast.available(channels, device)
    compiled = None if c_kernels else torch.compile(step, dynamic=False)

    def reference(x):
        x = x[0]
        for _ in range(steps):
            x = reference_step(x, kernels, w[0], b[0])
        return x[None]

    def fused(x):
        if c_kernels:
            return fast.rollout(x, w, b, steps)
        for _ in range(steps):
            x = compiled(x, kernels, w, b)
        return x

    def iteration(i, rollout, loss):
        """(rollout, loss, backward through time) x (wall-clock, CPU seconds) of one iteration"""
        x = torch.from_numpy(seed_state(np.random.default_rng(i), 4, channels, 128, 128))[None].to(device)

        def clock():
            if device.type == "cuda":
                torch.cuda.synchronize()
            return time.perf_counter(), time.process_time()

        clocks = [clock()]
        x = rollout(x)
        clocks.append(clock())
        final = x.detach().requires_grad_()
        (loss(final[:, :, :3] + 0.5) + overflow_loss(final)).sum().backward()
        clocks.append(clock())
        x.backward(final.grad)  # the same backward pass as one .backward() through both
        clocks.append(clock())
        return np.diff(np.array(clocks), axis=0).T * [[scale, 1, scale]]

    scale = (32 + 127) / 2 / steps
    loops = {"reference": (reference, loss_fn.by_convolution), "fast": (fused, loss_fn)}
    runs = {name: [] for name in loops}
    for i in range(iterations + 1):  # the first iteration compiles and is not counted
        for name in (list(loops) if i % 2 else list(loops)[::-1]):
            runs[name].append(iteration(i, *loops[name]))
    result = {"kernel": "C" if c_kernels else "torch.compile", "device": str(device),
              "threads": torch.get_num_threads(), "split": {}}
    for name, timings in runs.items():
        wall = min(timings[1:], key=lambda r: r[0].sum())
        result[name] = round(wall[0].sum(), 4)
        result[name + "_cpu"] = round(min(r[1].sum() for r in timings[1:]), 4)  # CPU seconds (1 thread, idle)
        result["split"][name] = dict(zip(("rollout", "loss", "backward_through_time"), np.round(wall[0], 4).tolist()))
    ratios = {clock: [r[clock].sum() / f[clock].sum() for r, f in zip(runs["reference"][1:], runs["fast"][1:])]
              for clock in (0, 1)}
    result["speedup"] = round(float(np.median(ratios[0])), 2)
    result["speedup_range"] = [round(min(ratios[0]), 2), round(max(ratios[0]), 2)]
    result["speedup_cpu"] = round(float(np.median(ratios[1])), 2)
    return result


def runtime_speeds(model, sizes=(256, 1024)):
    """Steps a second of the numpy, torch, C and GLSL runtimes."""
    w, b = model.weights(quantized=True)
    out = {}
    for size in sizes:
        state = seed_state(np.random.default_rng(0), 1, model.channels, size, size)[0]
        figures = {}
        steps = 20 if size <= 256 else 4
        runtime = Runtime(w, b)
        started = time.perf_counter()
        runtime.run(state, steps)
        figures["numpy"] = steps / (time.perf_counter() - started)
        started = time.perf_counter()
        run_states(model, size, steps, quantized=True, runtime="torch")
        figures["torch"] = steps / (time.perf_counter() - started)
        figures["c"] = _c_speed(model, size, steps)
        figures["glsl"] = _glsl_speed(model, state, 200 if size <= 256 else 50)
        out[str(size)] = {k: (round(v, 1) if v else None) for k, v in figures.items()}
    return out


def _c_speed(model, size, steps):
    compiler = shutil.which("cc")
    if not compiler:
        return None
    with tempfile.TemporaryDirectory() as folder:
        source, binary = Path(folder) / "nca.c", Path(folder) / "nca"
        source.write_text(codegen.generate(model, "c")[""])
        subprocess.run([compiler, "-O3", "-march=native", "-o", binary, source, "-lm"], check=True)
        started = time.perf_counter()
        subprocess.run([binary, str(size), str(size), str(steps), str(Path(folder) / "o.f32")], check=True)
        return steps / (time.perf_counter() - started)


def _glsl_speed(model, state, steps):
    try:
        import moderngl
        ctx = moderngl.create_standalone_context(backend="egl")
    except Exception:
        return None
    from core.nca.render import state_tile
    tile = state_tile(state)
    height, width = tile.shape[:2]
    program = ctx.program(vertex_shader="#version 330\nin vec2 pos; void main() { gl_Position = vec4(pos, 0, 1); }",
                          fragment_shader=codegen.generate(model, "glsl")[""])
    vao = ctx.simple_vertex_array(program, ctx.buffer(np.array([-1, -1, 1, -1, -1, 1, 1, 1], "f4").tobytes()), "pos")
    textures = [ctx.texture((width, height), 4, tile.tobytes(), dtype="f4"), ctx.texture((width, height), 4, dtype="f4")]
    framebuffers = [ctx.framebuffer([t]) for t in textures]
    ctx.finish()
    started = time.perf_counter()
    for k in range(steps):
        textures[k % 2].use(0)
        framebuffers[(k + 1) % 2].use()
        vao.render(moderngl.TRIANGLE_STRIP)
    ctx.finish()
    return steps / (time.perf_counter() - started)


def another_crop(score):
    """The judge's figure for each photo exemplar's source photograph, one quarter of it (scaled
    like the exemplar) scored against another quarter: what a perfect synthesis that copies
    nothing can expect.  Returns {photo: [min, median, max]} over the 12 ordered pairs."""
    from core.imageio import write_image
    report = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, (photo, _, _) in PHOTOS.items():
            quarters = [photo_crop(photo, top, left) for top in (0, PHOTO_CROP) for left in (0, PHOTO_CROP)]
            paths = [Path(folder) / f"{name}{k}.png" for k in range(4)]
            for path, quarter in zip(paths, quarters):
                write_image(path, quarter)
            figures = [score(quarters[i], paths[j]) for i, j in itertools.permutations(range(4), 2)]
            report[name] = [round(float(f), 3) for f in (min(figures), np.median(figures), max(figures))]
    return report


def write_picture(path):
    """The presets' exemplars above 128x128 crops of their 1000-step renders (one cell a pixel: the
    same scale), each column labelled with the preset's name and parameter count."""
    import cv2
    from core.imageio import read_image, write_image
    columns = []
    for preset in sorted(PRESETS.glob("*.safetensors")):
        model = files.load(preset)
        exemplar = read_image(exemplar_paths()[preset.stem], channels=3)[:128, :128]
        texture = to_rgb(grown(model)[0])[:128, :128]
        label = np.ones((16, 128, 3), np.float32)
        cv2.putText(label, f"{preset.stem} ({model.params})", (2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1,
                    cv2.LINE_AA)
        columns.append(np.concatenate([label, exemplar, np.ones((4, 128, 3), np.float32), texture], 0))
    gap = np.ones((columns[0].shape[0], 4, 3), np.float32)
    write_image(path, np.clip(np.concatenate([c for column in columns for c in (column, gap)][:-1], 1), 0, 1))


SET = ROOT / "bench" / "textures"


def set_figures(model, exemplar):
    """Figures for one trained model on the benchmark set: the judge's normalized and stats (when
    the judge exists), our structure figure, palette kept, for the float 1000-step render (256x256
    from seed 0); normalized and structure also for the int8 render and at 2000 steps."""
    from core.imageio import read_image
    s1000, s2000 = grown(model)
    q1000 = grown(model, quantized=True)[0]
    example = read_image(exemplar, channels=3)
    texture = to_rgb(s1000)
    kept, colours = palette_kept(texture, example)
    figures = {"structure": round(structure_distance(texture, example), 3),
               "structure_int8": round(structure_distance(to_rgb(q1000), example), 3),
               "structure_2000": round(structure_distance(to_rgb(s2000), example), 3),
               "palette_kept": kept, "palette_colours": colours}
    judged = judge_figures(texture, exemplar)
    if judged:
        figures["normalized"] = round(judged["normalized"], 3)
        figures["stats"] = round(judged["stats"], 3)
        figures["normalized_int8"] = round(judge_figures(to_rgb(q1000), exemplar)["normalized"], 3)
        figures["normalized_2000"] = round(judge_figures(to_rgb(s2000), exemplar)["normalized"], 3)
    return figures, texture


def contact_sheet(path, rows):
    """rows: [(kind, [(name, exemplar 128², texture 256², caption)])] -> one PNG: per kind a row of
    cells, each the exemplar (left, at the top) beside its 256x256 texture at the same scale, with the
    name and figures under the exemplar."""
    import cv2
    from core.imageio import write_image
    cells_per_row = max(len(cells) for _, cells in rows)
    cell_w, cell_h, gap = 128 + 4 + 256, 256, 8
    sheet = np.ones((len(rows) * (cell_h + gap + 14) + gap, cells_per_row * (cell_w + gap) + gap, 3), np.float32)
    for r, (kind, cells) in enumerate(rows):
        top = gap + r * (cell_h + gap + 14)
        cv2.putText(sheet, kind, (gap, top + 10), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        top += 14
        for c, (name, exemplar, texture, caption) in enumerate(cells):
            left = gap + c * (cell_w + gap)
            sheet[top:top + 128, left:left + 128] = exemplar[:128, :128]
            sheet[top:top + 256, left + 132:left + 388] = np.clip(texture[:256, :256], 0, 1)
            for k, line in enumerate([name] + caption):
                cv2.putText(sheet, line, (left + 2, top + 142 + 14 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (0, 0, 0), 1,
                            cv2.LINE_AA)
    write_image(path, sheet)


def train_set(args):
    """Train on the benchmark set (or the ``--only`` names), ``--params`` and ``--minutes`` each, one
    exemplar after another (or side by side with ``--together``), with the training options of
    ``--option key=value``; figures per exemplar and per kind, and a contact sheet."""
    from core.imageio import read_image
    from core.nca.train import train_many
    kinds = json.loads((SET / "kinds.json").read_text())
    names = args.only.split(",") if args.only else list(kinds)
    options = {}
    for option in args.option or []:
        key, value = option.split("=", 1)
        options[key] = json.loads(value)
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        keep = Path(args.keep_models or folder)
        keep.mkdir(parents=True, exist_ok=True)
        groups = [names] if args.together else [[n] for n in names]
        for group in groups:
            if args.models:  # score models trained before (named after their exemplars)
                models = [files.load(Path(args.models) / f"{n}.safetensors") for n in group]
                summaries = [{"iterations": m.meta["training"]["iterations"],
                              "seconds_per_iteration": round(m.meta["training"]["seconds"]
                                                             / max(m.meta["training"]["iterations"], 1), 4)}
                             for m in models]
            else:
                summaries, models = train_many([SET / f"{n}.png" for n in group],
                                               [keep / f"{n}.safetensors" for n in group],
                                               params=args.params, minutes=args.minutes, seed=args.seed, **options)
            for name, summary, model in zip(group, summaries, models):
                figures, texture = set_figures(model, SET / f"{name}.png")
                results[name] = {"kind": kinds[name], "params": model.params, "iterations": summary["iterations"],
                                 "seconds_per_iteration": summary["seconds_per_iteration"], **figures,
                                 "_texture": texture}
    if args.sheet:
        rows = []
        for kind in dict.fromkeys(kinds[n] for n in names):
            cells = []
            for name in (n for n in names if kinds[n] == kind):
                r = results[name]
                caption = [f"judge {r['normalized']:.2f}" if "normalized" in r else "no judge",
                           f"structure {r['structure']:.2f}", f"palette {r['palette_kept']}/{r['palette_colours']}",
                           f"{r['params']} par., {r['iterations']} it."]
                cells.append((name, read_image(SET / f"{name}.png", channels=3), r["_texture"], caption))
            rows.append((kind, cells))
        contact_sheet(args.sheet, rows)
    for r in results.values():
        del r["_texture"]
    by_kind = {}
    for name, r in results.items():
        by_kind.setdefault(r["kind"], []).append(r)
    summary = {kind: {key: round(float(np.mean([r[key] for r in rs])), 3)
                      for key in ("normalized", "stats", "structure", "seconds_per_iteration") if key in rs[0]}
               for kind, rs in by_kind.items()}
    return {"params": args.params, "minutes": None if args.models else args.minutes, "models": args.models,
            "seed": args.seed, "together": args.together,
            "options": options, "sheet": args.sheet, "exemplars": results, "by_kind": summary}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", action="store_true", help="train the quality-bar models (long)")
    parser.add_argument("--minutes68", type=float, default=10.0)
    parser.add_argument("--minutes588", type=float, default=30.0)
    parser.add_argument("--calibrate", action="store_true", help="score crops of the photos against each other")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-presets", action="store_true")
    parser.add_argument("--skip-runtimes", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="where training speed is measured: cpu or cuda")
    parser.add_argument("--picture", help="PNG: the exemplars (top) and the shipped presets after 1000 steps (bottom)")
    parser.add_argument("--set", action="store_true",
                        help="train on the benchmark set of bench/textures and report it (nothing else)")
    parser.add_argument("--only", help="--set: comma-separated exemplar names (default: all 17)")
    parser.add_argument("--params", type=int, default=68, help="--set: model size")
    parser.add_argument("--minutes", type=float, default=2.0, help="--set: training minutes per exemplar")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--together", action="store_true", help="--set: train the exemplars side by side")
    parser.add_argument("--option", action="append", help="--set: a train_many option, key=JSON value")
    parser.add_argument("--sheet", help="--set: contact sheet PNG (exemplar beside result)")
    parser.add_argument("--keep-models", help="--set: folder to keep the trained models in (NAME.safetensors)")
    parser.add_argument("--models", help="--set: score the models in this folder instead of training")
    args = parser.parse_args()
    import torch
    torch.set_num_threads(args.threads)
    if args.set:
        report = {"threads": args.threads, "cpus": os.cpu_count(), "load_average_at_start": round(os.getloadavg()[0], 2),
                  **train_set(args)}
        report["load_average_at_end"] = round(os.getloadavg()[0], 2)
        print(json.dumps(report))
        return
    score = judge()
    report = {"threads": args.threads, "cpus": os.cpu_count(),
              "load_average_at_start": round(os.getloadavg()[0], 2)}  # timings suffer on a busy machine
    if not args.skip_speed:
        report["training_seconds_per_iteration"] = {str(p): training_speed(p, device=args.device) for p in (68, 588)}
        report["training_iterations_per_second"] = {
            p: round(1 / v["fast"], 3) for p, v in report["training_seconds_per_iteration"].items()}
    if not args.skip_runtimes:
        smallest = next(m for m in map(files.load, sorted(PRESETS.glob("*.safetensors"))) if m.params == 68)
        report["runtime_steps_per_second_68"] = runtime_speeds(smallest)
    if score and not args.skip_presets:
        report["presets"] = {}
        for path in sorted(PRESETS.glob("*.safetensors")):
            model = files.load(path)
            report["presets"][path.stem] = {"params": model.params, "bytes_compact": len(to_binary(model.quantized)),
                                            **quality(model, exemplar_paths()[path.stem], score)}
    if args.calibrate and score:
        report["another_crop_of_the_photo"] = another_crop(score)
    if args.picture:
        write_picture(args.picture)
    if args.train and score:
        from core.nca.train import train
        bar = {}
        with tempfile.TemporaryDirectory() as folder:
            for params, minutes, kinds in ((68, args.minutes68, ("pattern",)), (588, args.minutes588, ("pattern", "irregular", "photo"))):
                for name, exemplar in exemplar_paths(kinds).items():
                    summary, model = train(exemplar, Path(folder) / f"{name}_{params}.safetensors",
                                           params=params, minutes=minutes)
                    bar[f"{name}_{params}"] = {"kind": KIND[name], "minutes": minutes, "iterations": summary["iterations"],
                                               **quality(model, exemplar, score)}
        report["quality_bar"] = bar
    print(json.dumps(report))


if __name__ == "__main__":
    main()
