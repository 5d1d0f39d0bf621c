"""What each term of the μNCA training loss charges for losing a palette: prints one JSON object.

    python bench/nca_loss_terms.py [--exemplar bench/textures/polka.png] [--palette-weight 10]
                                   [--shares-weight 1]

The exemplar (a pattern of coloured marks on a plain ground) is compared with three images: itself
shifted by (5, 7) cells (the same texture: the terms' floor), itself with every mark pixel set to
the marks' mean colour (the palette collapsed to one colour, the arrangement kept), and with every
mark blue.  For each: L_SW, λ_patch x L_NN and λ_palette x L_palette of ``TextureLoss`` with the
5-level pyramid (core/nca/train.py), the palette term both ways (sliced, weight --palette-weight;
shares, weight --shares-weight).  When the collapsed image costs about as much in the palette term
as in the nearest-patch term, training has little reason to keep the colours apart.

Seconds of one thread; no training.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MARK_THRESHOLD = 0.3      # summed |RGB - ground| above which a pixel belongs to a mark
SHIFT = (5, 7)            # cells: a shift keeps the texture, so it shows what the terms charge for nothing
BLUE = (0.3, 0.3, 0.7)    # one colour far from most of the marks' own


def main():
    import torch
    from core.nca.defaults import TRAINING
    from core.nca.train import PaletteShares, TextureLoss, load_exemplar
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exemplar", default=str(ROOT / "bench" / "textures" / "polka.png"))
    parser.add_argument("--patch-weight", type=float, default=100.0)
    parser.add_argument("--palette-weight", type=float, default=10.0)
    parser.add_argument("--shares-weight", type=float, default=1.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    exemplar = load_exemplar(args.exemplar)  # as training sees it
    ground = np.median(exemplar.reshape(-1, 3), 0)
    marks = np.abs(exemplar - ground).sum(-1) > MARK_THRESHOLD
    one_colour, blue = exemplar.copy(), exemplar.copy()
    one_colour[marks] = exemplar[marks].mean(0)
    blue[marks] = BLUE

    def tensor(image):
        return torch.from_numpy(np.ascontiguousarray(np.moveaxis(image, -1, 0)))[None]

    loss = TextureLoss(tensor(exemplar), TRAINING.size, args.patch_weight, 5, args.palette_weight)
    shares = PaletteShares(tensor(exemplar))
    generator = torch.Generator().manual_seed(0)
    report = {"exemplar": Path(args.exemplar).name, "mark_share": round(float(marks.mean()), 3), "images": {}}
    for name, image in (("shifted", np.roll(exemplar, SHIFT, (0, 1))), ("marks_one_mean_colour", one_colour),
                        ("marks_blue", blue)):
        x = tensor(image)[None]
        with torch.no_grad():
            report["images"][name] = {
                "sliced_wasserstein": round(loss.sliced(x, generator).item(), 4),
                "weighted_nearest_patches": round(args.patch_weight * loss.nearest(x, generator).item(), 3),
                "weighted_palette": round(args.palette_weight * loss.palette(x, generator).item(), 4),
                "weighted_palette_shares": round(args.shares_weight * shares(x).item(), 4)}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
