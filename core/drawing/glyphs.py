"""The two builtin sets of drawn characters, read from their PyPI packages.

* **KanjiVG** (``pip install kanjivg``): one SVG file per character, one ``<path>`` per stroke in
  writing order, each a single subpath without transforms; read them with :func:`.svg.load_svg`.
  Variant drawings of a character lie beside its base file (``04e00.svg``, ``04e00-Kaisho.svg``).
* **Hershey fonts** (``pip install Hershey-Fonts``): single-line fonts whose glyphs are polylines.
"""

import importlib.util
from pathlib import Path

import numpy as np

from ..errors import AtelierError


def kanjivg_folder():
    """The folder of the ``kanjivg`` package's SVG files (the ``kanji`` data package it installs)."""
    spec = importlib.util.find_spec("kanji")
    folder = Path(next(iter(spec.submodule_search_locations))) if spec and spec.submodule_search_locations else None
    if folder is None or not folder.is_dir():
        raise AtelierError("kanji: the 'kanjivg' package is not installed (pip install kanjivg)")
    return folder


def kanjivg_files():
    """Every KanjiVG SVG file, variants included, sorted by name (a character's variants beside it)."""
    return sorted(kanjivg_folder().glob("*.svg"))


def hershey_glyphs(fonts=None, characters=None):
    """Glyphs of the Hershey fonts as polylines (font units, ``y`` down), font by font.

    ``fonts``: names of the package's fonts (all of them when None); ``characters``: only the glyphs
    of these characters, in this order (every glyph of a font when None).  Glyphs with no stroke of
    two points or more (the space) are left out.
    """
    try:
        from HersheyFonts import HersheyFonts
    except ImportError:
        raise AtelierError("hershey: the 'Hershey-Fonts' package is not installed (pip install Hershey-Fonts)") from None
    font = HersheyFonts()
    drawings = []
    for name in fonts or font.default_font_names:
        font.load_default_font(name)
        glyphs = font.all_glyphs
        chosen = glyphs.values() if characters is None else [glyphs[c] for c in characters if c in glyphs]
        for glyph in chosen:
            lines = [np.array(line, float) for line in glyph.strokes if len(line) > 1]
            if lines:
                drawings.append(lines)
    return drawings
