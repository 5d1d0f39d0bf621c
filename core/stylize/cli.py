"""`atelier stylize` commands (see core/cli.py for the command contract).

    atelier stylize train --frames DIR --keyframe INDEX=PAINTED.png [--keyframe ...]
                          [--mask INDEX=MASK.png] [--motion DIR_OF_EXR] [--minutes M] -o MODEL
                          [--stylize-to OUT_DIR]
    atelier stylize run MODEL --frames DIR [--motion DIR_OF_EXR] [--only I,A-B,NAME] -o OUT_DIR [--force]
                        [--resume] [--ray auto|local|ADDRESS [--num-gpus G] [--chunk N]]

``--ray`` and ``--resume`` are in core/scale/stylize.py (docs/scale.md).
"""

import re
from pathlib import Path

import numpy as np

from ..atomic import atomic_directory
from ..errors import AtelierError, Cancelled
from . import frames as seq
from .defaults import LEARNING_RATE, TILE, TRAIN_MINUTES
from .guides import build_inputs


def _motion(args, total, size, first=0, count=None):
    """Blender motion vectors of frames ``first .. first+count`` or None (then optical flow is used)."""
    if not args.motion:
        return None
    previous, following = seq.read_motion(args.motion, size)
    if len(previous) != total:
        raise AtelierError(f"{args.motion}: {len(previous)} EXR files, but the sequence has {total} frames; "
                           "render the motion vectors of every frame")
    count = total if count is None else count
    return previous[first:first + count], following[first:first + count]


def _write_sequence(generator, inputs, names, output, force, tile, progress):
    """Stylise ``inputs`` into a NEW folder ``output`` (atomically), one PNG per name."""
    from . import model as sty
    from ..device import cpu_threads, torch_device
    from ..imageio import write_image
    device = torch_device()
    if device.type == "cpu":
        cpu_threads()
    progress.stage("stylising", len(names))
    with atomic_directory(output, force) as folder:
        sty.stylize_frames(generator, inputs, tile=tile, device=device, progress=progress,
                           write=lambda i, image: write_image(folder / (Path(names[i]).stem + ".png"), image))
    return device.type


def train_command(args, progress):
    if getattr(args, "ray", None):
        from ..scale.stylize import train_on_ray
        return train_on_ray(args, progress)
    from . import model as sty
    frames, files = seq.read_frames(args.frames)
    n, size = len(frames), frames.shape[1:3]
    keyframes = seq.parse_indexed(args.keyframe, "--keyframe", n)
    if not keyframes:
        raise AtelierError("--keyframe INDEX=PAINTED.png is required (at least one painted frame)")
    masks = seq.parse_indexed(args.mask, "--mask", n)
    for index in masks:
        if index not in keyframes:
            raise AtelierError(f"--mask {index}={masks[index]}: frame {index} has no --keyframe")
    paintings = np.stack([seq.read_keyframe(keyframes[k], size) for k in sorted(keyframes)])
    mask_images = np.stack([seq.read_mask(masks[k], size) if k in masks else np.ones(size, np.float32)
                            for k in sorted(keyframes)])
    output = Path(args.output)
    if output.exists() and not args.force:
        raise AtelierError(f"{output}: already exists; choose another file or pass --force")
    if args.stylize_to and Path(args.stylize_to).exists() and not args.force:
        raise AtelierError(f"{args.stylize_to}: already exists; choose another folder or pass --force")
    motion = _motion(args, n, size)
    config = dict(sty.CONFIGS[args.config])
    if args.patch:
        config["patch"] = args.patch
    if min(size) < config["patch"]:
        raise AtelierError(f"{args.frames}: frames of {size[1]}x{size[0]} are smaller than a {config['patch']}px patch")
    reference = min(keyframes)
    progress.stage("guides", 1)
    inputs = build_inputs(frames, motion, reference, args.guide, args.seed, args.prefilter)
    from ..device import cpu_threads, torch_device
    device = torch_device()
    threads = cpu_threads() if device.type == "cpu" else 0
    meta = {"hyperparameters": {"in_channels": int(inputs.shape[-1]), "config": config, "guide": args.guide,
                                "prefilter": args.prefilter, "reference": reference, "seed": args.seed,
                                "adversarial": args.adversarial, "lr": args.lr},
            "training": {"frames": n, "size": [int(size[1]), int(size[0])], "keyframes": sorted(keyframes),
                         "motion": "blender vector pass" if motion else "optical flow"}}

    def checkpoint(generator, summary):
        sty.save(output, generator, {**meta, "training": {**meta["training"], **summary}})
    checkpoint.path = str(output)  # named in the message when training is stopped

    generator, summary = sty.train(inputs[sorted(keyframes)], paintings, mask_images, config, progress,
                                   minutes=args.minutes, steps=args.steps, lr=args.lr,
                                   adversarial=args.adversarial, seed=args.seed, checkpoint=checkpoint,
                                   device=device)
    checkpoint(generator, summary)
    result = {"model": str(output), **summary, "motion": meta["training"]["motion"], "threads": threads}
    if args.stylize_to:
        try:
            result["device"] = _write_sequence(generator.eval(), inputs, [p.name for p in files], args.stylize_to,
                                               args.force, TILE, progress)
        except (KeyboardInterrupt, Cancelled) as error:
            error.kept = str(output)  # trained and written: stopped while stylising the frames
            raise
        result.update(output=str(args.stylize_to), frames=n)
    return result


