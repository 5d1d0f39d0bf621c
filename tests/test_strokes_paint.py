"""Painterly mode (issue 18): the composite's gradient, and fitting brings the canvas closer. Quality: bench/strokes.py."""

import numpy as np

from core.strokes import paint, runtime
from core.strokes.cli import image_to_strokes


def test_composite_backward_matches_finite_differences():
    rng = np.random.default_rng(0)
    alphas = rng.uniform(0, 1, (3, 6, 6)).astype(np.float32)
    colours = rng.uniform(0, 1, (3, 3)).astype(np.float32)
    weights = rng.normal(0, 1, (6, 6, 3)).astype(np.float32)
    canvas, g_alpha, g_colour = paint.composite_backward(alphas, colours, weights)
    assert np.allclose(canvas, runtime.composite(alphas, colours), atol=1e-6)

    def value(a, c):
        return float((runtime.composite(a, c).astype(np.float64) * weights).sum())
    eps = 1e-3
    for index in [(0, 2, 3), (2, 5, 0), (1, 0, 0)]:
        up, down = alphas.copy(), alphas.copy()
        up[index] += eps
        down[index] -= eps
        assert abs((value(up, colours) - value(down, colours)) / (2 * eps) - g_alpha[index]) < 1e-2
    for index in [(0, 1), (2, 2)]:
        up, down = colours.copy(), colours.copy()
        up[index] += eps
        down[index] -= eps
        assert abs((value(alphas, up) - value(alphas, down)) / (2 * eps) - g_colour[index]) < 1e-2


def test_fitted_strokes_come_closer_to_the_picture_than_their_first_guess():
    picture = np.ones((64, 64, 3), np.float32)
    picture[:, :32] = (0.8, 0.2, 0.1)                 # half red, a blue disc
    yy, xx = np.mgrid[:64, :64]
    picture[np.hypot(yy - 40, xx - 44) < 12] = (0.1, 0.2, 0.9)
    rng = np.random.default_rng(1)
    points, brush, colours = paint.first_guess(picture, 8, "random", rng)
    before = paint.picture_loss(runtime.render(points, brush, 64, colours), picture)[0]
    points, brush, colours = paint.fit(picture, points, brush, colours, 15)
    after = paint.picture_loss(runtime.render(points, brush, 64, colours), picture)[0]
    assert after < 0.7 * before
    assert colours.min() >= 0 and colours.max() <= 1


def test_paint_mode_returns_the_strokes_asked_for_with_colours():
    image = np.ones((40, 60, 4), np.float32)
    image[10:30, 5:30, :3] = (0.9, 0.6, 0.1)
    image[:, 50:, 3] = 0                                # transparent: paper
    result = image_to_strokes(image, "shade.png", strokes=6, refine=4, mode="paint")
    assert result["points"].shape == (6, 16, 3) and result["colours"].shape == (6, 3)
    assert result["side"] == 60 and result["runtime"] == "numpy"


def _square_picture():
    picture = np.ones((32, 32, 3), np.float32)
    picture[4:16, 4:28] = (0.9, 0.3, 0.1)
    return picture


def test_each_placed_stroke_is_the_candidate_that_removes_most_error():
    picture = _square_picture()
    blank = np.ones_like(picture)
    points, brush, colours = paint._placed(picture, blank, 1, (0.6, 1.0), np.random.default_rng(4), tries=8)
    alphas = runtime.render_alphas(points, brush, 32)
    best_colour, gain = paint.best_colour_and_gain(alphas, blank, picture)
    assert np.allclose(colours, best_colour, atol=1e-5) and gain[0] > 0
    single = []                                         # one candidate each: worse on average
    for seed in range(5, 13):
        other = paint._placed(picture, blank, 1, (0.6, 1.0), np.random.default_rng(seed), tries=1)
        single.append(paint.best_colour_and_gain(runtime.render_alphas(*other[:2], 32), blank, picture)[1][0])
    assert np.mean(single) < gain[0]


def test_removal_costs_match_rendering_without_each_stroke():
    picture = _square_picture()
    points, brush, colours = paint.first_guess(picture, 5, "random", np.random.default_rng(2))
    alphas = runtime.render_alphas(points, brush, 32)
    full = ((runtime.composite(alphas, colours) - picture) ** 2).sum()
    costs = paint.removal_costs(alphas, colours, picture)
    for k in range(5):
        rest = np.arange(5) != k
        without = ((runtime.composite(alphas[rest], colours[rest]) - picture) ** 2).sum()
        assert abs(costs[k] - (without - full)) < 1e-3 * max(1.0, abs(full))


def test_replacement_moves_a_stroke_that_does_not_pay_for_itself():
    picture = _square_picture()
    rng = np.random.default_rng(3)
    points, brush, colours = paint.first_guess(picture, 4, "greedy", rng)
    points[-1, :, :2] = (0.7, 0.8)                      # a dot of paper colour on the paper: removal costs nothing
    colours[-1] = 1.0
    useless = points[-1].copy()
    before = paint.picture_loss(runtime.render(points, brush, 32, colours), picture)[0]
    points, brush, colours = paint.replace_weak(picture, points, brush, colours, (0.6, 1.0), rng, share=0.5)
    assert len(points) == 4
    assert not any(np.allclose(p, useless) for p in points)
    assert paint.picture_loss(runtime.render(points, brush, 32, colours), picture)[0] < before


def test_paint_mode_stops_at_its_time_limit():
    """``--time-limit`` bounds paint mode: 10,000 fitting steps would take minutes, half a CPU second does not."""
    import time
    image = np.ones((48, 48, 3), np.float32)
    image[10:38, 10:20] = (0.8, 0.2, 0.1)
    started = time.process_time()
    result = image_to_strokes(image, "block.png", strokes=4, refine=10_000, mode="paint", time_limit=0.5)
    assert time.process_time() - started < 10 and 1 <= len(result["points"]) <= 4
