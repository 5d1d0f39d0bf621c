"""Which torch device heavy work uses: ``ATELIER_DEVICE`` = auto (default), cpu or cuda."""

import os


def torch_device():
    import torch
    wanted = os.environ.get("ATELIER_DEVICE", "auto").lower()
    if wanted == "cuda" or (wanted == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def cpu_threads(requested=None, most=8):
    """Set torch's CPU threads to ``requested``, else to the cores the load average leaves idle
    (at least 1, at most ``most``); returns the count.

    Training and inference run thousands of small operations, and at each one OpenMP threads wait
    for each other; when another job holds a core they spin instead.  Measured on a 2-core machine
    under load: a Sketch-RNN step took 20-50 s on two threads and 5.8 s on one, a StrokeNet paint
    80 s and 23 s.
    """
    import torch
    idle = (os.cpu_count() or 1) - round(os.getloadavg()[0])
    torch.set_num_threads(max(1, requested or min(idle, most)))
    return torch.get_num_threads()
