"""μNCA training for issue 22: the first checkpoint, live previews, the structure and palette terms,
and the note for exemplars that cannot tile or do not repeat."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from blender_helpers import interruptible
from core.nca import files
from core.nca.exemplars import style_note, tiling_figures

ROOT = Path(__file__).resolve().parents[1]
EXEMPLARS = ROOT / "core/assets/nca/exemplars"


def test_interrupt_in_the_first_seconds_keeps_a_usable_model(tmp_path):
    output = tmp_path / "m.safetensors"
    process = subprocess.Popen([sys.executable, "-m", "core.cli", "nca", "train", str(EXEMPLARS / "spots.png"),
                                "--minutes", "5", "--eager", "-o", str(output)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=interruptible)
    try:
        deadline = time.monotonic() + 120
        while not output.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert output.exists(), "no checkpoint before training started"
        time.sleep(1.5)  # Ctrl-C 1.5 s into training
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, stderr[-2000:]
    assert f"kept the model so far: {output}" in stderr
    model = files.load(output)  # loads, and is no rule that blows up: render and bake accept it
    assert model.params == 68 and np.isfinite(model.w).all()
    files.check_rollout(model, "kept")
    files.check_rollout(model, "kept", quantized=False)


def test_previews_and_structure_terms(tmp_path):
    from core.nca.train import train_many
    previews = tmp_path / "preview.png"
    outputs = [tmp_path / "a.safetensors", tmp_path / "b.safetensors"]
    summaries, models = train_many([EXEMPLARS / "checks.png", EXEMPLARS / "spots.png"], outputs, iterations=2,
                                   size=32, eval_every_s=1e9, compile=False, pyramid=5, palette_weight=10.0,
                                   structure_weight=50.0, structure_from=0.5,
                                   preview=previews, preview_every_s=0.0)
    from core.imageio import read_image
    for m in range(2):  # one preview per exemplar, the texture as it grows on the training grid
        assert read_image(tmp_path / f"preview_{m}.png", channels=3).shape == (32, 32, 3)
        assert outputs[m].exists() and summaries[m]["iterations"] == 2
    loss = files.load(outputs[0]).meta["hyperparameters"]["loss"]
    assert "pixel colours" in loss and "autocorrelation up to 15 cells" in loss and "from 0.5 of the budget" in loss


@pytest.mark.parametrize("tile, levels", [(16, "COARSE"), (32, "WIDE")])
def test_coarse_pyramid_levels_see_the_arrangement(tile, levels):
    """Square tiles of two colours as a checkerboard, against the same tiles in random places: the
    coarse levels of the 5-level pyramid (pooling 8 and 16) for 16-cell tiles, and the wide level
    of the 6-level one (9x9 at pooling 8) for 32-cell tiles, find the shuffled layout far from the
    exemplar and a shifted copy of the exemplar close to it."""
    import torch
    from core.nca.train import PatchNearestNeighbour
    rng = np.random.default_rng(0)
    colours = rng.random((2, 3))
    board = np.indices((8, 8)).sum(0) % 2

    def image(layout):
        return torch.from_numpy(colours[np.kron(layout, np.ones((tile, tile), int))].transpose(2, 0, 1)[None]).float()

    exemplar = image(board)
    coarse = PatchNearestNeighbour(exemplar, levels=getattr(PatchNearestNeighbour, levels))
    assert coarse.levels == getattr(PatchNearestNeighbour, levels)

    def distance(synth):
        return float(coarse(synth[None], torch.Generator().manual_seed(0)))

    shifted = exemplar.roll((tile, 3 * tile), (-2, -1))  # by whole tiles
    shuffled = image(rng.permutation(board.flatten()).reshape(8, 8))
    assert distance(shifted) < 0.2 * distance(shuffled)


def test_every_pyramid_the_option_offers_has_its_levels():
    """--pyramid's choices (defaults.py, which Blender imports without torch) and the levels that
    training builds for them (train.py) are two lists; they must name the same counts."""
    from core.nca.defaults import PYRAMIDS
    from core.nca.train import PatchNearestNeighbour
    assert sorted(PatchNearestNeighbour.BY_COUNT) == sorted(PYRAMIDS)
    assert all(len(levels) == count for count, levels in PatchNearestNeighbour.BY_COUNT.items())


def test_style_note_for_images_that_do_not_tile_or_repeat():
    y, x = np.mgrid[0:128, 0:128] / 128
    pattern = np.stack([0.5 + 0.5 * np.sin(2 * np.pi * 8 * x)] * 3, -1)  # tiles: 8 periods a side
    assert style_note(pattern) is None and tiling_figures(pattern)["seam"] <= 1.1
    walk = np.cumsum(np.random.default_rng(0).normal(size=(128, 128)), 1)  # a random walk along x:
    crop = np.stack([(walk - walk.min()) / np.ptp(walk)] * 3, -1)  # its first and last columns do not meet
    assert "in the style of" in style_note(crop)
    portrait = np.stack([y, 0.3 + 0.0 * x, 1 - y], -1)  # sky above, ground below: no repeating structure
    portrait[40:90, 50:80] = (0.9, 0.7, 0.6)  # a face
    assert tiling_figures(portrait)["nonstationary"] > 0.2
    note = style_note(portrait)
    assert "no repeating structure" in note and "in the style of the image" in note


def test_palette_shares_charge_a_lost_colour_whatever_its_share():
    """Four mark colours on a cream ground, each on 4 % of the pixels: the palette-shares term is
    ~0 for the exemplar shifted and charges the marks all drawn in one colour (three colours lost)."""
    import torch
    from core.errors import AtelierError
    from core.nca.palette import palette
    from core.nca.train import PaletteShares, TextureLoss, check_options
    rng = np.random.default_rng(0)
    ground, marks = np.array([0.95, 0.92, 0.85]), np.array([[0.85, 0.15, 0.15], [0.2, 0.6, 0.25],
                                                          [0.15, 0.35, 0.8], [0.95, 0.75, 0.1]])
    labels = rng.choice(5, size=(64, 64), p=[0.84, 0.04, 0.04, 0.04, 0.04])
    image = np.concatenate([ground[None], marks])[labels]
    colours, shares = palette(image)
    assert len(colours) == 5 and abs(shares[0] - 0.84) < 0.02

    def tensor(picture):
        return torch.from_numpy(np.moveaxis(picture, -1, 0).astype(np.float32))[None]

    term = PaletteShares(tensor(image))
    one_colour = image.copy()
    one_colour[labels > 0] = marks[0]
    shifted, collapsed = (float(term(tensor(x)[None])) for x in (np.roll(image, (3, 5), (0, 1)), one_colour))
    assert abs(shifted) < 1e-4 and collapsed > 0.5
    loss = TextureLoss(tensor(image), 64, 0.0, 3, 1.0, "shares")
    assert isinstance(loss.palette, PaletteShares) and "palette shares" in loss.description()
    with pytest.raises(AtelierError, match="--palette-term histogram"):
        check_options(68, 64, 100.0, 3, 1.0, "histogram")


def test_structure_term_tells_round_blobs_from_bands_of_their_width():
    """Discs of diameter 12 on a jittered lattice, against bands every 32 cells with the same share
    of ink, and against the discs shifted (same arrangement) or squashed into ellipses: the
    autocorrelation term is ~0 for the shift and charges the bands and the ellipses, which a patch
    of 7 cells hardly tells apart from the discs' edges."""
    import torch
    from core.errors import AtelierError
    from core.nca.train import Autocorrelation, TextureLoss, check_options
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:128, 0:128].astype(float)

    def discs(squash=1.0):
        ink = np.zeros((128, 128))
        for cy in range(8, 128, 24):
            for cx in range(8, 128, 24):
                jy, jx = cy + rng.uniform(-3, 3), cx + rng.uniform(-3, 3)
                dy, dx = (y - jy + 64) % 128 - 64, (x - jx + 64) % 128 - 64  # on the torus
                ink = np.maximum(ink, (dy / squash) ** 2 + (dx * squash) ** 2 <= 36)
        return ink

    def picture(ink):
        return torch.from_numpy(np.stack([0.9 - 0.7 * ink] * 3).astype(np.float32))[None]

    exemplar = discs()
    bands = (x % 32 < 32 * exemplar.mean()).astype(float)
    term = Autocorrelation(picture(exemplar))

    def cost(ink):
        return float(term(picture(ink)[None]))

    shifted = np.roll(exemplar, (5, 17), (0, 1))
    assert cost(shifted) < 0.2 * cost(bands) and cost(shifted) < 0.2 * cost(discs(squash=1.6))
    loss = TextureLoss(picture(exemplar), 128, 100.0, 3, 0.0, structure_weight=50.0)
    assert loss.structure.reach == Autocorrelation.REACH and "autocorrelation" in loss.description()
    assert TextureLoss(picture(exemplar), 48, 100.0, 3, 0.0, structure_weight=1.0).structure.reach == 23
    generator = torch.Generator()
    without = TextureLoss(picture(exemplar), 128, 100.0, 3, 0.0)(picture(bands)[None], generator.manual_seed(0))
    left_out = loss(picture(bands)[None], generator.manual_seed(0), structure=False)  # before --structure-from
    assert torch.equal(left_out, without) and loss(picture(bands)[None], generator.manual_seed(0)) > without
    with pytest.raises(AtelierError, match="--structure-weight -1"):
        check_options(68, 64, 100.0, 3, 0.0, structure_weight=-1.0)
    with pytest.raises(AtelierError, match="--structure-from 1"):
        check_options(68, 64, 100.0, 3, 0.0, structure_weight=1.0, structure_from=1.0)
