"""Which torch device heavy work uses: ``ATELIER_DEVICE`` = auto (default), cpu or cuda."""

import os


def torch_device():
    import torch
    wanted = os.environ.get("ATELIER_DEVICE", "auto").lower()
    if wanted == "cuda" or (wanted == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


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
