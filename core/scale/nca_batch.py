"""``atelier nca train-batch DIR -o OUTDIR --minutes M [--ray ADDRESS]``: one μNCA per exemplar of a
material library, one Ray task per exemplar (or ``--per-task K`` exemplars of one size trained side by
side by ``core.nca.train.train_many``), and a contact sheet of the results.

Exemplars travel to the tasks as bytes through the object store and the models come back as bytes, so
the nodes need no shared storage; the driver writes ``OUTDIR/<name>.safetensors`` atomically with a
manifest record (exemplar and option hashes, model hash), so ``--resume`` skips textures already done.
Without ``--ray`` the same tasks run here one after the other.

Wiring (core/nca/cli.py, in ``register``): ``from ..scale.nca_batch import register as register_batch;
register_batch(commands)``.
"""

import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np

from ..atomic import write_bytes_atomic, write_text_atomic
from ..errors import AtelierError, Cancelled
from ..nca.defaults import TRAINING
from ..nca.rule import SIZES

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".exr", ".bmp", ".webp"}
MANIFEST = ".atelier-manifest"
SHEET = "contact_sheet.png"


def register(commands):
    batch = commands.add_parser("train-batch", help="train one μNCA per exemplar of a folder, on a Ray cluster "
                                                    "or here, and make a contact sheet",
                                description="Train a μNCA for every exemplar image of DIR (see docs/scale.md).")
    batch.add_argument("exemplars", metavar="DIR", help="folder of exemplar images")
    batch.add_argument("-o", "--output", required=True, help="folder for the models and contact_sheet.png")
    batch.add_argument("--params", type=int, default=TRAINING.params, choices=SIZES)
    batch.add_argument("--minutes", type=float, default=TRAINING.minutes, help="training budget of each task")
    batch.add_argument("--iterations", type=int, help="stop each training after this many iterations instead")
    batch.add_argument("--grid", type=int, default=TRAINING.size, help="training grid size (cells a side)")
    batch.add_argument("--seed", type=int, default=TRAINING.seed)
    batch.add_argument("--per-task", type=int, default=1,
                       help="exemplars of one size trained side by side in one task (train_many; default 1)")
    batch.add_argument("--sheet-size", type=int, default=128, help="contact sheet: texture size (default 128)")
    batch.add_argument("--sheet-steps", type=int, default=1000, help="contact sheet: steps grown (default 1000)")
    batch.add_argument("--resume", action="store_true", help="keep textures the manifest records as done")
    batch.add_argument("--ray", metavar="auto|local|ADDRESS", help="run the tasks on a Ray cluster")
    batch.add_argument("--num-gpus", type=float, default=0.0, help="GPUs each Ray task asks for")
    batch.add_argument("--num-cpus", type=float, default=1.0, help="CPUs each Ray task asks for")
    batch.set_defaults(run=train_batch_command)


def _options(args):
    return {"params": args.params, "minutes": args.minutes, "iterations": args.iterations, "size": args.grid,
            "seed": args.seed, "sheet": [args.sheet_size, args.sheet_steps]}


def train_group(group, options):
    """Task: train the exemplars ``[(name, bytes), ...]`` together; returns per exemplar its model
    bytes, training summary and contact-sheet tile (the texture grown from a fresh seed)."""
    from ..device import cpu_threads, torch_device
    from ..nca import files
    from ..nca.render import run_states
    from ..nca.runtime import to_rgb
    from ..nca.train import train_many
    from ..progress import SilentProgress
    if torch_device().type == "cpu":
        try:
            import ray
            cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1) if ray.is_initialized() else None
        except ImportError:
            cpus = None
        cpu_threads(int(round(cpus)) if cpus else None)
    size, steps = options["sheet"]
    with tempfile.TemporaryDirectory() as folder:
        paths, outputs = [], []
        for name, data in group:
            paths.append(Path(folder) / name)
            paths[-1].write_bytes(data)
            outputs.append(Path(folder) / (Path(name).stem + ".safetensors"))
        summaries, _ = train_many(paths, outputs, params=options["params"], minutes=options["minutes"],
                                  iterations=options["iterations"], size=options["size"], seed=options["seed"],
                                  names=[Path(name).stem for name, _ in group], progress=SilentProgress())
        results = []
        for (name, _), output, summary in zip(group, outputs, summaries):
            tile = to_rgb(run_states(files.load(output), size, steps, quantized=True, seed=0)[0])
            results.append({"name": name, "model": output.read_bytes(), "summary": summary,
                            "tile": np.round(tile * 255).astype(np.uint8)})
    return results


def _key(data, options):
    return hashlib.sha256(data + json.dumps(options, sort_keys=True).encode()).hexdigest()


