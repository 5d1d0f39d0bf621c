"""The whole demo, as `make demo` runs it: every feature renders pictures into one saved .blend."""

import json
import subprocess
import sys

from blender_helpers import REPO_ROOT
from core.imageio import read_image

FEATURES = ("nca", "sketch", "strokes", "stylize", "library")


def test_demo_uses_every_feature_and_writes_pictures(tmp_path):
    run = subprocess.run([sys.executable, str(REPO_ROOT / "demo" / "run.py"), "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert sorted(summary["features"]) == sorted(FEATURES)
    for feature in FEATURES:
        assert summary["features"][feature]["images"], feature
    for image in summary["images"]:
        picture = read_image(image, channels=3)
        assert picture.std() > 0.02, image  # not a blank render
    assert (tmp_path / "atelier_demo.blend").stat().st_size > 100_000
