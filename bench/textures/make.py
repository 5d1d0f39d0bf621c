"""The μNCA benchmark set of issue 22, chosen by kind, not by score: 18 exemplars of 128x128.

    python bench/textures/make.py            # rewrites bench/textures/*.png and kinds.json
    python bench/textures/make.py --cycles   # + a Cycles render of a procedural material (bpy)
    python bench/textures/make.py --cycles --overview docs/images/nca_set.png   # + a picture of the set

Four kinds, at least four exemplars each, picked before any model was trained on them:

* lattice:    a square grid of lines, polka dots in six colours on a hexagonal lattice,
              square floor tiles with grout, scikit-image's brick wall;
* oriented:   diagonal bands in three colours, an over-under basket weave, wavy zebra stripes,
              wood grain;
* blobs:      soap bubbles with rims and highlights, Voronoi cells, smooth lava blobs,
              scikit-image's coins, and simple scattered spots (added later, for the goal's
              68-parameter "spots", before any model was trained on it);
* stochastic: scikit-image's grass, gravel, immunohistochemistry slide ("tissue") and a crop of
              the Hubble deep field ("galaxies"), and (``--cycles``) a Cycles render of a marble-like noise material.

Everything is deterministic (fixed seeds, no downloads: the photos are bundled with
scikit-image) except the Cycles render, whose file differs between runs in a few pixel values.  The procedural patterns are drawn on the torus, so they tile; the photo crops
do not.  None of these is used by the tests or shipped with the add-on.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SIZE = 128

KINDS = {
    "grid": "lattice", "polka": "lattice", "tiles": "lattice", "brick": "lattice",
    "bands": "oriented", "weave": "oriented", "zebra": "oriented", "wood": "oriented",
    "bubbles": "blobs", "cells": "blobs", "lava": "blobs", "coins": "blobs", "spots": "blobs",
    "grass": "stochastic", "gravel": "stochastic", "tissue": "stochastic", "galaxies": "stochastic",
    "marble": "stochastic",  # Cycles render, with --cycles
}


def _grid():
    return np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)


def _smooth_step(t, width=1.0):
    return np.clip(0.5 + t / width, 0, 1)


def _torus_delta(a, b):
    return (a - b + SIZE / 2) % SIZE - SIZE / 2


def _wobble(rng, amplitude, frequencies=3):
    """Smooth periodic displacement field (tiles)."""
    y, x = _grid() / SIZE * 2 * np.pi
    field = sum(rng.normal() * np.sin(k * x + rng.uniform(0, 6.3)) * np.sin(l * y + rng.uniform(0, 6.3))
                for k, l in rng.integers(1, frequencies + 1, (6, 2)))
    return amplitude * field / 3


def _mix(t, a, b):
    t = t[..., None]
    return t * np.array(a) + (1 - t) * np.array(b)


def grid(rng):
    """Thin dark lines every 16 pixels on a pale ground: a square lattice."""
    y, x = _grid()
    d = np.minimum(np.abs((y + 8) % 16 - 8), np.abs((x + 8) % 16 - 8))
    return _mix(_smooth_step(1.5 - d), (0.15, 0.2, 0.35), (0.92, 0.9, 0.82))


def polka(rng):
    """Dots on a hexagonal lattice, each one of six colours at random, on cream."""
    palette = np.array([(0.85, 0.15, 0.15), (0.95, 0.75, 0.1), (0.2, 0.6, 0.25),
                        (0.15, 0.35, 0.8), (0.55, 0.2, 0.65), (0.1, 0.1, 0.1)])
    image = np.ones((SIZE, SIZE, 3)) * np.array([0.97, 0.93, 0.84])
    y, x = _grid()
    rows, spacing = 8, SIZE / 8  # 8 rows of 8 dots, alternate rows shifted by half a spacing
    for row in range(rows):
        for col in range(8):
            cy, cx = (row + 0.5) * spacing, (col + 0.25 + 0.5 * (row % 2)) * spacing
            r = np.hypot(_torus_delta(y, cy), _torus_delta(x, cx))
            inside = _smooth_step(5.0 - r)[..., None]
            image = image * (1 - inside) + inside * palette[rng.integers(len(palette))]
    return image


def tiles(rng):
    """32-pixel square tiles of slightly varying terracotta with light grout."""
    y, x = _grid()
    tile = (y // 32).astype(int) * 4 + (x // 32).astype(int)
    shade = rng.uniform(0.85, 1.1, 16)[tile]
    base = np.array([0.72, 0.38, 0.25]) * shade[..., None]
    d = np.minimum(y % 32, 31 - y % 32)
    d = np.minimum(d, np.minimum(x % 32, 31 - x % 32))
    grout = _smooth_step(1.5 - d)[..., None]
    speckle = rng.normal(0, 0.025, (SIZE, SIZE, 1))
    return np.clip(base + speckle, 0, 1) * (1 - grout) + grout * np.array([0.85, 0.83, 0.78])


def bands(rng):
    """Diagonal bands at 30° to the rows, repeating cream, teal, rust."""
    y, x = _grid()
    phase = ((x + 2 * y) / (SIZE / 12)) % 3  # 4 cycles of 3 bands along x, 8 along y: it tiles
    colours = np.array([(0.93, 0.88, 0.75), (0.1, 0.45, 0.5), (0.7, 0.3, 0.15)])
    index = np.floor(phase).astype(int)
    frac = phase - index
    edge = _smooth_step(frac - 0.97, 0.06)[..., None]  # a soft edge into the next band
    return colours[index] * (1 - edge) + colours[(index + 1) % 3] * edge


def weave(rng):
    """Over-under plain weave: horizontal warp and vertical weft threads 16 pixels wide."""
    y, x = _grid()
    cell_y, cell_x = (y // 16).astype(int), (x // 16).astype(int)
    over = (cell_y + cell_x) % 2 == 0  # warp on top
    u, v = (y % 16) / 16, (x % 16) / 16
    warp_shade = 0.55 + 0.45 * np.sin(np.pi * u)   # round thread across its width
    weft_shade = 0.55 + 0.45 * np.sin(np.pi * v)
    warp = warp_shade[..., None] * np.array([0.85, 0.75, 0.45])
    weft = weft_shade[..., None] * np.array([0.3, 0.4, 0.7])
    gap = (_smooth_step(np.minimum(u, 1 - u) * 16 - 1.0) * _smooth_step(np.minimum(v, 1 - v) * 16 - 1.0))[..., None]
    image = np.where(over[..., None], warp, weft)
    return image * (0.35 + 0.65 * gap)


def zebra(rng):
    y, x = _grid() / SIZE * 2 * np.pi
    phase = 10 * x + 2 * y + _wobble(rng, 4.0)
    return _mix(0.5 + 0.5 * np.tanh(4 * np.sin(phase)), (0.95, 0.93, 0.88), (0.05, 0.05, 0.06))


def wood(rng):
    """Wood grain: fine, slightly wavy lines along the rows with ring-to-ring colour changes."""
    y, x = _grid() / SIZE * 2 * np.pi
    phase = 14 * y + _wobble(rng, 3.0, 2) + 0.6 * np.sin(3 * x + 1.0)
    ring = 0.5 + 0.5 * np.sin(phase)
    fine = 0.5 + 0.5 * np.sin(5 * phase + _wobble(rng, 1.0))
    t = 0.65 * ring ** 3 + 0.35 * fine * ring
    return _mix(t, (0.45, 0.25, 0.1), (0.82, 0.6, 0.38))


def bubbles(rng):
    """Soap bubbles of varied size: a faint body, a bright rim and a white highlight, on dark blue."""
    image = np.ones((SIZE, SIZE, 3)) * np.array([0.05, 0.1, 0.22])
    y, x = _grid()
    for _ in range(28):
        cy, cx, r = rng.uniform(0, SIZE), rng.uniform(0, SIZE), rng.uniform(5, 14)
        dy, dx = _torus_delta(y, cy), _torus_delta(x, cx)
        d = np.hypot(dy, dx)
        inside = _smooth_step(r - d)[..., None]
        body = np.array([0.25, 0.45, 0.65]) * 0.6 + 0.4 * image
        rim = np.exp(-((d - r + 1.2) / 1.0) ** 2)[..., None] * np.array([0.6, 0.85, 1.0])
        spot = np.exp(-(np.hypot(dy + 0.4 * r, dx + 0.4 * r) / (0.18 * r)) ** 2)[..., None]
        image = image * (1 - inside) + inside * np.clip(body + rim + spot, 0, 1)
    return image


def cells(rng):
    points = ((np.mgrid[0:6, 0:6].reshape(2, -1).T + rng.uniform(0.15, 0.85, (36, 2))) * SIZE / 6)  # jittered
    y, x = _grid()
    d = np.sort(np.stack([np.hypot(_torus_delta(y, py), _torus_delta(x, px)) for py, px in points]), 0)
    t = np.clip((d[1] - d[0]) / 3, 0, 1)
    return _mix(t, (0.9, 0.75, 0.6), (0.35, 0.1, 0.12))


def lava(rng):
    """Smooth orange blobs in dark rock: a thresholded periodic noise field."""
    field = _wobble(rng, 1.0, 5) + 0.5 * _wobble(rng, 1.0, 8)
    t = 0.5 + 0.5 * np.tanh(6 * (field - 0.1))
    glow = np.clip(field, 0, None)[..., None]
    return np.clip(_mix(t, (0.95, 0.45, 0.05), (0.12, 0.08, 0.08)) + 0.2 * glow * t[..., None], 0, 1)


def spots(rng):
    """Simple spots: round dark-brown spots of about one size, scattered at random but never
    touching (dart throwing on the torus), on a tawny ground, like a cheetah's coat."""
    image = np.ones((SIZE, SIZE, 3)) * np.array([0.86, 0.66, 0.36])
    y, x = _grid()
    centres = []
    for _ in range(2000):  # keep each throw that lands at least 17 pixels from the others
        c = rng.uniform(0, SIZE, 2)
        if all(np.hypot(*_torus_delta(c, o)) >= 17 for o in centres):
            centres.append(c)
    for cy, cx in centres:
        inside = _smooth_step(rng.uniform(4.5, 6.0) - np.hypot(_torus_delta(y, cy), _torus_delta(x, cx)))
        image = image * (1 - inside[..., None]) + inside[..., None] * np.array([0.2, 0.12, 0.07])
    return image


