"""SVG files as polylines: every path command, the basic shapes that are lines, and transforms."""

import re
from functools import lru_cache
from math import comb
from pathlib import Path
from xml.etree import ElementTree

import numpy as np

from ..errors import AtelierError
from ..validate import read_file, shown

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_TOKEN = re.compile(rf"([MmLlHhVvCcSsQqTtZzAa])|({_NUMBER})")


@lru_cache(maxsize=64)
def _bernstein(degree, samples):
    """The Bernstein weights ``C(n, k) t^k (1 - t)^(n - k)`` of a degree-``n`` curve at ``samples`` values of
    ``t`` in (0, 1], one ``(samples, 1)`` column per ``k``: a font or a kanji set reuses a handful of them."""
    t = np.linspace(0, 1, samples + 1)[1:, None]
    weights = tuple(comb(degree, k) * t ** k * (1 - t) ** (degree - k) for k in range(degree + 1))
    for weight in weights:
        weight.flags.writeable = False   # shared by every caller
    return weights


def _bezier(points, samples):
    """Points along a Bézier curve of any degree: ``B(t) = sum_k C(n, k) t^k (1 - t)^(n - k) P_k``."""
    points = np.asarray(points, float)
    return sum(weight * point for weight, point in zip(_bernstein(len(points) - 1, samples), points))


def _arc(start, end, radii, rotation, large_arc, sweep, samples):
    """Points along an SVG elliptical arc, ``samples`` per quarter turn (SVG 1.1 F.6.5-F.6.6:
    endpoint to centre parameterisation, radii scaled up when too small to reach the end)."""
    rx, ry = np.abs(radii)
    if rx == 0 or ry == 0 or np.allclose(start, end):
        return [end.copy()]
    cos, sin = np.cos(np.radians(rotation)), np.sin(np.radians(rotation))
    rotate = np.array([[cos, -sin], [sin, cos]])
    x1, y1 = rotate.T @ ((start - end) / 2)
    reach = (x1 / rx) ** 2 + (y1 / ry) ** 2
    if reach > 1:
        rx, ry = rx * np.sqrt(reach), ry * np.sqrt(reach)
    square = ((rx * ry) ** 2 - (rx * y1) ** 2 - (ry * x1) ** 2) / ((rx * y1) ** 2 + (ry * x1) ** 2)
    centre = np.sqrt(max(square, 0.0)) * (-1 if large_arc == sweep else 1) * np.array([rx * y1 / ry, -ry * x1 / rx])
    theta = np.arctan2((y1 - centre[1]) / ry, (x1 - centre[0]) / rx)
    delta = (np.arctan2((-y1 - centre[1]) / ry, (-x1 - centre[0]) / rx) - theta) % (2 * np.pi)
    if not sweep and delta > 0:
        delta -= 2 * np.pi
    angles = theta + delta * np.linspace(0, 1, max(2, int(np.ceil(samples * abs(delta) / (np.pi / 2)))) + 1)[1:]
    points = (rotate @ np.stack([rx * np.cos(angles), ry * np.sin(angles)])).T + rotate @ centre + (start + end) / 2
    points[-1] = end  # exactly where the next command starts
    return list(points)


MAX_SVG_BYTES = 8 * 1024 * 1024
MAX_SVG_POINTS = 1_000_000  # a kanji has a few hundred


class _Tokens:
    """The commands and numbers of a path's ``d``, read lazily (a long path is never a long list)."""

    def __init__(self, d):
        self.found, self.pending = _TOKEN.finditer(d), []

    def peek(self):
        if not self.pending:
            match = next(self.found, None)
            if match is None:
                return None
            self.pending.append((match.group(1) or None, match.group(2) or None))
        return self.pending[-1]

    def take(self):
        token = self.peek()
        if token is not None:
            self.pending.pop()
        return token

    def push(self, token):
        self.pending.append(token)


