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
2000-step render's figures.  Training's nearest-patch term is ``normalized`` made differentiable,
so every render also gets the judge's independent ``stats`` figure (``*_stats``, ``stats``), and
the pictures show what the figures score: --picture (the presets beside their exemplars,
docs/images/nca_presets.png) and --set --sheet (the benchmark set, docs/images/nca_set.png).

Training speed (``training_speed``) compares three loops on the same exemplar: the training loop as
shipped, the published μNCA notebook's loop with its own optimal-transport loss, and that loop with
Atelier's sliced-Wasserstein loss.  Timings depend on the machine's load: the report gives the load
average; say so when quoting them.
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
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.nca import codegen, files  # noqa: E402
from core.nca.exemplars import CATEGORY, PHOTO_CROP, PHOTOS, PRESETS, exemplar_paths, photo_crop  # noqa: E402
from core.nca.palette import palette  # noqa: E402
from core.nca.render import run_states  # noqa: E402
from core.nca.quantize import to_binary  # noqa: E402
from core.nca.runtime import Runtime, to_rgb  # noqa: E402
from core.nca.rule import channels_for, seed_state  # noqa: E402
from core.progress import Progress  # noqa: E402

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


def quality(model, exemplar):
    """Judge figures: float and int8 at 1000 steps, float at 2000 steps (256x256, fresh seed).

    Training's nearest-patch term is the judge's ``normalized`` made differentiable, so each render
    also gets the judge's ``stats`` (``<render>_stats``: sliced Wasserstein of 5x5 patches per
    Laplacian band, a figure training does not optimise)."""
    s1000, s2000 = grown(model)
    q1000 = grown(model, quantized=True)[0]
    figures = {}
    for name, state in (("float_1000", s1000), ("int8_1000", q1000), ("float_2000", s2000)):
        judged = judge_figures(to_rgb(state), exemplar)
        figures[name], figures[name + "_stats"] = judged["normalized"], judged["stats"]
    return figures


class _IterationClock(Progress):
    """Records when each training iteration ends (train_many reports every iteration)."""

    def __init__(self):
        super().__init__()
        self.ends, self.cpu_ends = [], []

    def update(self, done, **figures):
        if "iteration" in figures:
            self.ends.append(time.perf_counter())
            self.cpu_ends.append(time.process_time())


def shipped_loop(exemplar, params, iterations, seed):
    """The training loop as shipped (``core.nca.train.train`` with its defaults: the nearest-patch
    term, quantisation-aware fine-tuning over the last fifth, evaluations) for ``iterations``
    iterations.  Returns the wall and CPU seconds of each iteration that did not evaluate and the
    seconds of one evaluation.

    With ``iterations`` set, train evaluates after the first and the last iteration and once more
    on the way out (beside every ``eval_every_s`` seconds, as a timed run does): those iterations
    are left out, and the last evaluation, which ends the call, times one evaluation."""
    from core.nca.train import train
    clock = _IterationClock()
    started = time.perf_counter(), time.process_time()
    train(exemplar, None, params=params, iterations=iterations, seed=seed, progress=clock)
    ended = time.perf_counter(), time.process_time()
    evaluation = ended[0] - clock.ends[-1], ended[1] - clock.cpu_ends[-1]
    every = _eval_every_s()
    wall, cpu, last = [], [], clock.ends[0] - evaluation[0]
    for k in range(1, len(clock.ends) - 1):
        seconds = clock.ends[k] - clock.ends[k - 1], clock.cpu_ends[k] - clock.cpu_ends[k - 1]
        if clock.ends[k] - last >= every + evaluation[0] / 2:  # this iteration evaluated too
            last = clock.ends[k] - evaluation[0]
            continue
        wall.append(seconds[0])
        cpu.append(seconds[1])
    return {"wall": wall, "cpu": cpu, "evaluation": evaluation, "call": ended[0] - started[0]}


def _eval_every_s():
    import inspect
    from core.nca.train import train_many
    return inspect.signature(train_many).parameters["eval_every_s"].default


# ── The published μNCA notebook's training loop, rewritten for the speed comparison ──────────
# Mordvintsev & Niklasson 2021, "μNCA: Texture Generation with Ultra-Compact Neural Cellular
# Automata", https://arxiv.org/abs/2111.13545, and the authors' PyTorch colab (μNCA_pytorch.ipynb
# in google-research/self-organising-systems).  Its loss is the optimal-transport distance of
# geomloss's ``SamplesLoss()`` (debiased Sinkhorn divergence, p = 2, blur 0.05, ε-scaling 0.5)
# between 5x5 patches of a 5-level unsharp-masked pyramid; no VGG.

