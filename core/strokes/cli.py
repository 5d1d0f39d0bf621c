"""`atelier strokes` commands (see core/cli.py for the command contract).

    atelier strokes train-generator -o GEN [--minutes M]
    atelier strokes train-agent --generator GEN --data digits|kanji|hershey|shapes|DIR -o AGENT [--recurrent --steps K]
    atelier strokes paint IMAGE [--agent AGENT] [--strokes K] [--invert] [--runtime auto|numpy|torch]
                                [--mode agent|lines|paint] [--time-limit S] -o OUT.svg --png OUT.png [--json OUT.json]

``paint`` needs neither torch nor OpenCV: without torch (Blender's own Python) it runs the numpy
runtime (``runtime.py``); the training commands need torch.
"""

import importlib.util
import json
import os
from pathlib import Path

import numpy as np

from ..atomic import write_text_atomic
from ..device import cpu_threads, torch_device
from ..errors import AtelierError
from ..paths import asset_folder

ASSETS = asset_folder("strokes")
SHIPPED_GENERATOR = ASSETS / "generator.safetensors"
SHIPPED_AGENT = ASSETS / "agent_recurrent.safetensors"
MAX_PIXELS = 8192 * 8192
MAX_RENDER = 1024
REFINE = 60        # default refinement steps: held-out judge coverage 0.83-0.92 at 30, 0.97 at 60 (bench/strokes.py)
RUNTIMES = ("auto", "numpy", "torch")
MODES = ("agent", "lines", "paint")


def _torch():
    """torch, with one thread per idle core (:func:`core.device.cpu_threads`)."""
    import torch
    cpu_threads()
    return torch


def _device(name):
    """The training device: ``--device`` when it names one, else ``ATELIER_DEVICE`` (:func:`core.device.torch_device`)."""
    torch = _torch()
    name = torch_device(name).type
    if name == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    return name


def _output(path, suffixes):
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise AtelierError(f"{path}: output must end in {' or '.join(suffixes)}")
    return path


def train_generator_command(args, progress):
    from .generator import train_generator
    out = _output(args.output, (".safetensors",))
    summary = train_generator(out, args.minutes, progress, batch=args.batch, seed=args.seed, device=_device(args.device))
    return {"generator": str(out), **summary}


def train_agent_command(args, progress):
    from .agent import TeacherForcing, train_agent
    from .data import CHARACTER_SETS, character_strokes, ink_images
    from .generator import load_generator
    out = _output(args.output, (".safetensors",))
    device = _device(args.device)
    generator, _ = load_generator(args.generator, device)
    progress.stage("loading data")
    names = args.data.split(",")
    images = np.concatenate([ink_images(name, "train") for name in names])
    if len(images) == 0:
        raise AtelierError(f"{args.data}: no training images")
    teacher = None
    if args.recurrent and all(name in CHARACTER_SETS for name in names):  # their strokes are known
        teacher = TeacherForcing(*([c for split in ("train", "extra") for c in character_strokes(name, split)]
                                   for name in names))
    summary = train_agent(out, generator, images, args.minutes, progress, recurrent=args.recurrent, steps=args.steps,
                          data=Path(args.data).name, batch=args.batch, seed=args.seed, device=device, teacher=teacher,
                          resume=args.resume)
    return {"agent": str(out), "images": len(images), "teacher_forcing_examples": len(teacher) if teacher else 0,
            **summary}


def choose_runtime(runtime):
    """"numpy" or "torch" for ``runtime`` in RUNTIMES.  "auto" is numpy unless ``ATELIER_DEVICE`` asks
    for CUDA (and torch is installed): on a CPU the numpy runtime paints the same strokes 4-20x faster
    (``bench/strokes_runtime.py``, figures in bench/RESULTS.md), and Blender's own Python has no torch."""
    if runtime not in RUNTIMES:
        raise AtelierError(f"--runtime {runtime}: choose one of {', '.join(RUNTIMES)}")
    try:
        torch_found = importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):   # a finder that refuses it, a half-removed module: not usable
        torch_found = False
    if runtime == "torch" and not torch_found:
        raise AtelierError("--runtime torch: torch is not installed in this Python (use --runtime numpy)")
    wants_gpu = os.environ.get("ATELIER_DEVICE", "auto").lower() == "cuda"
    return "torch" if runtime == "torch" or (runtime == "auto" and torch_found and wants_gpu) else "numpy"


