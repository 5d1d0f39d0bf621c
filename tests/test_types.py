"""addon/ and core/ type-check with mypy against Blender 5.0's API stubs (configuration: pyproject.toml)."""

import subprocess
import sys

from blender_helpers import REPO_ROOT


def test_mypy_finds_no_errors():
    run = subprocess.run([sys.executable, "-m", "mypy"], capture_output=True, text=True, cwd=REPO_ROOT,
                         timeout=900)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