def _notebook_kernels(channels):
    """The notebook's filters, unscaled and grouped by kind (Laplacians first, then Sobel x and
    Sobel y), as (C, 3, 3) cross-correlations like perception_kernels."""
    from core.nca.rule import LAPLACIAN, SOBEL_X, SOBEL_Y
    laplacians, sobels = {4: (2, 1), 6: (2, 2), 8: (4, 2), 12: (4, 4)}[channels]
    return np.stack([LAPLACIAN * 16] * laplacians + [SOBEL_X * 8] * sobels + [SOBEL_Y * 8] * sobels)


def _gaussian_blur5(images):
    """torchvision's ``gaussian_blur(images, [5, 5], [1, 1])``: a 5-tap Gaussian of σ = 1, both
    directions, reflected at the borders."""
    import torch
    import torch.nn.functional as F
    taps = torch.exp(-0.5 * torch.arange(-2.0, 3.0) ** 2)
    taps = (taps / taps.sum()).to(images)
    channels = images.shape[1]
    x = F.pad(images, (2, 2, 2, 2), mode="reflect")
    x = F.conv2d(x, taps.view(1, 1, 1, 5).expand(channels, 1, 1, 5), groups=channels)
    return F.conv2d(x, taps.view(1, 1, 5, 1).expand(channels, 1, 5, 1), groups=channels)


def notebook_patches(images, levels=5, patch=5):
    """The notebook's texture features: at each of ``levels`` octaves the image sharpened by an
    unsharp mask (image + 2·(image - blurred)), cut into every patch x patch window
    -> per level (B, windows, 3·patch²)."""
    import torch.nn.functional as F
    features = []
    for level in range(levels):
        blurred = _gaussian_blur5(images)
        features.append(F.unfold(images + 2.0 * (images - blurred), patch).transpose(1, 2))
        images = blurred[:, :, ::2, ::2]
    return features


def sinkhorn_divergence(x, y, blur=0.05, scaling=0.5):
    """geomloss's ``SamplesLoss()`` (its defaults, tensorized backend) between point clouds x (B, N, D)
    and y (B, M, D) of uniform weights a = 1/N, b = 1/M, per batch entry:

        S_ε(a, b) = OT_ε(a, b) - ½ OT_ε(a, a) - ½ OT_ε(b, b),   C(x, y) = ½|x - y|²,  ε = blur²
                  = ⟨a, f_ba - f_aa⟩ + ⟨b, g_ab - g_bb⟩

    with the dual potentials of the symmetric Sinkhorn iterations, each a soft C-transform
    f_i = -ε log Σ_j b_j exp((g_j - C(x_i, y_j)) / ε), averaged with its previous value, while ε
    falls from diameter² by scaling² a step to blur² (Feydy et al. 2019, arXiv:1810.08278).  The
    iterations run without gradients; one last extrapolation with gradients gives the gradient."""
    import torch

    def cost(p, q):
        return ((p * p).sum(-1)[:, :, None] - 2 * p @ q.transpose(1, 2) + (q * q).sum(-1)[:, None, :]) / 2

    def softmin(eps, c, h):
        return -eps * (h[:, None, :] - c / eps).logsumexp(2)

    a_log = x.new_full(x.shape[:2], -float(np.log(x.shape[1])))
    b_log = y.new_full(y.shape[:2], -float(np.log(y.shape[1])))
    c_xy, c_yx, c_xx, c_yy = cost(x, y.detach()), cost(y, x.detach()), cost(x, x.detach()), cost(y, y.detach())
    points = torch.cat([x.detach().flatten(0, 1), y.detach().flatten(0, 1)])
    diameter = (points.amax(0) - points.amin(0)).norm().item()
    epsilons = ([diameter ** 2] + np.exp(np.arange(2 * np.log(diameter), 2 * np.log(blur), 2 * np.log(scaling))).tolist()
                + [blur ** 2])
    with torch.no_grad():
        eps = epsilons[0]
        g_ab, f_ba, f_aa, g_bb = (softmin(eps, c_yx, a_log), softmin(eps, c_xy, b_log),
                                  softmin(eps, c_xx, a_log), softmin(eps, c_yy, b_log))
        for eps in epsilons:
            f_ba, g_ab, f_aa, g_bb = ((f_ba + softmin(eps, c_xy, b_log + g_ab / eps)) / 2,
                                      (g_ab + softmin(eps, c_yx, a_log + f_ba / eps)) / 2,
                                      (f_aa + softmin(eps, c_xx, a_log + f_aa / eps)) / 2,
                                      (g_bb + softmin(eps, c_yy, b_log + g_bb / eps)) / 2)
    eps = epsilons[-1]
    f_ba, g_ab, f_aa, g_bb = (softmin(eps, c_xy, b_log + g_ab / eps), softmin(eps, c_yx, a_log + f_ba / eps),
                              softmin(eps, c_xx, a_log + f_aa / eps), softmin(eps, c_yy, b_log + g_bb / eps))
    return ((f_ba - f_aa) * a_log.exp()).sum(1) + ((g_ab - g_bb) * b_log.exp()).sum(1)


