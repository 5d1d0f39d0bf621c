"""Benchmark: keyframe video stylisation on a Blender-rendered sequence; prints one JSON object.

    .venv/bin/python bench/stylize.py [--minutes 5] [--other-minutes M | --steps N] [--live]
                                      [--painters stylization,paper,pencil,edge]
                                      [--variants motion,flow,motion_first_last,published] [--fps]
                                      [--training-speed]

1. Renders (once, cached in out/bench/stylize_scene) a 24-frame 256x256 Cycles animation with a
   moving camera and objects, plus Blender's Vector pass and a "paper" AOV, a noise texture
   fixed to the surfaces (bench/stylize_data/render.py).
2. Ground truth: deterministic stand-in painters applied to every frame (OpenCV ``stylization``,
   ``pencilSketch`` colour output, ``edgePreservingFilter``) and ``paper``: ``stylization`` on the
   surface-attached paper texture, the one painting that is not a function of its frame alone.
3. Trains on frame 0 (and on frames 0 + last) through the ``atelier`` CLI, stylises every frame,
   scores with ../shared/eval/video_score.py (keyframes skipped): identity, static keyframe copy,
   motion-vector guides, optical-flow guides (the same model), the paper's published network.
4. ``guide_drift``: how far the temporal guide slides on the surfaces with each motion source.
5. Seconds per training patch (the headline: the configurations train batches of different
   sizes) and per step of both configurations, and inference frames per second at 256², 640² and
   1920x1080 (network only, random weights of the same shape).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "out" / "bench"
SCENE = OUT / "stylize_scene"
JUDGE = ROOT.parent / "shared" / "eval" / "video_score.py"

os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")  # before the first cv2 import
import cv2  # noqa: E402
from core.stylize.exr import read_exr_channels  # noqa: E402

PAINTERS = {  # BGR 8-bit frame (and its paper texture) -> painting
    "stylization": lambda f, _: cv2.stylization(f, sigma_s=60, sigma_r=0.45),
    "pencil": lambda f, _: cv2.pencilSketch(f, sigma_s=60, sigma_r=0.07, shade_factor=0.05)[1],
    "edge": lambda f, _: cv2.edgePreservingFilter(f, flags=1, sigma_s=60, sigma_r=0.4),
    # stylization on a paper texture that sticks to the surfaces (render.py's AOV; 0 on the sky):
    # unlike the per-frame painters, frame t's painting is not a function of frame t's colours
    "paper": lambda f, paper: np.clip(cv2.stylization(f, sigma_s=60, sigma_r=0.45)
                                      * (1 + 1.5 * np.where(paper > 0, paper - 0.45, 0))[..., None], 0, 255),
}


def paper_texture(path):
    return read_exr_channels(path, ["ViewLayer.paper.X"])["ViewLayer.paper.X"]


def render():
    motion = sorted((SCENE / "motion").glob("*.exr"))
    if len(motion) < 24 or "ViewLayer.paper.X" not in read_exr_channels(motion[0]):
        shutil.rmtree(SCENE, ignore_errors=True)
        shutil.rmtree(OUT / "stylize_gt", ignore_errors=True)
        subprocess.run([sys.executable, str(ROOT / "bench" / "stylize_data" / "render.py"), str(SCENE)], check=True,
                       stdout=subprocess.DEVNULL)
    return sorted((SCENE / "frames").glob("*.png"))


def ground_truth(painter, frames):
    folder = OUT / "stylize_gt" / painter
    if len(list(folder.glob("*.png"))) != len(frames):
        folder.mkdir(parents=True, exist_ok=True)
        for path in frames:
            paper = paper_texture(SCENE / "motion" / f"{path.stem}.exr")
            cv2.imwrite(str(folder / path.name), PAINTERS[painter](cv2.imread(str(path)), paper).astype(np.uint8))
    return folder


def score(pred, gt, skip):
    if not JUDGE.exists():
        return {"skipped": f"{JUDGE} not found"}
    out = subprocess.run([sys.executable, str(JUDGE), "--input", str(SCENE / "frames"), "--pred", str(pred),
                          "--gt", str(gt), "--skip", ",".join(map(str, skip))],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def atelier(*argv):
    out = subprocess.run([sys.executable, "-m", "core.cli", *map(str, argv)], cwd=ROOT, capture_output=True,
                         text=True, env=dict(os.environ, ATELIER_DEVICE="cpu"))
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


VARIANTS = {  # name -> (keyframes, extra train words, extra run words)
    "motion": ([0], ["--motion", SCENE / "motion"], ["--motion", SCENE / "motion"]),
    "flow": ([0], [], []),
    "motion_prefilter": ([0], ["--motion", SCENE / "motion", "--prefilter"], ["--motion", SCENE / "motion"]),
    "motion_first_last": ([0, -1], ["--motion", SCENE / "motion"], ["--motion", SCENE / "motion"]),
    "published": ([0], ["--motion", SCENE / "motion", "--config", "published"], ["--motion", SCENE / "motion"]),
}


def run_variant(painter, name, frames, gt, budget, trained):
    """Train (or reuse ``trained[keyframes]``) and stylise every frame, then score.

    ``motion`` and ``flow`` share one model: they train on frame 0 alone, whose network inputs do
    not depend on the motion source (the guide is painted on it), so a training run of either
    gives the same network for the same steps; only the guides of the other frames differ.  Reusing it takes
    training noise (steps done in the minutes on a busy machine) out of that comparison.
    """
    keyframes, extra, run_extra = VARIANTS[name]
    keyframes = sorted({k % len(frames) for k in keyframes})
    work = OUT / "stylize_runs" / painter / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    shared = name in ("motion", "flow") and tuple(keyframes) in trained
    if shared:
        model, summary = trained[tuple(keyframes)]
        atelier("stylize", "run", model, "--frames", SCENE / "frames", *run_extra, "-o", work / "frames")
    else:
        words = [w for k in keyframes for w in ("--keyframe", f"{k}={gt / frames[k].name}")]
        model = work / "model.safetensors"
        summary = atelier("stylize", "train", "--frames", SCENE / "frames", *words, *extra, *budget,
                          "-o", model, "--stylize-to", work / "frames")
        if name in ("motion", "flow"):
            trained[tuple(keyframes)] = model, summary
    result = score(work / "frames", gt, keyframes)
    result.update(budget=" ".join(map(str, budget)), train_seconds=summary["train_seconds"], steps=summary["steps"],
                  seconds_per_step=summary["seconds_per_step"], keyframes=keyframes,
                  model=str(model.relative_to(OUT)))
    return result


def baselines(painter, frames, gt):
    static = OUT / "stylize_runs" / painter / "static_copy"
    static.mkdir(parents=True, exist_ok=True)
    for path in frames:
        shutil.copyfile(gt / frames[0].name, static / path.name)
    return {"identity": score(SCENE / "frames", gt, [0]), "static_copy": score(static, gt, [0])}


def guide_drift(frames):
    """How well each motion source makes the temporal guide stick to the surfaces: the paper
    texture of frame 0 carried to frame t along the guide's advected coordinates
    (``guides.advected_coordinates``, the same chain the Gaussian-mixture guide is read through)
    against the paper texture Cycles rendered at frame t; mean |error| on the objects, per frame
    distance and overall (0 = the guide never slides; no motion at all scores ``static``)."""
    from core.stylize import frames as seq, guides
    images = np.stack([cv2.imread(str(p))[..., ::-1] for p in frames]).astype(np.float32) / 255
    paper = np.stack([paper_texture(SCENE / "motion" / f"{p.stem}.exr") for p in frames])
    surfaces = paper > 0
    motion = {"motion": seq.read_motion(SCENE / "motion", images.shape[1:3]), "flow": guides.optical_flow(images)}
    result = {"static": round(float(np.mean([np.abs(paper[t] - paper[0])[surfaces[t]].mean()
                                             for t in range(1, len(frames))])), 4)}
    for name, (previous, following) in motion.items():
        coordinates = guides.advected_coordinates(previous, following, 0)
        errors = [np.abs(cv2.remap(paper[0], c[..., 0], c[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                         - paper[t])[surfaces[t]].mean() for t, c in enumerate(coordinates) if t]
        result[name] = {"mean": round(float(np.mean(errors)), 4), "frame_1": round(float(errors[0]), 4),
                        "frame_12": round(float(errors[11]), 4), "frame_23": round(float(errors[-1]), 4)}
    return result


def step_speed(rounds=3, steps=3, device="cpu"):
    """Seconds per training patch, the headline (the published configuration trains batches of 40
    patches of 32x32, the default 24, so a step is not the same work), and per step, of both
    configurations on the same data.  They take turns, ``steps`` steps each a round, the order
    alternating, so the machine's drift and other jobs' load fall on both alike; each ratio is the
    median of the rounds' ratios."""
    import torch
    from core.progress import SilentProgress
    from core.stylize import model as sty
    torch.set_num_threads(1)  # one thread: on the shared machine two were 10x slower
    rng = np.random.default_rng(0)
    inputs = rng.uniform(0, 1, (1, 256, 256, 7)).astype(np.float32)
    names = list(sty.CONFIGS)
    data = {name: (inputs, inputs[..., :3], np.ones((1, 256, 256), np.float32), config, SilentProgress())
            for name, config in sty.CONFIGS.items()}
    for name in names:
        sty.train(*data[name], steps=2, device=torch.device(device))  # warm-up
    per_step = {name: [] for name in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            _, summary = sty.train(*data[name], steps=steps, device=torch.device(device))
            per_step[name].append(summary["seconds_per_step"])
    per_patch = {name: [s / sty.CONFIGS[name]["batch"] for s in per_step[name]] for name in names}
    result = {"load_average": [round(x, 2) for x in os.getloadavg()], "rounds": rounds, "steps_per_round": steps}
    for name, config in sty.CONFIGS.items():
        result[name] = {"seconds_per_patch": round(float(np.median(per_patch[name])), 4),
                        "seconds_per_step": round(float(np.median(per_step[name])), 4),
                        "batch": config["batch"], "patch": config["patch"],
                        "parameters": sum(p.numel() for p in sty.Generator(7, **config).parameters())}
    for unit, seconds in (("patch", per_patch), ("step", per_step)):
        ratios = [p / f for p, f in zip(seconds["published"], seconds["fast"])]
        result[f"speedup_per_{unit}"] = round(float(np.median(ratios)), 2)
        result[f"speedup_per_{unit}_range"] = [round(min(ratios), 2), round(max(ratios), 2)]
    return result


def inference_fps(device="cpu"):
    import torch
    from core.stylize import model as sty
    torch.set_num_threads(1)
    generator = sty.Generator(7, **sty.FAST).eval()
    result = {}
    for label, (h, w), count in (("256x256", (256, 256), 8), ("640x640", (640, 640), 3), ("1920x1080", (1080, 1920), 2)):
        frames = np.random.default_rng(0).uniform(0, 1, (count, h, w, 7)).astype(np.float32)
        sty.stylize_frames(generator, frames[:1], device=torch.device(device))  # warm-up
        started = time.monotonic()
        sty.stylize_frames(generator, frames, device=torch.device(device))
        if device == "cuda":
            torch.cuda.synchronize()
        result[label] = round(count / (time.monotonic() - started), 2)
    if device == "cpu":  # a 4K frame in tiles: the process's peak memory stays far below 4 GiB
        import resource
        sty.stylize_frames(generator, np.zeros((1, 2160, 3840, 7), np.float32))
        result["peak_memory_gib_with_4k_frame"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20, 2)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--other-minutes", type=float,
                        help="training minutes for the painters other than stylization (default --minutes)")
    parser.add_argument("--steps", type=int, help="train every variant for this many steps instead of minutes "
                        "(figures that do not depend on how busy the machine is)")
    parser.add_argument("--painters", default="stylization,paper,pencil,edge")
    parser.add_argument("--variants", default="motion,flow,motion_first_last,published")
    parser.add_argument("--fps", action="store_true", help="only the speed figures (no rendering or training)")
    parser.add_argument("--no-speed", action="store_true", help="only the quality figures")
    parser.add_argument("--training-speed", action="store_true",
                        help="only the training speed: seconds per patch (the headline) and per step")
    parser.add_argument("--device", default="cpu", help="device for the inference fps figures")
    parser.add_argument("--live", action="store_true",
                        help="only the live-session figures: change-to-preview latency, 60 s live vs batch, UI stalls")
    parser.add_argument("--live-parts", default="latency,quality,ui",
                        help="with --live: which figures, of latency, quality (60 s), quality_steps (step-matched), ui")
    args = parser.parse_args()
    if args.live:
        from stylize_live import live_figures
        frames = render()
        gt = ground_truth("stylization", frames)
        print(json.dumps(live_figures(frames, lambda painter: ground_truth(painter, frames),
                                      lambda pred: score(pred, gt, [0]), atelier,
                                      parts=args.live_parts.split(","))))
        return
    report = {"note": "timings on a shared 2-core CPU under contention from other jobs; speed figures with 1 torch thread"}
    if args.training_speed:
        print(json.dumps({**report, "training_step": {args.device: step_speed(device=args.device)}}))
        return
    if not args.no_speed:
        report["inference_fps_network"] = {args.device: inference_fps(args.device)}
        report["training_step"] = {args.device: step_speed(device=args.device)}
    if args.fps:
        print(json.dumps(report))
        return
    frames = render()
    report["sequence"] = {"frames": len(frames), "size": "256x256", "renderer": "Cycles 16 spp + denoise"}
    report["guide_drift"] = guide_drift(frames)
    for painter in args.painters.split(","):
        gt = ground_truth(painter, frames)
        entry, trained = baselines(painter, frames, gt), {}
        for name in args.variants.split(","):
            if painter != "stylization" and name in ("published", "motion_first_last", "motion_prefilter"):
                continue  # the full comparison is made on the painter the targets are set for
            minutes = args.minutes if painter == "stylization" else (args.other_minutes or args.minutes)
            budget = ["--steps", args.steps] if args.steps else ["--minutes", minutes]
            entry[name] = run_variant(painter, name, frames, gt, budget, trained)
            print(json.dumps({painter: {name: entry[name]}}), file=sys.stderr, flush=True)
        report[painter] = entry
    print(json.dumps(report))


if __name__ == "__main__":
    main()
