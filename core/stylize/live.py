"""Interactive stylisation: the artist paints on a keyframe while the network trains, and previews of
other frames follow (the interactive session of Texler et al. 2020, §4).

    atelier stylize live --frames DIR --keyframe 0=key.png --preview 5,12,20 --watch -o PREVIEW_DIR
                         [--model MODEL_OUT]

One process keeps the generator and its Adam state for the whole session.  With ``--watch`` it looks
at the keyframe files between training steps; a changed painting replaces the training targets
in place (no restart, no new optimiser), and for the next FOCUS_STEPS steps half of every batch is
drawn from the changed region, so the change reaches the previews in seconds rather than after the
network has revisited that region by chance, and the learning rate restarts its decay.  The previews
and the saved model are a moving average of the weights (``LiveTrainer.averaged``): a session has no
end to anneal towards, and the average is as steady as annealing at whatever moment it stops.  Soon after a
change, then every PREVIEW_SECONDS, doubling up to MAX_PREVIEW_SECONDS while nothing changes, the
preview frames are stylised and written atomically under their frame names.  SIGINT, SIGTERM or the
worker's cancel stop the session, and the model is saved: stopping is how a live session ends.
"""

import copy
import math
import signal
import time
from pathlib import Path

import numpy as np

from ..errors import AtelierError, Cancelled
from ..schedule import warmup_cosine
from .defaults import LEARNING_RATE

PREVIEW_SECONDS = 3.0      # previews of the current network this often after a change, then
MAX_PREVIEW_SECONDS = 24.0  # ... twice as far apart each time while nothing changes, up to this
                           # (a preview pass costs as much as a few training steps on a CPU)
AFTER_CHANGE_SECONDS = 1.0  # ... and this soon after a keyframe changed (training on the change first)
WATCH_SECONDS = 0.25       # how often the keyframe files are looked at
FOCUS_STEPS = 120          # steps after a change in which half of each batch comes from the changed region:
                           # about 10 s on 2 cores; with 40 a small change faded again once sampling was uniform
CHANGE_THRESHOLD = 1.0 / 255  # a pixel moved by more than one 8-bit level is a painted change
LIVE_LR = LEARNING_RATE    # the batch trainer's peak rate
WARMUP_STEPS = 10          # about the batch trainer's 5 % of a minute's steps
DECAY_STEPS = 1000         # cosine from LIVE_LR down to LR_FLOOR x it over this many steps after each
LR_FLOOR = 0.1             # change: a warm restart, so a new painting is learnt fast; the long decay
                           # (about 90 s on 2 CPU cores) keeps learning, the weight average below keeps
                           # the previews as steady as an annealed rate would (300 steps learnt less)
AVERAGE_WARMUP = 10        # the previews and the saved model are a moving average of the weights whose
MAX_AVERAGE = 0.99         # ... decay (1 + t) / (AVERAGE_WARMUP + t), t steps since the last change, grows
                           # to this: it spans the last ~10 % of the steps since the change (at most ~100)


