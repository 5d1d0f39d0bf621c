"""Where Atelier keeps files it can always make again (datasets rendered once, compiled kernels)."""

import os
from pathlib import Path


def cache_dir():
    """``ATELIER_CACHE``, else ~/.cache/atelier (not created here)."""
    return Path(os.environ.get("ATELIER_CACHE", Path.home() / ".cache" / "atelier"))
