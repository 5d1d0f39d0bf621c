"""A classical line tracer in numpy alone: skeletonise, walk the graph, join, simplify.

No learning: the baseline Image to Strokes must beat, and a source of first guesses for its line-art
mode (``lines.py``).  It runs in Blender's own Python (numpy only, as ``runtime.py``).

1. The ink (ink map > 1/2) is thinned to a one-pixel skeleton (Zhang & Suen 1984, both
   sub-iterations as whole-array operations).
2. The skeleton is a graph of 8-connected pixels; a diagonal link is dropped where a pixel 4-adjacent
   to both ends joins them anyway (the staircase corners thinning leaves), so line pixels have two
   neighbours, ends one and junctions three or more.
3. The branches between ends and junctions (and closed loops) are walked; short spurs from an end
   into a junction (a blob's corners) are dropped; at each junction the branches that continue each
   other most straightly (turning by less than ``JOIN_DEGREES``) are joined into one stroke.
4. Each stroke is simplified (Ramer-Douglas-Peucker, ``epsilon`` pixels), its free ends lengthened
   by ``EXTEND`` half-widths, and given the ink's half-width along it (median distance to the paper
   at its skeleton pixels).
"""

import numpy as np

from .constants import N_POINTS, R_MAX, R_MIN

JOIN_DEGREES = 50       # branches whose directions differ from a straight continuation by less are joined
SPUR = 1.5              # spurs shorter than this many ink widths are dropped
EXTEND = 0.5            # free ends are lengthened by this many half-widths (thinning shortens them)
F32 = np.float32

_OFFSETS = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))   # P2 .. P9, clockwise from north


def thin(mask):
    """Zhang-Suen thinning of a boolean (H, W) mask: a skeleton one pixel wide (boolean)."""
    image = np.pad(np.asarray(mask, bool), 1).astype(np.uint8)
    h, w = image.shape
    while True:
        changed = False
        for first in (True, False):
            p = [image[1 + dy:h - 1 + dy, 1 + dx:w - 1 + dx] for dy, dx in _OFFSETS]
            count = sum(q.astype(np.int32) for q in p)
            turns = sum(((p[k] == 0) & (p[(k + 1) % 8] == 1)).astype(np.int32) for k in range(8))
            p2, p4, p6, p8 = p[0], p[2], p[4], p[6]
            if first:
                side = (p2 * p4 * p6 == 0) & (p4 * p6 * p8 == 0)
            else:
                side = (p2 * p4 * p8 == 0) & (p2 * p6 * p8 == 0)
            core = image[1:-1, 1:-1]
            remove = (core == 1) & (count >= 2) & (count <= 6) & (turns == 1) & side
            if remove.any():
                core[remove] = 0
                changed = True
        if not changed:
            return image[1:-1, 1:-1].astype(bool)


def distance_to_paper(mask):
    """Euclidean distance from each ink pixel's centre to the nearest paper pixel's centre (0 on paper)."""
    from .runtime import distance_to
    paper = ~np.asarray(mask, bool)
    if not paper.any():
        return np.full(mask.shape, float(max(mask.shape)))
    return distance_to(np.pad(paper, 1, constant_values=True))[1:-1, 1:-1]


def _neighbours(skeleton):
    """{pixel: [neighbour pixels]} of the skeleton's pixels, staircase diagonals dropped."""
    pixels = set(map(tuple, np.argwhere(skeleton)))
    links = {}
    for y, x in pixels:
        near = []
        for dy, dx in _OFFSETS:
            q = (y + dy, x + dx)
            if q not in pixels:
                continue
            if dy and dx and ((y + dy, x) in pixels or (y, x + dx) in pixels):
                continue            # a 4-path joins them already
            near.append(q)
        links[(y, x)] = near
    return links