def _done(output, name, key):
    stem = Path(name).stem
    try:
        record = json.loads((output / MANIFEST / f"{stem}.json").read_text())
        model = (output / f"{stem}.safetensors").read_bytes()
        return record["input"] == key and hashlib.sha256(model).hexdigest() == record["output"]
    except (OSError, ValueError, KeyError):
        return False


def _record(output, result, key):
    from ..imageio import write_image
    stem = Path(result["name"]).stem
    write_bytes_atomic(output / f"{stem}.safetensors", result["model"])
    write_image(output / MANIFEST / f"{stem}.tile.png", result["tile"].astype(np.float32) / 255)
    write_text_atomic(output / MANIFEST / f"{stem}.json",
                      json.dumps({"exemplar": result["name"], "input": key,
                                  "output": hashlib.sha256(result["model"]).hexdigest(),
                                  "training": result["summary"]}, default=str))


def _groups(paths, per_task):
    """Groups of at most ``per_task`` exemplars of one (training) size."""
    if per_task <= 1:
        return [[p] for p in paths]
    from ..nca.train import load_exemplar
    by_shape = {}
    for path in paths:
        by_shape.setdefault(load_exemplar(path).shape, []).append(path)
    return [same[i:i + per_task] for same in by_shape.values() for i in range(0, len(same), per_task)]


def contact_sheet(output, names, exemplars, columns=4, gap=4):
    """Exemplar beside its texture, ``columns`` pairs a row, written to OUTDIR/contact_sheet.png."""
    from ..imageio import read_image, write_image
    from ..nca.train import load_exemplar
    tiles = []
    for name, path in zip(names, exemplars):
        texture = read_image(output / MANIFEST / f"{Path(name).stem}.tile.png", channels=3)
        side = texture.shape[0]
        exemplar = load_exemplar(path)[:side, :side]
        cell = np.ones((side, 2 * side + gap, 3), np.float32)
        cell[:exemplar.shape[0], :exemplar.shape[1]] = exemplar
        cell[:, side + gap:] = texture
        tiles.append(cell)
    rows = []
    for i in range(0, len(tiles), columns):
        row = tiles[i:i + columns] + [np.ones_like(tiles[0])] * (columns - len(tiles[i:i + columns]))
        rows.append(np.concatenate([np.pad(t, ((gap, gap), (gap, gap), (0, 0)), constant_values=1) for t in row], 1))
    return write_image(output / SHEET, np.concatenate(rows, 0))


def train_batch_command(args, progress):
    folder, output = Path(args.exemplars), Path(args.output)
    if not folder.is_dir():
        raise AtelierError(f"{folder}: no such folder of exemplars")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise AtelierError(f"{folder}: no exemplar images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    if output.exists() and any(output.iterdir()) and not args.resume:
        raise AtelierError(f"{output}: already exists and is not empty; choose another folder or pass --resume")
    (output / MANIFEST).mkdir(parents=True, exist_ok=True)
    options = _options(args)
    keys = {p.name: _key(p.read_bytes(), options) for p in paths}
    todo = [p for p in paths if not (args.resume and _done(output, p.name, keys[p.name]))]
    groups = _groups(todo, args.per_task)
    progress.stage("training μNCA textures" + (" on Ray" if args.ray else ""), len(paths))
    done = len(paths) - len(todo)
    progress.update(done)
    summary = {"output": str(output), "textures": len(paths), "skipped": done, "trained": len(todo),
               "tasks": len(groups)}
    if args.ray:
        from .cluster import connect, disconnect
        ray = connect(args.ray)
        try:
            task = ray.remote(train_group).options(num_cpus=args.num_cpus, num_gpus=args.num_gpus, max_retries=3)
            options_ref = ray.put(options)
            pending = {task.remote([(p.name, p.read_bytes()) for p in group], options_ref): group for group in groups}
            try:
                while pending:
                    ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.2)
                    for ref in ready:
                        pending.pop(ref)
                        for result in ray.get(ref):
                            _record(output, result, keys[result["name"]])
                            done += 1
                    progress.update(done)
            except (KeyboardInterrupt, Cancelled):
                for ref in pending:
                    ray.cancel(ref, force=True)
                raise
        finally:
            disconnect()
    else:
        for group in groups:
            for result in train_group([(p.name, p.read_bytes()) for p in group], options):
                _record(output, result, keys[result["name"]])
                done += 1
            progress.update(done)
    summary["contact_sheet"] = str(contact_sheet(output, [p.name for p in paths], paths))
    summary["models"] = [str(output / f"{p.stem}.safetensors") for p in paths]
    return summary