def parse_svg_path(d, samples=8, max_points=MAX_SVG_POINTS):
    """An SVG path's ``d`` -> polylines (one per subpath); curves sampled with ``samples`` points.

    Supports every command: M L H V C S Q T A Z, absolute and relative.  Numbers must be finite, and
    a path of more than ``max_points`` points is refused (ValueError).  Points are plain floats until
    a subpath ends (a million line-tos take about a second).
    """
    tokens = _Tokens(d)
    polylines, line, points = [], [], 0
    x = y = start_x = start_y = 0.0
    last_control, command = None, None
    finite = np.isfinite

    def numbers(count):
        values = []
        for _ in range(count):
            token = tokens.take()
            if token is None or token[1] is None:
                if token is not None:
                    tokens.push(token)
                raise ValueError("missing numbers")
            value = float(token[1])
            if value in (np.inf, -np.inf):
                raise ValueError(f"the number {token[1][:20]} is too large")
            values.append(value)
        return values

    def flag():  # arc flags may touch what follows: "a5 5 0 015 5" is 0, 1, 5 5
        token = tokens.take()
        text = None if token is None else token[1]
        if text is None or text[0] not in "01":
            raise ValueError("an arc flag must be 0 or 1")
        if len(text) > 1:
            tokens.push((None, text[1:]))
        return text[0] == "1"

    def finish(line):
        nonlocal points
        if len(line) > 1:
            points += len(line)
            if points > max_points:
                raise ValueError(f"more than {max_points:,} points")
            array = np.array(line, float)
            if not finite(array).all():
                raise ValueError("coordinates overflow")
            polylines.append(array)

    def extend(array):
        line.extend(map(tuple, np.asarray(array, float).tolist()))

    while tokens.peek() is not None:
        if len(line) + points > max_points:
            raise ValueError(f"more than {max_points:,} points")
        if tokens.peek()[0]:
            command = tokens.take()[0]
            if command in "Zz":
                if line:
                    line.append((start_x, start_y))
                x, y, command = start_x, start_y, None
                continue
        elif command is None:
            raise ValueError("numbers before a command")
        relative, kind = command.islower(), command.upper()
        base_x, base_y = (x, y) if relative else (0.0, 0.0)
        if kind == "M":
            finish(line)
            dx, dy = numbers(2)
            x = start_x = base_x + dx
            y = start_y = base_y + dy
            line = [(x, y)]
            command = "l" if relative else "L"  # further pairs are line-tos
            continue
        if not line:
            line = [(x, y)]
        if kind == "L":
            dx, dy = numbers(2)
            x, y, last_control = base_x + dx, base_y + dy, None
            line.append((x, y))
        elif kind == "H":
            x, last_control = numbers(1)[0] + base_x, None
            line.append((x, y))
        elif kind == "V":
            y, last_control = numbers(1)[0] + base_y, None
            line.append((x, y))
        elif kind in "CSQT":
            count = {"C": 3, "S": 2, "Q": 2, "T": 1}[kind]
            values = numbers(2 * count)
            given = [np.array([base_x + values[2 * k], base_y + values[2 * k + 1]]) for k in range(count)]
            position = np.array([x, y])
            if kind in "ST":
                given = [2 * position - last_control if last_control is not None else position.copy()] + given
            extend(_bezier([position] + given, samples))
            (x, y), last_control = given[-1].tolist(), given[-2]
        elif kind == "A":
            radii, rotation, large_arc, sweep = np.array(numbers(2)), numbers(1)[0], flag(), flag()
            dx, dy = numbers(2)
            target = np.array([base_x + dx, base_y + dy])
            extend(_arc(np.array([x, y]), target, radii, rotation, large_arc, sweep, samples))
            (x, y), last_control = target.tolist(), None
    finish(line)
    return polylines


_TRANSFORM = re.compile(r"(matrix|translate|scale|rotate|skewX|skewY)\s*\(([^)]*)\)")
_NOT_DRAWN = {"defs", "clipPath", "mask", "marker", "pattern", "symbol", "title", "desc", "metadata"}


