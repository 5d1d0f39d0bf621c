"""The model library: every model a feature can use, shipped or trained by the artist, with thumbnails.

A model file says what it is in its header (``kind``), so the library lists by kind, never by
folder or file name: a μNCA saved into the models folder never shows up as a Sketch-RNN model.
Shipped models (``core/assets``) are read-only; the artist's own (the models folder shared by
every .blend) can be renamed and deleted.  Thumbnails are pictures of what the model makes: a
μNCA's grown texture, a few Sketch-RNN samples.  They are drawn once with the numpy runtimes and
cached as PNG files keyed by the model file's content, so a changed file gets a new picture.

bpy-free: the add-on (``addon/library.py``) shows these entries with Blender's previews.
"""

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import AtelierError
from .modelfile import MODEL_SUFFIX, read_model
from .nca.files import KIND as NCA_KIND
from .paths import asset_folder, cache_dir
from .sketch.runtime import KIND as SKETCH_KIND
from .strokes.constants import AGENT_KIND
from .stylize import KIND as STYLIZE_KIND

# feature -> (model kinds it uses, folder of the models shipped for it)
FEATURES = {
    "nca": ((NCA_KIND,), asset_folder("nca") / "presets"),
    "sketch": ((SKETCH_KIND,), asset_folder("sketch")),
    "strokes": ((AGENT_KIND,), asset_folder("strokes")),
    "stylize": ((STYLIZE_KIND,), None),
}
THUMBNAIL_SIZE = 96
NCA_THUMBNAIL_STEPS = 400  # enough for every preset to settle into its texture at 64x64 cells
SKETCH_THUMBNAIL_SAMPLES = 4
NAME_PATTERN = re.compile(r"^[\w\- .()]{1,64}$")


@dataclass(frozen=True)
class Entry:
    """One model the library lists."""
    path: Path
    kind: str
    name: str
    shipped: bool
    details: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def label(self):
        return self.name.replace("_", " ")


def _details(kind, meta, path):
    """A few facts worth a tooltip: size in parameters and bytes, what it trained on."""
    hyper = meta.get("hyperparameters", {})
    training = meta.get("training", {})
    facts = {"bytes": path.stat().st_size}
    for key in ("params", "channels", "decoder", "recurrent"):
        if key in hyper:
            facts[key] = hyper[key]
    for key in ("iterations", "steps", "seconds", "score", "exemplar", "data"):
        if key in training and isinstance(training[key], (int, float, str)):
            facts[key] = training[key]
    return facts


