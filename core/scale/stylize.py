"""Stylisation at scale: streamed guides, a per-frame manifest, chunks of frames as Ray tasks.

**Inputs.**  :func:`iter_inputs` computes the network input of each wanted frame one at a time, holding
O(1) frames: the temporal guide's coordinates are carried frame to frame from the reference outwards,
exactly as ``guides.build_inputs`` chains them (DIS flow of each pair, the same warps, the Gaussian
mixture per frame), so the inputs are bitwise those of ``build_inputs`` (tests/test_scale.py) and a
4,320-frame 1080p shot never sits in memory.  The driver computes them once, in that order, and ships
each chunk's inputs through the object store; a task never recomputes a guide, so the output of a
frame does not depend on how the frames were chunked (inference is batch- and thread-invariant on the
CPU: checked bitwise).

**Manifest.**  ``OUT/.atelier-manifest/<frame>.json`` is written (atomically) by the task right after
the frame itself: the SHA-256 of its *inputs* (model file, settings, and the source frames and motion
files its guide depends on) and of the PNG written.  A frame counts as done only when its record's
input hash is the current one and the PNG on disk still has the recorded hash, never because a file
exists.  One record per frame: chunks of a render farm or two drivers never write the same file.
"""

import hashlib
import json
import math
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from ..atomic import write_text_atomic
from ..errors import AtelierError, Cancelled

MANIFEST = ".atelier-manifest"
JOB_FILE = "job.json"


# ----------------------------------------------------------------------------- inputs, streamed

def _motion_files(directory, total):
    from ..stylize import frames as seq
    files = [p for p in seq.frame_files(directory) if p.suffix.lower() == ".exr"]
    if len(files) != total:
        raise AtelierError(f"{directory}: {len(files)} EXR files, but the sequence has {total} frames; "
                           "render the motion vectors of every frame")
    return files


def _read_motion_frame(path, size):
    """(previous, following) flow of one Blender Vector-pass EXR, as ``frames.read_motion`` does."""
    from ..stylize.exr import read_exr_channels
    channels = read_exr_channels(path)
    names = {name.rsplit(".", 1)[-1]: name for name in channels if name.rsplit(".", 2)[-2:-1] == ["Vector"]}
    if set(names) != set("XYZW"):
        raise AtelierError(f"{path}: no Vector pass (enable View Layer ▸ Passes ▸ Vector and save as multilayer EXR)")
    if channels[names["X"]].shape != tuple(size):
        raise AtelierError(f"{path}: motion is {channels[names['X']].shape[1]}x{channels[names['X']].shape[0]}, "
                           f"the frames are {size[1]}x{size[0]}")
    previous = np.stack([channels[names["X"]], -channels[names["Y"]]], -1).astype(np.float32)
    following = np.stack([-channels[names["Z"]], channels[names["W"]]], -1).astype(np.float32)
    return previous, following


