"""Line-art mode and the classical tracer (issue 18): behaviour only; quality and speed are in bench/strokes.py."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from core.errors import AtelierError
from core.strokes import lines, runtime, tracer
from core.strokes.cli import SHIPPED_AGENT, image_to_strokes

ROOT = Path(__file__).resolve().parents[1]
shipped = pytest.mark.skipif(not SHIPPED_AGENT.exists(), reason="shipped models not built yet")


def plus(size=64, width=5):
    ink = np.zeros((size, size), np.float32)
    lo, hi = size // 2 - width // 2, size // 2 + (width + 1) // 2
    ink[10:size - 10, lo:hi] = 1
    ink[lo:hi, 12:size - 12] = 1
    return ink


def test_thinning_leaves_a_one_pixel_line_inside_the_ink():
    ink = plus() > 0.5
    skeleton = tracer.thin(ink)
    assert skeleton.any() and not (skeleton & ~ink).any()
    assert (skeleton[14:26, 26:38].sum(1) == 1).all()            # the vertical bar: one pixel wide


def test_tracer_joins_the_bars_of_a_plus_through_the_crossing_and_measures_their_width():
    traced = tracer.trace(plus())
    assert len(traced) == 2                                     # two straight strokes, not four arms
    for line, half in traced:
        assert 2 <= half <= 3.5                                 # ink 5 px wide
        assert np.hypot(*(line[-1] - line[0])) > 35
    loop = np.zeros((64, 64), np.float32)
    yy, xx = np.mgrid[:64, :64]
    loop[np.abs(np.hypot(yy - 32, xx - 32) - 20) < 2] = 1
    assert len(tracer.trace(loop)) == 1                          # a closed loop is one stroke
    assert tracer.trace(np.zeros((32, 32), np.float32)) == []


def test_traced_strokes_redraw_the_ink():
    drawn_by_pen = np.zeros((2, 16, 3), np.float32)                 # a plus drawn by the painter: round ends
    drawn_by_pen[0, :, 0], drawn_by_pen[1, :, 1] = np.linspace(-0.7, 0.7, 16), np.linspace(-0.6, 0.6, 16)
    drawn_by_pen[..., 2] = 1
    ink = runtime.ink_union(runtime.render_alphas(drawn_by_pen, np.full(2, 0.6, np.float32), 64))
    points, brush = tracer.to_strokes(tracer.trace(ink), 64)
    assert len(points) == 2
    drawn = runtime.ink_union(runtime.render_alphas(points, brush, 64)) > 0.5
    wanted = ink > 0.5
    # no ink outside the picture's, most of it (the skeleton lies on pixel centres: an even-width line
    # loses a pixel of width, which the refinement of lines mode gives back)
    assert (drawn & wanted).sum() / wanted.sum() > 0.7 and (drawn & wanted).sum() / drawn.sum() > 0.95
    points, brush, _ = lines.draw_lines(ink, strokes=4, steps=20, size=64)
    drawn = runtime.ink_union(runtime.render_alphas(points, brush, 64)) > 0.5
    assert (drawn & wanted).sum() / wanted.sum() > 0.9 and (drawn & wanted).sum() / drawn.sum() > 0.9


def test_lines_mode_uses_no_more_strokes_than_asked_and_says_whose_guess_won():
    ink = plus(128, 9)
    points, brush, summary = lines.draw_lines(ink, strokes=1, steps=3)
    assert len(points) == 1 and summary["chosen"] == "tracer"
    points, brush, summary = lines.draw_lines(ink, strokes=8, steps=3)
    assert len(points) == 2 and points.shape[1:] == (16, 3) and brush.shape == (2,)
    drawn = runtime.ink_union(runtime.render_alphas(points, brush, 128)) > 0.5
    assert (drawn & (ink > 0.5)).sum() / drawn.sum() > 0.9     # no ink where the picture has none


def test_merge_joins_two_halves_of_a_line_into_one_stroke():
    ink = np.zeros((128, 128), np.float32)
    ink[60:68, 20:108] = 1
    points = np.zeros((2, 16, 3), np.float32)
    points[0, :, 0], points[1, :, 0] = np.linspace(-0.65, 0.0, 16), np.linspace(0.0, 0.68, 16)
    points[..., 1], points[..., 2] = 0.0, 0.95
    brush = np.full(2, 0.45, np.float32)
    alphas = runtime.render_alphas(points, brush, 128)
    merged, _, _ = lines.merge(points, brush, alphas, ink, 128)
    assert len(merged) == 1
    points[1, :, 1] = 0.3                                        # not continuing each other: kept apart
    assert len(lines.merge(points, brush, runtime.render_alphas(points, brush, 128), ink, 128)[0]) == 2


@shipped
def test_paint_in_lines_mode_without_torch_or_opencv():
    code = textwrap.dedent("""
        import importlib.abc, json, sys
        class Blocked(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] in ("torch", "cv2", "skimage", "scipy"):
                    raise ModuleNotFoundError(name)
        sys.meta_path.insert(0, Blocked())
        import numpy as np
        from core.strokes.cli import image_to_strokes
        image = np.ones((100, 80, 3), np.float32)
        image[20:80, 38:43] = 0
        image[47:52, 10:70] = 0
        result = image_to_strokes(image, "plus.png", strokes=4, mode="lines", time_limit=2)
        print(json.dumps({"strokes": len(result["points"]), "runtime": result["runtime"], "chosen": result["chosen"],
                          "torch": "torch" in sys.modules}))
    """)
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["strokes"] == 2 and summary["runtime"] == "numpy" and not summary["torch"]
    assert summary["chosen"] in ("tracer", "agent")


def test_bad_mode_and_time_limit_are_clear_errors():
    image = np.ones((32, 32, 3), np.float32)
    image[10:20, 10:20] = 0
    with pytest.raises(AtelierError, match="--mode"):
        image_to_strokes(image, "x.png", mode="sketchy")
    with pytest.raises(AtelierError, match="--time-limit"):
        image_to_strokes(image, "x.png", mode="lines", time_limit=0)