def run_command(args, progress):
    from . import model as sty
    sty.check_tile(args.tile)  # before any work
    if args.ray or args.resume:
        return _run_scaled(args, progress)
    generator, meta = sty.load(args.model)
    hyper = meta["hyperparameters"]
    files = seq.frame_files(args.frames)
    only = _only(args, files)
    _check_reference(args, hyper, len(files))
    # the inputs are computed frame by frame (core/scale/stylize.py): bitwise those of build_inputs,
    # without holding the sequence in memory
    from ..device import cpu_threads, torch_device
    from ..imageio import write_image
    from ..scale.stylize import iter_inputs
    device = torch_device()
    if device.type == "cpu":
        cpu_threads()
    progress.stage("stylising", len(only))
    with atomic_directory(args.output, args.force) as folder:
        for done, (i, inputs) in enumerate(iter_inputs(files, only, hyper, args.motion), 1):
            target = folder / (Path(files[i].name).stem + ".png")
            sty.stylize_frames(generator, inputs[None], tile=args.tile, device=device,
                               write=lambda _, image: write_image(target, image))
            progress.update(done)
    return {"output": str(args.output), "frames": len(only), "device": device.type,
            "motion": "blender vector pass" if args.motion else ("optical flow" if hyper["guide"] != "none" else "none")}


def _only(args, files):
    if not args.only:
        return list(range(len(files)))
    return sorted({i for word in args.only.split(",") for i in _frame_indices(word, files, args.only)})


def _check_reference(args, hyper, n):
    if hyper["guide"] != "none" and hyper["reference"] >= n:
        raise AtelierError(f"{args.frames}: {n} frames, but the model's guide starts at frame {hyper['reference']}; "
                           "run it on the sequence it was trained on")


def _run_scaled(args, progress):
    """``--ray`` / ``--resume``: frames written in place with a manifest (core/scale/stylize.py)."""
    from ..modelfile import read_model
    from ..scale.stylize import run_job
    _, meta = read_model(args.model, "stylize")
    hyper = meta["hyperparameters"]
    files = seq.frame_files(args.frames)
    only = _only(args, files)
    _check_reference(args, hyper, len(files))
    return run_job(args, files, only, hyper, progress)


FOLLOW_TIMEOUT_S = 600.0   # a render that writes no frame for this long has stopped
FOLLOW_POLL_S = 0.05
END_MARKER = "END"         # the render has written its last frame into the inbox


