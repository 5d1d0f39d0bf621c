"""Sketch-RNN core: stroke formats, loaders (a malicious .npz refused), loss, numpy runtime, training, CLI."""

import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from core.cli import run_command
from core.drawing.npz import load_npz, save_npz
from core.drawing.pen import polylines_to_stroke3, stroke3_to_polylines, to_stroke3, to_stroke5
from core.drawing.quickdraw import load_ndjson
from core.drawing.simplify import rdp
from core.drawing.svg import load_svg, parse_svg_path
from core.errors import AtelierError, Cancelled
from core.modelfile import save_model
from core.progress import SilentProgress
from core.sketch.data import (OFFSET_LIMIT, augment, clean, grease_pencil_to_stroke3, load_dataset,
                              stroke3_to_grease_pencil)
from core.sketch.model import (FusedLSTM, SMALL, SketchRNN, Batches, evaluate, kl_loss, load_torch_model,
                               reconstruction_loss, to_tensors, train)
from core.sketch.runtime import SketchModel, slerp

TINY = dict(SMALL, enc_rnn_size=12, dec_rnn_size=16, z_size=6, num_mixture=3, batch_size=8, max_seq_len=30,
            hyper_rnn_size=8, hyper_embedding_size=4)


def square(size=10.0, offset=(0.0, 0.0)):
    x, y = offset
    return [np.array([[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]])]


def toy_sketches(count=40, seed=0):
    """Squares and crosses of random sizes: a data set a tiny model starts to learn in a few steps."""
    rng = np.random.default_rng(seed)
    sketches = []
    for i in range(count):
        size = rng.uniform(5, 20)
        lines = square(size) if i % 2 else [np.array([[0, 0], [size, size]]), np.array([[size, 0], [0, size]])]
        sketches.append(polylines_to_stroke3(lines))
    return sketches


# ----------------------------------------------------------------------------- formats

def test_polylines_stroke3_stroke5_round_trip():
    lines = square(10) + [np.array([[20.0, 0], [25, 5], [30, 0]])]
    stroke3 = polylines_to_stroke3(lines)
    assert stroke3.shape == (8, 3) and stroke3[:, 2].tolist() == [0, 0, 0, 0, 1, 0, 0, 1]
    back = stroke3_to_polylines(stroke3)
    assert len(back) == 2
    shift = lines[0][0] - back[0][0]
    for original, rebuilt in zip(lines, back):
        np.testing.assert_allclose(rebuilt + shift, original, atol=1e-5)
    stroke5 = to_stroke5(stroke3, 12)
    assert stroke5.shape == (12, 5)
    assert np.all(stroke5[:8, 2] + stroke5[:8, 3] == 1) and np.all(stroke5[8:, 4] == 1)
    np.testing.assert_array_equal(to_stroke3(stroke5), stroke3)
    with pytest.raises(ValueError):
        to_stroke5(stroke3, 5)


def test_rdp_keeps_corners_and_drops_collinear_points():
    line = np.array([[0, 0], [1, 0.01], [2, 0], [3, 0], [3, 1], [3, 2]], float)
    np.testing.assert_array_equal(rdp(line, 0.1), [[0, 0], [3, 0], [3, 2]])
    assert rdp(line, 0.001).tolist() == [[0, 0], [1, 0.01], [2, 0], [3, 0], [3, 2]]


def test_augment_keeps_pen_lifts_and_shape():
    rng = np.random.default_rng(0)
    sketch = polylines_to_stroke3([np.column_stack([np.arange(30.0), np.sin(np.arange(30.0))]),
                                     np.array([[0.0, 5], [10, 5]])])
    for _ in range(10):
        augmented = augment(sketch, rng, scale_factor=0.0, drop_probability=0.5)
        assert augmented[:, 2].sum() == sketch[:, 2].sum()
        np.testing.assert_allclose(augmented[:, :2].sum(0), sketch[:, :2].sum(0), atol=1e-3)
        assert len(augmented) <= len(sketch)
    scaled = augment(sketch, rng, scale_factor=0.15, drop_probability=0.0)
    ratio = np.abs(scaled[:, :2]).sum(0) / np.abs(sketch[:, :2]).sum(0)
    assert np.all((ratio > 0.84) & (ratio < 1.16))