def image_to_strokes(image, name, agent_path=None, strokes=8, invert=None, colour=False, refine=REFINE, rounds=1,
                     progress=None, runtime="auto", mode="agent", time_limit=None):
    """An RGB(A) float image -> dict of strokes in the agent's [-1, 1] frame plus the framing needed to place them.

    Returns ``{"points", "brush", "colours", "side", "inverted", "runtime"}``; points cover the
    centred square of side ``side`` (pixels) that holds the picture.  ``mode`` "agent": the agent's
    strokes refined ``refine`` steps; ``runtime`` (see :func:`choose_runtime`) picks the torch code
    (``agent.draw``) or its numpy twin (``runtime.draw``).  ``mode`` "lines": line art from every first
    guess (``lines.draw_lines``: tracer and agent, refined, merged, pruned; numpy alone, within
    ``time_limit`` seconds of refinement), adding ``"chosen"`` (whose first guess won).  ``mode`` "paint":
    coloured strokes (``paint.paint``) within ``time_limit`` CPU seconds.
    """
    from . import runtime as numpy_runtime
    from .data import prepare, to_square
    if mode not in MODES:
        raise AtelierError(f"--mode {mode}: choose one of {', '.join(MODES)}")
    if time_limit is not None and not time_limit > 0:
        raise AtelierError(f"--time-limit must be more than 0 seconds (got {time_limit})")
    if mode == "lines":
        return _lines(image, name, agent_path, strokes, invert, colour, time_limit)
    if mode == "paint":
        return _painterly(image, name, strokes, refine, time_limit)
    runtime = choose_runtime(runtime)
    if image.shape[0] * image.shape[1] > MAX_PIXELS:
        raise AtelierError(f"{name}: image is too large ({image.shape[1]}x{image.shape[0]}); "
                           f"at most {MAX_PIXELS // 1_000_000} megapixels")
    if strokes < 1 or rounds < 1 or refine < 0:
        raise AtelierError(f"--strokes and --rounds must be at least 1, --refine at least 0 "
                           f"(got {strokes}, {rounds}, {refine})")
    ink, side, inverted = prepare(image, name, invert)
    if runtime == "torch":
        torch = _torch()
        from .agent import draw, load_agent
        agent, hyper = load_agent(agent_path or SHIPPED_AGENT)
        points, brush = (a.numpy() for a in draw(agent, hyper.get("recurrent", False), torch.from_numpy(ink),
                                                 strokes, refine, rounds, progress))
    else:   # no torch.set_num_threads here (core.device.cpu_threads is torch's): numpy's BLAS keeps its own
        agent, hyper = numpy_runtime.load_agent(agent_path or SHIPPED_AGENT)
        points, brush = numpy_runtime.draw(agent, hyper.get("recurrent", False), ink, strokes, refine, rounds,
                                           progress)
    colours = np.zeros((len(points), 3), np.float32)
    if colour and image.shape[2] >= 3:
        rgb = to_square(image[:, :, :3])
        alphas = numpy_runtime.render_alphas(points, brush, rgb.shape[0])
        for k, alpha in enumerate(alphas):
            mask = (alpha > 0.5) & (ink > 0.25)
            if mask.any():
                colours[k] = np.median(rgb[mask], axis=0)
    return {"points": points, "brush": brush, "colours": colours, "side": side, "inverted": inverted,
            "runtime": runtime}


