"""The real Blender (the ``bpy`` module) with Atelier enabled from the source tree: for tests, the demo and benchmarks."""

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEV_REPOSITORY = "atelier_dev"
ADDON_MODULE = f"bl_ext.{DEV_REPOSITORY}.atelier"


def isolate_user_resources():
    """Point Blender's user folders at a fresh temporary directory; must run before ``import bpy``."""
    if "ATELIER_TEST_USER_RESOURCES" not in os.environ:
        folder = tempfile.mkdtemp(prefix="atelier_blender_user_")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)  # the process that made it removes it
        os.environ["ATELIER_TEST_USER_RESOURCES"] = folder
    os.environ["BLENDER_USER_RESOURCES"] = os.environ["ATELIER_TEST_USER_RESOURCES"]
    return Path(os.environ["BLENDER_USER_RESOURCES"])


def enable_atelier(bpy):
    """Enable Atelier as an extension installed from a local repository that links to this tree.

    Going through an extensions repository (not sys.path) gives the add-on the package name,
    preferences and operator registration it has once installed from the zip.
    """
    repository_dir = Path(os.environ["BLENDER_USER_RESOURCES"]) / "dev_extensions"
    repository_dir.mkdir(parents=True, exist_ok=True)
    link = repository_dir / "atelier"
    if not link.exists():
        link.symlink_to(REPO_ROOT, target_is_directory=True)
    repos = bpy.context.preferences.extensions.repos
    if DEV_REPOSITORY not in {repo.module for repo in repos}:
        repos.new(name="Atelier (source tree)", module=DEV_REPOSITORY,
                  custom_directory=str(repository_dir), source="USER")
    bpy.ops.preferences.addon_enable(module=ADDON_MODULE)
    if ADDON_MODULE not in bpy.context.preferences.addons:
        raise RuntimeError("Atelier did not enable; see the output above")


def fresh_blender(bpy):
    """Factory settings (an empty file, default preferences), then Atelier enabled."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    enable_atelier(bpy)
    return bpy


def enable_osl():
    """Put Blender's bundled site-packages (with ``oslquery``) on sys.path, so OSL script nodes compile."""
    import bpy
    from core.osl import add_oslquery_to_path
    add_oslquery_to_path(bpy.utils.system_resource("PYTHON"))
    import oslquery  # noqa: F401  (fails loudly if this Blender has no OSL)


_PREAMBLE = f"""
import sys
sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
import blender_session
blender_session.isolate_user_resources()
import bpy
blender_session.fresh_blender(bpy)
"""


def run_blender_script(code, timeout=300, cwd=None):
    """Run ``code`` in a fresh Python process with bpy and Atelier enabled; returns CompletedProcess.

    Grease-pencil renders abort the whole process when EGL is missing, so they run here rather
    than in the test process.  The script's environment gets its own user-resources folder.
    """
    env = dict(os.environ)
    env.pop("ATELIER_TEST_USER_RESOURCES", None)
    return subprocess.run([sys.executable, "-c", _PREAMBLE + code], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd or REPO_ROOT, env=env)
