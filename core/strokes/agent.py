"""StrokeNet agents: image -> strokes, trained through the frozen generator (Zheng et al. 2019, section 3.3).

Paper: Zheng, Jiang & Huang, "StrokeNet: A Neural Painting Environment", ICLR 2019,
https://openreview.net/forum?id=HJxwDiActX (no arXiv version).

* **single-step agent** - a VGG-like CNN (conv pairs, average pooling) on the target image with
  parallel heads: positions (tanh, n x 2), pressures (sigmoid, n), brush (sigmoid, 1).
  Loss = MSE(G(agent(target)), target) + lambda * sum_i |P_i - P_{i+1}|^2 (the neighbouring-point
  penalty keeps control points evenly along the stroke).
* **recurrent agent** - the same CNN sees the target and the current canvas (2 channels) and
  emits one stroke per step; the canvas follows the blending rule for black ink,
  ``canvas <- canvas + (1 - canvas) * G(stroke)`` (i.e. 1 - prod(1 - alpha)).  On characters
  whose strokes are known (KanjiVG, Hershey) it is trained by teacher forcing
  (:class:`TeacherForcing`): the canvas holds j of the character's strokes (or strokes the agent
  drew itself), and the stroke drawn should be one of those still missing (supervised: no
  generator pass, 3x cheaper a step on a CPU); on bare images, unrolled over ``steps`` strokes
  through the generator.

Both losses also compare blurred images (a 4x coarser view), which gives thin strokes a gradient
from further away.  At inference the strokes are optionally *refined*: Adam steps through the
differentiable real painter (``painter.render_alpha``) on the image loss at several scales plus a
chamfer distance between the strokes' spline samples and the target's ink, then strokes that do
not help are pruned; without refinement a recurrent drawing stops when a new stroke no longer
brings the real painter's ink closer to the target's.
"""

import time

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from ..errors import AtelierError, Cancelled
from ..modelfile import read_model, save_model
from ..schedule import warmup_cosine
from .constants import (AGENT_KIND, CHAMFER, FAINT, N_POINTS, PRUNE_TOLERANCE, R_MAX, R_MIN, REFINE_LR,
                        REFINE_POOLS, SIZE, SMOOTHNESS, brush_radius)
from .data import PEN_RADIUS, resample
from .painter import ink_union, render_alpha, render_polylines, stamp_cropped, stroke_samples

AGENT_LR_FLOOR = 0.05   # the agents' cosine ends at this share of the peak rate: their teacher keeps
                        # drawing new targets, so the last steps still learn rather than only settle


class Agent(nn.Module):
    """VGG-like encoder (average pooling) with the three parallel heads; ``inputs`` channels.

    With ``coordinates`` the encoder also sees each pixel's (x, y) as two more channels
    (CoordConv, Liu et al. 2018): convolutions are translation-invariant, and regressing
    positions through them alone learns slowly.
    """

    def __init__(self, inputs=1, width=32, coordinates=False):
        super().__init__()
        self.coordinates = coordinates
        layers, c = [], inputs + 2 * coordinates
        for out in (width, 2 * width, 4 * width, 4 * width):           # 64 -> 32 -> 16 -> 8 -> 4
            layers += [nn.Conv2d(c, out, 3, padding=1), nn.ReLU(), nn.Conv2d(out, out, 3, padding=1), nn.ReLU(),
                       nn.AvgPool2d(2)]
            c = out
        self.features = nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * 16, 256), nn.ReLU())
        self.positions = nn.Linear(256, N_POINTS * 2)
        self.pressures = nn.Linear(256, N_POINTS)
        self.brush = nn.Linear(256, 1)
        # He initialisation: torch's default shrinks activations about 1.7x a layer, so after ten
        # layers every image gave the same output and training stalled at the mean stroke
        for layer in self.modules():
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                nn.init.zeros_(layer.bias)
        for head in (self.positions, self.pressures, self.brush):
            nn.init.normal_(head.weight, std=0.01)

    def raw(self, x):
        """Pre-activation head outputs (B, n, 3) and (B,): what inference refinement optimises."""
        if self.coordinates:
            axis = torch.linspace(-1, 1, x.shape[-1], device=x.device, dtype=x.dtype)
            grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"))     # (2, H, W): x, y
            x = torch.cat([x, grid.expand(len(x), -1, -1, -1)], 1)
        h = self.features(x)
        return torch.cat([self.positions(h).view(-1, N_POINTS, 2), self.pressures(h)[..., None]], -1), \
            self.brush(h)[:, 0]

    def forward(self, x):
        return activate(*self.raw(x))


