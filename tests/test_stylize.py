"""Keyframe stylisation core: training steps, tiled inference, guides, EXR motion, CLI and bad input."""

import json
import os

os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")  # before the first cv2 import: the tests write EXR motion
import cv2  # noqa: E402
import numpy as np
import pytest
import torch

from core.cli import run_command
from core.errors import AtelierError, Cancelled
from core.imageio import read_image, write_image
from core.modelfile import read_model
from core.progress import SilentProgress
from core.stylize import guides, model as sty
from core.stylize.exr import read_exr_channels

SIZE = (40, 56)


def texture(h, w, seed=0):
    rng = np.random.default_rng(seed)
    image = cv2.GaussianBlur(rng.uniform(0, 1, (h, w, 3)).astype(np.float32), (0, 0), 2.0)
    return (image - image.min()) / (image.max() - image.min())


@pytest.fixture
def sequence(tmp_path):
    """Five frames of a texture sliding 2 px right per frame, and a 'painted' frame 0."""
    base = texture(SIZE[0], SIZE[1] + 20)
    folder = tmp_path / "frames"
    for t in range(5):
        write_image(folder / f"frame_{t + 1:04d}.png", base[:, 10 - 2 * t:10 - 2 * t + SIZE[1]])
    painted = tmp_path / "painted.png"
    write_image(painted, 1.0 - read_image(folder / "frame_0001.png"))
    return folder, painted


def test_training_steps_lower_the_loss_and_the_model_round_trips(tmp_path):
    inputs = texture(48, 48)[None]
    paintings = 1.0 - inputs
    config = dict(sty.FAST, patch=16, batch=8)
    saved = []
    generator, summary = sty.train(inputs, paintings, np.ones((1, 48, 48), np.float32), config, SilentProgress(),
                                   steps=40, lr=2e-3, checkpoint=lambda g, s: saved.append(s))
    assert summary["steps"] == 40 and np.isfinite(summary["loss"])
    x = torch.from_numpy(inputs).permute(0, 3, 1, 2) * 2 - 1
    target = torch.from_numpy(paintings).permute(0, 3, 1, 2) * 2 - 1
    untrained = sty.Generator(3, **config).eval()
    with torch.no_grad():
        assert (generator.eval()(x) - target).abs().mean() < (untrained(x) - target).abs().mean()
    path = tmp_path / "m.safetensors"
    sty.save(path, generator, {"hyperparameters": {"in_channels": 3, "config": config}})
    loaded, meta = sty.load(path)
    with torch.no_grad():
        assert torch.allclose(loaded(x), generator(x), atol=1e-6)
    assert meta["kind"] == "stylize"
    _, summary = sty.train(inputs, paintings, np.ones((1, 48, 48), np.float32), config, SilentProgress(),
                           steps=2, adversarial=0.5)  # with the patch discriminator
    assert np.isfinite(summary["loss"])


def test_tiled_inference_equals_untiled():
    torch.manual_seed(1)
    generator = sty.Generator(6, **sty.FAST).eval()
    frames = np.random.default_rng(2).uniform(0, 1, (2, 150, 170, 6)).astype(np.float32)
    whole = sty.stylize_frames(generator, frames, tile=512)
    tiled = sty.stylize_frames(generator, frames, tile=48, batch_pixels=20000)
    assert whole[0].shape == (150, 170, 3)
    for a, b in zip(whole, tiled):
        assert np.abs(a - b).max() < 1e-4


def test_guide_follows_a_synthetic_shift():
    n, h, w, shift = 4, 32, 48, 3.0
    previous = np.zeros((n, h, w, 2), np.float32)
    previous[..., 0] = -shift  # everything moves +3 px right per frame
    following = -previous
    coordinates = guides.advected_coordinates(previous, following, reference=1)
    xs = np.arange(w, dtype=np.float32)
    assert np.allclose(coordinates[3, 5, 10:40, 0], xs[10:40] - 2 * shift)
    assert np.allclose(coordinates[0, 5, 10:40, 0], xs[10:40] + shift)
    guide = guides.gaussian_mixture(coordinates, (h, w), seed=3)
    assert np.allclose(guide[3, :, 16:], guide[1, :, 10:-6], atol=1e-5)  # moved with the content


def test_gaussian_mixture_equals_the_full_sum():
    """The guide sums only nearby blobs; that must not change it (blobs found again from the seed)."""
    h, w = 90, 130
    points = np.random.default_rng(4).uniform(-10, 140, (1, h, w, 2)).astype(np.float32)
    rng = np.random.default_rng(7)
    count = round(h * w / 24.0 ** 2)
    centres, colours = rng.uniform([0, 0], [w, h], size=(count, 2)), rng.uniform(0, 1, size=(count, 3))
    weights = np.exp(-((points[..., None, :] - centres) ** 2).sum(-1) / (2 * 12.0 ** 2))
    full = weights @ colours / weights.sum(-1, keepdims=True)
    assert np.abs(guides.gaussian_mixture(points, (h, w), seed=7) - full).max() < 1e-5


def test_optical_flow_finds_the_shift():
    base = texture(40, 80)
    frames = np.stack([base[:, 12 - 2 * t:12 - 2 * t + 60] for t in range(3)])
    previous, following = guides.optical_flow(frames)
    assert abs(np.median(previous[1, 8:-8, 8:-8, 0]) + 2) < 0.3
    assert abs(np.median(following[1, 8:-8, 8:-8, 0]) - 2) < 0.3