class NotebookLoss:
    """The notebook's texture loss: per pyramid level, 1024 random windows of each synthesised image
    against 2048 of the exemplar (the same picks for the whole batch), the Sinkhorn divergence
    averaged over the batch, summed over levels."""

    def __init__(self, target):
        self.targets = notebook_patches(target)

    def __call__(self, images):
        import torch
        loss = 0.0
        for x, y in zip(notebook_patches(images), self.targets):
            x, y = (v[:, torch.multinomial(torch.ones(v.shape[1]), n)] if v.shape[1] > n else v
                    for v, n in ((x, 1024), (y, 2048)))
            loss = loss + sinkhorn_divergence(x, y.expand(len(x), -1, -1)).mean()
        return loss


class AtelierLossInNotebook:
    """The notebook loop with Atelier's multi-scale sliced-Wasserstein loss (core.nca.train,
    as training computes it: the C kernels on a CPU) in place of the notebook's."""

    def __init__(self, target):
        from core.nca.train import SlicedWasserstein
        self.loss = SlicedWasserstein(target)

    def __call__(self, images):
        return self.loss(images[None]).sum()


class NotebookLoop:
    """The notebook's training loop: a pool of 256 noise seeds; each iteration a batch of 4 (the first
    replaced by a fresh seed every 8th iteration) runs 32-127 steps of the rule in eager torch with
    autograd through every step, each step's state gradient normalised per sample on the way back;
    loss = texture loss + Σ (s - clamp(s, -1, 1))²; each parameter's gradient normalised, Adam at
    1e-3 with steps down at 1000 and 4000 iterations.  Every 64 iterations it grows a fresh seed
    3000 steps and scores it (the plots it also draws then are not ported)."""

    def __init__(self, channels, target, loss_class, seed):
        import torch
        self.kernels = torch.from_numpy(_notebook_kernels(channels))
        self.w = torch.nn.Parameter(torch.randn(channels, 4 * channels + 1) * 1e-3)  # the bias is the last column
        self.optimizer = torch.optim.Adam([self.w], 1e-3)
        self.schedule = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, [1000, 4000], 0.3)
        self.texture_loss = loss_class(target)
        self.rng = np.random.default_rng(seed)
        self.pool = self.seeds(256)
        self.iteration = 0

    def seeds(self, n):
        import torch
        return torch.from_numpy(seed_state(self.rng, n, self.kernels.shape[0], 128, 128))

    def step(self, x):
        from core.nca.model import reference_step
        return reference_step(x, self.kernels, self.w[:, :-1], self.w[:, -1])

    def loss(self, x):
        return self.texture_loss(x[:, :3] + 0.5) + (x - x.clamp(-1.0, 1.0)).square().sum()

    def train_step(self, clock):
        """One iteration -> clock readings after the rollout, the loss's forward and backward pass,
        and the backward pass through time (the same gradients as one backward through both)."""
        import torch
        import torch.nn.functional as F
        index = self.rng.choice(len(self.pool), 4, replace=False)
        x = self.pool[index]
        if self.iteration % 8 == 0:
            x[:1] = self.seeds(1)
        steps = int(self.rng.integers(32, 128))
        readings = [clock()]
        for k in range(steps):
            x = self.step(x)
            if k < steps - 1:  # the last state's gradient is normalised below
                x.register_hook(partial(F.normalize, dim=[1, 2, 3]))
        readings.append(clock())
        final = x.detach().requires_grad_()
        self.loss(final).backward()
        readings.append(clock())
        x.backward(F.normalize(final.grad, dim=[1, 2, 3]))
        with torch.no_grad():
            self.w.grad /= self.w.grad.norm() + 1e-8
            self.optimizer.step()
            self.optimizer.zero_grad()
            self.schedule.step()
            self.pool[index] = x.detach()
        readings.append(clock())
        self.iteration += 1
        return steps, np.diff(np.array(readings), axis=0)

    def evaluation_seconds(self, steps=3000, timed_steps=300):
        """Seconds of the notebook's look at long-term behaviour, every 64 iterations: ``steps`` steps
        from a seed, then the loss.  ``timed_steps`` of them are timed and scaled (no gradients, so
        every step costs the same)."""
        import torch
        with torch.no_grad():
            started = time.perf_counter()
            x = self.seeds(1)
            for _ in range(timed_steps):
                x = self.step(x)
            growing = (time.perf_counter() - started) * steps / timed_steps
            started = time.perf_counter()
            self.loss(x.clip(-1, 1))
            return growing + time.perf_counter() - started


