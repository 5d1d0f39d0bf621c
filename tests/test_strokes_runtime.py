"""StrokeNet's numpy runtime (core/strokes/runtime.py) against the torch code it mirrors, and Image to
Strokes in a Python without torch or OpenCV (Blender's own)."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import AtelierError
from core.strokes import agent as torch_agent
from core.strokes import painter
from core.strokes import runtime
from core.strokes.cli import SHIPPED_AGENT, choose_runtime, image_to_strokes
from core.strokes.data import random_strokes

ROOT = Path(__file__).resolve().parents[1]
ASSETS = SHIPPED_AGENT.parent
shipped = pytest.mark.skipif(not SHIPPED_AGENT.exists(), reason="shipped models not built yet")


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def strokes(count=3, seed=0):
    return random_strokes(np.random.default_rng(seed), count)


def target_image(seed=5, count=3):
    return (1 - painter.render(*strokes(count, seed), 64)[..., 0]).astype(np.float32)


def raw_strokes(count, seed=1):
    """Raw (pre-activation) strokes like an agent's: positions spread over the square, mostly pressed."""
    rng = np.random.default_rng(seed)
    points = rng.normal(0, 0.6, (count, 16, 3)).astype(np.float32)
    points[..., :2] += rng.normal(0, 0.5, (count, 1, 2)).astype(np.float32)
    points[..., 2] += 1.5
    return points, rng.normal(0, 1, count).astype(np.float32)


@shipped
@pytest.mark.parametrize("name", ["agent_recurrent", "agent_digits"])
def test_numpy_agent_forward_equals_torch(name):
    path = ASSETS / f"{name}.safetensors"
    model, hyper = torch_agent.load_agent(path)
    agent, _ = runtime.load_agent(path)
    x = np.random.default_rng(0).random((2, model.features[0].in_channels - 2 * model.coordinates, 64, 64),
                                        np.float32)
    with torch.no_grad():
        points, brush = model.raw(torch.from_numpy(x))
    ours = agent.raw(x)
    assert np.allclose(ours[0], points.numpy(), atol=1e-4) and np.allclose(ours[1], brush.numpy(), atol=1e-4)
    assert agent.recurrent == hyper.get("recurrent", False)


def test_agent_weights_of_another_shape_are_refused(tmp_path):
    from core.modelfile import save_model
    wrong = tmp_path / "wrong.safetensors"
    save_model(wrong, "strokenet_agent", {"features.0.weight": np.zeros((3, 1, 3, 3), np.float32)},
               {"hyperparameters": {}})
    with pytest.raises(AtelierError, match="do not match"):
        runtime.load_agent(wrong)


def test_numpy_painter_equals_torch():
    points, brush = strokes(4)
    dense = runtime.catmull_rom(points, 8)[0]
    assert np.allclose(dense, painter.catmull_rom(torch.from_numpy(points), 8).numpy(), atol=1e-5)
    ours = runtime.render_alphas(points, brush, 64)
    theirs = painter.render_alpha(torch.from_numpy(points), torch.from_numpy(brush), 64).numpy()
    assert np.allclose(ours, theirs, atol=1e-4)
    assert np.allclose(runtime.ink_union(ours), painter.ink_union(torch.from_numpy(theirs)).numpy(), atol=1e-4)
    colours = np.random.default_rng(1).random((4, 3)).astype(np.float32)
    assert np.allclose(runtime.render(points, brush, 200, colours), painter.render(points, brush, 200, colours),
                       atol=1e-4)
    hair = points[:1].copy()
    hair[..., 2] = np.linspace(1, 0, 16)               # thinner than a pixel: the 2 r branch, then lifted
    assert np.allclose(runtime.render(hair, np.zeros(1, np.float32), 128), painter.render(hair, np.zeros(1), 128),
                       atol=1e-4)


