"""Where Atelier's files are: what it ships (shaders, assets, prebuilt kernels) and the cache of files it
can always make again (datasets rendered once, compiled kernels).

The folder above ``core/`` is the same package wherever Atelier runs: the repository (whose root is the
extension), the extension zip that Blender installs as ``bl_ext.<repo>.atelier``, and the wheel that pip
installs as ``atelier`` (pyproject.toml maps the repository root onto it).  So every shipped file is
found from this module's own place, here and nowhere else.
"""

import os
from pathlib import Path

CORE = Path(__file__).resolve().parent
# the repository, the installed extension, or site-packages/atelier: the folder holding core/ and shaders/
ROOT = CORE.parent
# GLSL, OSL and C templates for code generation and the compiled μNCA kernels
SHADERS = ROOT / "shaders"
# shipped models and small data, one folder per feature
ASSETS = CORE / "assets"
# μNCA C kernels compiled for each platform; the extension zip ships them (tools/package.py)
PREBUILT_KERNELS = CORE / "nca" / "prebuilt"


def asset_folder(feature):
    """The shipped files of ``feature`` (``nca``, ``sketch``, ``strokes``)."""
    return ASSETS / feature


def cache_dir():
    """``ATELIER_CACHE``, else ~/.cache/atelier (not created here)."""
    return Path(os.environ.get("ATELIER_CACHE", Path.home() / ".cache" / "atelier"))