def activate(raw_points, raw_brush):
    """tanh for positions, sigmoid for pressures and brush."""
    return torch.cat([torch.tanh(raw_points[..., :2]), torch.sigmoid(raw_points[..., 2:])], -1), torch.sigmoid(raw_brush)


def image_loss(canvas, target, pools=(4,)):
    """MSE at full resolution plus MSE of average-pooled images (a wider basin for thin ink)::

        L_image = MSE(canvas, target) + sum_{k in pools} MSE(avgpool_k(canvas), avgpool_k(target))
    """
    coarse = sum(F.mse_loss(F.avg_pool2d(canvas[:, None], k), F.avg_pool2d(target[:, None], k)) for k in pools)
    return F.mse_loss(canvas, target) + coarse


def smoothness(points):
    """The neighbouring-point penalty sum_i |P_i - P_{i+1}|^2 (positions only), batch mean."""
    return (points[:, 1:, :2] - points[:, :-1, :2]).pow(2).sum((1, 2)).mean()


def unroll(agent, generator, target, steps):
    """Recurrent drawing through the generator: returns per-step canvases (steps, B, H, W) and strokes."""
    canvas, canvases, strokes = torch.zeros_like(target), [], []
    for _ in range(steps):
        points, brush = agent(torch.stack([target, canvas], 1))
        canvas = canvas + (1 - canvas) * generator(points, brush)
        canvases.append(canvas)
        strokes.append((points, brush))
    return torch.stack(canvases), strokes


def agent_loss(agent, generator, target, recurrent, steps):
    """The agent's training loss through the generator G, with lambda = ``SMOOTHNESS``::

        single step:  L = L_image(G(agent(target)), target) + lambda sum_i |P_i - P_{i+1}|^2
        recurrent:    L = sum_t w_t L_image(canvas_t, target) / sum_t w_t + lambda mean_t smoothness_t,
                      canvas_t = canvas_{t-1} + (1 - canvas_{t-1}) G(stroke_t),  w_t from 0.2 to 1
    """
    if not recurrent:
        points, brush = agent(target[:, None])
        return image_loss(generator(points, brush), target) + SMOOTHNESS * smoothness(points)
    canvases, strokes = unroll(agent, generator, target, steps)
    # every step should already be a good partial drawing; the last one counts most
    weights = torch.linspace(0.2, 1.0, steps, device=target.device)
    loss = sum(w * image_loss(c, target) for w, c in zip(weights, canvases)) / weights.sum()
    return loss + SMOOTHNESS * sum(smoothness(p) for p, _ in strokes) / steps


def random_shift(rng, *images):
    """The images (B, H, W) rolled by one random shift of up to 4 pixels, and that shift in the
    strokes' [-1, 1] units (x, y): shifts keep an agent from memorising positions."""
    dx, dy = (int(d) for d in rng.integers(-4, 5, 2))
    return [torch.roll(image, (dy, dx), (1, 2)) for image in images], (2 * dx / SIZE, 2 * dy / SIZE)


