"""Atelier's Blender side: each module has a ``classes`` tuple and ``register()``/``unregister()``."""

import importlib
from types import ModuleType

# Feature modules are registered after the shared ones they build on.
MODULE_NAMES = ("preferences", "library", "nca", "sketch", "strokes", "stylize", "live")

_modules: list[ModuleType] = []


def register():
    _modules[:] = [importlib.import_module(f".{name}", __package__) for name in MODULE_NAMES]
    for module in _modules:
        module.register()


def unregister():
    for module in reversed(_modules):
        module.unregister()
    _modules.clear()
