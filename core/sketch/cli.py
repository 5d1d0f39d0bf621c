"""`atelier sketch` commands: train, eval, sample (see core/cli.py for the command contract)."""

from pathlib import Path

import numpy as np

from ..atomic import write_text_atomic
from ..drawing.npz import save_npz
from ..drawing.pen import stroke3_to_polylines
from ..errors import AtelierError
from ..paths import asset_folder
from .data import clean, load_dataset

ASSETS = asset_folder("sketch")


def resolve_model(name):
    """A model path, or the name of a shipped model in core/assets/sketch (``kanji``, ``hershey``)."""
    path = Path(name)
    if path.exists() or path.suffix:
        return path
    shipped = ASSETS / f"{name}.safetensors"
    if shipped.exists():
        return shipped
    raise AtelierError(f"{name}: no such model file or shipped model "
                       f"({', '.join(p.stem for p in sorted(ASSETS.glob('*.safetensors'))) or 'none shipped'})")


def _load_clean(source, max_len, limit=None, progress=None):
    splits, info = load_dataset(source, limit=limit, progress=progress)
    cleaned = {}
    for name, sketches in splits.items():
        cleaned[name], counts = clean(sketches, max_len)
        info[f"dropped_{name}"] = {k: v for k, v in counts.items() if v}
    return cleaned, info


def train(args, progress):
    from .model import PRESETS, train as train_model
    hp = dict(PRESETS[args.preset])
    for name in ("enc_rnn_size", "dec_rnn_size", "z_size", "num_mixture", "batch_size", "max_seq_len"):
        if getattr(args, name) is not None:
            hp[name] = getattr(args, name)
    hp["decoder"], hp["conditional"] = args.decoder, not args.unconditional
    for name in ("learning_rate", "kl_weight", "kl_decay_rate"):
        if getattr(args, name) is not None:
            hp[name] = getattr(args, name)
    if args.steps is None and args.minutes is None:
        raise AtelierError("say how long to train: --steps N or --minutes M")
    splits, info = _load_clean(args.data, hp["max_seq_len"], args.limit, progress)
    if not splits.get("train"):
        raise AtelierError(f"{args.data}: no usable training sketches (after dropping empty, single-point "
                           f"and longer-than-{hp['max_seq_len']} ones)")
    hp["max_seq_len"] = int(max(len(s) for part in splits.values() for s in part))  # as the reference does
    output = Path(args.output)
    summary = train_model(splits, output, hp, steps=args.steps, minutes=args.minutes, resume=args.resume,
                          progress=progress, seed=args.seed, device=args.device, info=info,
                          precision=args.precision, threads=args.threads)
    if splits.get("valid"):
        from .model import evaluate, load_torch_model
        model, meta, _ = load_torch_model(output)
        summary["valid"] = evaluate(model, splits["valid"], meta["scale"])
    return {"model": str(output), **summary}


def evaluate(args, progress):
    from .model import evaluate as evaluate_model, load_torch_model
    model, meta, _ = load_torch_model(resolve_model(args.model))
    splits, info = _load_clean(args.data, model.hp["max_seq_len"], args.limit, progress)
    if args.split not in splits or not splits[args.split]:
        raise AtelierError(f"{args.data}: no usable sketches in split {args.split!r} "
                           f"(has: {', '.join(k for k, v in splits.items() if v) or 'none'})")
    result = evaluate_model(model, splits[args.split], meta["scale"], seed=args.seed, progress=progress)
    return {"model": str(args.model), "split": args.split, **result, "data": info}