def follow_command(args, progress):
    """Stylise frames as a render writes them: one worker for a whole animation render.

    The add-on's render handler puts each finished frame into ``--inbox`` (atomically, by rename);
    this loop takes them in order as they arrive, stylises each with the temporal guide of the
    frames so far, and writes ``OUT/<name>.png`` atomically.  A progress message names every frame
    written, so Blender can show it at once.  It ends once the render has put END_MARKER into the
    inbox and every frame before it is done (or after ``--count`` frames), on cancel, or when no frame
    arrives for FOLLOW_TIMEOUT_S.
    """
    import time
    from . import model as sty
    from ..device import cpu_threads, torch_device
    from ..imageio import write_image
    sty.check_tile(args.tile)
    generator, meta = sty.load(args.model)
    hyper = meta["hyperparameters"]
    inbox, output = Path(args.inbox), Path(args.output)
    if not inbox.is_dir():
        raise AtelierError(f"{inbox}: no such folder for the rendered frames")
    output.mkdir(parents=True, exist_ok=True)
    device = torch_device()
    if device.type == "cpu":
        cpu_threads()
    progress.stage("stylising the render", args.count or 1)
    frames, names, waited = [], [], time.monotonic()
    while args.count is None or len(names) < args.count:
        ready = sorted((p for p in inbox.iterdir() if p.suffix.lower() in seq.FRAME_SUFFIXES and p.name not in names),
                       key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)])
        if not ready:
            if (inbox / END_MARKER).exists():
                break
            if time.monotonic() - waited > FOLLOW_TIMEOUT_S:
                raise AtelierError(f"{inbox}: no new frame for {FOLLOW_TIMEOUT_S:.0f} s; the render stopped")
            progress.update(len(names))  # also where Esc (cancel) is noticed
            time.sleep(FOLLOW_POLL_S)
            continue
        path = ready[0]
        frames.append(seq.read_frame(path, frames[0].shape[:2] if frames else None))
        names.append(path.name)
        waited = time.monotonic()
        reference = min(hyper["reference"], len(frames) - 1)
        # the guide of the newest frame needs the motion from the reference frame up to it
        inputs = build_inputs(np.stack(frames[reference:]), None, 0, hyper["guide"], hyper["seed"],
                              hyper["prefilter"])[-1:]
        target = output / (path.stem + ".png")
        sty.stylize_frames(generator, inputs, tile=args.tile, device=device,
                           write=lambda _, image: write_image(target, image))
        progress.update(len(names), frame=str(target))
    return {"output": str(output), "frames": len(names), "device": device.type}


def _frame_indices(word, files, option):
    """0-based indices of a word of --only: an index, an inclusive range A-B of indices (a render farm's
    chunk), or a frame's file name (the render plugin names the frame just written)."""
    word = word.strip()
    names = [p.name for p in files]
    if word in names:
        return [names.index(word)]
    if word.isdigit() and int(word) < len(files):
        return [int(word)]
    first, dash, last = word.partition("-")
    if dash and first.strip().isdigit() and last.strip().isdigit():
        first, last = int(first), int(last)
        if first <= last < len(files):
            return list(range(first, last + 1))
    raise AtelierError(f"--only {option}: {word!r} is neither a frame file name, an index nor a range A-B "
                       f"of indices in 0..{len(files) - 1}")


def _add_ray_options(parser, training=False):
    parser.add_argument("--ray", metavar="auto|local|ADDRESS",
                        help="run on a Ray cluster: auto (the running one), local (start one here) or the "
                             "head's HOST:PORT (pip install 'atelier[ray]'; see docs/scale.md)")
    parser.add_argument("--num-gpus", type=float, default=0.0,
                        help="GPUs each Ray task asks for (default 0: CPU); fractions share a GPU")
    parser.add_argument("--num-cpus", type=float, default=1.0, help="CPUs each Ray task asks for (default 1)")


