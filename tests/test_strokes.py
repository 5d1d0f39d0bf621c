"""StrokeNet core: the real painter, data, tiny generator/agent training, the paint command and bad input."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from core.drawing.svg import parse_svg_path
from core.errors import AtelierError
from core.imageio import read_image, write_image
from core.modelfile import save_model
from core.progress import SilentProgress
from core.strokes import painter
from core.strokes.agent import Agent, agent_loss, draw, load_agent
from core.strokes.cli import SHIPPED_AGENT, SHIPPED_GENERATOR, image_to_strokes
from core.strokes.data import prepare, random_strokes
from core.strokes.generator import Generator, gaussian_blobs, load_generator, train_generator

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def one_thread():
    """Small tensors: on the busy shared machine one torch thread ran these tests 4x faster than two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def strokes(count=3, seed=0):
    return random_strokes(np.random.default_rng(seed), count)


def atelier(*words, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "core.cli", "strokes", *map(str, words)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_painter_is_deterministic_and_batch_equals_single():
    points, brush = strokes(4)
    batch = painter.render_alpha(torch.from_numpy(points), torch.from_numpy(brush), 64)
    for k in range(4):
        single = painter.render_alpha(torch.from_numpy(points[k:k + 1]), torch.from_numpy(brush[k:k + 1]), 64)
        assert torch.allclose(batch[k], single[0], atol=1e-6)
    again = painter.render(points, brush, 64)
    assert np.array_equal(again, painter.render(points, brush, 64))
    # the numpy path (bounding-box windows) paints exactly what the batched torch path paints
    assert np.allclose(1 - again[..., 0], painter.ink_union(batch).numpy(), atol=1e-5)


def test_spline_passes_through_control_points():
    points, _ = strokes(1)
    dense = painter.catmull_rom(torch.from_numpy(points), 8)[0].numpy()
    assert np.allclose(dense[::8], points[0], atol=1e-5)


def test_brush_is_anti_aliased_and_scales_with_pressure():
    line = np.zeros((1, 16, 3), np.float32)
    line[0, :, 0] = np.linspace(-0.8, 0.8, 16)
    line[0, :, 1] = 0.013  # between pixel centres
    line[0, :, 2] = 1
    ink = 1 - painter.render(line, np.array([0.5], np.float32), 128)[..., 0]
    values = np.unique(np.round(ink, 3))
    assert ((values > 0.05) & (values < 0.95)).any(), "edges must have partial coverage"
    light = line.copy()
    light[0, :, 2] = 0.3
    assert (1 - painter.render(light, np.array([0.5], np.float32), 128)[..., 0]).sum() < 0.5 * ink.sum()
    assert np.allclose(ink[:, 40], ink[:, 80], atol=1e-3)  # even width along a straight stroke
    hair = line.copy()
    hair[0, :, 2] = np.linspace(1, 0, 16)
    hair_ink = 1 - painter.render(hair, np.array([0.0], np.float32), 128)[..., 0]
    assert 0.5 < hair_ink[:, 20].max() <= 1 and hair_ink[:, 114:].max() < 0.05, "thin lines fade: pressure 0 lifts the pen"


def test_svg_and_grease_pencil_export():
    points, brush = strokes(2)
    svg = painter.to_svg(points, brush, 128, np.array([[1, 0, 0], [0, 0, 1]], np.float32))
    assert svg.startswith("<svg") and svg.count("<path ") == 2 and "#ff0000" in svg and "#0000ff" in svg
    assert "<line" not in svg and "<g" not in svg  # one editable path per stroke, not a group of segments
    # the path is the painted curve: its nodes are the stroke's points (Catmull-Rom as cubic Béziers)
    first = re.search(r'<path d="([^"]+)"', svg).group(1)
    (nodes,) = parse_svg_path(first, samples=1)
    drawn = painter.grease_pencil_strokes(points, brush, samples=1)[0]["positions"]
    assert np.allclose(nodes, (drawn + 1) * 64, atol=0.01)
    gp = painter.grease_pencil_strokes(points, brush, samples=4)
    assert len(gp) == 2 and gp[0]["positions"].shape == (61, 2) and gp[0]["radii"].shape == (61,)
    assert np.allclose(gp[0]["radii"].max(), painter.brush_radius(brush[0]) * points[0, :, 2].max(), rtol=0.05)
    lifted = points.copy()
    lifted[0, :3, 2] = lifted[1, :, 2] = 0             # pen up at the start of one stroke, all along the other
    gp = painter.grease_pencil_strokes(lifted, brush, samples=4)
    assert len(gp) == 1 and len(gp[0]["radii"]) <= 61 - 8 and gp[0]["radii"].min() > 0


def test_svg_path_parser_follows_kanjivg_commands():
    (line,) = parse_svg_path("M10,20c10,0,20,0,30,0s10,0,10,10L5,5", samples=4)
    assert np.allclose(line[0], [10, 20]) and np.allclose(line[4], [40, 20]) and np.allclose(line[-1], [5, 5])


def test_generator_position_encoder_and_tiny_training(tmp_path):
    blobs = gaussian_blobs(torch.tensor([[0.0, 0.0]]))
    assert blobs.shape == (1, 32, 32) and blobs[0, 16, 16] > 0.5 and blobs[0, 0, 0] < 1e-3
    points, brush = strokes(2)
    with torch.no_grad():
        out = Generator()(torch.from_numpy(points), torch.from_numpy(brush))
    assert out.shape == (2, 64, 64) and 0 <= float(out.min()) and float(out.max()) <= 1
    path = tmp_path / "g.safetensors"
    summary = train_generator(path, minutes=0.05, progress=SilentProgress(), batch=4)
    assert summary["steps"] >= 1 and np.isfinite(summary["heldout_mse"])
    model, meta = load_generator(path)
    assert meta["kind"] == "strokenet_generator" and "heldout_mse" in meta["training"]


@pytest.mark.parametrize("recurrent", [False, True])
def test_agent_training_step_lowers_the_loss_on_one_batch(recurrent):
    torch.manual_seed(0)
    generator = Generator().requires_grad_(False)
    agent = Agent(inputs=2 if recurrent else 1)
    target = torch.zeros(2, 64, 64)
    target[:, 30:34, 10:54] = 1
    optimiser = torch.optim.Adam(agent.parameters(), 1e-3)
    losses = []
    for _ in range(4):
        loss = agent_loss(agent, generator, target, recurrent, steps=2)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    points, brush = agent(torch.zeros(1, 2 if recurrent else 1, 64, 64))
    assert points.shape == (1, 16, 3) and (points[..., :2].abs() <= 1).all() and (0 <= brush).all() <= 1


def test_refinement_through_the_real_painter_improves_the_drawing():
    agent = Agent(inputs=1).eval()
    target = torch.from_numpy(1 - painter.render(*strokes(1, seed=3), 64)[..., 0])
    before = draw(agent, False, target)
    after = draw(agent, False, target, refine_steps=15)
    from core.strokes.agent import real_error
    assert real_error(*after, target) < real_error(*before, target)
    recurrent, target = Agent(inputs=2).eval(), torch.from_numpy(1 - painter.render(*strokes(3, seed=4), 64)[..., 0])
    one, more = (draw(recurrent, True, target, 2, refine_steps=5, rounds=r) for r in (1, 2))
    assert len(more[0]) <= 2 and real_error(*more, target) <= real_error(*one, target)


def test_refinement_pulls_a_far_stroke_onto_the_line_and_can_be_cancelled():
    from core.errors import Cancelled
    from core.strokes.agent import activate, refine
    line = np.zeros((1, 16, 3), np.float32)
    line[0, :, 0], line[0, :, 1], line[0, :, 2] = np.linspace(-0.7, 0.7, 16), -0.5, 1
    target = torch.from_numpy(1 - painter.render(line, np.array([0.4], np.float32), 64)[..., 0])
    start = line.copy()
    start[0, :, 1] = 0.5                               # 32 px below the line: no pooled view reaches that far
    raw = torch.cat([torch.atanh(torch.from_numpy(start[..., :2])), torch.full((1, 16, 1), 2.0)], -1)
    points, _ = activate(*refine(raw, torch.zeros(1), target, 30))
    assert abs(float(points[0, :, 1].mean()) + 0.5) < 0.1
    stopped = SilentProgress()
    stopped.cancel_event.set()
    with pytest.raises(Cancelled):
        refine(raw, torch.zeros(1), target, 30, progress=stopped)


def test_light_on_dark_is_detected_and_bad_images_are_refused():
    dark = np.zeros((40, 60, 3), np.float32)
    dark[18:22, 5:55] = 1
    ink, side, inverted = prepare(dark, "dark.png")
    assert inverted and side == 60 and ink.max() > 0.9 and ink[0, 0] == 0
    coloured = np.ones((40, 60, 3), np.float32)
    coloured[10:14, 5:55] = (1.0, 0.9, 0.0)            # a yellow line is as much ink as a black one
    coloured[26:30, 5:55] = 0.0
    ink, _, inverted = prepare(coloured, "yellow.png")
    assert not inverted and abs(ink[:32].max() - ink[32:].max()) < 0.05
    with pytest.raises(AtelierError, match="uniform"):
        prepare(np.full((32, 32, 3), 0.7, np.float32), "flat.png")
    with pytest.raises(AtelierError, match="transparent"):
        prepare(np.zeros((32, 32, 4), np.float32), "clear.png")
    with pytest.raises(AtelierError, match="too small"):
        prepare(np.zeros((2, 2, 3), np.float32), "tiny.png")
    with pytest.raises(AtelierError, match="too large"):
        image_to_strokes(np.zeros((9000, 8000, 1), np.float32), "huge.png")


def test_wrong_model_kind_is_a_clear_error(tmp_path):
    wrong = tmp_path / "wrong.safetensors"
    save_model(wrong, "nca", {"w": np.zeros(3, np.float32)})
    with pytest.raises(AtelierError, match="expected 'strokenet_agent'"):
        load_agent(wrong)
    with pytest.raises(AtelierError, match="expected 'strokenet_generator'"):
        load_generator(wrong)


@pytest.mark.skipif(not SHIPPED_AGENT.exists(), reason="shipped models not built yet")
@pytest.mark.parametrize("runtime", ["torch", "numpy"])
def test_paint_command_end_to_end_with_shipped_models(tmp_path, runtime):
    image = np.ones((80, 100, 3), np.float32)
    image[20:60, 30:34] = 0
    image[38:42, 20:80] = 0.1
    write_image(tmp_path / "plus.png", image)
    run = atelier("paint", tmp_path / "plus.png", "--strokes", 3, "--refine", 10, "-o", tmp_path / "o.svg",
                  "--png", tmp_path / "o.png", "--json", tmp_path / "o.json", "--runtime", runtime)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert 1 <= summary["strokes"] <= 3 and not summary["inverted"] and summary["runtime"] == runtime
    drawn = read_image(tmp_path / "o.png")
    assert drawn.shape[:2] == (80, 100) and drawn.min() < 0.5
    assert json.loads((tmp_path / "o.json").read_text())["strokes"][0]["radii"]
    assert (tmp_path / "o.svg").read_text().startswith("<svg")
    assert SHIPPED_GENERATOR.exists()


def test_paint_command_reports_bad_input(tmp_path):
    write_image(tmp_path / "flat.png", np.full((20, 20, 3), 0.5, np.float32))
    (tmp_path / "notes.png").write_text("not an image")
    for name, problem in (("flat.png", "uniform"), ("notes.png", "not an image"), ("missing.png", "no such")):
        run = atelier("paint", tmp_path / name, "-o", tmp_path / "o.svg")
        assert run.returncode == 2 and problem in run.stderr and "Traceback" not in run.stderr
    wrong = tmp_path / "wrong.safetensors"
    save_model(wrong, "nca", {"w": np.zeros(3, np.float32)})
    write_image(tmp_path / "line.png", np.pad(np.zeros((4, 20, 3), np.float32), ((8, 8), (2, 2), (0, 0)), constant_values=1))
    run = atelier("paint", tmp_path / "line.png", "--agent", wrong, "-o", tmp_path / "o.svg")
    assert run.returncode == 2 and "strokenet_agent" in run.stderr


def test_teacher_forcing_asks_for_any_missing_stroke_in_either_direction():
    from core.strokes.agent import TeacherForcing
    from core.strokes.data import resample
    lines = [np.array([[-0.6, -0.5], [0.6, -0.5]]), np.array([[0.0, -0.7], [0.0, 0.3], [0.2, 0.6]]),
             np.array([[-0.5, 0.5], [0.5, 0.5]])]
    assert np.allclose(np.diff(resample(lines[0])[:, 0]), 1.2 / 15)   # equally spaced along the stroke
    teacher = TeacherForcing([lines], jitter=0)
    targets, canvases, missing = teacher.take([0, 1, 2])
    assert len(teacher) == 3 and canvases[0].sum() == 0
    assert all(torch.equal(t, targets[0]) for t in targets) and targets.max() == 1
    assert [int(torch.isfinite(m[:, 0, 0]).sum()) for m in missing] == [3, 2, 1]
    assert canvases[1].sum() > 0 and torch.all(canvases <= targets + 0.05)

    class Draws(torch.nn.Module):   # an agent that always draws one given polyline, with the characters' pen
        def __init__(self, line):
            super().__init__()
            self.unused = torch.nn.Parameter(torch.zeros(1))   # an agent has parameters (their device is used)
            self.points = torch.tensor(np.concatenate([resample(line), np.ones((16, 1))], -1), dtype=torch.float32)

        def forward(self, x):
            return self.points.expand(len(x), -1, -1), torch.full((len(x),), TeacherForcing.PEN_BRUSH)

    def loss(line, example):
        return teacher.loss(Draws(line), *teacher.take([example])).item()

    left = teacher.take([2])[2][0, 0]                                           # example 2: one stroke left to draw
    last = [i for i, line in enumerate(lines) if torch.allclose(left, torch.tensor(resample(line)).float())]
    assert len(last) == 1
    drawn = [line for i, line in enumerate(lines) if i != last[0]]
    assert loss(lines[last[0]][::-1], 0) < 1e-6 and loss(lines[last[0]], 2) < 1e-6   # missing, either direction
    assert all(loss(line, 2) > 0.1 for line in drawn)                                 # already on the canvas

    teacher.draw_own(Draws(lines[1]), np.random.default_rng(0), 8)   # its own canvases: lines[1] drawn
    targets, canvases, missing = teacher.own
    assert len(targets) == 8 and torch.all((canvases > 0.5).sum((1, 2)) > 10)
    assert torch.all(torch.isfinite(missing[:, :2, 0, 0])) and not torch.isfinite(missing[:, 2:]).any()
    left = {tuple(np.round(m[0].tolist(), 3)) for m in missing.flatten(0, 1) if torch.isfinite(m[0, 0])}
    assert left == {tuple(np.round(resample(lines[i])[0], 3)) for i in (0, 2)}      # the two it has not drawn
    assert teacher.batch(np.random.default_rng(1), 6)[0].shape == (6, 64, 64)       # mixed with teacher examples


def test_shape_drawings_are_strokes_inside_the_square_held_out_like_characters():
    from core.strokes.data import SHAPES, character_strokes, ink_images
    train, test = character_strokes("shapes", "train"), character_strokes("shapes", "test")
    assert len(train) + len(test) == SHAPES and len(test) == SHAPES // 5
    assert all(1 <= len(d) <= 5 and all(np.abs(line).max() <= 1 for line in d) for d in train)
    images = ink_images("shapes", "test")
    assert images.shape == (SHAPES // 5, 64, 64) and all(image.max() > 0.9 for image in images)


def test_teacher_forcing_gives_each_character_set_an_equal_share_of_a_batch():
    from core.strokes.agent import TeacherForcing
    across, down = [np.array([[-0.5, 0.0], [0.5, 0.0]])], [np.array([[0.0, -0.5], [0.0, 0.5]])]
    big, small = [across * 3] * 30, [down]                # 90 stroke examples beside 1
    teacher = TeacherForcing(big, [], small, jitter=0)
    rng = np.random.default_rng(0)
    targets = torch.cat([teacher.take(teacher.indices(rng, 64))[0] for _ in range(20)])
    from_small = float(((targets[:, :, 32] > 0.5).sum(1) > 20).float().mean())   # the vertical line's
    assert len(teacher) == 91 and 0.4 < from_small < 0.6


def test_stopping_when_a_stroke_no_longer_brings_the_ink_closer():
    from core.strokes.agent import ink_chamfer, propose
    from core.strokes.data import resample
    target = torch.from_numpy(1 - painter.render(*strokes(2, seed=5), 64)[..., 0])
    on_line = torch.tensor(np.concatenate([resample([[-0.6, 0.0], [0.6, 0.0]]), np.ones((16, 1))], -1)).float()

    class SameStroke(torch.nn.Module):   # raw outputs of the same stroke, whatever the canvas
        def raw(self, x):
            return torch.cat([torch.atanh(on_line[None, :, :2]), torch.full((1, 16, 1), 5.0)], -1), torch.zeros(1)

    raw_points, _ = propose(SameStroke(), target, torch.zeros(0, 16, 3), torch.zeros(0), 5, stop_early=True)
    assert len(raw_points) == 1                           # drawing it again adds nothing
    assert len(propose(SameStroke(), target, torch.zeros(0, 16, 3), torch.zeros(0), 5, False)[0]) == 5
    line = torch.from_numpy(1 - painter.render(on_line[None], torch.full((1,), 0.3), 64)[..., 0])
    off_line = on_line + torch.tensor([0.0, 0.5, 0.0])
    assert ink_chamfer(on_line[None], torch.full((1,), 0.3), line) < 0.5 < ink_chamfer(off_line[None], torch.full((1,), 0.3), line)


def test_train_agent_command_teaches_a_recurrent_agent_the_hershey_strokes(tmp_path):
    out = tmp_path / "agent.safetensors"
    result = atelier("train-agent", "--generator", SHIPPED_GENERATOR, "--data", "hershey", "--recurrent",
                     "-o", out, "--minutes", 0.02)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["teacher_forcing_examples"] > summary["images"] > 0 and summary["steps"] >= 1
    agent, hyper = load_agent(out)
    assert hyper["recurrent"] and hyper["coordinates"] and agent.features[0].in_channels == 4
    more = tmp_path / "more.safetensors"
    result = atelier("train-agent", "--generator", SHIPPED_GENERATOR, "--data", "hershey", "--recurrent",
                     "--resume", out, "-o", more, "--minutes", 0.02)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["total_steps"] >= summary["steps"] + 1
    result = atelier("train-agent", "--generator", SHIPPED_GENERATOR, "--data", "hershey", "--resume", out,
                     "-o", more, "--minutes", 0.02)
    assert result.returncode == 2 and "--recurrent" in result.stderr and "Traceback" not in result.stderr


def test_training_device_follows_atelier_device(monkeypatch):
    from core.strokes.cli import _device
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)   # a GPU the user asked not to use
    monkeypatch.setenv("ATELIER_DEVICE", "cpu")
    assert _device("auto") == "cpu" and _device(None) == "cpu"