class Library:
    """The models of each feature, from the shipped folders and ``user_folder``.

    Reading a header means reading the file; entries are kept per (path, size, mtime), so
    listing again after a training costs one read of the new file only.
    """

    def __init__(self, user_folder, thumbnails=None):
        self.user_folder = Path(user_folder)
        self.thumbnail_folder = Path(thumbnails) if thumbnails else cache_dir() / "thumbnails"
        self._seen = {}  # (path, size, mtime_ns) -> Entry or None (not a model)

    def _entry(self, path, shipped):
        try:
            stat = path.stat()
        except OSError:
            return None
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if key not in self._seen:
            try:
                _, meta = read_model(path)
            except AtelierError:
                self._seen[key] = None  # a damaged or foreign file is simply not listed
            else:
                self._seen[key] = Entry(path, meta["kind"], str(meta.get("name") or path.stem), shipped,
                                        _details(meta["kind"], meta, path))
        return self._seen[key]

    def entries(self, feature):
        """The shipped models of ``feature`` (by name), then the artist's own (newest first)."""
        kinds, shipped_folder = FEATURES[feature]
        shipped = sorted(shipped_folder.glob(f"*{MODEL_SUFFIX}")) if shipped_folder else []
        own = sorted(self.user_folder.glob(f"*{MODEL_SUFFIX}"), key=lambda p: p.stat().st_mtime, reverse=True) \
            if self.user_folder.is_dir() else []
        found = [self._entry(path, True) for path in shipped] + [self._entry(path, False) for path in own]
        return [entry for entry in found if entry is not None and entry.kind in kinds]

    def find(self, path):
        """The entry of ``path`` (any feature), or None."""
        path = Path(path)
        return self._entry(path, path.parent != self.user_folder)

    def _own(self, path):
        entry = self.find(path)
        if entry is None or entry.shipped or Path(path).parent != self.user_folder:
            raise AtelierError(f"{path}: only your own models (in {self.user_folder}) can be renamed or deleted")
        return entry

    def rename(self, path, new_name):
        """Rename the artist's model file to ``new_name`` (its header keeps its history); never overwrites."""
        self._own(path)
        new_name = new_name.strip()
        if not NAME_PATTERN.match(new_name):
            raise AtelierError(f"{new_name!r}: use 1-64 letters, digits, spaces, '-', '_', '.' or brackets")
        target = Path(path).with_name(new_name + MODEL_SUFFIX)
        if target.exists():
            raise AtelierError(f"{target}: a model of that name exists; choose another name")
        Path(path).rename(target)
        return target

    def delete(self, path):
        """Delete the artist's model file (never a shipped one)."""
        self._own(path)
        Path(path).unlink()

    def thumbnail(self, entry):
        """A PNG picture of what ``entry`` makes, drawn once and cached; None for kinds without one."""
        draw = THUMBNAILS.get(entry.kind)
        if draw is None:
            return None
        digest = hashlib.sha1(entry.path.read_bytes()).hexdigest()[:16]
        target = self.thumbnail_folder / f"{entry.kind}_{digest}.png"
        if not target.exists():
            from .imageio import write_image
            write_image(target, draw(entry.path))
        return target


def nca_thumbnail(path):
    """The μNCA's texture, grown from noise on a 64x64 grid and shown at THUMBNAIL_SIZE."""
    from .nca import files
    from .nca.render import run_states
    from .nca.runtime import to_rgb
    rgb = to_rgb(run_states(files.load(path), 64, NCA_THUMBNAIL_STEPS, quantized=True, seed=0)[0])
    scale = THUMBNAIL_SIZE // 64 + 1
    return np.repeat(np.repeat(rgb, scale, 0), scale, 1)[:THUMBNAIL_SIZE, :THUMBNAIL_SIZE]


def sketch_thumbnail(path):
    """A 2x2 grid of the model's sketches (temperature 0.3, seed 0), dark ink on paper."""
    from .sketch.runtime import SketchModel
    from .drawing.pen import stroke3_to_polylines
    canvas = np.ones((THUMBNAIL_SIZE, THUMBNAIL_SIZE, 3), np.float32)
    cell = THUMBNAIL_SIZE // 2
    sketches = SketchModel(path).sample_drawings(SKETCH_THUMBNAIL_SAMPLES, 0.3, seed=0)
    for index, sketch in enumerate(sketches[:4]):
        if len(sketch) < 2:
            continue
        lines = stroke3_to_polylines(sketch)
        points = np.concatenate(lines)
        low, span = points.min(0), max(float(np.ptp(points, axis=0).max()), 1e-9)
        origin = np.array([index % 2, index // 2]) * cell
        for line in lines:
            draw_polyline(canvas, origin + 4 + (line - low) / span * (cell - 8))
    return canvas


def draw_polyline(canvas, points, ink=0.1):
    """Stamp ``points`` (x, y pixels) and the segments between them onto ``canvas``, one pixel wide."""
    if len(points) == 1:
        points = np.repeat(points, 2, axis=0)
    for a, b in zip(points[:-1], points[1:]):
        count = int(np.ceil(np.abs(b - a).max())) + 1
        xy = np.round(a + (b - a) * np.linspace(0, 1, count)[:, None]).astype(int)
        inside = (xy >= 0).all(1) & (xy[:, 0] < canvas.shape[1]) & (xy[:, 1] < canvas.shape[0])
        canvas[xy[inside, 1], xy[inside, 0]] = ink


THUMBNAILS = {NCA_KIND: nca_thumbnail, SKETCH_KIND: sketch_thumbnail}
