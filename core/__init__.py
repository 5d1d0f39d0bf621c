"""Atelier core: bpy-free models, training, quantisation, runtimes and code generation.

Nothing in this package imports bpy; the Blender add-on (``addon/``) and the
``atelier`` command-line program are both thin layers over it.
"""

__version__ = "0.1.0"