def _branches(links):
    """Polylines (lists of pixels) between nodes (degree != 2), and the closed loops, of the skeleton graph."""
    nodes = {p for p, near in links.items() if len(near) != 2}
    seen, branches = set(), []
    for start in sorted(nodes):
        for first in links[start]:
            if (start, first) in seen:
                continue
            path, previous, current = [start], start, first
            while True:
                seen.add((previous, current))
                seen.add((current, previous))
                path.append(current)
                if current in nodes:
                    break
                following = [q for q in links[current] if q != previous]
                if not following:
                    break
                previous, current = current, following[0]
            branches.append(path)
    visited = {p for b in branches for p in b}
    for start in sorted(links):                       # loops: every pixel of degree 2, none visited
        if start in visited or start in nodes:
            continue
        path, previous, current = [start], None, start
        while True:
            visited.add(current)
            following = [q for q in links[current] if q != previous and (q not in visited or q == start)]
            if not following:
                break
            previous, current = current, following[0]
            if current == start:
                path.append(start)
                break
            path.append(current)
        branches.append(path)
    return branches


def _direction(path, span):
    """Unit direction leaving the first pixel of ``path`` along its first ``span`` pixels."""
    a, b = np.asarray(path[0], float), np.asarray(path[min(span, len(path) - 1)], float)
    d = b - a
    n = np.hypot(*d)
    return d / n if n > 0 else d


def _join(branches, links, width):
    """Chains of branches (polylines of pixels): at every junction, pairs of branches continuing each other."""
    ends = {}                                 # node -> [(branch index, at start?)]
    for i, b in enumerate(branches):
        if b[0] != b[-1]:
            ends.setdefault(b[0], []).append((i, True))
            ends.setdefault(b[-1], []).append((i, False))
    # junction pixels next to each other are one junction
    junctions = [p for p in ends if len(links[p]) > 2]
    group = {p: p for p in junctions}

    def root(p):
        while group[p] != p:
            group[p] = group[group[p]]
            p = group[p]
        return p
    for p in junctions:
        for q in links[p]:
            if q in group:
                group[root(p)] = root(q)
    at = {}
    for p in junctions:
        at.setdefault(root(p), []).extend(ends[p])
    span = max(3, int(round(2 * width)))
    partner = {}
    for members in at.values():
        dirs = []
        for i, start in members:
            path = branches[i] if start else branches[i][::-1]
            dirs.append(_direction(path, span))
        pairs = sorted((float(dirs[a] @ dirs[b]), a, b) for a in range(len(members)) for b in range(a + 1, len(members)))
        used = set()
        for cosine, a, b in pairs:            # most opposite first: -1 is a straight line
            if cosine > -np.cos(np.radians(JOIN_DEGREES)):
                break
            if a in used or b in used or members[a][0] == members[b][0]:
                continue
            used |= {a, b}
            partner[members[a]] = members[b]
            partner[members[b]] = members[a]
    chains, done = [], set()
    for i in range(len(branches)):
        if i in done:
            continue
        # go back to the chain's beginning (or round a loop)
        current, start = i, True
        for _ in range(len(branches)):
            other = partner.get((current, start))
            if other is None or other[0] == i:
                break
            current, start = other[0], not other[1]
        chain, key = [], (current, start)
        for _ in range(len(branches)):
            index, from_start = key
            if index in done:
                break
            done.add(index)
            path = branches[index] if from_start else branches[index][::-1]
            chain.extend(path if not chain else path[1:])
            other = partner.get((index, not from_start))
            if other is None:
                break
            key = (other[0], other[1])
        if chain:
            chains.append(chain)
    return chains


