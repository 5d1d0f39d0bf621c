"""The StrokeNet generator: a differentiable neural approximation of the painting program.

Zheng, Jiang & Huang, "StrokeNet: A Neural Painting Environment", ICLR 2019, section 3.2
(https://openreview.net/forum?id=HJxwDiActX; no arXiv version):

* **position encoder** - each control point (x, y) becomes a feature map; it is pre-trained
  alone to put a Gaussian blob at the point, so the maps are spatial from the start.
* **segment maps** - the maps of every pair of adjacent points, with their pressures,
  go through a small shared conv net that draws the segment between them; the segments of a
  stroke are merged by a maximum (strokes are unions of segments).
* **brush encoder** - the brush value becomes feature channels broadcast over the map.
* **decoder** - conv / deconv layers turn segment and brush features into the 64 x 64
  ink-coverage image (sigmoid).

Trained (per-pixel cross-entropy) on random strokes drawn by the real painter (``painter.py``).
"""

import time

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from ..errors import AtelierError, Cancelled
from ..modelfile import read_model, save_model
from .constants import GENERATOR_KIND, SIZE
from .data import random_strokes
from .painter import render_alpha

MAP = 32          # position maps are MAP x MAP; the decoder upsamples to SIZE
BLOB_SIGMA = 1.0  # pixels of the position map


class PositionEncoder(nn.Module):
    """(x, y) in [-1, 1] -> a MAP x MAP feature map (FC, then two transposed convolutions)."""

    def __init__(self, width=16):
        super().__init__()
        self.width = width
        self.fc = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, width * 8 * 8), nn.ReLU())
        self.up = nn.Sequential(nn.ConvTranspose2d(width, width, 4, 2, 1), nn.ReLU(),
                                nn.ConvTranspose2d(width, 1, 4, 2, 1))

    def forward(self, xy):
        shape = xy.shape[:-1]
        maps = self.up(self.fc(xy.reshape(-1, 2)).view(-1, self.width, 8, 8))
        return maps.view(*shape, MAP, MAP)


def gaussian_blobs(xy, size=MAP, sigma=BLOB_SIGMA):
    """The position encoder's pre-training target: exp(-|pixel - point|^2 / 2 sigma^2)."""
    centres = torch.arange(size, dtype=xy.dtype, device=xy.device) + 0.5
    px = (xy[..., 0:1] + 1) * size / 2
    py = (xy[..., 1:2] + 1) * size / 2
    gx = torch.exp(-(centres - px) ** 2 / (2 * sigma ** 2))
    gy = torch.exp(-(centres - py) ** 2 / (2 * sigma ** 2))
    return gy.unsqueeze(-1) * gx.unsqueeze(-2)


class Generator(nn.Module):
    def __init__(self, channels=32):
        super().__init__()
        self.position = PositionEncoder()
        self.segment = nn.Sequential(
            nn.Conv2d(4, channels, 3, padding=1), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=2, dilation=2), nn.ReLU(),
            nn.ConvTranspose2d(channels, channels // 2, 4, 2, 1))
        self.brush = nn.Sequential(nn.Linear(1, 32), nn.ReLU(), nn.Linear(32, channels // 2))
        self.decoder = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(channels, channels // 2, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(channels // 2, channels // 2, 3, padding=1), nn.ReLU(),
            nn.Conv2d(channels // 2, 1, 3, padding=1))
        nn.init.constant_(self.decoder[-1].bias, -3.0)  # start from mostly-blank paper, as the targets are

    def forward(self, points, brush):
        """points (B, n, 3), brush (B,) -> ink coverage (B, 64, 64)."""
        return torch.sigmoid(self.logits(points, brush))

    def logits(self, points, brush):
        b, n, _ = points.shape
        maps = self.position(points[..., :2])                                  # (B, n, M, M)
        pressure = points[..., 2, None, None]
        pairs = torch.stack([maps[:, :-1], maps[:, 1:], maps[:, :-1] * pressure[:, :-1],
                             maps[:, 1:] * pressure[:, 1:]], 2)                 # (B, n-1, 4, M, M)
        segments = self.segment(pairs.flatten(0, 1)).unflatten(0, (b, n - 1)).amax(1)
        brush = self.brush(brush[:, None])[..., None, None].expand(-1, -1, MAP, MAP)
        return self.decoder(torch.cat([segments, brush], 1)).squeeze(1)


def save_generator(path, model, training):
    tensors = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    save_model(path, GENERATOR_KIND, tensors, {"hyperparameters": {"size": SIZE, "map": MAP}, "training": training})


def load_generator(path, device="cpu"):
    tensors, meta = read_model(path, GENERATOR_KIND)
    model = Generator()
    try:
        model.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()})
    except RuntimeError as error:
        raise AtelierError(f"{path}: generator weights do not match this Atelier's generator "
                           f"({str(error)[:120]})") from None
    return model.to(device).eval(), meta


def stroke_batch(rng, count, device):
    points, brush = random_strokes(rng, count)
    points, brush = torch.from_numpy(points).to(device), torch.from_numpy(brush).to(device)
    with torch.no_grad():
        target = render_alpha(points, brush, SIZE)
    return points, brush, target


def train_generator(path, minutes, progress, batch=64, seed=0, device="cpu", pretrain_fraction=0.1):
    """Pre-train the position encoder on Gaussian blobs, then the whole generator on painter renders.

    Loss: binary cross-entropy of G's logits against the painter's coverage (fidelity is reported
    as MSE), Adam.  Runs ``minutes`` of wall time; the file at
    ``path`` is written at the end and on interruption (the last completed step).
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = Generator().to(device)
    budget = minutes * 60
    started = time.monotonic()
    step, loss_value = 0, float("nan")
    try:
        progress.stage("position encoder", budget)
        optimiser = torch.optim.Adam(model.position.parameters(), 3e-3)
        while time.monotonic() - started < budget * pretrain_fraction:
            xy = torch.rand(batch * 8, 2, device=device) * 2 - 1
            loss = F.mse_loss(model.position(xy), gaussian_blobs(xy)) * 100
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            progress.update(time.monotonic() - started, blob_loss=loss.item())
        progress.stage("generator", budget)
        optimiser = torch.optim.Adam(model.parameters(), 1e-3)
        while not step or time.monotonic() - started < budget:   # at least one step, however busy the machine
            points, brush, target = stroke_batch(rng, batch, device)
            # cross-entropy against the coverage: unlike MSE through a sigmoid it never stalls on blank output
            loss = F.binary_cross_entropy_with_logits(model.logits(points, brush), target)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            step, loss_value = step + 1, loss.item()
            progress.update(time.monotonic() - started, step=step, bce=loss_value)
    except (KeyboardInterrupt, Cancelled) as error:
        save_generator(path, model, {"steps": step, "bce": loss_value, "interrupted": True})
        error.kept = str(path)  # the CLI and the worker say where the model is
        raise
    fidelity = evaluate_generator(model, device=device)
    save_generator(path, model, {"steps": step, "bce": loss_value, "seconds": round(time.monotonic() - started, 1),
                                 **fidelity})
    return {"steps": step, "train_bce": loss_value, **fidelity}


def evaluate_generator(model, count=64, seed=12345, device="cpu"):
    """Fidelity on held-out strokes (a seed never used in training): MSE against the real painter."""
    points, brush, target = stroke_batch(np.random.default_rng(seed), count, device)
    with torch.no_grad():
        output = model(points, brush)
    return {"heldout_mse": float(F.mse_loss(output, target)),
            "heldout_ink_mse": float(((output - target) ** 2)[target > 0.5].mean())}