class LiveTrainer:
    """The generator, its optimiser and the keyframe patches, which can change between steps."""

    def __init__(self, inputs, keyframes, masks, config, device, seed=0):
        import torch
        from .model import Generator
        torch.manual_seed(seed)
        self.torch, self.config, self.device = torch, config, device
        self.rng = np.random.default_rng(seed)
        self.inputs = inputs                       # N x H x W x C network inputs of every frame
        self.order = sorted(keyframes)             # keyframe indices
        self.paintings = np.stack([keyframes[k] for k in self.order]).astype(np.float32)
        self.masks = np.stack([masks[k] for k in self.order]).astype(np.float32)
        self.generator = Generator(inputs.shape[-1], **config).to(device, memory_format=torch.channels_last)
        self.optimiser = torch.optim.Adam(self.generator.parameters(), lr=LIVE_LR, betas=(0.5, 0.999))
        self.averaged = copy.deepcopy(self.generator).requires_grad_(False)
        self.focus = None                          # (keyframe slot, centres) of the latest change
        self.focus_left = 0
        self.steps, self.loss, self.changed_at = 0, math.nan, 0
        self._sampler()

    def _sampler(self):
        from .model import PatchSampler
        self.sampler = PatchSampler(self.inputs[self.order], self.paintings, self.masks, self.config["patch"],
                                    self.rng)

    def update_keyframe(self, index, painting):
        """Replace keyframe ``index``'s painting; returns the changed pixels' bounding box (y0, y1, x0, x1)
        or None when nothing changed.  Weights and optimiser state stay."""
        slot = self.order.index(index)
        changed = np.abs(painting - self.paintings[slot]).max(-1) > CHANGE_THRESHOLD
        if not changed.any():
            return None
        self.paintings[slot] = painting
        self._sampler()
        half, patch = self.config["patch"] // 2, self.config["patch"]
        centres = self.sampler.centres[self.sampler.centres[:, 0] == slot]
        ys, xs = np.nonzero(changed)
        near = ((centres[:, 1] >= ys.min() - half) & (centres[:, 1] <= ys.max() + patch - half)
                & (centres[:, 2] >= xs.min() - half) & (centres[:, 2] <= xs.max() + patch - half))
        if near.any():
            self.focus, self.focus_left = centres[near], FOCUS_STEPS
        self.changed_at = self.steps  # restart the learning-rate cosine
        return int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1

    def _batch(self):
        batch = self.config["batch"]
        x, y = self.sampler.sample(batch)
        if self.focus_left > 0:  # half of the batch from the region just painted
            self.focus_left -= 1
            keep = self.sampler.centres
            self.sampler.centres = self.focus
            fx, fy = self.sampler.sample(batch // 2)
            self.sampler.centres = keep
            x, y = self.torch.cat([x[batch // 2:], fx]), self.torch.cat([y[batch // 2:], fy])
        return x.to(self.device), y.to(self.device)

    def learning_rate(self):
        """Warm-up over the session's first WARMUP_STEPS, then a cosine from LIVE_LR to LR_FLOOR x LIVE_LR
        over DECAY_STEPS, restarted by every keyframe change (SGDR, Loshchilov & Hutter 2017)."""
        if self.steps < WARMUP_STEPS:
            return LIVE_LR * (self.steps + 1) / WARMUP_STEPS
        return warmup_cosine(min(self.steps - self.changed_at, DECAY_STEPS) / DECAY_STEPS, LIVE_LR, floor=LR_FLOOR)

    def _update_average(self):
        """Polyak averaging with a warm-up (the schedule of TensorFlow's ExponentialMovingAverage):
        theta_avg <- beta theta_avg + (1 - beta) theta, beta = min(MAX_AVERAGE, (1 + t) / (AVERAGE_WARMUP + t)).
        A live session has no end to anneal the learning rate towards, so the average does what the
        batch trainer's decay to zero does (it cancels Adam's step noise), at whatever moment the artist
        stops; restarting t at a change keeps the previews on the new painting within a few steps."""
        t = self.steps - self.changed_at
        beta = min(MAX_AVERAGE, (1 + t) / (AVERAGE_WARMUP + t))
        with self.torch.no_grad():
            for average, current in zip(self.averaged.parameters(), self.generator.parameters()):
                average.lerp_(current, 1 - beta)

    def step(self):
        import torch.nn.functional as F
        from torch import nn
        from .model import LOSS_SMOOTHING, pyramid_loss
        for group in self.optimiser.param_groups:
            group["lr"] = self.learning_rate()
        x, y = self._batch()
        out = self.generator(x)
        loss = F.l1_loss(out, y) + pyramid_loss(out, y)
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.generator.parameters(), 1.0)
        self.optimiser.step()
        self._update_average()
        self.steps += 1
        self.loss = loss.item() if math.isnan(self.loss) else LOSS_SMOOTHING * self.loss + (1 - LOSS_SMOOTHING) * loss.item()

    def stylize(self, indices):
        from .model import stylize_frames
        with self.torch.no_grad():
            return stylize_frames(self.averaged.eval(), self.inputs[indices], device=self.device)


class KeyframeWatcher:
    """Notices when painted keyframe files change (size or modification time), then re-reads them."""

    def __init__(self, files, size):
        self.files, self.size = files, size
        self.stamps = {index: self._stamp(path) for index, path in files.items()}

    @staticmethod
    def _stamp(path):
        try:
            info = Path(path).stat()
        except OSError:
            return None
        return info.st_size, info.st_mtime_ns

    def changed(self):
        """``{index: painting}`` of the keyframes whose file changed since the last call and reads whole."""
        from .frames import read_keyframe
        found = {}
        for index, path in self.files.items():
            stamp = self._stamp(path)
            if stamp is None or stamp == self.stamps[index]:
                continue
            try:
                found[index] = read_keyframe(path, self.size)
            except AtelierError:
                continue  # half-written by a program that does not write atomically: next look
            self.stamps[index] = stamp
        return found


def live_command(args, progress):
    from . import frames as seq
    from . import model as sty
    from .guides import build_inputs
    from ..device import cpu_threads, torch_device
    from ..imageio import write_image
    frames, files = seq.read_frames(args.frames)
    n, size = len(frames), frames.shape[1:3]
    keyframe_files = seq.parse_indexed(args.keyframe, "--keyframe", n)
    if not keyframe_files:
        raise AtelierError("--keyframe INDEX=PAINTED.png is required (at least one painted frame)")
    masks = seq.parse_indexed(args.mask, "--mask", n)
    previews = _preview_indices(args.preview, n)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    device = torch_device()
    if device.type == "cpu":
        cpu_threads()
    config = dict(sty.CONFIGS["fast"])
    reference = min(keyframe_files)
    progress.stage("guides", 1)
    inputs = build_inputs(frames, None, reference, "gaussian", args.seed)
    trainer = LiveTrainer(inputs, {k: seq.read_keyframe(p, size) for k, p in keyframe_files.items()},
                          {k: seq.read_mask(masks[k], size) if k in masks else np.ones(size, np.float32)
                           for k in keyframe_files}, config, device, args.seed)
    watcher = KeyframeWatcher(keyframe_files, size) if args.watch else None
    meta = {"hyperparameters": {"in_channels": int(inputs.shape[-1]), "config": config, "guide": "gaussian",
                                "prefilter": False, "reference": reference, "seed": args.seed, "adversarial": 0.0,
                                "lr": LIVE_LR},
            "training": {"frames": n, "size": [int(size[1]), int(size[0])], "keyframes": sorted(keyframe_files),
                         "motion": "optical flow", "live": True}}

    def write_previews():
        for index, image in zip(previews, trainer.stylize(previews)):
            write_image(output / (files[index].stem + ".png"), image)

    started = time.monotonic()
    next_preview, next_look, changes, previews_written = started, started, 0, 0
    preview_every = PREVIEW_SECONDS
    budget = args.minutes * 60.0 if args.minutes else math.inf
    progress.stage("live training (stop to keep the model)", budget if math.isfinite(budget) else 1)
    stop = _stop_on_signals()
    try:
        while not stop["now"] and time.monotonic() - started < budget:
            now = time.monotonic()
            if watcher is not None and now >= next_look:
                next_look = now + WATCH_SECONDS
                for index, painting in watcher.changed().items():
                    if trainer.update_keyframe(index, painting) is not None:
                        changes += 1
                        next_preview = min(next_preview, now + AFTER_CHANGE_SECONDS)
                        preview_every = PREVIEW_SECONDS
            trainer.step()
            if time.monotonic() >= next_preview:
                write_previews()
                previews_written += 1
                next_preview = time.monotonic() + preview_every
                preview_every = min(2 * preview_every, MAX_PREVIEW_SECONDS)
            progress.update(min(time.monotonic() - started, budget) if math.isfinite(budget) else 0,
                            step=trainer.steps, loss=trainer.loss, changes=changes)
    except (Cancelled, KeyboardInterrupt):
        pass  # stopping is how a live session ends: keep what it learnt
    finally:
        stop["restore"]()
    write_previews()
    summary = {"previews": str(output), "preview_frames": [files[i].name for i in previews], "steps": trainer.steps,
               "loss": round(trainer.loss, 5), "keyframe_changes": changes, "previews_written": previews_written + 1,
               "seconds": round(time.monotonic() - started, 2)}
    if args.model:
        sty.save(args.model, trainer.averaged, {**meta, "training": {**meta["training"], **summary}})
        summary["model"] = str(args.model)
    return summary


def _preview_indices(words, count):
    """``--preview 5,12,20`` (0-based positions), or five evenly spaced frames."""
    if not words:
        return sorted({int(round(i)) for i in np.linspace(0, count - 1, min(5, count))})
    indices = []
    for word in words.split(","):
        if not word.strip().isdigit() or int(word) >= count:
            raise AtelierError(f"--preview {words}: {word.strip()!r} is not a frame index in 0..{count - 1}")
        indices.append(int(word))
    return sorted(set(indices))


def _stop_on_signals():
    """SIGINT and SIGTERM end the session gracefully (the model is kept); returns the flag and a restorer."""
    state = {"now": False}
    previous = {}

    def request_stop(signum, frame):
        state["now"] = True

    try:
        for number in (signal.SIGINT, signal.SIGTERM):
            previous[number] = signal.signal(number, request_stop)
    except ValueError:  # not the main thread (a library caller): cancel through progress instead
        pass
    state["restore"] = lambda: [signal.signal(number, handler) for number, handler in previous.items()]
    return state


def register_live(commands):
    """Add ``atelier stylize live`` to the ``atelier stylize`` sub-parser."""
    live = commands.add_parser("live", help="train while the keyframes are painted; previews follow",
                               description="Interactive stylisation: train on painted keyframes, watch their files, "
                                           "rewrite preview frames as the network improves; Ctrl-C/SIGTERM stops "
                                           "and keeps the model.")
    live.add_argument("--frames", required=True, help="folder of the sequence's 8-bit frames (PNG/JPEG)")
    live.add_argument("--keyframe", action="append", metavar="INDEX=PAINTED.png",
                      help="painted frame at 0-based INDEX of the sequence (repeatable)")
    live.add_argument("--mask", action="append", metavar="INDEX=MASK.png", help="white where keyframe INDEX is painted")
    live.add_argument("--preview", help="comma-separated 0-based frames to preview (default: 5 evenly spaced)")
    live.add_argument("--watch", action="store_true", help="retrain on the keyframe files whenever they change")
    live.add_argument("--minutes", type=float, help="stop by itself after this long (default: run until stopped)")
    live.add_argument("--model", help="model file written when the session stops (.safetensors)")
    live.add_argument("--seed", type=int, default=0)
    live.add_argument("-o", "--output", required=True, help="folder of the preview frames (rewritten in place)")
    live.set_defaults(run=live_command)
