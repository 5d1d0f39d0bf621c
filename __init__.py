"""Atelier, the Blender extension: the repository root is the extension; the add-on lives in ``addon/``."""


def register():
    from .addon import register as register_addon
    register_addon()


def unregister():
    from .addon import unregister as unregister_addon
    unregister_addon()
