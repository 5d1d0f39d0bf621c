"""`atelier nca` commands (see core/cli.py for the command contract)."""

from pathlib import Path

from ..errors import AtelierError, Cancelled
from .defaults import PALETTE_TERMS, PYRAMIDS, TRAINING
from .rule import CHANNEL_COUNTS, SIZES, in_words


def register(commands):
    """Add this group's commands to the ``atelier nca`` sub-parser."""
    train = commands.add_parser("train", help="train a μNCA on an exemplar image")
    train.add_argument("exemplar", help="exemplar image (PNG, JPEG, TIFF, EXR)")
    train.add_argument("--params", type=int, default=TRAINING.params, choices=SIZES,
                       help=f"model size in parameters ({in_words(CHANNEL_COUNTS)} channels)")
    train.add_argument("--minutes", type=float, default=TRAINING.minutes, help="wall-clock training budget")
    train.add_argument("--iterations", type=int, help="stop after this many iterations instead")
    train.add_argument("--seed", type=int, default=TRAINING.seed)
    train.add_argument("--grid", type=int, default=TRAINING.size, help="training grid size (cells a side)")
    train.add_argument("--name", help="name stored in the model (default: the exemplar's)")
    train.add_argument("--patch-weight", type=float, default=TRAINING.patch_weight,
                       help="weight of the nearest-patch loss term beside sliced Wasserstein (0: off; "
                            "see docs/nca.md)")
    train.add_argument("--pyramid", type=int, default=TRAINING.pyramid, choices=PYRAMIDS,
                       help="levels of the nearest-patch term: 3 (pooling 1, 2, 4), 5 (+ pooling 8 and 16) or 6 "
                            "(+ 9x9 patches at pooling 8: lattices of large tiles)")
    train.add_argument("--palette-weight", type=float, default=TRAINING.palette_weight,
                       help="weight of a colour-distribution term that keeps the exemplar's palette")
    train.add_argument("--palette-term", default=TRAINING.palette_term, choices=PALETTE_TERMS,
                       help="the palette term: sliced (Wasserstein of pixel colours) or shares (every "
                            "palette colour in its share of the pixels)")
    train.add_argument("--structure-weight", type=float, default=TRAINING.structure_weight,
                       help="weight of a term that matches the exemplar's autocorrelation up to 32 cells: "
                            "a lattice's period, round blobs (0: off; see docs/nca.md)")
    train.add_argument("--structure-from", type=float, default=TRAINING.structure_from,
                       help="part of the budget (0 to 1) after which the structure term joins the loss, "
                            "so the patches form first")
    train.add_argument("--preview", help="PNG rewritten every few seconds with the texture as it grows")
    train.add_argument("--eager", action="store_true",
                       help="skip torch.compile (no start-up compile, slower iterations)")
    train.add_argument("-o", "--output", required=True, help="model file (.safetensors)")
    train.set_defaults(run=run_train)

    render = commands.add_parser("render", help="grow a texture from a model and write PNG(s)")
    render.add_argument("model", help="model (.safetensors or compact .nca)")
    render.add_argument("--size", type=int, default=256)
    render.add_argument("--steps", type=int, default=1000)
    render.add_argument("--quantized", action="store_true", help="use the int8 weights")
    render.add_argument("--frames", type=int, default=0,
                        help="write a seamless animated loop of F frames OUT_0000.png... instead of one image")
    render.add_argument("--frame-steps", type=int, default=2, help="steps between animation frames")
    render.add_argument("--seed", type=int, default=0)
    render.add_argument("-o", "--output", required=True)
    render.set_defaults(run=run_render)

    export = commands.add_parser("export", help="emit the int8 model as GLSL, Shadertoy, OSL, C or compact binary")
    export.add_argument("model")
    export.add_argument("--format", required=True, choices=("glsl", "shadertoy", "osl", "c", "bin"))
    export.add_argument("--size", type=int, default=64,
                        help="osl: the state tile embedded in the shader is SIZE x SIZE cells")
    export.add_argument("--steps", type=int, default=1000,
                        help="osl: the tile is grown STEPS-1 steps; the shader computes the last one")
    export.add_argument("--seed", type=int, default=0)
    export.add_argument("-o", "--output", required=True)
    export.set_defaults(run=run_export)

    from ..scale.nca_batch import register as register_batch  # argparse only: Ray loads when it runs
    register_batch(commands)


