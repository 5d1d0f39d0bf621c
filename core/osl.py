"""Finding OSL's Python module (``oslquery``), which Cycles needs to compile Script nodes.

Blender ships it in its bundled site-packages; Blender as a Python module (``bpy`` from pip)
does not put those on ``sys.path``.  bpy-free: the caller passes
``bpy.utils.system_resource("PYTHON")``.
"""

import sys
from pathlib import Path


def add_oslquery_to_path(python_home):
    """Append the site-packages under Blender's ``python_home`` that hold ``oslquery`` to ``sys.path``."""
    for site_packages in Path(python_home).glob("lib/python3*/site-packages"):
        if (site_packages / "oslquery").exists() and str(site_packages) not in sys.path:
            sys.path.append(str(site_packages))