class TeacherForcing:
    """Examples for the recurrent agent from characters drawn stroke by stroke (lists of polylines).

    For every character and every j < its stroke count: the target (the whole character), a
    canvas of j of its strokes (real painter) and the strokes still missing, each as n points
    equally spaced along it.  The loss asks the agent's stroke to lie on the nearest missing
    stroke (mean point distance, either direction: a winner-takes-all target, so several
    candidates are not averaged into a stroke between them) with the characters' pen (full
    pressure, their brush).  Half of the strokes on a canvas are drawn slightly off their line
    (points moved by ``jitter``), as the agent's own strokes will be when it reads its canvas.

    Each of the ``character_sets`` (lists of characters) gives an equal share of every batch, so a
    small set (Hershey's 900 strokes beside KanjiVG's 31,000) is learnt as well as a large one.

    The agent's own strokes are a pixel or two off in ways jitter does not imitate, and an agent
    taught only on the teacher's canvases redraws such a stroke instead of moving on.  So
    :meth:`draw_own` lets the agent draw a few strokes of training characters (real painter) and
    keeps those canvases with the strokes the agent has not yet drawn (DAgger, Ross et al. 2011:
    the teacher labels the states the learner visits); :meth:`batch` mixes them in.
    """

    PEN_BRUSH = (PEN_RADIUS - R_MIN) / (R_MAX - R_MIN)

    def __init__(self, *character_sets, jitter=0.02, seed=0):
        rng = np.random.default_rng(seed)
        inks, jittered, points, self.first, self.count = [], [], [], [], []
        character_sets = [characters for characters in character_sets if characters]
        characters = [c for characters in character_sets for c in characters]
        set_sizes = [sum(len(c) for c in characters) for characters in character_sets]
        self.set_ends = np.cumsum(set_sizes)  # examples are listed set after set, one per stroke
        for strokes in characters:
            self.first.append(len(points))
            self.count.append(len(strokes))
            for line in strokes:
                resampled = resample(line).astype(np.float32)
                points.append(resampled)
                inks.append(render_polylines([line], PEN_RADIUS, SIZE))
                jittered.append(render_polylines([resampled + rng.normal(0, jitter, resampled.shape)], PEN_RADIUS, SIZE))
        self.inks, self.jittered = (torch.as_tensor(np.round(np.stack(a) * 255).astype(np.uint8)) for a in (inks, jittered))
        self.points = torch.as_tensor(np.stack(points))
        self.examples = np.array([(c, j) for c, k in enumerate(self.count) for j in range(k)])
        self.own = None   # (targets, canvases, missing) the agent drew: see draw_own

    def __len__(self):
        return len(self.examples)

    def stroke_inks(self, c):
        """The ink images (k, H, W) uint8 of character c's k strokes."""
        return self.inks[self.first[c]:self.first[c] + self.count[c]]

    def take(self, indices, rng=None):
        """(targets, canvases, missing strokes padded with NaN) of the examples at ``indices``: example
        (c, j) puts j of character c's strokes, chosen at random, on the canvas (the agent draws in
        no fixed order, so its canvas can hold any of them)."""
        rng = rng or np.random.default_rng(0)
        targets, canvases, missing = [], [], []
        longest = max(self.count[c] - j for c, j in self.examples[indices])
        for c, j in self.examples[indices]:
            first, count = self.first[c], self.count[c]
            order = first + rng.permutation(count)
            drawn, left = order[:j], order[j:]
            targets.append(self.stroke_inks(c).amax(0))
            off = torch.as_tensor(rng.random(j) < 0.5)[:, None, None]
            strokes = torch.where(off, self.jittered[drawn], self.inks[drawn])
            canvases.append(strokes.amax(0) if j else torch.zeros_like(targets[-1]))
            missing.append(torch.cat([self.points[left], torch.full((longest - len(left), N_POINTS, 2), float("nan"))]))
        return torch.stack(targets).float() / 255, torch.stack(canvases).float() / 255, torch.stack(missing)

    def indices(self, rng, size):
        """``size`` random example indices, each character set as likely as the others."""
        chosen_set = rng.integers(0, len(self.set_ends), size)
        starts = np.concatenate([[0], self.set_ends[:-1]])
        return starts[chosen_set] + (rng.random(size) * (self.set_ends - starts)[chosen_set]).astype(int)

    def draw_own(self, agent, rng, size):
        """The agent draws 1 to k-1 strokes of each of ``size`` random training characters (k strokes);
        keeps (target, its canvas, the character's strokes whose ink it has not yet covered)."""
        characters = self.examples[self.indices(rng, size), 0]
        count = torch.as_tensor([self.count[c] for c in characters])
        targets = torch.stack([self.stroke_inks(c).amax(0) for c in characters]).float() / 255
        drawn_strokes = torch.as_tensor(rng.random(size)) * (count - 1).clamp_min(1)
        drawn_strokes = drawn_strokes.long() + 1
        device = next(agent.parameters()).device
        targets, canvas = targets.to(device), torch.zeros_like(targets, device=device)
        with torch.no_grad():
            was_training = agent.training
            agent.eval()
            for step in range(int(drawn_strokes.max())):
                drawing = torch.nonzero(step < drawn_strokes)[:, 0]
                points, brush = agent(torch.stack([targets[drawing], canvas[drawing]], 1))
                xy, radius = (a.cpu() for a in stroke_samples(points, brush, SIZE))
                for i, line, r in zip(drawing.tolist(), xy, radius):   # in bounding boxes: 20x faster
                    canvas[i] = 1 - (1 - canvas[i]) * (1 - stamp_cropped(line, r, SIZE).to(device))
            agent.train(was_training)
        targets, canvas = targets.cpu(), canvas.cpu()
        near_ink = F.max_pool2d(canvas[:, None], 3, 1, 1)[:, 0] > 0.5   # within a pixel of drawn ink
        longest = int(count.max())
        missing = torch.full((size, longest, N_POINTS, 2), float("nan"))
        for i, c in enumerate(characters):
            strokes = self.stroke_inks(c) > 127
            covered = (strokes & near_ink[i]).flatten(1).sum(1) >= 0.8 * strokes.flatten(1).sum(1)
            left = self.first[c] + torch.nonzero(~covered)[:, 0]
            missing[i, :len(left)] = self.points[left]
        keep = torch.isfinite(missing[:, 0, 0, 0])                    # something is still to draw
        self.own = targets[keep], canvas[keep], missing[keep]

    def batch(self, rng, size, device="cpu"):
        """(target, canvas, missing strokes) of ``size`` random examples, shifted by up to 4 pixels; half
        of them from the agent's own canvases when :meth:`draw_own` has made some."""
        target, canvas, missing = self.take(self.indices(rng, size), rng)
        if self.own is not None and len(self.own[0]):
            pick = torch.as_tensor(rng.integers(0, len(self.own[0]), size // 2))
            own = [a[pick] for a in self.own]
            longest = max(missing.shape[1], own[2].shape[1])
            missing, own[2] = (F.pad(m, (0, 0, 0, 0, 0, longest - m.shape[1]), value=float("nan"))
                               for m in (missing, own[2]))
            target, canvas, missing = (torch.cat([a[:size - size // 2], b]) for a, b in zip((target, canvas, missing), own))
        target, canvas, missing = (a.to(device) for a in (target, canvas, missing))
        (target, canvas), shift = random_shift(rng, target, canvas)
        return target, canvas, missing + torch.tensor(shift, dtype=torch.float32, device=device)

    def loss(self, agent, target, canvas, missing):
        points, brush = agent(torch.stack([target, canvas], 1))
        xy = points[:, None, :, :2]
        distance = torch.minimum((xy - missing).abs().mean((-1, -2)), (xy - missing.flip(-2)).abs().mean((-1, -2)))
        nearest = torch.nan_to_num(distance, nan=float("inf")).min(1).values.mean()
        pen = (points[..., 2] - 1).square().mean() + (brush - self.PEN_BRUSH).square().mean()
        return nearest + 0.1 * pen


def save_agent(path, model, recurrent, steps, data, training):
    tensors = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    save_model(path, AGENT_KIND, tensors, {"hyperparameters": {"recurrent": recurrent, "steps": steps, "size": SIZE,
                                                          "points": N_POINTS, "data": data,
                                                          "coordinates": model.coordinates}, "training": training})


def load_agent(path, device="cpu"):
    tensors, meta = read_model(path, AGENT_KIND)
    hyper = meta.get("hyperparameters", {})
    model = Agent(inputs=2 if hyper.get("recurrent") else 1, coordinates=hyper.get("coordinates", False))
    try:
        model.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()})
    except RuntimeError as error:
        raise AtelierError(f"{path}: agent weights do not match this Atelier's agent ({str(error)[:120]})") from None
    return model.to(device).eval(), hyper


def train_agent(path, generator, images, minutes, progress, recurrent=False, steps=8, data="", batch=32,
                seed=0, device="cpu", teacher=None, lr=None, coordinates=True, resume=None, own_every=20):
    """Train an agent on ink images (N, 64, 64) through the frozen ``generator`` for ``minutes``
    (a recurrent one with ``teacher``, a :class:`TeacherForcing`, on its examples instead),
    from scratch or from the agent file ``resume`` (its training steps are counted on).  Every
    ``own_every`` steps the teacher's agent-drawn examples are redrawn by the current agent (0: never).

    Augmentation: :func:`random_shift`; no flips (characters have handedness).
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    generator = generator.to(device).eval().requires_grad_(False)
    agent, earlier = Agent(inputs=2 if recurrent else 1, coordinates=coordinates).to(device), {}
    if resume:
        agent, hyper = load_agent(resume, device)
        if hyper.get("recurrent", False) != recurrent:
            raise AtelierError(f"{resume}: a {'recurrent' if hyper.get('recurrent') else 'single-step'} agent; "
                               f"resume it with{'' if hyper.get('recurrent') else 'out'} --recurrent")
        agent.train()
        earlier = read_model(resume, AGENT_KIND)[1].get("training", {})
        earlier = {"resumed_from": str(resume), "earlier_steps": earlier.get("total_steps", earlier.get("steps", 0))}
    # the supervised teacher-forcing loss takes a larger step than the loss through the generator
    # (cosine decay to 5% over the budget: the last steps settle strokes to the pixel)
    optimiser = torch.optim.Adam(agent.parameters(), lr or (1e-3 if teacher is not None else 3e-4))
    images = torch.as_tensor(np.asarray(images, np.float32), device=device)
    budget, started = minutes * 60, time.monotonic()
    step, loss_value = 0, float("nan")
    base_lr = optimiser.param_groups[0]["lr"]
    progress.stage("agent", budget)
    try:
        while not step or time.monotonic() - started < budget:   # at least one step, however busy the machine
            fraction = min((time.monotonic() - started) / budget, 1.0)
            optimiser.param_groups[0]["lr"] = warmup_cosine(fraction, base_lr, floor=AGENT_LR_FLOOR)
            if teacher is not None:
                if own_every and step % own_every == 0:
                    teacher.draw_own(agent, rng, 2 * batch)
                loss = teacher.loss(agent, *teacher.batch(rng, batch, device))
            else:
                (target,), _ = random_shift(rng, images[torch.as_tensor(rng.integers(0, len(images), batch),
                                                                        device=device)])
                loss = agent_loss(agent, generator, target, recurrent, steps)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            step, loss_value = step + 1, loss.item()
            progress.update(time.monotonic() - started, step=step, loss=loss_value)
    except (KeyboardInterrupt, Cancelled) as error:
        save_agent(path, agent, recurrent, steps, data, {"steps": step, "loss": loss_value, "interrupted": True,
                                                         **earlier, **total_steps(earlier, step)})
        error.kept = str(path)  # the CLI and the worker say where the model is
        raise
    save_agent(path, agent, recurrent, steps, data, {"steps": step, "loss": loss_value, **earlier,
                                                     "seconds": round(time.monotonic() - started, 1),
                                                     **total_steps(earlier, step)})
    return {"steps": step, "loss": loss_value, **total_steps(earlier, step)}


def total_steps(earlier, step):
    """{"total_steps": ...} counting a resumed agent's earlier training, or {} for a fresh one."""
    return {"total_steps": earlier["earlier_steps"] + step} if earlier else {}


def chamfer(points, brush, target):
    """Symmetric chamfer distance (fraction of the image) between spline samples and the target's ink pixels.

    Every uncovered ink pixel pulls its nearest sample and every sample its nearest ink pixel, from
    any distance: tangled or misplaced strokes still reach lines the pooled image loss cannot see.
    """
    xy, _ = stroke_samples(points, brush, SIZE)
    ink = (target > 0.5 * target.max()).nonzero()[:, [1, 0]].to(xy.dtype) + 0.5
    distance = torch.cdist(ink, xy.reshape(-1, 2))
    return (distance.min(1).values.mean() + distance.min(0).values.mean()) / SIZE


def refine(raw_points, raw_brush, target, iterations, lr=REFINE_LR, progress=None):
    """Inference refinement: Adam on the raw stroke parameters through the differentiable real painter."""
    raw_points = raw_points.detach().clone().requires_grad_(True)
    raw_brush = raw_brush.detach().clone().requires_grad_(True)
    optimiser = torch.optim.Adam([raw_points, raw_brush], lr)
    if progress:
        progress.stage("refining strokes", iterations)
    for step in range(iterations):
        points, brush = activate(raw_points, raw_brush)
        canvas = ink_union(render_alpha(points, brush, SIZE))[None]
        loss = image_loss(canvas, target[None], pools=REFINE_POOLS) + CHAMFER * chamfer(points, brush, target) \
            + SMOOTHNESS * smoothness(points) / len(points)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if progress:
            progress.update(step + 1, loss=loss.item())
    return raw_points.detach(), raw_brush.detach()


def real_error(points, brush, target):
    with torch.no_grad():
        canvas = ink_union(render_alpha(points, brush, SIZE)) if len(points) else torch.zeros_like(target)
        return float(image_loss(canvas[None], target[None]))


def lift_pen(points, brush):
    """Pressure 0 where the brush radius is under FAINT pixels at the working size (lines under half a pixel).

    Such hairlines cover under half a pixel here, so the image loss hardly sees them, yet a large
    rendering or grease pencil would show every one of them.
    """
    faint = brush_radius(brush)[:, None] * SIZE * points[..., 2] < FAINT
    return torch.cat([points[..., :2], points[..., 2:].masked_fill(faint[..., None], 0)], -1), brush


def ink_chamfer(points, brush, target):
    """Symmetric chamfer distance (pixels) between the real painter's ink and the target's ink: a
    stroke on a missing line lowers it, a stroke off the drawing or over drawn ink does not."""
    with torch.no_grad():
        if not len(points):
            return float("inf")
        drawn = (ink_union(render_alpha(points, brush, SIZE)) > 0.5).nonzero().float()
        wanted = (target > 0.5 * target.max()).nonzero().float()
        if not len(drawn) or not len(wanted):
            return float("inf")
        distance = torch.cdist(drawn, wanted)
        return float(distance.min(0).values.mean() + distance.min(1).values.mean()) / 2


def prune(points, brush, target):
    """Indices of the strokes to keep, dropping (last first) those whose removal does not raise the real error."""
    keep = list(range(len(points)))
    error = real_error(points, brush, target)
    for k in reversed(range(len(points))):
        rest = [i for i in keep if i != k]
        if rest:
            without = real_error(points[rest], brush[rest], target)
            if without <= error * PRUNE_TOLERANCE:
                keep, error = rest, without
    return keep


def propose(agent, target, raw_points, raw_brush, count, stop_early):
    """The recurrent agent adds up to ``count`` strokes to ``raw_points, raw_brush``, each seeing the REAL
    painter's canvas of the strokes so far; with ``stop_early`` it stops when a stroke no longer helps:
    when it does not bring the drawing's ink closer to the target's (:func:`ink_chamfer`; judged on
    held-out kanji against the image MSE, which stops too early: a stroke a pixel off its line
    raises the MSE although it draws the line)."""
    with torch.no_grad():
        points, brush = activate(raw_points, raw_brush)
        error = ink_chamfer(points, brush, target)
        for _ in range(count):
            canvas = ink_union(render_alpha(points, brush, SIZE)) if len(points) else torch.zeros_like(target)
            p, b = agent.raw(torch.stack([target, canvas])[None])
            more = torch.cat([raw_points, p]), torch.cat([raw_brush, b])
            new_points, new_brush = activate(*more)
            new_error = ink_chamfer(new_points, new_brush, target)
            if stop_early and len(points) and new_error >= error:
                break
            (raw_points, raw_brush), points, brush, error = more, new_points, new_brush, new_error
    return raw_points, raw_brush


def draw(agent, recurrent, target, strokes=8, refine_steps=0, rounds=1, progress=None):
    """Strokes (K, n, 3), (K,) for one ink image (64, 64) torch.

    Without refinement a recurrent drawing stops when a stroke no longer helps.  With it, all
    ``strokes`` are drawn and refined together, hairlines are lifted, and the strokes that do not
    help are pruned; each further round (recurrent agents) lets the agent fill the freed places,
    refines everything again and stops when the real painter's error no longer drops.
    """
    if not recurrent:
        with torch.no_grad():
            raw_points, raw_brush = agent.raw(target[None, None])
    else:
        raw_points, raw_brush = propose(agent, target, torch.zeros(0, N_POINTS, 3), torch.zeros(0), strokes,
                                        stop_early=not refine_steps)
    if not refine_steps:
        return activate(raw_points, raw_brush)
    best, best_error = None, float("inf")
    for _ in range(rounds):
        with torch.enable_grad():
            raw_points, raw_brush = refine(raw_points, raw_brush, target, refine_steps, progress=progress)
        points, brush = lift_pen(*activate(raw_points, raw_brush))
        keep = prune(points, brush, target)
        error = real_error(points[keep], brush[keep], target)
        if error >= best_error:
            break
        best, best_error = (points[keep], brush[keep]), error
        if not recurrent or len(keep) == strokes:
            break
        raw_points, raw_brush = propose(agent, target, raw_points[keep], raw_brush[keep], strokes - len(keep), False)
    return best