def iter_inputs(files, wanted, hyper, motion_dir=None, defer_mixture=False):
    """Yield ``(index, input H x W x C)`` for each index of ``wanted``: frames from the reference
    upwards first, then downwards from it (the order the guide is carried in).

    ``defer_mixture``: the last channels are the advected coordinates (2) instead of the Gaussian-mixture
    guide (3); :func:`finish_inputs` turns them into it.  The mixture is per frame and most of the cost
    (0.21 of 0.31 s a 256² frame), so with ``--guides-in-tasks`` Ray tasks compute it in parallel instead
    of the driver.  Not bitwise then: in a single-threaded worker the mixture's matrix product rounds a
    few values differently (measured: 1 pixel of 24 128² frames off by 1/255)."""
    from ..stylize import frames as seq
    from ..stylize import guides
    guide, prefilter = hyper["guide"], bool(hyper.get("prefilter"))
    seed, reference, n = hyper["seed"], hyper["reference"], len(files)
    wanted = sorted(set(wanted))
    size = seq.read_frame(files[wanted[0]]).shape[:2]
    motion = _motion_files(motion_dir, n) if motion_dir and (guide != "none" or prefilter) else None
    frame_cache, flow_cache, grey_cache = {}, {}, {}

    def frame(t):
        if t not in frame_cache:
            if len(frame_cache) > 6:
                frame_cache.pop(max(frame_cache, key=lambda k: abs(k - t)))
            frame_cache[t] = seq.read_frame(files[t], size)
        return frame_cache[t]

    def grey(t):
        cv2 = guides._cv2()
        if t not in grey_cache:
            if len(grey_cache) > 6:
                grey_cache.pop(max(grey_cache, key=lambda k: abs(k - t)))
            grey_cache[t] = cv2.cvtColor(np.round(frame(t) * 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)
        return grey_cache[t]

    # DIS keeps state between calls (a pair's flow differs slightly with the calls before it), so the
    # flows are computed exactly as guides.optical_flow does over the local run's span: one DIS object,
    # pairs in increasing order, previous[t] then following[t-1]; span boundaries get zero flow.
    span = wanted + ([reference] if guide != "none" else [])
    first, last = max(0, min(span) - 1), min(n - 1, max(span) + 1)
    computed = [first]  # flows of pairs up to this index are known
    keep_below = reference + 2 if guide != "none" else 0  # the backward chain needs these later
    dis = [None]

    def flow(t, direction):
        """previous[t] (direction -1) or following[t] (+1) as build_inputs computes them on the span."""
        key = (t, direction)
        if motion is not None:
            if key not in flow_cache:
                if len(flow_cache) > 8:
                    flow_cache.pop(max(flow_cache, key=lambda k: abs(k[0] - t)))
                flow_cache[(t, -1)], flow_cache[(t, 1)] = _read_motion_frame(motion[t], size)
            return flow_cache[key]
        if (t == first and direction < 0) or (t == last and direction > 0):
            return np.zeros((*size, 2), np.float32)
        if dis[0] is None:
            cv2 = guides._cv2()
            dis[0] = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        needed = t if direction < 0 else t + 1
        while computed[0] < needed:
            u = computed[0] + 1
            flow_cache[(u, -1)] = dis[0].calc(grey(u), grey(u - 1), None)
            flow_cache[(u - 1, 1)] = dis[0].calc(grey(u - 1), grey(u), None)
            computed[0] = u
            for old in [k for k in flow_cache if keep_below <= k[0] < u - 3]:
                del flow_cache[old]
        return flow_cache[key]

    def colour(t):
        if not prefilter:
            return frame(t)
        lo, hi = max(0, t - 1), min(n - 1, t + 1)  # temporal_bilateral's radius-1 window around t
        window = np.stack([frame(s) for s in range(lo, hi + 1)])
        previous = np.stack([flow(s, -1) for s in range(lo, hi + 1)])
        following = np.stack([flow(s, 1) for s in range(lo, hi + 1)])
        return guides.temporal_bilateral(window, previous, following)[t - lo]

    def make(t, coordinates):
        c = colour(t)
        channels = [c, guides.edge_guide(c[None])[0]]
        if coordinates is not None:
            channels.append(coordinates if defer_mixture else guides.gaussian_mixture(coordinates[None], size, seed)[0])
        return np.concatenate(channels, axis=-1)

    if guide == "none":
        for t in wanted:
            yield t, make(t, None)
        return
    if reference >= n:
        raise AtelierError(f"{n} frames, but the model's guide starts at frame {reference}; "
                           "run it on the sequence it was trained on")
    gx, gy = np.meshgrid(np.arange(size[1], dtype=np.float32), np.arange(size[0], dtype=np.float32))
    start = np.stack([gx, gy], axis=-1)
    wanted_set = set(wanted)
    coordinates = start
    for t in range(reference, max(wanted) + 1):
        if t > reference:
            coordinates = guides.warp(coordinates, flow(t, -1))
        if t in wanted_set:
            yield t, make(t, coordinates)
    coordinates = start
    for t in range(reference - 1, min(wanted) - 1, -1):
        coordinates = guides.warp(coordinates, flow(t, 1))
        if t in wanted_set:
            yield t, make(t, coordinates)


def finish_inputs(partial, seed):
    """Inputs from :func:`iter_inputs` with ``defer_mixture``: coordinates -> Gaussian-mixture guide,
    frame by frame (bitwise what the driver would have computed)."""
    from ..stylize import guides
    size = partial.shape[1:3]
    return np.stack([np.concatenate([x[..., :4], guides.gaussian_mixture(x[None, ..., 4:6], size, seed)[0]], -1)
                     for x in partial])


# ----------------------------------------------------------------------------- manifest

def sha256_file(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def input_keys(model_path, files, wanted, hyper, motion_dir, tile):
    """Per wanted frame, the SHA-256 of everything its output depends on: the model file, the tile
    size, and the source frames (and motion files) from the reference to it, one more each side."""
    n, reference = len(files), hyper["reference"]
    guided = hyper["guide"] != "none"
    motion = _motion_files(motion_dir, n) if motion_dir and (guided or hyper.get("prefilter")) else None
    cache = {}

    def file_hash(t):
        if t not in cache:
            cache[t] = sha256_file(files[t]) + (sha256_file(motion[t]) if motion else "")
        return cache[t]

    base = f"{sha256_file(model_path)}|tile={tile}|"
    keys = {}
    for t in wanted:
        lo, hi = (min(reference, t), max(reference, t)) if guided else (t, t)
        lo, hi = max(0, lo - 1), min(n - 1, hi + 1)
        digest = hashlib.sha256(base.encode())
        for s in range(lo, hi + 1):
            digest.update(f"{files[s].name}:{file_hash(s)};".encode())
        keys[t] = digest.hexdigest()
    return keys


def frame_done(output, name, key):
    """True when ``OUT/<name>.png`` is recorded for inputs ``key`` and still has the recorded hash."""
    png = Path(output) / (Path(name).stem + ".png")
    record = Path(output) / MANIFEST / (Path(name).stem + ".json")
    try:
        entry = json.loads(record.read_text())
        return entry["input"] == key and png.exists() and sha256_file(png) == entry["output"]
    except (OSError, ValueError, KeyError, TypeError):
        return False


def write_frame(output, name, image, key):
    """Write the stylised frame atomically, then its manifest record (atomically); returns the PNG's hash."""
    from ..imageio import write_image
    png = Path(output) / (Path(name).stem + ".png")
    write_image(png, image)
    digest = sha256_file(png)
    write_text_atomic(Path(output) / MANIFEST / (png.stem + ".json"),
                      json.dumps({"frame": name, "input": key, "output": digest, "pid": os.getpid(),
                                  "written": time.time()}))
    return digest


# ----------------------------------------------------------------------------- the Ray task

_GENERATORS: dict = {}


def _generator(model_bytes):
    """The generator of a model file's bytes, loaded once per worker process."""
    from ..stylize import model as sty
    digest = hashlib.sha256(model_bytes).hexdigest()
    if digest not in _GENERATORS:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "model.safetensors"
            path.write_bytes(model_bytes)
            _GENERATORS.clear()
            _GENERATORS[digest] = sty.load(path)[0]
    return _GENERATORS[digest]


def stylize_chunk(model_bytes, inputs, chunk, output, job, tile, mixture_seed=None):
    """Ray task: stylise ``inputs`` (N x H x W x C) and write each frame and its record into ``output``.

    ``chunk`` is ``[(index, name, key), ...]``; with ``mixture_seed`` the inputs hold coordinates whose
    Gaussian-mixture guide is computed here (:func:`finish_inputs`).  The output folder must be the driver's: the task
    checks the job's token there first (on a node without the shared storage it would write elsewhere).
    """
    started = time.monotonic()
    from ..device import cpu_threads, torch_device
    from ..stylize import model as sty
    token = Path(output) / MANIFEST / JOB_FILE
    try:
        seen = json.loads(token.read_text())["job"]
    except (OSError, ValueError, KeyError):
        seen = None
    if seen != job:
        import socket
        raise AtelierError(f"{output}: not visible from node {socket.gethostname()} (or taken over by another "
                           "run); put the output folder on storage every node mounts (see docs/scale.md)")
    device = torch_device()
    if device.type == "cpu":
        try:
            import ray
            cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
        except Exception:
            cpus = 1
        cpu_threads(max(1, int(round(cpus))))
    written = []

    def write(i, image):
        _, name, key = chunk[i]
        write_frame(output, name, image, key)
        written.append(name)

    if mixture_seed is not None:
        inputs = finish_inputs(inputs, mixture_seed)
    sty.stylize_frames(_generator(model_bytes), inputs, tile=tile, device=device, write=write)
    return {"frames": written, "pid": os.getpid(), "device": device.type,
            "seconds": time.monotonic() - started}


# ----------------------------------------------------------------------------- the driver

def _prepare_output(output, force, resume):
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise AtelierError(f"{output}: exists and is not a folder")
    if output.exists() and not resume:
        if not force:
            raise AtelierError(f"{output}: already exists; choose another folder, pass --resume to continue "
                               "it or --force to start again")
        shutil.rmtree(output)
    (output / MANIFEST).mkdir(parents=True, exist_ok=True)
    job = uuid.uuid4().hex
    write_text_atomic(output / MANIFEST / JOB_FILE, json.dumps({"job": job, "started": time.time()}))
    return output, job


def run_job(args, files, wanted, hyper, progress):
    """``atelier stylize run`` with ``--ray`` and/or ``--resume``: frames written in place into OUT,
    each with its manifest record; frames already done are skipped.  Returns the summary."""
    if args.resume and args.force:
        raise AtelierError("--resume and --force: choose one (--force starts again, --resume continues)")
    output, job = _prepare_output(args.output, args.force, args.resume)
    keys = input_keys(args.model, files, wanted, hyper, args.motion, args.tile)
    progress.stage("checking the manifest", len(wanted))
    todo = [t for t in wanted if not frame_done(output, files[t].name, keys[t])]
    skipped = len(wanted) - len(todo)
    summary = {"output": str(output), "frames": len(wanted), "skipped": skipped, "computed": len(todo),
               "manifest": str(output / MANIFEST),
               "motion": "blender vector pass" if args.motion else
               ("optical flow" if hyper["guide"] != "none" else "none")}
    run = _run_on_ray if args.ray else _run_here
    summary.update(run(args, files, todo, keys, hyper, output, job, progress, skipped))
    summary["partial_files_removed"] = _sweep_partials(output)
    return summary


def _sweep_partials(output):
    """Remove the temporary files of writes cut short by a killed process (atomic_path's ``.NAME.*.partial.*``):
    once the job is complete no task of it can still be writing."""
    removed = 0
    for folder in (Path(output), Path(output) / MANIFEST):
        for path in folder.glob(".*.partial*"):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _chunks(args, files, todo, keys, hyper, size, defer_mixture=False):
    """(chunk records, inputs) of ``size`` frames each, computed in the guide's order."""
    records, inputs = [], []
    if not todo:
        return
    for t, x in iter_inputs(files, todo, hyper, args.motion, defer_mixture):
        records.append((t, files[t].name, keys[t]))
        inputs.append(x)
        if len(records) == size:
            yield records, np.stack(inputs)
            records, inputs = [], []
    if records:
        yield records, np.stack(inputs)


def _run_here(args, files, todo, keys, hyper, output, job, progress, skipped):
    from ..device import cpu_threads, torch_device
    from ..stylize import model as sty
    generator, _ = sty.load(args.model)
    device = torch_device()
    if device.type == "cpu":
        cpu_threads()
    progress.stage("stylising", len(todo) + skipped)
    done = skipped
    progress.update(done)
    for records, inputs in _chunks(args, files, todo, keys, hyper, 1):
        for (t, name, key), image in zip(records, sty.stylize_frames(generator, inputs, tile=args.tile,
                                                                      device=device)):
            write_frame(output, name, image, key)
            done += 1
            progress.update(done, frame=name)
    return {"device": device.type, "tasks": 0}


def _run_on_ray(args, files, todo, keys, hyper, output, job, progress, skipped):
    from .cluster import connect, disconnect, slots
    started = time.monotonic()
    ray = connect(args.ray)
    connected = time.monotonic() - started
    try:
        workers = slots(ray, args.num_cpus, args.num_gpus)
        chunk = args.chunk or max(1, min(16, math.ceil(len(todo) / (4 * workers)))) if todo else 1
        remote = ray.remote(stylize_chunk).options(num_cpus=args.num_cpus, num_gpus=args.num_gpus,
                                                   max_retries=args.retries, name="atelier_stylize_chunk")
        model_ref = ray.put(Path(args.model).read_bytes())  # shipped once; every task reads this object
        progress.stage(f"stylising on Ray ({workers} workers)", len(todo) + skipped)
        done, submitted, pending, pids, devices, task_seconds = skipped, 0, {}, set(), set(), 0.0
        deferred = hyper["guide"] != "none" and args.guides_in_tasks
        source = _chunks(args, files, todo, keys, hyper, chunk, deferred)
        exhausted = False
        try:
            while pending or not exhausted:
                while not exhausted and len(pending) < 2 * workers:  # keep every worker busy, no more
                    try:
                        records, inputs = next(source)
                    except StopIteration:
                        exhausted = True
                        break
                    ref = remote.remote(model_ref, ray.put(inputs), records, str(output), job, args.tile,
                                        hyper["seed"] if deferred else None)
                    pending[ref] = len(records)
                    submitted += 1
                    progress.update(done, tasks=submitted)
                if not pending:
                    break
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.1)
                for ref in ready:
                    pending.pop(ref)
                    result = _get(ray, ref)
                    done += len(result["frames"])
                    pids.add(result["pid"])
                    devices.add(result["device"])
                    task_seconds += result["seconds"]
                progress.update(done, tasks=submitted)  # also where Esc (cancel) is noticed
        except (KeyboardInterrupt, Cancelled):
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        return {"tasks": submitted, "chunk": chunk, "workers": workers, "worker_processes": len(pids),
                "connect_seconds": round(connected, 3), "task_seconds": round(task_seconds, 3),
                "device": ",".join(sorted(devices)) or "none", "ray": args.ray}
    finally:
        disconnect()


def _get(ray, ref):
    """A task's result; an AtelierError raised in the task comes out as itself."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as error:
        cause = error.as_instanceof_cause()
        if isinstance(cause, AtelierError) or isinstance(getattr(error, "cause", None), AtelierError):
            raise AtelierError(str(getattr(error, "cause", cause))) from None
        raise


# ----------------------------------------------------------------------------- remote training

def _ship_files(paths):
    """{relative name: bytes} of files and folders, so a remote node needs no shared storage."""
    shipped = {}
    for key, path in paths.items():
        if path is None:
            continue
        path = Path(path)
        if path.is_dir():
            for item in sorted(path.iterdir()):
                if item.is_file():
                    shipped[f"{key}/{item.name}"] = item.read_bytes()
        elif path.exists():
            shipped[key] = path.read_bytes()
    return shipped


class _RemoteProgress:
    """Progress inside a remote task: forwarded to the driver's relay actor, which also carries Esc."""

    def __init__(self, relay):
        from ..progress import Progress
        self.base = Progress()
        self.relay, self.last = relay, 0.0

    def stage(self, description, total=None):
        self.base.stage(description, total)
        self.update(0)

    def update(self, done, **figures):
        import ray
        now = time.monotonic()
        if now - self.last < 0.25:
            return
        self.last = now
        figures = {k: v for k, v in figures.items() if isinstance(v, (int, float, str))}
        if ray.get(self.relay.report.remote(self.base.description, self.base.total, done, figures)):
            raise Cancelled("cancelled from the driver")


class ProgressRelay:
    """Ray actor between a remote training task and the driver: progress in, cancel out."""

    def __init__(self):
        self.state, self.cancelled = None, False

    def report(self, stage, total, done, figures):
        self.state = (stage, total, done, figures)
        return self.cancelled

    def latest(self):
        return self.state

    def cancel(self):
        self.cancelled = True


def train_task(argv, shipped, relay):
    """Ray task: run ``atelier stylize train`` on files shipped as bytes; returns the model (and the
    --stylize-to frames) as bytes, also after a cancel (the last checkpoint)."""
    from ..cli import run_command
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for name, data in shipped.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(data)
        argv = [word.replace("@@", folder) for word in argv]
        progress = _RemoteProgress(relay)
        try:
            summary, cancelled = run_command(argv, progress), False
        except (Cancelled, KeyboardInterrupt):
            summary, cancelled = {}, True
        model = root / "out" / "model.safetensors"
        frames = root / "out" / "stylized"
        import socket
        return {"summary": summary, "cancelled": cancelled, "node": socket.gethostname(),
                "model": model.read_bytes() if model.exists() else None,
                "frames": {p.name: p.read_bytes() for p in sorted(frames.iterdir())} if frames.is_dir() else {}}


def train_on_ray(args, progress):
    """``atelier stylize train ... --ray ADDRESS [--num-gpus G]``: the whole training as one Ray task
    with that resource request; inputs travel as bytes, the model comes back and is written here."""
    from ..atomic import atomic_directory, write_bytes_atomic
    from .cluster import connect, disconnect
    output = Path(args.output)
    if output.exists() and not args.force:
        raise AtelierError(f"{output}: already exists; choose another file or pass --force")
    if args.stylize_to and Path(args.stylize_to).exists() and not args.force:
        raise AtelierError(f"{args.stylize_to}: already exists; choose another folder or pass --force")
    paths = {"frames": args.frames, "motion": args.motion}
    argv = ["stylize", "train", "--frames", "@@/frames", "-o", "@@/out/model.safetensors", "--steps" if args.steps
            else "--minutes", str(args.steps if args.steps else args.minutes), "--config", args.config,
            "--guide", args.guide, "--adversarial", str(args.adversarial), "--lr", str(args.lr),
            "--seed", str(args.seed)]
    for option, items in (("--keyframe", args.keyframe), ("--mask", args.mask)):
        for i, item in enumerate(items or ()):
            index, _, path = item.partition("=")
            key = f"{option[2:]}{i}{Path(path).suffix}"
            paths[key] = path
            argv += [option, f"{index}=@@/{key}"]
    if args.motion:
        argv += ["--motion", "@@/motion"]
    if args.patch:
        argv += ["--patch", str(args.patch)]
    if args.prefilter:
        argv.append("--prefilter")
    if args.stylize_to:
        argv += ["--stylize-to", "@@/out/stylized"]
    for key, path in paths.items():
        if path is not None and not Path(path).exists():
            raise AtelierError(f"{path}: no such file or folder")
    ray = connect(args.ray)
    try:
        relay = ray.remote(ProgressRelay).options(num_cpus=0).remote()
        task = ray.remote(train_task).options(num_cpus=args.num_cpus, num_gpus=args.num_gpus, max_retries=0)
        ref = task.remote(argv, ray.put(_ship_files(paths)), relay)
        progress.stage("training on Ray", 1)
        try:
            while not ray.wait([ref], timeout=0.2)[0]:
                state = ray.get(relay.latest.remote())
                if state:
                    stage, total, done, figures = state
                    if stage != progress.description:
                        progress.stage(f"{stage} (Ray)", total)
                    progress.update(done, **figures)
                else:
                    progress.update(0)
        except (KeyboardInterrupt, Cancelled):
            ray.get(relay.cancel.remote())  # the task stops, keeps its last checkpoint and returns it
            try:
                result = ray.get(ref, timeout=60)
                if result["model"]:
                    write_bytes_atomic(output, result["model"])
            except Exception:
                ray.cancel(ref, force=True)
            raise
        result = _get(ray, ref)
    finally:
        disconnect()
    if result["model"] is None:
        raise AtelierError("the Ray task returned no model")
    write_bytes_atomic(output, result["model"])
    summary = {**result["summary"], "model": str(output), "ray": args.ray, "node": result["node"],
               "num_gpus": args.num_gpus}
    summary.pop("command", None), summary.pop("seconds", None)
    if args.stylize_to:
        with atomic_directory(args.stylize_to, args.force) as folder:
            for name, data in result["frames"].items():
                (folder / name).write_bytes(data)
        summary["output"] = str(args.stylize_to)
    return summary
