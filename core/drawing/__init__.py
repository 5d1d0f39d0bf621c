"""Drawings as polylines, and the file formats they come in; numpy and the standard library only.

Sketch-RNN (``core.sketch``) and StrokeNet (``core.strokes``) both read their drawings here.

* **polylines**: a list of ``(K, 2)`` arrays of absolute points, one per stroke, ``y`` down (what SVG,
  KanjiVG, the Hershey fonts and grease pencil give).
* :mod:`.pen`: the pen formats of Ha & Eck, "A Neural Representation of Sketch Drawings", 2017,
  section 3.1 (stroke-3 offsets with a lift flag, stroke-5 with a one-hot pen state).
* :mod:`.simplify`: Ramer-Douglas-Peucker simplification, as QuickDraw prepared its drawings.
* :mod:`.svg`: SVG paths, shapes and transforms; :mod:`.glyphs`: the KanjiVG and Hershey-font sets.
* :mod:`.npz`: sketch-rnn ``.npz`` archives; :mod:`.quickdraw`: QuickDraw ``.ndjson``.

Loaders never execute code from a file, bound what they read (bytes, points, decompression) and
answer damaged data with an :class:`~core.errors.AtelierError` naming the file.
"""