def torch_refinement_loss(raw_points, raw_brush, target):
    """agent.refine's loss and its autograd gradients."""
    rp, rb = (torch.from_numpy(a.copy()).requires_grad_(True) for a in (raw_points, raw_brush))
    points, brush = torch_agent.activate(rp, rb)
    canvas = painter.ink_union(painter.render_alpha(points, brush, 64))[None]
    target = torch.from_numpy(target)
    loss = torch_agent.image_loss(canvas, target[None], pools=(2, 4, 8)) \
        + torch_agent.CHAMFER * torch_agent.chamfer(points, brush, target) \
        + torch_agent.SMOOTHNESS * torch_agent.smoothness(points) / len(points)
    loss.backward()
    return loss.item(), rp.grad.numpy(), rb.grad.numpy()


@pytest.mark.parametrize("seed", [1, 2])
def test_hand_derived_gradients_equal_autograd(seed):
    raw_points, raw_brush = raw_strokes(3, seed)
    raw_points[0, :, 2] = np.linspace(2, -6, 16)      # one stroke fading out: thin lines, the 2 r branch, the clamp
    raw_brush[0] = -3
    target = target_image()
    loss, g_points, g_brush = runtime.refinement_loss(raw_points, raw_brush, target)
    expected, e_points, e_brush = torch_refinement_loss(raw_points, raw_brush, target)
    assert loss == pytest.approx(expected, rel=1e-5)
    # torch's cdist measures distances through a matrix product (float32 cancellation): ~1e-4 apart
    assert np.linalg.norm(g_points - e_points) <= 2e-3 * np.linalg.norm(e_points)
    assert np.abs(g_points - e_points).max() <= 1e-3 * np.abs(e_points).max()
    assert np.allclose(g_brush, e_brush, rtol=1e-3, atol=1e-3 * np.abs(e_brush).max())


def test_each_backward_piece_equals_autograd():
    """The spline's backward (knots included) and the stamp's (winning segment) on their own."""
    points, brush = strokes(2, seed=7)
    weights = np.random.default_rng(0).normal(size=(2, 61, 3)).astype(np.float32)
    dense, cache = runtime.catmull_rom(points, 4)
    tp = torch.from_numpy(points).requires_grad_(True)
    (painter.catmull_rom(tp, 4) * torch.from_numpy(weights)).sum().backward()
    assert np.allclose(runtime.catmull_rom_backward(cache, weights), tp.grad.numpy(), atol=1e-4)

    xy, radius, _ = runtime.stroke_samples(points, brush, 64)
    pixel_weights = np.random.default_rng(1).normal(size=(64, 64)).astype(np.float32)
    alpha, winner = runtime.stamp(xy[0], radius[0], 64)
    g_xy, g_r = runtime.stamp_backward(xy[0], radius[0], winner, pixel_weights)
    txy, tr = (torch.from_numpy(a[0].copy()).requires_grad_(True) for a in (xy, radius))
    talpha = painter.stamp(txy, tr, 64)
    (talpha * torch.from_numpy(pixel_weights)).sum().backward()
    assert np.allclose(alpha, talpha.detach().numpy(), atol=1e-5)
    assert np.allclose(g_xy, txy.grad.numpy(), atol=1e-3) and np.allclose(g_r, tr.grad.numpy(), atol=1e-3)


def test_refinement_steps_follow_torch_and_can_be_cancelled():
    from core.errors import Cancelled
    from core.progress import SilentProgress
    raw_points, raw_brush = raw_strokes(3, 3)
    target = target_image()
    ours = runtime.refine(raw_points, raw_brush, target, 5)
    theirs = torch_agent.refine(torch.from_numpy(raw_points), torch.from_numpy(raw_brush), torch.from_numpy(target), 5)
    assert np.abs(ours[0] - theirs[0].numpy()).max() < 1e-3 and np.abs(ours[1] - theirs[1].numpy()).max() < 1e-3
    assert not np.array_equal(ours[0], raw_points)     # it moved, and the input was left alone
    stopped = SilentProgress()
    stopped.cancel_event.set()
    with pytest.raises(Cancelled):
        runtime.refine(raw_points, raw_brush, target, 5, progress=stopped)