PHOTOS = {  # name: (scikit-image image, top, left, crop side in its pixels)
    "brick": ("brick", 100, 100, 256), "coins": ("coins", 20, 60, 256), "grass": ("grass", 120, 120, 256),
    "gravel": ("gravel", 100, 100, 256), "tissue": ("immunohistochemistry", 128, 128, 256),
    "galaxies": ("hubble_deep_field", 200, 300, 384),
}


def photo(name):
    import skimage.data
    sys.path.insert(0, str(ROOT))
    from core.nca.resample import area_resize
    source, top, left, side = PHOTOS[name]
    image = getattr(skimage.data, source)()[top:top + side, left:left + side].astype(np.float32) / 255
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, 2)
    return area_resize(image[..., :3], SIZE, SIZE)


def marble_cycles(path):
    """A Cycles render (CPU, 16 samples) of a plane with a noise-texture marble material, seen
    straight on by an orthographic camera, written to ``path``."""
    import bpy
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    bpy.ops.mesh.primitive_plane_add(size=2)
    plane = bpy.context.object
    material = bpy.data.materials.new("marble")
    material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    nodes.clear()
    noise = nodes.new("ShaderNodeTexNoise")
    noise.inputs["Scale"].default_value, noise.inputs["Detail"].default_value = 3.0, 8.0
    noise.inputs["Distortion"].default_value = 2.0
    ramp = nodes.new("ShaderNodeValToRGB")
    ramp.color_ramp.elements[0].color = (0.05, 0.06, 0.08, 1)
    ramp.color_ramp.elements[1].position = 0.55
    ramp.color_ramp.elements[1].color = (0.85, 0.82, 0.75, 1)
    emission, output = nodes.new("ShaderNodeEmission"), nodes.new("ShaderNodeOutputMaterial")
    links.new(noise.outputs["Fac"], ramp.inputs["Fac"])
    links.new(ramp.outputs["Color"], emission.inputs["Color"])
    links.new(emission.outputs[0], output.inputs["Surface"])
    plane.data.materials.append(material)
    camera = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
    camera.data.type, camera.data.ortho_scale, camera.location = "ORTHO", 2.0, (0, 0, 2)
    scene.collection.objects.link(camera)
    scene.camera = camera
    scene.render.engine = "CYCLES"
    scene.cycles.device, scene.cycles.samples, scene.cycles.seed = "CPU", 16, 0
    scene.render.resolution_x = scene.render.resolution_y = SIZE
    scene.view_settings.view_transform = "Standard"
    scene.render.image_settings.file_format = "PNG"
    scene.render.dither_intensity = 0.0  # (dither is random: the file would change every run)
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)


