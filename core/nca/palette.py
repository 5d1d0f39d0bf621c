"""An exemplar's palette: the few colours that cover most of its pixels, and their shares.

Numpy only (Blender's own Python and the benchmarks read it too).  Training's palette-shares
term (train.PaletteShares) keeps these shares; bench/nca.py counts how many of the colours a
synthesised texture keeps.
"""

import numpy as np

MERGE = 0.15    # RGB distance within which two histogram bins are one colour of the palette
MIN_SHARE = 0.02  # a colour covering less of the exemplar is noise or an edge, not a palette colour
LEVELS = 16     # histogram bins a channel


def palette(image, share=MIN_SHARE, merge=MERGE, levels=LEVELS):
    """The palette of an RGB image (..., 3) in [0, 1], deterministic: its pixels' RGB histogram
    (``levels`` bins a channel); bins taken from the fullest down, each joining the first colour
    within ``merge`` (RGB distance) or starting a new one; colours with under ``share`` of the
    pixels dropped -> (k, 3) colours (pixel means) and their shares (k,)."""
    pixels = np.asarray(image, np.float64)[..., :3].reshape(-1, 3)
    bins = np.clip((pixels * levels).astype(int), 0, levels - 1) @ np.array([levels * levels, levels, 1])
    counts = np.bincount(bins, minlength=levels ** 3)
    sums = np.stack([np.bincount(bins, pixels[:, c], minlength=levels ** 3) for c in range(3)], 1)
    colours, totals, weights = [], [], []
    for k in np.argsort(-counts):
        if not counts[k]:
            break
        mean = sums[k] / counts[k]
        near = [i for i, c in enumerate(colours) if np.linalg.norm(c - mean) < merge]
        if near:
            i = near[0]
            weights[i] = weights[i] + sums[k]
            totals[i] += counts[k]
        else:
            colours.append(mean)
            weights.append(sums[k].copy())
            totals.append(counts[k])
    shares = np.array(totals) / len(pixels)
    keep = shares >= share
    return (np.array(weights)[keep] / np.array(totals)[keep][:, None]), shares[keep]