def _lines(image, name, agent_path, strokes, invert, colour, time_limit):
    """``image_to_strokes`` in mode "lines" (numpy alone, whatever is installed)."""
    from . import runtime as numpy_runtime
    from .data import prepare, to_square
    from .lines import WORK, draw_lines
    if image.shape[0] * image.shape[1] > MAX_PIXELS:
        raise AtelierError(f"{name}: image is too large ({image.shape[1]}x{image.shape[0]}); "
                           f"at most {MAX_PIXELS // 1_000_000} megapixels")
    if strokes < 1:
        raise AtelierError(f"--strokes must be at least 1 (got {strokes})")
    ink, side, inverted = prepare(image, name, invert, size=WORK)
    agent, _ = numpy_runtime.load_agent(agent_path or SHIPPED_AGENT)
    points, brush, summary = draw_lines(ink, strokes, agent if agent.recurrent else None, time_limit=time_limit)
    colours = np.zeros((len(points), 3), np.float32)
    if colour and image.shape[2] >= 3 and len(points):
        rgb = to_square(image[:, :, :3], WORK)
        for k, alpha in enumerate(numpy_runtime.render_alphas(points, brush, WORK)):
            mask = (alpha > 0.5) & (ink > 0.25)
            if mask.any():
                colours[k] = np.median(rgb[mask], axis=0)
    return {"points": points, "brush": brush, "colours": colours, "side": side, "inverted": inverted,
            "runtime": "numpy", "chosen": summary["chosen"]}