def test_exr_reader_matches_opencv(tmp_path):
    image = np.random.default_rng(0).uniform(-2, 5, (37, 21, 3)).astype(np.float32)
    path = tmp_path / "a.exr"
    cv2.imwrite(str(path), image[:, :, ::-1], [cv2.IMWRITE_EXR_COMPRESSION, cv2.IMWRITE_EXR_COMPRESSION_ZIP,
                                               cv2.IMWRITE_EXR_TYPE, cv2.IMWRITE_EXR_TYPE_FLOAT])
    channels = read_exr_channels(path, ["R", "G", "B"])
    assert np.array_equal(np.stack([channels[c] for c in "RGB"], -1), image)
    with pytest.raises(AtelierError, match="no channel"):
        read_exr_channels(path, ["ViewLayer.Vector.X"])


def train_argv(folder, painted, model, *extra):
    return ["stylize", "train", "--frames", str(folder), "--keyframe", f"0={painted}", "--steps", "3",
            "--patch", "16", "-o", str(model), *extra]


def test_cli_trains_and_stylises_end_to_end(sequence, tmp_path):
    folder, painted = sequence
    model, out = tmp_path / "m.safetensors", tmp_path / "out"
    last, mask = tmp_path / "last.png", tmp_path / "mask.png"
    write_image(last, 1.0 - read_image(folder / "frame_0005.png"))
    write_image(mask, np.concatenate([np.ones((SIZE[0], SIZE[1] // 2)), np.zeros((SIZE[0], SIZE[1] // 2))], 1))
    summary = run_command(train_argv(folder, painted, model, "--keyframe", f"4={last}", "--mask", f"4={mask}",
                                     "--stylize-to", str(out)), SilentProgress())
    assert summary["steps"] == 3 and summary["frames"] == 5
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in folder.iterdir())
    _, meta = read_model(model, "stylize")
    assert meta["hyperparameters"]["guide"] == "gaussian" and meta["training"]["keyframes"] == [0, 4]
    again = tmp_path / "again"
    summary = run_command(["stylize", "run", str(model), "--frames", str(folder), "--only", "frame_0004.png,1",
                           "-o", str(again)], SilentProgress())
    assert sorted(p.name for p in again.iterdir()) == ["frame_0002.png", "frame_0004.png"]
    assert np.abs(read_image(again / "frame_0004.png") - read_image(out / "frame_0004.png")).max() < 2 / 255
    with pytest.raises(AtelierError, match="already exists"):
        run_command(["stylize", "run", str(model), "--frames", str(folder), "-o", str(out)], SilentProgress())
    run_command(["stylize", "run", str(model), "--frames", str(folder), "-o", str(out), "--force"], SilentProgress())


def test_cancel_keeps_the_last_model(sequence, tmp_path):
    folder, painted = sequence

    class StopAfterTwo(SilentProgress):
        def update(self, done, **figures):
            if figures.get("step", 0) >= 2:
                raise Cancelled("stop")

    model = tmp_path / "m.safetensors"
    with pytest.raises(Cancelled):
        run_command(train_argv(folder, painted, model), StopAfterTwo())
    assert read_model(model, "stylize")[1]["training"]["interrupted"] is True


def bad(argv, match):
    with pytest.raises(AtelierError, match=match):
        run_command(argv, SilentProgress())


def test_bad_input_is_refused_before_training(sequence, tmp_path):
    folder, painted = sequence
    model = tmp_path / "m.safetensors"
    bad(train_argv(folder, painted, model, "--keyframe", f"9={painted}"), "outside the sequence")
    small = tmp_path / "small.png"
    write_image(small, np.zeros((8, 8, 3)))
    bad(["stylize", "train", "--frames", str(folder), "--keyframe", f"0={small}", "-o", str(model)], "keyframe is 8x8")
    alpha = tmp_path / "alpha.png"
    write_image(alpha, np.ones((*SIZE, 4)))
    bad(["stylize", "train", "--frames", str(folder), "--keyframe", f"0={alpha}", "-o", str(model)], "alpha")
    empty = tmp_path / "empty.png"
    write_image(empty, np.zeros(SIZE))
    bad(train_argv(folder, painted, model, "--mask", f"0={empty}"), "mask is empty")
    bad(train_argv(folder, painted, model, "--mask", f"2={empty}"), "has no --keyframe")
    model.write_bytes(b"x")
    bad(train_argv(folder, painted, model), "already exists")
    model.unlink()

    (folder / "frame_0003.png").rename(tmp_path / "moved.png")
    bad(train_argv(folder, painted, model), "missing frame")
    (tmp_path / "moved.png").rename(folder / "frame_0003.png")
    write_image(folder / "frame_0006.png", np.zeros((SIZE[0] + 2, SIZE[1], 3)))
    bad(train_argv(folder, painted, model), "same size")
    write_image(folder / "frame_0006.png", np.zeros((*SIZE, 3)), bits=16)
    bad(train_argv(folder, painted, model), "16-bit")
    (folder / "frame_0006.png").unlink()
    write_image(folder / "frame_0006.exr", np.zeros((*SIZE, 3)))
    bad(train_argv(folder, painted, model), "EXR frames")
    assert not model.exists()


def test_patches_come_from_the_masked_area():
    inputs = np.zeros((2, 40, 60, 3), np.float32)
    masks = np.zeros((2, 40, 60), np.float32)
    masks[1, :, 40:] = 1.0
    sampler = sty.PatchSampler(inputs, inputs, masks, 8, np.random.default_rng(0))
    assert set(sampler.centres[:, 0]) == {1} and sampler.centres[:, 2].min() >= 40
    x, y = sampler.sample(5)
    assert x.shape == (5, 3, 8, 8) and y.shape == (5, 3, 8, 8)