def test_pen_lifting_pruning_and_ink_chamfer_equal_torch():
    target = target_image(seed=4)
    raw_points, raw_brush = raw_strokes(4, 5)
    raw_brush[1] = -4                                 # a hairline to lift
    points, brush = runtime.lift_pen(*runtime.activate(raw_points, raw_brush))
    tpoints, tbrush = torch_agent.lift_pen(*torch_agent.activate(torch.from_numpy(raw_points),
                                                                 torch.from_numpy(raw_brush)))
    assert np.allclose(points, tpoints.numpy(), atol=1e-6) and (points[1, :, 2] == 0).any()
    alphas, ttarget = runtime.render_alphas(points, brush), torch.from_numpy(target)
    assert runtime.prune(alphas, target) == torch_agent.prune(tpoints, tbrush, ttarget)
    assert runtime.real_error(alphas, target) == pytest.approx(torch_agent.real_error(tpoints, tbrush, ttarget),
                                                               rel=1e-5)
    assert runtime.ink_chamfer(alphas, target) == pytest.approx(torch_agent.ink_chamfer(tpoints, tbrush, ttarget),
                                                                rel=1e-4)
    assert runtime.ink_chamfer(alphas[:0], target) == float("inf")
    mask = np.zeros((9, 7), bool)
    mask[2, 3] = mask[8, 0] = True
    rows, cols = np.mgrid[:9, :7]
    exact = np.minimum(np.hypot(rows - 2, cols - 3), np.hypot(rows - 8, cols))
    assert np.allclose(runtime.distance_to(mask), exact)


@shipped
def test_numpy_draw_is_as_good_as_torch_on_a_character():
    from core.strokes.data import PEN_RADIUS
    lines = [np.array([[-0.6, -0.4], [0.6, -0.4]]), np.array([[0.0, -0.7], [0.0, 0.7]])]
    target = painter.render_polylines(lines, PEN_RADIUS, 64).astype(np.float32)
    agent, _ = runtime.load_agent(SHIPPED_AGENT)
    model, _ = torch_agent.load_agent(SHIPPED_AGENT)
    alone = runtime.draw(agent, True, target, 4)
    assert np.allclose(alone[0], torch_agent.draw(model, True, torch.from_numpy(target), 4)[0].numpy(), atol=1e-3)
    points, brush = runtime.draw(agent, True, target, 4, refine_steps=20)
    tpoints, tbrush = torch_agent.draw(model, True, torch.from_numpy(target), 4, refine_steps=20)
    ours = runtime.real_error(runtime.render_alphas(points, brush), target)
    theirs = torch_agent.real_error(tpoints, tbrush, torch.from_numpy(target))
    assert 1 <= len(points) <= 4 and ours <= 1.2 * theirs + 1e-4


def test_area_and_bilinear_resizes_match_opencv():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    for shape, size in (((90, 150), 64), ((40, 23, 3), 64), ((64, 64), 64), ((300, 7), 64), ((5, 5), 16)):
        image = rng.random(shape).astype(np.float32)
        h, w = shape[:2]
        side = max(h, w)
        square = np.zeros((side, side) + shape[2:], np.float32)
        square[(side - h) // 2:(side - h) // 2 + h, (side - w) // 2:(side - w) // 2 + w] = image
        expected = cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA)
        assert np.allclose(runtime.to_square_area(image, size), expected, atol=1e-4), (shape, size)
    for shape, (h, w) in (((64, 80, 3), (50, 61)), ((30, 20, 3), (77, 45))):
        image = rng.random(shape).astype(np.float32)
        expected = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
        assert np.allclose(runtime.resize_bilinear(image, h, w), expected, atol=1e-3)


