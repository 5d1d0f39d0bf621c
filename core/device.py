"""Which torch device heavy work uses: ``ATELIER_DEVICE`` = auto (default), cpu or cuda."""

import os


def torch_device(requested=None):
    """``requested`` (a command's ``--device``) when it names a device, else ``ATELIER_DEVICE``; ``auto``
    is the GPU when torch sees one.  Asking for cuda where torch sees none is an AtelierError."""
    import torch
    from .errors import AtelierError
    wanted = (requested if requested not in (None, "auto") else os.environ.get("ATELIER_DEVICE", "auto")).lower()
    if wanted == "cuda" and not torch.cuda.is_available():
        raise AtelierError(f"{'--device' if requested not in (None, 'auto') else 'ATELIER_DEVICE'} cuda: "
                           "torch sees no GPU")
    if wanted == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(wanted if wanted in ("cuda", "mps") else "cpu")


def available_cores():
    """The cores this process may run on (its CPU affinity, which containers and ``taskset`` set)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def cpu_threads(requested=None, most=8):
    """Set torch's CPU threads to ``requested``, else ``ATELIER_THREADS``, else the cores this process
    may use (at most ``most``); returns the count.

    Never from the load average: a background job of any priority would then silently halve the
    speed of every training started beside it.
    """
    import torch
    from_environment = os.environ.get("ATELIER_THREADS", "")
    wanted = requested or (int(from_environment) if from_environment.isdigit() else min(available_cores(), most))
    torch.set_num_threads(max(1, wanted))
    return torch.get_num_threads()