def test_clean_drops_bad_sketches_and_clamps_gigantic_offsets():
    good = polylines_to_stroke3(square())
    huge = good.copy()
    huge[1, 0] = 1e9
    kept, counts = clean([np.zeros((0, 3)), good[:1], good, np.tile(good, (20, 1)), huge,
                            np.full((3, 3), np.nan)], max_len=30)
    assert len(kept) == 2 and np.abs(kept[1][:, :2]).max() == OFFSET_LIMIT
    assert counts == {"empty": 1, "single_point": 1, "too_long": 1, "not_finite": 1, "clamped": 1}


def test_grease_pencil_points_to_stroke3_and_back():
    front = [np.array([[0, 0.5, 0], [1, 0.5, 0], [1, 0.5, 1]], float), np.array([[2, 0.5, 2], [3, 0.5, 2]], float)]
    stroke3, placement = grease_pencil_to_stroke3(front)
    lines = stroke3_to_polylines(stroke3)
    assert len(lines) == 2 and np.ptp(np.concatenate(lines), axis=0).max() == pytest.approx(255)
    assert lines[0][2, 1] < lines[0][1, 1]  # z up becomes y down
    back = stroke3_to_grease_pencil(stroke3, placement)
    for original, rebuilt in zip(front, back):
        np.testing.assert_allclose(rebuilt, original, atol=1e-5)
    with pytest.raises(AtelierError, match="no strokes"):
        grease_pencil_to_stroke3([])


# ----------------------------------------------------------------------------- loaders

def test_npz_round_trip_in_the_sketch_rnn_layout(tmp_path):
    splits = {"train": toy_sketches(6), "valid": toy_sketches(2), "test": toy_sketches(3)}
    path = tmp_path / "toy.npz"
    save_npz(path, {k: [np.round(s).astype(np.int16) for s in v] for k, v in splits.items()})
    loaded = load_npz(path)
    assert {k: len(v) for k, v in loaded.items()} == {"train": 6, "valid": 2, "test": 3}
    np.testing.assert_array_equal(loaded["train"][0], np.round(splits["train"][0]))


class _Evil:
    def __reduce__(self):
        return (exec, ("open(__import__('os').environ['SKETCH_PWNED'], 'w').write('pwned')",))


def _npz_with_pickle(path, payload):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("train.npy", header.getvalue() + pickle.dumps(payload, protocol=2))