def test_runtime_choice(monkeypatch):
    monkeypatch.setenv("ATELIER_DEVICE", "auto")
    assert choose_runtime("numpy") == choose_runtime("auto") == "numpy" and choose_runtime("torch") == "torch"
    monkeypatch.setenv("ATELIER_DEVICE", "cuda")  # a GPU asked for: the torch code
    assert choose_runtime("auto") == "torch"
    with pytest.raises(AtelierError, match="--runtime"):
        choose_runtime("jax")
    image = np.ones((40, 50, 3), np.float32)
    image[18:22, 5:45] = 0
    result = image_to_strokes(image, "line.png", strokes=2, refine=3, runtime="numpy")
    assert result["runtime"] == "numpy" and 1 <= len(result["points"]) <= 2


BLOCKED = """
import importlib.abc, sys

class NoTorchNoOpenCV(importlib.abc.MetaPathFinder):   # Blender's own Python: numpy, no torch, no cv2
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("torch", "cv2"):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)

sys.meta_path.insert(0, NoTorchNoOpenCV())
"""


def run_without_torch(code, tmp_path):
    run = subprocess.run([sys.executable, "-c", BLOCKED + textwrap.dedent(code)], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@shipped
def test_image_to_strokes_and_paint_without_torch_or_opencv(tmp_path):
    """The paint command's whole path (image_to_strokes, SVG, PNG render and resize, JSON) with torch and
    cv2 refused; image files are read and written by a stand-in (core/imageio.py has its own tests)."""
    summary = run_without_torch(f"""
        import json, sys, types
        from argparse import Namespace
        from pathlib import Path
        import numpy as np
        try:
            import torch
            raise SystemExit("torch was importable")
        except ImportError:
            pass
        image = np.ones((70, 90, 3), np.float32)
        image[15:55, 40:44] = 0.0
        image[33:37, 20:70] = (0.8, 0.1, 0.1)
        written = {{}}
        stand_in = types.ModuleType("core.imageio")
        stand_in.read_image = lambda path, channels=None: image
        stand_in.write_image = lambda path, array, **kw: written.setdefault(str(path), array)
        sys.modules["core.imageio"] = stand_in
        from core.progress import SilentProgress
        from core.strokes.cli import image_to_strokes, paint_command
        result = image_to_strokes(image, "plus.png", strokes=3, refine=10, colour=True)
        out = Path({str(tmp_path)!r})
        args = Namespace(image="plus.png", output=out / "o.svg", png=out / "o.png", json=out / "o.json", agent=None,
                         strokes=3, invert=False, colour=False, refine=5, rounds=2, runtime="auto")
        summary = paint_command(args, SilentProgress())
        png = written[str(out / "o.png")]
        assert "torch" not in sys.modules and "cv2" not in sys.modules
        print(json.dumps({{"runtime": result["runtime"], "strokes": len(result["points"]),
                          "colour": result["colours"].max(axis=0).tolist(), "paint": summary,
                          "png": [list(png.shape), float(png.min())]}}))
    """, tmp_path)
    assert summary["runtime"] == summary["paint"]["runtime"] == "numpy" and 1 <= summary["strokes"] <= 3
    assert summary["colour"][0] > 0.5 or summary["colour"][2] < 0.2   # the red bar gives some stroke its colour
    assert summary["png"][0] == [70, 90, 3] and summary["png"][1] < 0.5 and 1 <= summary["paint"]["strokes"] <= 3
    assert (tmp_path / "o.svg").read_text().startswith("<svg")
    assert json.loads((tmp_path / "o.json").read_text())["strokes"][0]["radii"]


def test_torch_runtime_is_refused_where_torch_is_missing(tmp_path):
    result = run_without_torch("""
        import json
        from core.errors import AtelierError
        from core.strokes.cli import choose_runtime
        try:
            choose_runtime("torch")
            print(json.dumps({"refused": False}))
        except AtelierError as error:
            print(json.dumps({"refused": True, "auto": choose_runtime("auto"), "message": str(error)}))
    """, tmp_path)
    assert result["refused"] and result["auto"] == "numpy" and "numpy" in result["message"]