def svg_document(sketches, columns=None, cell=120.0, stroke_width=2.0):
    """Sketches (stroke-3) laid out in a grid, each scaled to fit its cell, as SVG text."""
    columns = columns or max(1, int(np.ceil(np.sqrt(len(sketches)))))
    rows = int(np.ceil(len(sketches) / columns)) if sketches else 1
    paths = []
    for index, sketch in enumerate(sketches):
        lines = stroke3_to_polylines(sketch)
        if not lines:
            continue
        points = np.concatenate(lines)
        low, extent = points.min(0), max(float((points.max(0) - points.min(0)).max()), 1e-6)
        scale = 0.8 * cell / extent
        origin = np.array([index % columns, index // columns]) * cell + 0.1 * cell
        for line in lines:
            xy = (line - low) * scale + origin
            paths.append('<polyline points="' + " ".join(f"{x:.1f},{y:.1f}" for x, y in xy) + '"/>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{columns * cell:.0f}" height="{rows * cell:.0f}">\n'
            f'<rect width="100%" height="100%" fill="white"/>\n'
            f'<g fill="none" stroke="black" stroke-width="{stroke_width}" stroke-linecap="round" '
            f'stroke-linejoin="round">\n' + "\n".join(paths) + "\n</g>\n</svg>\n")


def sample(args, progress):
    from .runtime import SketchModel
    model = SketchModel(resolve_model(args.model))
    if args.count < 1:
        raise AtelierError("-n must be at least 1")
    output = Path(args.output)
    if output.suffix not in (".svg", ".npz"):
        raise AtelierError(f"{output}: the output must be .svg or .npz")
    progress.stage("sampling", args.count)
    sketches = []
    for start in range(0, args.count, 100):
        sketches += model.sample_drawings(min(100, args.count - start), args.temperature, seed=args.seed + start)
        progress.update(len(sketches))
    if output.suffix == ".svg":
        write_text_atomic(output, svg_document(sketches))
    else:
        save_npz(output, {"test": [np.round(s).astype(np.int16) if args.int16 else s for s in sketches]})
    return {"output": str(output), "count": len(sketches), "temperature": args.temperature,
            "mean_points": float(np.mean([len(s) for s in sketches]))}


def register(commands):
    """Add this group's commands to the ``atelier sketch`` sub-parser."""
    parser = commands.add_parser("train", help="train a Sketch-RNN on stroke data",
                                 description="DATA: a sketch-rnn .npz, a QuickDraw .ndjson, an .svg or a folder "
                                             "of them, or a builtin set: kanji (kanjivg), hershey (Hershey fonts).")
    parser.add_argument("data")
    parser.add_argument("-o", "--output", required=True, help="model file to write (.safetensors)")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--minutes", type=float)
    length.add_argument("--steps", type=int)
    parser.add_argument("--decoder", choices=("lstm", "layernorm", "hyper"), default="lstm")
    parser.add_argument("--unconditional", action="store_true", help="decoder only, no encoder and no z")
    parser.add_argument("--preset", choices=("reference", "small"), default="reference",
                        help="reference: the paper's sizes (256/512/128/20); small: 128/256/64/20 for CPUs")
    for name in ("enc_rnn_size", "dec_rnn_size", "z_size", "num_mixture", "batch_size", "max_seq_len"):
        parser.add_argument("--" + name.replace("_", "-"), dest=name, type=int)
    parser.add_argument("--learning-rate", type=float)
    parser.add_argument("--kl-weight", type=float, help="final KL weight w_KL (reference 0.5)")
    parser.add_argument("--kl-decay-rate", type=float, help="KL annealing rate R (reference 0.99995 a step)")
    parser.add_argument("--resume", action="store_true", help="continue from OUTPUT.ckpt")
    parser.add_argument("--limit", type=int, help="use only the first N drawings of the source")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                        help="recurrent products in bfloat16: auto = on CPUs with AMX matrix units")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(run=train)

    parser = commands.add_parser("eval", help="L_R and L_KL of a model on a data split")
    parser.add_argument("model")
    parser.add_argument("data")
    parser.add_argument("--split", default="test", choices=("train", "valid", "test"))
    parser.add_argument("--limit", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(run=evaluate)

    parser = commands.add_parser("sample", help="draw sketches with a model into .svg or .npz")
    parser.add_argument("model", help="a model file or a shipped model name (kanji, hershey)")
    parser.add_argument("-n", "--count", type=int, default=16)
    parser.add_argument("--temperature", type=float, default=0.5)
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--int16", action="store_true", help="round offsets to int16 in .npz (as QuickDraw)")
    parser.set_defaults(run=sample)