def register(commands):
    """Add this group's commands to the ``atelier stylize`` sub-parser."""
    train = commands.add_parser("train", help="train a stylisation model on painted keyframe(s)",
                                description="Train on painted keyframes of a frame sequence (Texler et al. 2020).")
    train.add_argument("--frames", required=True, help="folder of the sequence's 8-bit frames (PNG/JPEG)")
    train.add_argument("--keyframe", action="append", metavar="INDEX=PAINTED.png",
                       help="painted frame at 0-based INDEX of the sequence (repeatable)")
    train.add_argument("--mask", action="append", metavar="INDEX=MASK.png",
                       help="white where keyframe INDEX is painted (default: all of it)")
    train.add_argument("--motion", metavar="DIR_OF_EXR",
                       help="Blender multilayer EXRs with the Vector pass, one per frame (else optical flow)")
    train.add_argument("--minutes", type=float, default=TRAIN_MINUTES, help=f"training time (default {TRAIN_MINUTES:g})")
    train.add_argument("--steps", type=int, help="stop after this many steps instead")
    train.add_argument("--config", choices=sorted(("fast", "published")), default="fast",
                       help="network size: fast (default) or the paper's published configuration")
    train.add_argument("--patch", type=int, help="training patch size (default from the configuration)")
    train.add_argument("--guide", choices=("gaussian", "none"), default="gaussian",
                       help="temporal guide channels: advected Gaussian mixture (default) or none")
    train.add_argument("--prefilter", action="store_true",
                       help="temporal bilateral pre-filter of the frames (for noisy footage; clean renders need none)")
    train.add_argument("--adversarial", type=float, default=0.0, help="weight of the patch discriminator (0: off)")
    train.add_argument("--lr", type=float, default=LEARNING_RATE,
                       help=f"Adam learning rate, cosine-decayed (default {LEARNING_RATE:g})")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("-o", "--output", required=True, help="model file to write (.safetensors)")
    train.add_argument("--stylize-to", metavar="OUT_DIR", help="then stylise every frame into this new folder")
    train.add_argument("--force", action="store_true", help="replace an existing model file / output folder")
    _add_ray_options(train, training=True)
    train.set_defaults(run=train_command)

    run = commands.add_parser("run", help="stylise a frame sequence with a trained model",
                              description="Stylise every frame; writes PNGs named like the frames into a new folder.")
    run.add_argument("model", help="model file from `atelier stylize train`")
    run.add_argument("--frames", required=True, help="folder of the sequence's frames")
    run.add_argument("--motion", metavar="DIR_OF_EXR", help="Blender Vector-pass EXRs (else optical flow)")
    run.add_argument("--only", help="comma-separated 0-based frame indices, ranges A-B of them (inclusive) or "
                                    "file names to stylise (default all)")
    run.add_argument("--tile", type=int, default=TILE, help=f"tile size in pixels for large frames (default {TILE})")
    run.add_argument("-o", "--output", required=True, help="new folder for the stylised frames")
    run.add_argument("--force", action="store_true", help="replace an existing output folder")
    run.add_argument("--resume", action="store_true",
                     help="continue into an existing OUT_DIR: skip frames its manifest records as done "
                          "(content hashes), compute the rest; frames are written in place")
    _add_ray_options(run)
    run.add_argument("--chunk", type=int, default=0, help="frames per Ray task (default: about 4 tasks per worker)")
    run.add_argument("--guides-in-tasks", action="store_true",
                     help="Ray tasks compute the Gaussian-mixture guide (most of the driver's work) instead of the "
                          "driver: faster on many nodes; equal to the local run within 1/255 on rare pixels")
    run.add_argument("--retries", type=int, default=3, help="times Ray retries a task whose worker died (default 3)")
    run.set_defaults(run=run_command)

    follow = commands.add_parser("follow", help="stylise frames as a render writes them (the render plugin)",
                                 description="Wait for frames to appear in INBOX, in order, and stylise each.")
    follow.add_argument("model", help="model file from `atelier stylize train`")
    follow.add_argument("--inbox", required=True, help="folder the frames are moved into, complete, as rendered")
    follow.add_argument("--count", type=int, help="stop after this many frames (default: when INBOX/END appears)")
    follow.add_argument("--tile", type=int, default=TILE, help=f"tile size in pixels for large frames (default {TILE})")
    follow.add_argument("-o", "--output", required=True, help="folder for the stylised frames (created if needed)")
    follow.set_defaults(run=follow_command)

    from .live import register_live
    register_live(commands)