def rdp(points, epsilon):
    """Ramer-Douglas-Peucker simplification of (N, 2) points."""
    points = np.asarray(points, float)
    if len(points) < 3:
        return points
    keep = np.zeros(len(points), bool)
    keep[0] = keep[-1] = True
    stack = [(0, len(points) - 1)]
    while stack:
        a, b = stack.pop()
        if b - a < 2:
            continue
        seg = points[b] - points[a]
        rel = points[a + 1:b] - points[a]
        norm = np.hypot(*seg)
        if norm > 0:
            dist = np.abs(seg[0] * rel[:, 1] - seg[1] * rel[:, 0]) / norm
        else:
            dist = np.hypot(rel[:, 0], rel[:, 1])
        k = int(dist.argmax())
        if dist[k] > epsilon:
            keep[a + 1 + k] = True
            stack += [(a, a + 1 + k), (a + 1 + k, b)]
    return points[keep]


def trace(ink, epsilon=0.75, threshold=0.5):
    """Strokes of an ink map (H, W) in [0, 1]: a list of (polyline (m, 2) in pixel centres (x, y), half-width
    in pixels), longest first."""
    ink = np.asarray(ink, F32)
    mask = ink > threshold * max(float(ink.max()), 1e-6)
    if not mask.any():
        return []
    distance = distance_to_paper(mask)
    skeleton = thin(mask)
    links = _neighbours(skeleton)
    branches = _branches(links)
    widths = distance[skeleton]
    width = float(np.median(widths)) if len(widths) else 1.0
    # spurs: a branch from an end to a junction shorter than SPUR ink widths (thinning's whiskers)
    kept = []
    for b in branches:
        free_end = len(links[b[0]]) == 1 or len(links[b[-1]]) == 1
        joined = len(links[b[0]]) > 2 or len(links[b[-1]]) > 2
        if free_end and joined and len(b) < SPUR * 2 * width:
            continue
        kept.append(b)
    branches = kept if kept else branches
    chains = _join(branches, links, width)
    strokes = []
    for chain in chains:
        pixels = np.asarray(chain)
        half = max(float(np.median(distance[pixels[:, 0], pixels[:, 1]])), 0.5)
        line = rdp(pixels[:, ::-1].astype(float), epsilon) + 0.5       # (x, y), pixel centres
        if chain[0] != chain[-1]:       # thinning stops short of a line's free end: reach it again
            for end, inner in ((0, 1), (-1, -2)):
                if len(links.get(chain[end], ())) <= 1 and len(line) > 1:
                    d = line[end] - line[inner]
                    n = np.hypot(*d)
                    if n > 0:
                        line[end] = line[end] + d / n * EXTEND * half
        strokes.append((line, half))
    strokes.sort(key=lambda s: -np.hypot(*np.diff(s[0], axis=0).T).sum() if len(s[0]) > 1 else 0)
    return strokes


def resample(polyline, count=N_POINTS):
    """``count`` points equally spaced by arc length along a polyline (m, 2)."""
    polyline = np.asarray(polyline, float)
    length = np.concatenate([[0], np.cumsum(np.hypot(*np.diff(polyline, axis=0).T))])
    if length[-1] < 1e-9:
        return np.repeat(polyline[:1], count, 0)
    at = np.linspace(0, length[-1], count)
    return np.stack([np.interp(at, length, polyline[:, k]) for k in (0, 1)], -1)


def to_strokes(traced, size):
    """Traced strokes of a ``size`` square -> the painter's strokes: points (K, n, 3) in [-1, 1] with
    pressure 1 and brush (K,) giving each its half-width (a dot of one point becomes a short stroke)."""
    points, brush = [], []
    for line, half in traced:
        line = np.asarray(line, float)
        if len(line) == 1 or np.hypot(*(line[-1] - line[0])) < 1e-6 and len(line) == 2:
            line = np.stack([line[0] - [0.25, 0], line[0] + [0.25, 0]])
        xy = resample(line) / (size / 2) - 1
        points.append(np.concatenate([xy, np.ones((N_POINTS, 1))], -1))
        brush.append(np.clip((half / size - R_MIN) / (R_MAX - R_MIN), 0, 1))
    if not points:
        return np.zeros((0, N_POINTS, 3), F32), np.zeros(0, F32)
    return np.asarray(points, F32), np.asarray(brush, F32)
