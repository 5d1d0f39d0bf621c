"""Test-side names for the shared Blender session helpers in ``tools/blender_session.py``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))

from blender_session import (  # noqa: E402,F401
    ADDON_MODULE, REPO_ROOT, enable_atelier, enable_osl, fresh_blender, isolate_user_resources,
    run_blender_script,
)


def stylised_strips(bpy, scene):
    """The strips Atelier added for ``scene``: they live in "<scene> · Stylised", never in ``scene``."""
    holder = bpy.data.scenes.get(f"{scene.name} · Stylised")
    return list(holder.sequence_editor.strips) if holder and holder.sequence_editor else []


def interruptible():
    """``preexec_fn`` of a child the tests Ctrl-C: a shell's background job ignores SIGINT, its children
    inherit that, and Python then installs no KeyboardInterrupt handler; this gives it back."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_DFL)