def test_malicious_npz_is_refused_without_running_it(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("SKETCH_PWNED", str(marker))
    path = tmp_path / "evil.npz"
    _npz_with_pickle(path, _Evil())
    with pytest.raises(AtelierError, match=r"evil\.npz.*refused.*exec"):
        load_npz(path)
    with pytest.raises(AtelierError, match="refused"):
        run_command(["sketch", "train", str(path), "-o", str(tmp_path / "m.safetensors"), "--steps", "1"],
                    SilentProgress())
    assert not marker.exists()


def test_non_stroke_npz_files_get_clear_errors(tmp_path):
    plain = tmp_path / "plain.npz"
    np.savez(plain, train=np.zeros((4, 7)))
    with pytest.raises(AtelierError, match=r"plain\.npz.*not a stroke-3 sketch"):
        load_npz(plain)
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(AtelierError, match="not a readable .npz"):
        load_npz(tmp_path / "text.npz")


def test_ndjson_raw_and_simplified_with_malformed_lines_counted(tmp_path):
    simplified = {"word": "cat", "drawing": [[[0, 100, 100], [0, 0, 100]], [[10, 20], [50, 50]]]}
    raw = {"drawing": [[[0, 500, 1000, 1000], [0, 1, 0, 800], [0, 10, 20, 30]]]}
    path = tmp_path / "cats.ndjson"
    path.write_text("\n".join([json.dumps(simplified), "{not json", json.dumps({"no": "drawing"}),
                               json.dumps(raw), ""]))
    sketches, skipped = load_ndjson(path)
    assert skipped == 2 and len(sketches) == 2
    assert sketches[0][:, 2].tolist() == [0, 0, 1, 0, 1]
    raw_points = np.concatenate(stroke3_to_polylines(sketches[1]))
    assert len(raw_points) == 3  # the nearly straight start was simplified
    assert np.ptp(raw_points, axis=0).max() == pytest.approx(255, abs=1e-3)


def test_svg_paths_polylines_and_lines(tmp_path):
    path = tmp_path / "drawing.svg"
    path.write_text('<svg xmlns="http://www.w3.org/2000/svg"><path d="M10,10 l10,0 h5 v5 c0,5 5,5 5,0 z"/>'
                    '<polyline points="0,0 5,5 10,0"/><line x1="0" y1="20" x2="30" y2="20"/></svg>')
    lines = load_svg(path, samples=4)
    assert len(lines) == 3
    np.testing.assert_allclose(lines[0][:4], [[10, 10], [20, 10], [25, 10], [25, 15]])
    np.testing.assert_allclose(lines[0][-1], [10, 10])  # z closes the path
    np.testing.assert_allclose(lines[0][-2], [30, 15])  # the curve's end point, relative to (25, 15)
    (tmp_path / "broken.svg").write_text("<svg><path d='M 1 2")
    with pytest.raises(AtelierError, match="broken.svg"):
        load_svg(tmp_path / "broken.svg")


def test_svg_arcs_follow_their_ellipse():
    half = parse_svg_path("M0,0 A10,10 0 0,1 20,0", samples=8)[0]  # sweep 1: clockwise on screen, i.e. over the top
    np.testing.assert_allclose(np.linalg.norm(half - [10, 0], axis=1), 10, atol=1e-9)
    assert half[:, 1].min() == pytest.approx(-10) and len(half) == 17
    np.testing.assert_allclose(parse_svg_path("M0,0 a5 5 0 1020 0")[0], parse_svg_path("M0,0 a 5 5 0 1 0 20 0")[0])
    assert parse_svg_path("M0,0 a5 5 0 1020 0")[0][:, 1].max() == pytest.approx(10)  # radii too small: scaled up
    # half of an ellipse (radii 20, 10) turned by 30 degrees, centred on the origin, from one vertex to the other
    turn = np.array([[np.cos(np.pi / 6), -np.sin(np.pi / 6)], [np.sin(np.pi / 6), np.cos(np.pi / 6)]])
    (x0, y0), (x1, y1) = turn @ [20, 0], turn @ [-20, 0]
    arc = parse_svg_path(f"M{x0},{y0} A20,10 30 0 0 {x1},{y1}", samples=6)[0]
    local = arc @ turn
    np.testing.assert_allclose((local[:, 0] / 20) ** 2 + (local[:, 1] / 10) ** 2, 1, atol=1e-9)


def test_svg_transforms_of_elements_and_groups_are_applied(tmp_path):
    path = tmp_path / "drawing.svg"
    path.write_text('<svg xmlns="http://www.w3.org/2000/svg"><defs><path d="M0,0 L1,1"/></defs>'
                    '<g transform="translate(100, 0)"><g transform="rotate(90)">'
                    '<line x1="0" y1="0" x2="10" y2="0" transform="scale(2 3)"/></g>'
                    '<polyline points="0,0 0,10" transform="matrix(1 0 0 1 0 5) skewX(45)"/></g>'
                    '<path d="M10,0 L20,0" transform="rotate(180 15 0)"/></svg>')
    lines = load_svg(path)
    assert len(lines) == 3  # nothing from <defs>
    np.testing.assert_allclose(lines[0], [[100, 0], [100, 20]], atol=1e-9)  # scaled, turned, then moved
    np.testing.assert_allclose(lines[1], [[100, 5], [110, 15]], atol=1e-9)  # skewed, then moved
    np.testing.assert_allclose(lines[2], [[20, 0], [10, 0]], atol=1e-9)  # turned about its middle


def test_builtin_kanjivg_and_hershey_sets():
    kanji, _ = load_dataset("kanji", limit=20)
    hershey, _ = load_dataset("hershey", limit=50)
    for splits in (kanji, hershey):
        sketches = sum(splits.values(), [])
        assert sketches and all(s.ndim == 2 and s.shape[1] == 3 and s[-1, 2] == 1 for s in sketches)
    with pytest.raises(AtelierError, match="no such file"):
        load_dataset("no_such_dataset")


# ----------------------------------------------------------------------------- model

def test_fused_lstm_backward_matches_autograd():
    torch.manual_seed(0)
    steps, batch, n, k = 4, 3, 5, 2
    x = torch.randn(steps, batch, k, dtype=torch.float64)
    mask = (torch.rand(steps, batch, n, dtype=torch.float64) > 0.3).double() / 0.7
    for bias in (torch.randn(batch, 4 * n, dtype=torch.float64), torch.randn(4 * n, dtype=torch.float64)):
        inputs = [bias.requires_grad_(), torch.randn(batch, n, dtype=torch.float64, requires_grad=True),
                  torch.randn(batch, n, dtype=torch.float64, requires_grad=True),
                  torch.randn(n + k, 4 * n, dtype=torch.float64, requires_grad=True)]
        assert torch.autograd.gradcheck(FusedLSTM.apply, (x, *inputs, mask))
        assert torch.autograd.gradcheck(FusedLSTM.apply, (x, *inputs, None))


def test_bf16_recurrent_products_stay_close_to_float32():
    torch.manual_seed(0)
    mask = (torch.rand(6, 4, 8) > 0.1).float() / 0.9
    results = []
    for bf16 in (False, True):
        x = torch.randn(6, 4, 5, generator=torch.Generator().manual_seed(1))
        seeded = [torch.Generator().manual_seed(k) for k in (2, 3, 4)]
        inputs = [torch.randn(4, 32, generator=seeded[0]).requires_grad_(),
                  (torch.randn(4, 8, generator=seeded[1]) * 0.5).requires_grad_(), torch.zeros(4, 8),
                  (torch.randn(13, 32, generator=seeded[2]) * 0.3).requires_grad_()]
        hs = FusedLSTM.apply(x, *inputs, mask, bf16)
        (hs * torch.linspace(-1, 1, 8)).sum().backward()
        results.append((hs, inputs[0].grad, inputs[1].grad, inputs[3].grad))
    for exact, fast in zip(*results):
        assert fast.dtype == torch.float32
        assert (fast - exact).abs().max() < 2e-2 * exact.abs().max()


def test_loss_is_finite_on_extreme_offsets_and_outputs():
    hp = TINY
    target = torch.zeros(2, 10, 5)
    target[..., 2] = 1
    target[0, :5, :2] = torch.tensor([1e6, -1e6])
    target[1, :5, :2] = 1e-9
    target[:, 5:, 2], target[:, 5:, 4] = 0, 1
    for scale in (0.0, 1e4, -1e4):
        y = torch.full((2, 10, 6 * hp["num_mixture"] + 3), scale, requires_grad=True)
        offsets, pen = reconstruction_loss(y, target, hp["num_mixture"])
        (offsets + pen).backward()
        assert torch.isfinite(offsets) and torch.isfinite(pen) and torch.isfinite(y.grad).all()


def test_training_on_extreme_offsets_never_gives_nan(tmp_path):
    rng = np.random.default_rng(1)
    sketches = toy_sketches(16)
    for sketch in sketches[::3]:
        sketch[1:-1, :2] *= rng.choice([1e-4, 1e3])
    sketches, _ = clean(sketches, TINY["max_seq_len"])
    summary = train({"train": sketches}, tmp_path / "x.safetensors", TINY, steps=8, progress=SilentProgress())
    assert np.isfinite(summary["recon_loss"]) and np.isfinite(summary["kl_loss"])


@pytest.mark.parametrize("decoder", ["lstm", "layernorm", "hyper"])
@pytest.mark.parametrize("conditional", [True, False])
def test_numpy_runtime_matches_torch(tmp_path, decoder, conditional):
    hp = dict(TINY, decoder=decoder, conditional=conditional)
    model = SketchRNN(hp, seed=3)
    with torch.no_grad():
        for value in model.weights.values():
            value.add_(torch.randn_like(value) * 0.2)
    path = tmp_path / "m.safetensors"
    save_model(path, "sketch_rnn", to_tensors(model), {"hyperparameters": hp, "scale": 5.0})
    runtime = SketchModel(path)
    sketches = toy_sketches(4)
    batch, lengths = Batches(sketches, hp, 5.0, training=False).make(range(4))
    with torch.no_grad():
        z = None
        if conditional:
            mu, presig = model.encode(batch[:, 1:], lengths)
            runtime_mu, runtime_presig = runtime.encode(sketches)
            np.testing.assert_allclose(runtime_mu, mu.numpy(), atol=1e-4)
            np.testing.assert_allclose(runtime_presig, presig.numpy(), atol=1e-4)
            z = mu
        y = model.decode(batch[:, :-1], z).numpy()
    np.testing.assert_allclose(runtime.outputs(batch[:, :-1].numpy(), None if z is None else z.numpy()), y, atol=1e-4)


def test_numpy_sampling_draws_from_the_torch_mixture(tmp_path):
    """The runtime's per-row draw follows the mixture the torch loss defines, at temperature T (section 3.3)."""
    from core.sketch import cells
    from core.sketch.model import TORCH
    hp = dict(TINY, num_mixture=3)
    path = tmp_path / "m.safetensors"
    save_model(path, "sketch_rnn", to_tensors(SketchRNN(hp)), {"hyperparameters": hp, "scale": 1.0})
    runtime, temperature, count = SketchModel(path), 0.6, 40000
    y = np.float32([[1.0, -0.5, 0.2, 3, -2, 0.5, 1, 2, -1, -1, -0.5, -2, -0.5, 0.3, -1, 0.5, -0.2, 4, 0.3, 1.2, -0.7]])
    dx, dy, pen = runtime._draw(np.repeat(y, count, 0), temperature, np.random.default_rng(0))
    log_pi, mu_x, mu_y, log_sx, log_sy, rho, pen_logits = (
        v[0].double().numpy() for v in cells.mixture_parameters(TORCH, torch.from_numpy(y), 3))
    pi = np.exp(log_pi / temperature) / np.exp(log_pi / temperature).sum()
    pen_p = np.exp(pen_logits / temperature) / np.exp(pen_logits / temperature).sum()
    sx, sy = np.exp(log_sx) * temperature ** 0.5, np.exp(log_sy) * temperature ** 0.5
    np.testing.assert_allclose(np.bincount(pen, minlength=3) / count, pen_p, atol=0.01)
    mean_x, mean_y = pi @ mu_x, pi @ mu_y
    np.testing.assert_allclose([dx.mean(), dy.mean()], [mean_x, mean_y], atol=0.03)
    np.testing.assert_allclose(np.mean(dx * dy), pi @ (mu_x * mu_y + rho * sx * sy), atol=0.05)
    np.testing.assert_allclose(np.mean(dx * dx), pi @ (mu_x ** 2 + sx ** 2), atol=0.1)


def test_drawing_holds_blas_to_one_thread_and_gives_the_threads_back():
    from core.sketch.runtime import _openblas_thread_controls, one_blas_thread
    controls = _openblas_thread_controls()
    if not controls:
        pytest.skip("no OpenBLAS in this process")
    before = [get() for get, _ in controls]
    with pytest.raises(KeyError), one_blas_thread():
        assert [get() for get, _ in controls] == [1] * len(controls)
        raise KeyError("an error while drawing")
    assert [get() for get, _ in controls] == before


def test_training_resume_and_cancel_keep_a_good_model(tmp_path):
    data = {"train": toy_sketches(32), "valid": toy_sketches(8, seed=1)}
    out = tmp_path / "m.safetensors"
    first = train(data, out, TINY, steps=6, progress=SilentProgress(), checkpoint_seconds=1e9)
    assert first["steps"] == 6 and out.exists() and out.with_name(out.name + ".ckpt").exists()
    resumed = train(data, out, TINY, steps=4, resume=True, progress=SilentProgress())
    assert resumed["steps"] == 10
    model, meta, _ = load_torch_model(out)
    assert meta["training"]["steps"] == 10 and meta["scale"] == first["scale"]
    assert set(evaluate(model, data["valid"], meta["scale"])) == {"recon_loss", "kl_loss", "sketches"}

    class StopAfter(SilentProgress):
        def update(self, done, **figures):
            if figures.get("step", 0) >= 13:
                raise Cancelled("stop")

    with pytest.raises(Cancelled):
        train(data, out, TINY, steps=100, resume=True, progress=StopAfter(), checkpoint_seconds=1e9)
    _, meta, _ = load_torch_model(out)
    assert meta["training"]["steps"] == 13  # the last finished step was saved, not a half-written file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors", "m.safetensors.ckpt"]


# ----------------------------------------------------------------------------- CLI and shipped models

def test_cli_train_eval_sample(tmp_path):
    svg_dir = tmp_path / "drawings"
    svg_dir.mkdir()
    for i, sketch in enumerate(toy_sketches(24)):
        points = " ".join(f"{x:.1f},{y:.1f}" for line in stroke3_to_polylines(sketch) for x, y in line[:2])
        (svg_dir / f"{i}.svg").write_text(f'<svg xmlns="http://www.w3.org/2000/svg"><polyline points="{points}"/></svg>')
    model = tmp_path / "m.safetensors"
    summary = run_command(["sketch", "train", str(svg_dir), "-o", str(model), "--steps", "3", "--preset", "small",
                           "--enc-rnn-size", "8", "--dec-rnn-size", "16", "--z-size", "4", "--batch-size", "4",
                           "--decoder", "layernorm"], SilentProgress())
    assert summary["steps"] == 3 and model.exists()
    result = run_command(["sketch", "eval", str(model), str(svg_dir), "--split", "train"], SilentProgress())
    assert np.isfinite(result["recon_loss"]) and np.isfinite(result["kl_loss"])
    out = run_command(["sketch", "sample", str(model), "-n", "5", "--temperature", "0.3", "-o",
                       str(tmp_path / "s.svg")], SilentProgress())
    assert out["count"] == 5 and (tmp_path / "s.svg").read_text().startswith("<svg")
    run_command(["sketch", "sample", "kanji", "-n", "3", "-o", str(tmp_path / "s.npz")], SilentProgress())
    assert len(load_npz(tmp_path / "s.npz")["test"]) == 3
    with pytest.raises(AtelierError, match="say how long"):
        run_command(["sketch", "train", str(svg_dir), "-o", str(model)], SilentProgress())
    with pytest.raises(AtelierError, match="not an Atelier model"):
        (tmp_path / "fake.safetensors").write_bytes(b"0" * 64)
        run_command(["sketch", "sample", str(tmp_path / "fake.safetensors"), "-o", str(tmp_path / "x.svg")],
                    SilentProgress())


@pytest.mark.parametrize("name", ["kanji", "hershey"])
def test_shipped_models_draw_complete_reinterpret_and_morph(name):
    model = SketchModel(Path(__file__).resolve().parents[1] / "core/assets/sketch" / f"{name}.safetensors")
    sketches = model.sample_drawings(8, temperature=0.3, seed=1)
    assert all(len(s) >= 2 and np.isfinite(s).all() for s in sketches)
    assert model.sample(2, seed=5)[0].tolist() == model.sample(2, seed=5)[0].tolist()
    prefix = sketches[0][: max(2, len(sketches[0]) // 2)]
    mu, _ = model.encode([prefix, sketches[1]])
    completion = model.sample(1, 0.2, z=mu[:1], prefix=prefix)[0]
    assert np.isfinite(completion).all()
    halfway = slerp(mu[0], mu[1], 0.5)
    assert halfway.shape == mu[0].shape and np.isfinite(model.sample(1, 0.1, z=halfway[None])[0]).all()
