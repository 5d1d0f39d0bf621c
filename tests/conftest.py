"""Fixtures: the real Blender (bpy module) with Atelier enabled from the source tree."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import blender_helpers  # noqa: E402

blender_helpers.isolate_user_resources()  # before anything imports bpy


@pytest.fixture
def blender():
    """``bpy`` after factory settings, with the Atelier extension enabled."""
    import bpy
    return blender_helpers.fresh_blender(bpy)


@pytest.fixture
def repo_root():
    return blender_helpers.REPO_ROOT
