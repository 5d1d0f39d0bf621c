"""The README's feature sections and command-line reference are generated; they must match docs/ and the CLI."""

import subprocess
import sys

from blender_helpers import REPO_ROOT


def test_readme_is_up_to_date():
    run = subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "readme.py"), "--check"], capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr


def test_readme_pictures_exist():
    import re
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert pictures and all((REPO_ROOT / p).is_file() for p in pictures), pictures
