"""`atelier stylize` commands (see core/cli.py for the command contract).

    atelier stylize train --frames DIR --keyframe INDEX=PAINTED.png [--keyframe ...]
                          [--mask INDEX=MASK.png] [--motion DIR_OF_EXR] [--minutes M] -o MODEL
                          [--stylize-to OUT_DIR]
    atelier stylize run MODEL --frames DIR [--motion DIR_OF_EXR] [--only I,NAME] -o OUT_DIR [--force]
"""

import re
from pathlib import Path

import numpy as np

from ..atomic import atomic_directory
from ..errors import AtelierError
from . import frames as seq
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

    generator, summary = sty.train(inputs[sorted(keyframes)], paintings, mask_images, config, progress,
                                   minutes=args.minutes, steps=args.steps, lr=args.lr,
                                   adversarial=args.adversarial, seed=args.seed, checkpoint=checkpoint,
                                   device=device)
    checkpoint(generator, summary)
    result = {"model": str(output), **summary, "motion": meta["training"]["motion"], "threads": threads}
    if args.stylize_to:
        result["device"] = _write_sequence(generator.eval(), inputs, [p.name for p in files], args.stylize_to,
                                           args.force, 512, progress)
        result.update(output=str(args.stylize_to), frames=n)
    return result


def run_command(args, progress):
    from . import model as sty
    generator, meta = sty.load(args.model)
    hyper = meta["hyperparameters"]
    files = seq.frame_files(args.frames)
    n = len(files)
    only = sorted({_frame_index(word, files, args.only) for word in args.only.split(",")}) if args.only else list(range(n))
    reference = hyper["reference"]
    if hyper["guide"] != "none" and reference >= n:
        raise AtelierError(f"{args.frames}: {n} frames, but the model's guide starts at frame {reference}; "
                           "run it on the sequence it was trained on")
    # only the frames the guides need: from the reference to the wanted ones, one more for the pre-filter
    span = only + ([reference] if hyper["guide"] != "none" else [])
    first, last = max(0, min(span) - 1), min(n - 1, max(span) + 1)
    size = seq.read_frame(files[first]).shape[:2]
    frames = np.stack([seq.read_frame(path, size) for path in files[first:last + 1]])
    motion = _motion(args, n, size, first, len(frames))
    inputs = build_inputs(frames, motion, reference - first, hyper["guide"], hyper["seed"], hyper["prefilter"])
    device = _write_sequence(generator, inputs[[i - first for i in only]], [files[i].name for i in only],
                             args.output, args.force, args.tile, progress)
    return {"output": str(args.output), "frames": len(only), "device": device,
            "motion": "blender vector pass" if motion else ("optical flow" if hyper["guide"] != "none" else "none")}


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


def _frame_index(word, files, option):
    """A 0-based index, or a frame's file name (the render plugin names the frame just written)."""
    word = word.strip()
    names = [p.name for p in files]
    if word in names:
        return names.index(word)
    if word.isdigit() and int(word) < len(files):
        return int(word)
    raise AtelierError(f"--only {option}: {word!r} is neither a frame file name nor an index in 0..{len(files) - 1}")


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
    train.add_argument("--minutes", type=float, default=5.0, help="training time (default 5)")
    train.add_argument("--steps", type=int, help="stop after this many steps instead")
    train.add_argument("--config", choices=sorted(("fast", "published")), default="fast",
                       help="network size: fast (default) or the paper's published configuration")
    train.add_argument("--patch", type=int, help="training patch size (default from the configuration)")
    train.add_argument("--guide", choices=("gaussian", "none"), default="gaussian",
                       help="temporal guide channels: advected Gaussian mixture (default) or none")
    train.add_argument("--prefilter", action="store_true",
                       help="temporal bilateral pre-filter of the frames (for noisy footage; clean renders need none)")
    train.add_argument("--adversarial", type=float, default=0.0, help="weight of the patch discriminator (0: off)")
    train.add_argument("--lr", type=float, default=4e-3, help="Adam learning rate, cosine-decayed (default 4e-3)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("-o", "--output", required=True, help="model file to write (.safetensors)")
    train.add_argument("--stylize-to", metavar="OUT_DIR", help="then stylise every frame into this new folder")
    train.add_argument("--force", action="store_true", help="replace an existing model file / output folder")
    train.set_defaults(run=train_command)

    run = commands.add_parser("run", help="stylise a frame sequence with a trained model",
                              description="Stylise every frame; writes PNGs named like the frames into a new folder.")
    run.add_argument("model", help="model file from `atelier stylize train`")
    run.add_argument("--frames", required=True, help="folder of the sequence's frames")
    run.add_argument("--motion", metavar="DIR_OF_EXR", help="Blender Vector-pass EXRs (else optical flow)")
    run.add_argument("--only", help="comma-separated 0-based frame indices or file names to stylise (default all)")
    run.add_argument("--tile", type=int, default=512, help="tile size in pixels for large frames (default 512)")
    run.add_argument("-o", "--output", required=True, help="new folder for the stylised frames")
    run.add_argument("--force", action="store_true", help="replace an existing output folder")
    run.set_defaults(run=run_command)

    follow = commands.add_parser("follow", help="stylise frames as a render writes them (the render plugin)",
                                 description="Wait for frames to appear in INBOX, in order, and stylise each.")
    follow.add_argument("model", help="model file from `atelier stylize train`")
    follow.add_argument("--inbox", required=True, help="folder the frames are moved into, complete, as rendered")
    follow.add_argument("--count", type=int, help="stop after this many frames (default: when INBOX/END appears)")
    follow.add_argument("--tile", type=int, default=512, help="tile size in pixels for large frames (default 512)")
    follow.add_argument("-o", "--output", required=True, help="folder for the stylised frames (created if needed)")
    follow.set_defaults(run=follow_command)

    from .live import register_live
    register_live(commands)