def make(out=HERE, cycles=False):
    sys.path.insert(0, str(ROOT))
    from core.imageio import write_image
    drawn = {"grid": grid, "polka": polka, "tiles": tiles, "bands": bands, "weave": weave, "zebra": zebra,
             "wood": wood, "bubbles": bubbles, "cells": cells, "lava": lava, "spots": spots}
    written = {}
    for k, (name, draw) in enumerate(drawn.items()):
        image = draw(np.random.default_rng(22 + k))
        written[name] = write_image(out / f"{name}.png", np.clip(image, 0, 1).astype(np.float32))
    for name in PHOTOS:
        written[name] = write_image(out / f"{name}.png", photo(name))
    if cycles:
        marble_cycles(out / "marble.png")
        written["marble"] = out / "marble.png"
    kinds = {name: KINDS[name] for name in KINDS if (out / f"{name}.png").exists()}
    (out / "kinds.json").write_text(json.dumps(kinds, indent=1) + "\n")
    return kinds


def overview(path, folder=HERE):
    """One PNG of the set: a row per kind, each exemplar at its size with its name."""
    import cv2
    sys.path.insert(0, str(ROOT))
    from core.imageio import read_image, write_image
    names = kinds(folder)
    rows = {}
    for name, kind in names.items():
        rows.setdefault(kind, []).append(name)
    width = max(map(len, rows.values()))
    sheet = np.ones((len(rows) * (SIZE + 20) + 4, 70 + width * (SIZE + 4), 3), np.float32)
    for r, (kind, members) in enumerate(rows.items()):
        top = 4 + r * (SIZE + 20)
        cv2.putText(sheet, kind, (4, top + SIZE // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        for c, name in enumerate(members):
            left = 70 + c * (SIZE + 4)
            sheet[top:top + SIZE, left:left + SIZE] = read_image(Path(folder) / f"{name}.png", channels=3)[:SIZE, :SIZE]
            cv2.putText(sheet, name, (left + 2, top + SIZE + 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1,
                        cv2.LINE_AA)
    write_image(path, sheet)


def kinds(folder=HERE):
    """{name: kind} of the exemplars present in ``folder``."""
    return json.loads((Path(folder) / "kinds.json").read_text())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", action="store_true", help="also render the marble material with Cycles (bpy)")
    parser.add_argument("--overview", help="also write one PNG of the whole set, a row per kind")
    args = parser.parse_args()
    made = make(cycles=args.cycles)
    if args.overview:
        overview(args.overview)
    print(json.dumps(made))
