"""`atelier system check`: what this Python can run (the add-on's *Check* button runs it in the worker).

Every probe catches its own failure, so a half-broken interpreter still answers with what works.
"""

import importlib
import importlib.util
import platform
import sys

# Which features need which modules beyond numpy (the light path needs none).
FEATURE_NEEDS = {
    "nca_bake": (), "nca_export": (), "sketch": (), "strokes": (),
    "nca_train": ("torch",), "sketch_train": ("torch",), "stylize": ("torch", "cv2"),
}


def _version(module_name):
    """The module's version, or None when this Python cannot import it."""
    if importlib.util.find_spec(module_name) is None:
        return None
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # a broken install is reported, not raised
        return f"broken ({type(error).__name__}: {error})"
    return str(getattr(module, "__version__", "?"))


def _torch_devices():
    try:
        import torch
    except Exception:
        return {"cuda": None, "gpu": None}
    cuda = torch.cuda.is_available()
    return {"cuda": torch.version.cuda if cuda else None,
            "gpu": torch.cuda.get_device_name(0) if cuda else None}


def _nca_kernel():
    try:
        from ..nca.fast import kernel_report
    except ImportError:
        return {"kernel": "unknown"}
    try:
        return kernel_report()
    except Exception as error:  # the report must not stop the others
        return {"kernel": f"unknown ({type(error).__name__}: {error})"}


def _image_codec():
    from ..errors import AtelierError
    from ..imageio import codec_name
    try:
        return codec_name()
    except AtelierError as error:
        return f"none ({error})"


def check(args, progress):
    modules = {name: _version(name) for name in ("numpy", "torch", "cv2")}
    usable = {name: bool(version) and not version.startswith("broken") for name, version in modules.items()}
    features = {feature: all(usable[name] for name in needs) for feature, needs in FEATURE_NEEDS.items()}
    summary = {
        "python": sys.executable, "python_version": platform.python_version(),
        "platform": f"{platform.system()}-{platform.machine()}",
        "numpy": modules["numpy"], "torch": modules["torch"], "opencv": modules["cv2"],
        "image_codec": _image_codec(), "features": features,
    }
    if usable["torch"]:
        summary.update(_torch_devices())
        summary.update(_nca_kernel())
    else:
        summary["kernel"] = "none: μNCA training needs torch"
    return summary


def register(commands):
    """Add this group's commands to the ``atelier system`` sub-parser."""
    p = commands.add_parser("check", help="report Python, numpy, torch, CUDA, image codec and the μNCA kernel")
    p.set_defaults(run=check)
