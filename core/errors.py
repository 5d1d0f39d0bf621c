"""Errors meant for people: the CLI prints them, the add-on reports them, neither shows a traceback."""

import sys


class AtelierError(Exception):
    """A problem the user can fix (bad file, bad argument); the message names the file and the problem."""


class Cancelled(Exception):
    """The user asked to stop (Ctrl-C on the command line, ESC in Blender)."""


PACKAGE_NAMES = {"cv2": "OpenCV (opencv-python-headless)", "torch": "torch", "PIL": "Pillow"}


def missing_module_message(module, argv=()):
    """What to tell a person whose Python lacks ``module`` for the command ``argv``."""
    command = " ".join(["atelier", *argv[:2]])
    package = PACKAGE_NAMES.get(module, module)
    return (f"{command} needs {package}, which this Python ({sys.executable}) does not have: install the Atelier "
            f"zip for your platform that bundles it, or run the worker with a Python that has it")