def run_train(args, progress):
    import sys

    from .exemplars import style_note
    from .train import load_exemplar, train
    note = style_note(load_exemplar(args.exemplar))
    if note:
        progress.stage(note)
    try:
        summary, _ = train(args.exemplar, params=args.params, minutes=args.minutes, output=args.output,
                           progress=progress, iterations=args.iterations, seed=args.seed, size=args.grid,
                           names=[args.name] if args.name else None, compile=not args.eager,
                           patch_weight=args.patch_weight, pyramid=args.pyramid,
                           palette_weight=args.palette_weight, palette_term=args.palette_term,
                           structure_weight=args.structure_weight, structure_from=args.structure_from,
                           preview=args.preview)
    except (KeyboardInterrupt, Cancelled) as error:
        if Path(args.output).is_file():
            error.kept = str(args.output)  # the CLI and the worker say where the model is
        raise
    if note:
        summary["note"] = note
    return summary


def _check_positive(**values):
    for name, (value, low, high) in values.items():
        if not low <= value <= high:
            raise AtelierError(f"--{name} {value}: must lie in [{low}, {high}]")


def _output_file(text):
    """``-o``: a file to write (frames and extra sources are named after it), not a folder."""
    output = Path(text)
    if not output.name or output.is_dir():
        from ..validate import shown
        raise AtelierError(f"{shown(text)}: is a folder; give the name of a file to write" if text else
                           "-o is empty; give the name of a file to write")
    return output


def run_render(args, progress):
    from ..imageio import write_image
    from . import files
    from .render import loop_frames, run_states
    from .runtime import to_rgb
    _check_positive(size=(args.size, 8, 8192), steps=(args.steps, 1, 1_000_000),
                    frames=(args.frames, 0, 10_000), **{"frame-steps": (args.frame_steps, 1, 1000)})
    output = _output_file(args.output)
    model = files.load(args.model)
    files.check_rollout(model, args.model, args.quantized, progress=progress, action="rendered")
    written = []
    states = run_states(model, args.size, args.steps, args.quantized, args.seed,
                        frames=2 * args.frames, frame_steps=args.frame_steps, progress=progress)
    for state in states:  # longer than the check's horizon, or on a larger grid
        files.check_state(state, args.model, args.steps + 2 * args.frames * args.frame_steps, args.quantized,
                          "rendered")
    if args.frames:
        for i, frame in enumerate(loop_frames(states[1:])):
            written.append(str(write_image(output.with_name(f"{output.stem}_{i:04d}{output.suffix}"), frame)))
    else:
        written.append(str(write_image(output, to_rgb(states[0]))))
    return {"files": written, "params": model.params, "quantized": args.quantized,
            "size": args.size, "steps": args.steps}


def run_export(args, progress):
    from ..atomic import write_bytes_atomic, write_text_atomic
    from . import codegen, files
    from .quantize import to_binary
    output = _output_file(args.output)
    model = files.load(args.model)
    files.check_rollout(model, args.model, quantized=True, progress=progress)  # every format holds the int8 rule
    if args.format == "bin":
        write_bytes_atomic(output, to_binary(model.quantized))
        return {"files": [str(output)], "bytes": output.stat().st_size, "params": model.params}
    state = None
    if args.format == "osl":
        from .render import run_states
        _check_positive(size=(args.size, 4, 128), steps=(args.steps, 1, 1_000_000))
        state = run_states(model, args.size, args.steps - 1, True, args.seed, progress=progress)[0]
        files.check_state(state, args.model, args.steps - 1)  # the tile embedded in the shader
    sources = codegen.generate(model, args.format, state, args.steps - 1)
    written = []
    for suffix, text in sources.items():
        path = output.with_name(output.stem + suffix + output.suffix) if suffix else output
        write_text_atomic(path, text)
        written.append(str(path))
    return {"files": written, "params": model.params, "format": args.format}
