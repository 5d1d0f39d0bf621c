"""Which torch device heavy work uses: ``ATELIER_DEVICE`` = auto (default), cpu or cuda."""

import os


def torch_device():
    import torch
    wanted = os.environ.get("ATELIER_DEVICE", "auto").lower()
    if wanted == "cuda" or (wanted == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")