LOOPS = ("shipped", "notebook_sliced_wasserstein", "notebook_sinkhorn")
MEAN_ROLLOUT = (32 + 127) / 2  # every loop here draws its rollouts from 32-127 steps


def training_speed(params, rounds=3, iterations=12, exemplar=None):
    """Seconds per training iteration of three loops on the same exemplar (bench/textures/bubbles.png,
    128x128, batch 4), the evaluations each loop makes included at its own rate:

    shipped:                      core.nca.train.train with its defaults (``shipped_loop``);
    notebook_sinkhorn:            the published notebook's loop with its own loss (``NotebookLoop``,
                                  ``NotebookLoss``);
    notebook_sliced_wasserstein:  the same loop with Atelier's sliced-Wasserstein loss.

    The loops take turns, one round at a time (``iterations`` shipped iterations, then one notebook
    iteration of each kind, the order rotating), and the first round only warms up: this machine's
    speed drifts within a minute and other jobs share it, so timing one loop after the other would
    measure the drift as much as the code.  A notebook iteration's rollout and backward pass through
    time are scaled to the mean rollout (the cost is linear in steps), so one iteration stands for the
    mean; the shipped loop's rollouts are its own draws (seed = round), averaged over its iterations.
    The speed-up of each notebook loop is the median over rounds of its time over the shipped loop's
    in the same round."""
    import torch
    from core.nca.train import load_exemplar
    from core.nca.kernels import kernel_report
    exemplar = exemplar or SET / "bubbles.png"
    load_at_start = os.getloadavg()[0]  # timings suffer on a busy machine
    channels = channels_for(params)
    target = torch.from_numpy(np.moveaxis(load_exemplar(exemplar), -1, 0))[None]
    notebook = {"notebook_sinkhorn": NotebookLoop(channels, target, NotebookLoss, seed=0),
                "notebook_sliced_wasserstein": NotebookLoop(channels, target, AtelierLossInNotebook, seed=0)}

    def clock():
        return time.perf_counter(), time.process_time()

    rounds_wall, rounds_cpu = {name: [] for name in LOOPS}, {name: [] for name in LOOPS}
    splits, shipped_evaluations, shipped_timed = {name: [] for name in notebook}, [], 0
    for r in range(rounds + 1):
        for name in LOOPS[r % 3:] + LOOPS[:r % 3]:
            if not r and name == "notebook_sinkhorn":
                continue  # a minute an iteration: its first-call overheads do not show
            if name == "shipped":
                run = shipped_loop(exemplar, params, iterations if r else 3, seed=r)
                wall, cpu = float(np.mean(run["wall"])), float(np.mean(run["cpu"]))
                shipped_evaluations.append(run["evaluation"][0])
                shipped_timed += len(run["wall"]) if r else 0
            else:
                steps, seconds = notebook[name].train_step(clock)  # (rollout, loss, backward through time) x clocks
                seconds = seconds * np.array([[MEAN_ROLLOUT / steps], [1.0], [MEAN_ROLLOUT / steps]])
                wall, cpu = seconds.sum(0)
                if r:
                    splits[name].append(seconds[:, 0])
            if r:  # round 0 warms up: kernels compiled or loaded, first allocations
                rounds_wall[name].append(wall)
                rounds_cpu[name].append(cpu)
    every = _eval_every_s()
    evaluation = {"shipped": float(np.median(shipped_evaluations[1:]))}
    for name, loop in notebook.items():
        evaluation[name] = loop.evaluation_seconds()

    def with_evaluations(name, seconds):
        """The shipped loop evaluates every ``eval_every_s`` seconds (the clock starts as each
        evaluation starts), the notebook every 64 iterations."""
        if name == "shipped":
            return seconds * every / max(every - evaluation[name], 1e-9)
        return seconds + evaluation[name] / 64

    per_round = {name: [with_evaluations(name, s) for s in rounds_wall[name]] for name in LOOPS}
    result = {"params": params, "exemplar": Path(exemplar).name, "rounds": rounds,
              "load_average": [round(load_at_start, 2), round(os.getloadavg()[0], 2)],
              "shipped_iterations_timed": shipped_timed,
              "kernel": kernel_report(channels)["kernel"], "threads": torch.get_num_threads(),
              "seconds_per_iteration": {name: round(float(np.mean(per_round[name])), 3) for name in LOOPS},
              "seconds_per_iteration_range": {name: [round(min(v), 3), round(max(v), 3)]
                                              for name, v in per_round.items()},
              "without_evaluations": {name: round(float(np.mean(rounds_wall[name])), 3) for name in LOOPS},
              "cpu_seconds_without_evaluations": {name: round(float(np.mean(rounds_cpu[name])), 3) for name in LOOPS},
              "evaluation_seconds": {name: round(v, 2) for name, v in evaluation.items()},
              "evaluations": {"shipped": f"every {every:g} s", "notebook": "every 64 iterations"},
              "notebook_split": {name: dict(zip(("rollout", "loss", "backward_through_time"),
                                                np.round(np.mean(v, 0), 3).tolist())) for name, v in splits.items()},
              "speedup": {}}
    for name in notebook:
        ratios = [n / s for n, s in zip(per_round[name], per_round["shipped"])]
        result["speedup"][name] = {"median": round(float(np.median(ratios)), 1),
                                   "range": [round(min(ratios), 1), round(max(ratios), 1)]}
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
                judged = ([f"judge {r['normalized']:.2f}", f"judge stats {r['stats']:.2f}"] if "normalized" in r
                          else ["no judge"])
                caption = judged + [f"structure {r['structure']:.2f}", f"palette {r['palette_kept']}/{r['palette_colours']}",
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
    parser.add_argument("--speed-params", default="68,588", help="model sizes of the training-speed comparison")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds of the training-speed comparison")
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
        report["training_speed"] = {p: training_speed(int(p), rounds=args.rounds)
                                    for p in args.speed_params.split(",")}
        report["load_average_after_speed"] = round(os.getloadavg()[0], 2)
    if not args.skip_runtimes:
        smallest = next(m for m in map(files.load, sorted(PRESETS.glob("*.safetensors"))) if m.params == 68)
        report["runtime_steps_per_second_68"] = runtime_speeds(smallest)
    if score and not args.skip_presets:
        report["presets"] = {}
        for path in sorted(PRESETS.glob("*.safetensors")):
            model = files.load(path)
            report["presets"][path.stem] = {"params": model.params, "bytes_compact": len(to_binary(model.quantized)),
                                            **quality(model, exemplar_paths()[path.stem])}
    if args.calibrate and score:
        report["another_crop_of_the_photo"] = another_crop(score)
    if args.picture:
        write_picture(args.picture)
        report["picture"] = args.picture
    if args.train and score:
        from core.nca.train import train
        bar = {}
        with tempfile.TemporaryDirectory() as folder:
            for params, minutes, kinds in ((68, args.minutes68, ("pattern",)), (588, args.minutes588, ("pattern", "irregular", "photo"))):
                for name, exemplar in exemplar_paths(kinds).items():
                    summary, model = train(exemplar, Path(folder) / f"{name}_{params}.safetensors",
                                           params=params, minutes=minutes)
                    bar[f"{name}_{params}"] = {"kind": CATEGORY[name], "minutes": minutes, "iterations": summary["iterations"],
                                               **quality(model, exemplar)}
        report["quality_bar"] = bar
    print(json.dumps(report))


if __name__ == "__main__":
    main()