def _painterly(image, name, strokes, steps, time_limit=None):
    """``image_to_strokes`` in mode "paint": coloured strokes fitted to the picture (``paint.paint``, numpy),
    ``steps`` of fitting at most, and within ``time_limit`` CPU seconds when given."""
    from .data import to_square
    from .paint import PAINT_SIZE, paint
    if image.shape[0] * image.shape[1] > MAX_PIXELS:
        raise AtelierError(f"{name}: image is too large ({image.shape[1]}x{image.shape[0]}); "
                           f"at most {MAX_PIXELS // 1_000_000} megapixels")
    if strokes < 1 or steps < 0:
        raise AtelierError(f"--strokes must be at least 1 and --refine at least 0 (got {strokes}, {steps})")
    rgb = image[:, :, :3] if image.shape[2] >= 3 else np.repeat(image[:, :, :1], 3, -1)
    if image.shape[2] in (2, 4):                 # transparent pixels are paper
        alpha = image[:, :, -1:]
        rgb = rgb * alpha + (1 - alpha)
    picture = to_square(rgb, PAINT_SIZE)
    h, w = image.shape[:2]
    if h != w:                                   # the padding is paper, as the SVG's background
        side = max(h, w)
        pad = np.ones((side, side, 1), np.float32)
        pad[(side - h) // 2:(side - h) // 2 + h, (side - w) // 2:(side - w) // 2 + w] = 0
        picture = picture + to_square(pad[:, :, 0], PAINT_SIZE)[..., None]
    points, brush, colours = paint(np.clip(picture, 0, 1), strokes, steps, budget=time_limit)
    return {"points": points, "brush": brush, "colours": colours, "side": max(h, w), "inverted": False,
            "runtime": "numpy"}


def paint_command(args, progress):
    from ..imageio import read_image, write_image
    from .runtime import grease_pencil_strokes, render, resize_bilinear, to_svg
    svg = _output(args.output, (".svg",))
    mode = getattr(args, "mode", "agent")      # callers building their own arguments may leave it out
    progress.stage("drawing")
    image = read_image(args.image)
    h, w = image.shape[:2]
    result = image_to_strokes(image, args.image, args.agent, args.strokes, True if args.invert else None,
                              args.colour, args.refine, args.rounds, progress, args.runtime, mode,
                              getattr(args, "time_limit", None))
    progress.stage("writing", 3)
    side = result["side"]
    crop = ((side - w) // 2, (side - h) // 2, w, h)
    write_text_atomic(svg, to_svg(result["points"], result["brush"], side, result["colours"], crop=crop))
    summary = {"svg": str(svg), "strokes": len(result["points"]), "inverted": result["inverted"],
               "runtime": result["runtime"], "mode": mode}
    if "chosen" in result:
        summary["first_guess"] = result["chosen"]
    progress.update(1)
    if args.png:
        png = _output(args.png, (".png",))
        scale = min(1.0, MAX_RENDER / side)
        size = max(64, int(round(side * scale)))
        canvas = render(result["points"], result["brush"], size, result["colours"])   # the real painter, numpy
        x0, y0 = int(round(crop[0] * size / side)), int(round(crop[1] * size / side))
        canvas = canvas[y0:y0 + max(1, int(round(h * size / side))), x0:x0 + max(1, int(round(w * size / side)))]
        if canvas.shape[:2] != (h, w):
            canvas = resize_bilinear(canvas, h, w)
        write_image(png, canvas)
        summary["png"] = str(png)
    progress.update(2)
    if args.json:
        strokes = [{"positions": s["positions"].tolist(), "radii": s["radii"].tolist(), "colour": s["colour"].tolist()}
                   for s in grease_pencil_strokes(result["points"], result["brush"], result["colours"])]
        write_text_atomic(args.json, json.dumps({"image": str(args.image), "width": w, "height": h, "side": side,
                                                  "strokes": strokes}))
        summary["json"] = str(args.json)
    progress.update(3)
    return summary


def _training_options(p, batch, what):
    p.add_argument("--minutes", type=float, default=5.0, help="wall-clock training time (default 5)")
    p.add_argument("--batch", type=int, default=batch, help=f"{what} per step (default {batch})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")


def register(commands):
    """Add this group's commands to the ``atelier strokes`` sub-parser."""
    p = commands.add_parser("train-generator", help="train the neural painting environment on random strokes")
    p.add_argument("-o", "--output", required=True, help="generator model file (.safetensors)")
    _training_options(p, 64, "random strokes")
    p.set_defaults(run=train_generator_command)

    p = commands.add_parser("train-agent", help="train an image-to-strokes agent through a frozen generator")
    p.add_argument("--generator", required=True, help="generator model file")
    p.add_argument("--data", required=True,
                   help="digits, kanji, hershey, shapes (comma-separated to mix) or a folder of images")
    p.add_argument("-o", "--output", required=True, help="agent model file (.safetensors)")
    p.add_argument("--recurrent", action="store_true",
                   help="one stroke per step, seeing the canvas (kanji/hershey: taught their strokes)")
    p.add_argument("--steps", type=int, default=8,
                   help="strokes per drawing when training a recurrent agent through the generator")
    p.add_argument("--resume", help="agent model file to go on training (default: start afresh)")
    _training_options(p, 32, "images")
    p.set_defaults(run=train_agent_command)

    p = commands.add_parser("paint", help="redraw an image with strokes (SVG, PNG by the real painter, JSON)")
    p.add_argument("image")
    p.add_argument("--agent", help="agent model file (default: the shipped recurrent agent)")
    p.add_argument("--strokes", type=int, default=8, help="at most this many strokes")
    p.add_argument("--invert", action="store_true", help="light ink on dark paper (auto-detected otherwise)")
    p.add_argument("--colour", action="store_true", help="give each stroke the picture's colour under it")
    p.add_argument("--refine", type=int, default=REFINE,
                   help=f"gradient steps through the real painter (default {REFINE}; 0: the agent alone)")
    p.add_argument("--rounds", type=int, default=1,
                   help="refinement rounds: after each, the agent may add strokes where pruned ones were (default 1)")
    p.add_argument("--mode", choices=MODES, default="agent",
                   help="agent: the agent's strokes refined (default); lines: line art, the fewest clean strokes "
                        "from the tracer's and the agent's first guesses, refined, merged and pruned (numpy); "
                        "paint: shaded pictures and photos, --strokes coloured strokes of any width fitted "
                        "--refine steps (coarse to fine; numpy)")
    p.add_argument("--time-limit", type=float, help="lines and paint modes: at most this many seconds of refinement "
                   "(paint: CPU seconds; --refine is then a cap)")
    p.add_argument("--runtime", choices=RUNTIMES, default="auto",
                   help="torch, or numpy alone (what Blender's own Python has); auto: torch where installed")
    p.add_argument("-o", "--output", required=True, help="SVG file")
    p.add_argument("--png", help="PNG rendered by the real painting program")
    p.add_argument("--json", help="grease-pencil strokes (positions, radii, colours) as JSON")
    p.set_defaults(run=paint_command)