def parse_svg_transform(text):
    """An SVG ``transform`` attribute -> its 3 x 3 affine matrix (the list applies right to left)."""
    matrix = np.eye(3)
    for name, arguments in _TRANSFORM.findall(text or ""):
        v = [float(x) for x in re.findall(_NUMBER, arguments)]
        if name == "matrix":
            a, b, c, d, e, f = v
            step = [[a, c, e], [b, d, f]]
        elif name == "translate":
            step = [[1, 0, v[0]], [0, 1, v[1] if len(v) > 1 else 0]]
        elif name == "scale":
            step = [[v[0], 0, 0], [0, v[1] if len(v) > 1 else v[0], 0]]
        elif name == "rotate":
            cos, sin = np.cos(np.radians(v[0])), np.sin(np.radians(v[0]))
            cx, cy = v[1:3] if len(v) > 2 else (0.0, 0.0)  # about (cx, cy): translate, rotate, translate back
            step = [[cos, -sin, cx - cos * cx + sin * cy], [sin, cos, cy - sin * cx - cos * cy]]
        elif name == "skewX":
            step = [[1, np.tan(np.radians(v[0])), 0], [0, 1, 0]]
        else:
            step = [[1, 0, 0], [np.tan(np.radians(v[0])), 1, 0]]
        matrix = matrix @ np.vstack([step, [0, 0, 1]])
    return matrix


def _element_polylines(element, tag, samples, max_points=MAX_SVG_POINTS):
    if tag == "path" and element.get("d"):
        return parse_svg_path(element.get("d"), samples, max_points)
    if tag in ("polyline", "polygon") and element.get("points"):
        values = np.array([float(v) for v in re.findall(_NUMBER, element.get("points"))])
        if len(values) > 2 * max_points:
            raise ValueError(f"more than {max_points:,} points")
        points = values[: len(values) // 2 * 2].reshape(-1, 2)
        return [np.vstack([points, points[:1]]) if tag == "polygon" else points]
    if tag == "line":
        return [np.array([[float(element.get(k, 0)) for k in pair] for pair in (("x1", "y1"), ("x2", "y2"))])]
    return []


def load_svg(path, samples=8):
    """Polylines from an SVG file's ``path``, ``polyline``, ``polygon`` and ``line`` elements (document order).

    Each element's ``transform`` and its groups' are applied; what ``defs``, masks and the like hold
    is not drawn (``use`` references are not followed).  The file may be at most
    :data:`MAX_SVG_BYTES` and hold :data:`MAX_SVG_POINTS` points; groups may nest to any depth.
    """
    path = Path(path)
    source = shown(path)
    data = read_file(path, MAX_SVG_BYTES, "SVG file")
    try:
        root = ElementTree.fromstring(data)
    except (ElementTree.ParseError, LookupError, ValueError, UnicodeError, RecursionError) as error:
        raise AtelierError(f"{source}: not a readable SVG file ({type(error).__name__}: {error})") from None
    polylines, points = [], 0
    pending = [(root, np.eye(3))]  # depth first, in document order, without recursion
    while pending:
        element, parent = pending.pop()
        tag = element.tag.rsplit("}", 1)[-1] if isinstance(element.tag, str) else ""
        if tag in _NOT_DRAWN:
            continue
        try:
            matrix = parent @ parse_svg_transform(element.get("transform"))
            for line in _element_polylines(element, tag, samples, MAX_SVG_POINTS - points):
                line = line @ matrix[:2, :2].T + matrix[:2, 2]
                if not np.all(np.isfinite(line)):
                    raise ValueError("coordinates overflow")
                points += len(line)
                polylines.append(line)
        except (ValueError, IndexError, OverflowError) as error:
            raise AtelierError(f"{source}: malformed <{tag[:40]}> element ({error})") from None
        if points > MAX_SVG_POINTS:
            raise AtelierError(f"{source}: more than {MAX_SVG_POINTS:,} points")
        pending.extend((child, matrix) for child in reversed(element))
    return polylines

