"""Test-side names for the shared Blender session helpers in ``tools/blender_session.py``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))

from blender_session import (  # noqa: E402,F401
    ADDON_MODULE, REPO_ROOT, enable_atelier, enable_osl, fresh_blender, isolate_user_resources,
    run_blender_script,
)
