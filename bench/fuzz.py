#!/usr/bin/env python
"""Fuzz Atelier's loaders: every input must end in a result or an ``AtelierError``, never anything else.

Each loader is one entry of :data:`LOADERS`: a name, the seed files it starts from, the hand-made
nasty cases for it, how to mutate a seed, and a function that loads one input.  Inputs are made
deterministically from ``(--seed, loader, index)``: the first indices are the hand-made cases
(truncation, huge declared sizes, NaN/Inf, wrong dtypes, negative shapes, pickled object arrays,
deep nesting, zero-size and 1x100000 images, non-UTF-8 names, FIFOs, symlinks to /dev/zero, ...),
the rest are seeds mutated 1-8 times (bit flips, interesting integers, insertions, deletions,
splices, numbers in text replaced by ``1e999``/``NaN``/400 digits, structure-aware rewrites of
model headers, zip members, PNG chunks with their CRCs fixed, argv words, worker requests).

Inputs run in child processes capped at ``--memory`` bytes of address space (RLIMIT_AS), with a
CPU-time limit per input (RLIMIT_CPU, raised before each input) and a wall timer in the parent.  A
child runs a batch of inputs in a loop and reports each one on a pipe; if it dies, the input it was
on is recorded (crash: a signal; hang: the CPU or wall limit; memory: MemoryError or an allocation
failure) and a new child goes on after it.  Per loader the report counts::

    inputs, ok, clean_errors (AtelierError), other_exceptions, crashes, hangs, memory

with a few examples of every outcome that is not ok or clean.  The goal is 0 of the last four.

    python bench/fuzz.py                          # 10,000 inputs per loader, every loader
    python bench/fuzz.py --inputs 200 --loaders model,npz --seed 3
    python bench/fuzz.py --replay npz:137          # run one input here, with its traceback

Adding a loader is one :class:`Loader` entry: seeds (a function that writes seed files into a
folder), ``load`` (a function of one path), and optionally nasty cases and a mutator.
"""

import argparse
import contextlib
import io
import json
import os
import random
import re
import selectors
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MEMORY_CAP = 2 << 30  # address space of a child
CPU_SECONDS = 20  # per input
WALL_SECONDS = 60  # per input, measured by the parent
COMMAND_BUDGET = 4.0  # seconds a CLI or worker command may work before it is cancelled (as ESC would)
BATCH = 500  # inputs per child process
OUTCOMES = ("ok", "clean_errors", "other_exceptions", "crashes", "hangs", "memory")


# ============================================================================ helpers that make files

def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(width, height, depth=8, colour=2, rows=None, idat=None):
    """A PNG with valid CRCs; ``rows`` (bytes per row without filter byte) or raw ``idat``."""
    if idat is None:
        channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
        row = rows if rows is not None else bytes(width * channels * depth // 8)
        idat = zlib.compress(b"".join(b"\0" + row for _ in range(height)))
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def fix_png_crcs(data):
    """Recompute every chunk's CRC, so a mutated PNG reaches the decoder instead of the CRC check."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return data
    out, at = bytearray(data[:8]), 8
    while at + 8 <= len(data):
        (length,) = struct.unpack(">I", data[at:at + 4])
        end = at + 8 + length
        if end + 4 > len(data):
            out += data[at:]
            return bytes(out)
        kind, body = data[at + 4:at + 8], data[at + 8:end]
        out += data[at:end] + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        at = end + 4
    return bytes(out + data[at:])


def _exr_attribute(name, kind, value):
    return name.encode() + b"\0" + kind.encode() + b"\0" + struct.pack("<i", len(value)) + value


def exr_bytes(channels, compression=3, pixel_type=2, multipart=False, window=None):
    """A scanline OpenEXR of float32 H x W ``channels`` (name -> array), NONE/ZIPS/ZIP, HALF/FLOAT/UINT."""
    import numpy as np
    names = sorted(channels)
    height, width = channels[names[0]].shape
    x0, y0, x1, y1 = window or (0, 0, width - 1, height - 1)
    dtype = {0: np.dtype("<u4"), 1: np.dtype("<f2"), 2: np.dtype("<f4")}[pixel_type]
    chlist = b"".join(n.encode() + b"\0" + struct.pack("<iB3xii", pixel_type, 0, 1, 1) for n in names) + b"\0"
    lines = {0: 1, 2: 1, 3: 16}[compression]
    chunks = (height + lines - 1) // lines
    attributes = [_exr_attribute("channels", "chlist", chlist),
                  _exr_attribute("compression", "compression", bytes([compression])),
                  _exr_attribute("dataWindow", "box2i", struct.pack("<iiii", x0, y0, x1, y1)),
                  _exr_attribute("displayWindow", "box2i", struct.pack("<iiii", x0, y0, x1, y1)),
                  _exr_attribute("lineOrder", "lineOrder", b"\0"),
                  _exr_attribute("pixelAspectRatio", "float", struct.pack("<f", 1.0)),
                  _exr_attribute("screenWindowCenter", "v2f", struct.pack("<ff", 0, 0)),
                  _exr_attribute("screenWindowWidth", "float", struct.pack("<f", 1.0))]
    if multipart:
        attributes += [_exr_attribute("name", "string", b"part0"), _exr_attribute("type", "string", b"scanlineimage"),
                       _exr_attribute("chunkCount", "int", struct.pack("<i", chunks))]
    header = struct.pack("<ii", 20000630, 2 | (0x1000 if multipart else 0)) + b"".join(attributes) + b"\0"
    if multipart:
        header += b"\0"
    blobs = []
    for chunk in range(chunks):
        rows = range(chunk * lines, min(height, (chunk + 1) * lines))
        raw = b"".join(channels[n][row].astype(dtype).tobytes() for row in rows for n in names)
        data = raw
        if compression in (2, 3):
            t = np.frombuffer(raw, np.uint8)
            t = np.concatenate([t[0::2], t[1::2]])
            delta = t.copy()
            delta[1:] = (t[1:].astype(np.int16) - t[:-1] + 128) & 0xFF
            packed = zlib.compress(delta.tobytes())
            data = packed if len(packed) < len(raw) else raw
        blobs.append((struct.pack("<i", 0) if multipart else b"") + struct.pack("<ii", y0 + rows[0], len(data)) + data)
    offsets, at = [], len(header) + 8 * chunks
    for blob in blobs:
        offsets.append(at)
        at += len(blob)
    return header + struct.pack(f"<{chunks}Q", *offsets) + b"".join(blobs)


def zip_bytes(members, compression=zipfile.ZIP_DEFLATED):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return buffer.getvalue()


def npy_header(descr, shape, fortran=False, text=None):
    text = text if text is not None else f"{{'descr': {descr!r}, 'fortran_order': {fortran}, 'shape': {shape!r}, }}"
    body = text.encode("latin-1")
    body += b" " * (-(len(body) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body


# hand-written pickles (bytes, never produced or read by the pickle module)
EVIL_PICKLE = b"\x80\x02c__builtin__\nexec\nq\x00X\x0c\x00\x00\x00print('pwn')q\x01\x85q\x02Rq\x03."
FORGED_DTYPE_PICKLE = (b"\x80\x03cnumpy.core.multiarray\n_reconstruct\nq\x00cnumpy\nndarray\nq\x01K\x00\x85C\x01b\x87R("
                       b"K\x01K\x01\x85cnumpy\ndtype\nX\x02\x00\x00\x00O8\x89\x88\x87R(K\x03X\x01\x00\x00\x00|NNN"
                       b"J\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89C\x08AAAAAAAAtb.")


# ============================================================================ mutation

INTERESTING = [0, 1, 2, 7, 8, 16, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000,
               0xFFFFFFFF, 2 ** 40, 2 ** 63 - 1, 2 ** 63, 2 ** 64 - 1, -1, -2, -128, -2 ** 31]
NASTY_NUMBERS = [b"1e999", b"-1e999", b"NaN", b"Infinity", b"-Infinity", b"nan", b"inf", b"-1", b"0", b"-0", b"1e-400",
                 b"9" * 400, b"-" + b"9" * 400, b"2147483648", b"18446744073709551616", b"0.5", b"1e308", b"\"x\"",
                 b"null", b"true", b"[]", b"{}", b"[[[[[[[[[[1]]]]]]]]]]", b"65535", b"100000", b"4294967295"]
NUMBER = re.compile(rb"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def mutate_bytes(rng, data, others=()):
    """1-8 random edits of ``data`` (bytes)."""
    data = bytearray(data)
    for _ in range(rng.choice([1, 1, 1, 2, 2, 3, 4, 8])):
        if not data:
            data = bytearray(rng.randbytes(rng.randrange(1, 64)))
            continue
        at, op = rng.randrange(len(data)), rng.randrange(11)
        if op == 0:
            data[at] ^= 1 << rng.randrange(8)
        elif op == 1:
            data[at] = rng.choice([0, 0xFF, 0x7F, 0x80, 1, 0x20])
        elif op == 2:
            width = rng.choice([1, 2, 4, 4, 8])
            value = (rng.choice(INTERESTING) + rng.choice([0, 0, 0, -1, 1])) % (1 << (8 * width))
            data[at:at + width] = value.to_bytes(width, rng.choice(["little", "big"]))
        elif op == 3:
            data[at:at] = rng.randbytes(rng.randrange(1, 32))
        elif op == 4:
            del data[at:at + rng.randrange(1, 64)]
        elif op == 5:
            piece = data[at:at + rng.randrange(1, 128)]
            where = rng.randrange(len(data) + 1)
            data[where:where] = piece
        elif op == 6:
            del data[at:]
        elif op == 7 and others:
            other = rng.choice(others)
            data = data[:at] + other[rng.randrange(len(other) + 1):] if other else data
        elif op == 8:
            piece = data[at:at + rng.randrange(1, 16)]
            data[at:at] = piece * rng.randrange(2, max(3, 65536 // max(1, len(piece))))
        elif op in (9, 10):
            numbers = list(NUMBER.finditer(data))
            if numbers:
                match = rng.choice(numbers)
                data[match.start():match.end()] = rng.choice(NASTY_NUMBERS)
            else:
                data[at] ^= 0x40
    return bytes(data)


def mutate_text_nesting(rng, data):
    """Insert deep nesting in a text format (JSON brackets or XML groups)."""
    depth = rng.choice([100, 1000, 5000, 50000])
    at = rng.randrange(len(data) + 1)
    opener, closer = rng.choice([(b"[", b"]"), (b"{\"a\":", b"}"), (b"<g>", b"</g>")])
    return data[:at] + opener * depth + (closer * depth if rng.random() < 0.7 else b"") + data[at:]


# ============================================================================ the loader table

@dataclass
class Case:
    """An input: the path to give the loader, and what it is (for the report)."""
    path: Path
    what: str


@dataclass
class Loader:
    name: str
    load: object  # function(path) run in the child
    seeds: object  # function(folder) writing seed files, run once in the parent
    kind: str = "file"  # file | folder | argv | request
    suffix: str = ""
    nasty: object = None  # function(ctx) -> [(name, function(ctx) -> Path)]
    mutate: object = None  # function(ctx, data) -> bytes, for file loaders; default mutate_bytes
    env: dict = field(default_factory=dict)
    cpu_seconds: float = CPU_SECONDS
    wall_seconds: float = WALL_SECONDS


class Context:
    """What making one input needs: its random generator, the seeds, a scratch folder."""

    def __init__(self, loader, seeds_dir, scratch, rng):
        self.loader, self.seeds_dir, self.scratch, self.rng = loader, Path(seeds_dir), Path(scratch), rng
        folder = self.seeds_dir / loader.name
        self.seed_paths = sorted(p for p in folder.iterdir()) if folder.is_dir() else []

    def seed(self):
        return self.rng.choice(self.seed_paths)

    def seed_bytes(self):
        candidates = [p for p in self.seed_paths if p.is_file()]
        return self.rng.choice(candidates).read_bytes()

    def all_seed_bytes(self):
        return [p.read_bytes() for p in self.seed_paths if p.is_file()]

    def file(self, data, name=None):
        name = name or ("input" + self.loader.suffix)
        path = self.scratch / (os.fsdecode(name) if isinstance(name, bytes) else name)
        path.write_bytes(data)
        return path


def _symlink(target):
    def make(ctx):
        path = ctx.scratch / ("link" + ctx.loader.suffix)
        os.symlink(target, path)
        return path
    return make


def _fifo(ctx):
    path = ctx.scratch / ("fifo" + ctx.loader.suffix)
    os.mkfifo(path)
    return path


def _folder(ctx):
    path = ctx.scratch / ("folder" + ctx.loader.suffix)
    path.mkdir()
    return path


def _loop(ctx):
    a, b = ctx.scratch / ("a" + ctx.loader.suffix), ctx.scratch / ("b" + ctx.loader.suffix)
    os.symlink(b, a)
    os.symlink(a, b)
    return a


def _sparse(ctx):
    path = ctx.file(ctx.seed_bytes(), "huge" + ctx.loader.suffix)
    os.truncate(path, 8 << 30)
    return path


def _non_utf8_name(ctx):
    return ctx.file(ctx.seed_bytes(), b"\xff\xfe-caf\xe9" + ctx.loader.suffix.encode())


def _non_utf8_folder(ctx):
    folder = ctx.scratch / os.fsdecode(b"dir-\xff\xfe")
    folder.mkdir()
    path = folder / ("seed" + ctx.loader.suffix)
    path.write_bytes(ctx.seed_bytes())
    return path


def _truncated(fraction):
    def make(ctx):
        data = ctx.seed_bytes()
        return ctx.file(data[:int(len(data) * fraction)])
    return make


def file_nasties(ctx):
    """Hand-made cases every file loader gets."""
    return [
        ("fifo", _fifo), ("symlink to /dev/zero", _symlink("/dev/zero")),
        ("symlink to /dev/urandom", _symlink("/dev/urandom")), ("a folder", _folder),
        ("missing", lambda ctx: ctx.scratch / ("missing" + ctx.loader.suffix)),
        ("dangling symlink", _symlink("/nonexistent/atelier-fuzz")), ("symlink loop", _loop),
        ("empty", lambda ctx: ctx.file(b"")), ("one byte", lambda ctx: ctx.file(b"\0")),
        ("random 1 KB", lambda ctx: ctx.file(ctx.rng.randbytes(1024))),
        ("random 64 KB", lambda ctx: ctx.file(ctx.rng.randbytes(65536))),
        ("non-UTF-8 name", _non_utf8_name), ("non-UTF-8 folder", _non_utf8_folder),
        ("non-ASCII UTF-8 name", lambda ctx: ctx.file(ctx.seed_bytes(), "名前 é" + ctx.loader.suffix)),
        ("8 GiB sparse file", _sparse),
        ("truncated to 8 bytes", lambda ctx: ctx.file(ctx.seed_bytes()[:8])),
        ("truncated by half", _truncated(0.5)), ("truncated by one byte", _truncated(0.999)),
    ] + [(f"seed {p.name}", (lambda p: lambda ctx: ctx.file(p.read_bytes(), "seed" + ctx.loader.suffix))(p))
         for p in ctx.seed_paths if p.is_file()]


def _nasty_files(name):
    """Cases whose files the seeds function prepared in ``<seeds>/<loader>/_nasty``."""
    def nasties(ctx):
        folder = ctx.seeds_dir / ctx.loader.name / "_nasty"
        cases = []
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            cases.append((path.name, (lambda p: lambda ctx: ctx.file(p.read_bytes(), "nasty" + Path(p.name).suffix))(path)))
        return cases
    return nasties


def _nasty_dir(folder):
    folder = Path(folder) / "_nasty"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# ---------------------------------------------------------------------------- model files

def tiny_sketch_hp(decoder="lstm", conditional=True):
    from core.sketch.model import REFERENCE
    return dict(REFERENCE, enc_rnn_size=4, dec_rnn_size=8, z_size=2, num_mixture=2, max_seq_len=12, batch_size=2,
                decoder=decoder, conditional=conditional, hyper_rnn_size=4, hyper_embedding_size=2)


def write_tiny_sketch_model(path, decoder="lstm", conditional=True, seed=0):
    import numpy as np
    from core.modelfile import save_model
    from core.sketch.runtime import parameter_shapes
    rng = np.random.default_rng(seed)
    hp = tiny_sketch_hp(decoder, conditional)
    tensors = {name: (rng.standard_normal(shape) * 0.3).astype(np.float32)
               for name, (shape, _) in parameter_shapes(hp).items()}
    save_model(path, "sketch_rnn", tensors, {"hyperparameters": hp, "scale": 4.0, "training": {"steps": 1}})


def seeds_sketch_models(folder):
    for decoder, conditional in (("lstm", True), ("layernorm", False), ("hyper", True), ("lstm", False)):
        write_tiny_sketch_model(folder / f"{decoder}{'' if conditional else '_unconditional'}.safetensors",
                                decoder, conditional)


def seeds_models(folder):
    import numpy as np
    from core.modelfile import save_model
    seeds_sketch_models(folder)
    save_model(folder / "dtypes.safetensors", "nca", {
        "f16": np.linspace(-1, 1, 6, dtype=np.float16).reshape(2, 3), "f64": np.arange(3, dtype=np.float64),
        "i8": np.arange(-4, 4, dtype=np.int8), "u8": np.arange(5, dtype=np.uint8), "i64": np.arange(2, dtype=np.int64),
        "u16": np.arange(3, dtype=np.uint16), "i16": np.arange(3, dtype=np.int16), "i32": np.arange(3, dtype=np.int32),
        "b": np.array([True, False]), "empty": np.zeros((0, 4), np.float32), "scalar": np.float32(2.5)},
        {"hyperparameters": {"channels": 4}})
    try:
        from safetensors.numpy import save_file
        save_file({"w": np.ones((2, 2), np.float32)}, str(folder / "library.safetensors"),
                  metadata={"atelier": json.dumps({"kind": "stylize"})})
    except ImportError:
        pass


_NASTY_VALUES = [-1, 0, 1.5, 10 ** 20, 2 ** 63, 2 ** 31, "3", None, [2], True, {"a": 1}, float("nan"), float("inf"),
                 -10 ** 30, 1e308, 65536, 4096, 100000, ""]


def mutate_model(ctx, data):
    """Rewrite the safetensors header with nasty types, shapes, offsets, metadata and hyperparameters
    (keeping its length field right most of the time), or mutate bytes."""
    rng = ctx.rng
    try:
        (size,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8:8 + size])
        meta = json.loads(header["__metadata__"]["atelier"])
    except (ValueError, KeyError, TypeError, struct.error):
        return mutate_bytes(rng, data, ctx.all_seed_bytes())
    if rng.random() < 0.3:
        return mutate_bytes(rng, data, ctx.all_seed_bytes())
    body = data[8 + size:]
    raw_meta = None
    for _ in range(rng.choice([1, 1, 2, 3])):
        names = [k for k in header if k != "__metadata__"]
        info = header[rng.choice(names)] if names else {}
        info = info if isinstance(info, dict) else {}  # an earlier change made it a number or text
        choice = rng.randrange(10)
        if choice == 0:
            info["dtype"] = rng.choice(["F32", "F16", "F64", "I8", "U8", "BOOL", "I64", "U16", "X9", "", 5, None,
                                        "F8_E4M3", "O", ["F32"]])
        elif choice == 1 and isinstance(info.get("shape"), list):
            shape = info["shape"]
            if shape and rng.random() < 0.7:
                shape[rng.randrange(len(shape))] = rng.choice(_NASTY_VALUES)
            elif rng.random() < 0.5:
                shape.append(rng.choice([1, 0, 2, -1, 10 ** 9]))
            else:
                info["shape"] = rng.choice([None, "2,3", [[2]], [1] * 64, {}])
        elif choice == 2 and isinstance(info.get("data_offsets"), list):
            offsets = info["data_offsets"]
            if rng.random() < 0.5 and len(offsets) == 2:
                offsets[rng.randrange(2)] = rng.choice(_NASTY_VALUES + [len(body), len(body) + 1])
            elif names:
                other = header[rng.choice(names)]
                info["data_offsets"] = list(other.get("data_offsets", [0, 0])) if isinstance(other, dict) else [0, 0]
        elif choice == 3:
            meta["format_version"] = rng.choice(["1", 2, -1, 1.5, None, True, 10 ** 30, [1], 0])
        elif choice == 4:
            meta["kind"] = rng.choice([None, 5, ["nca"], "sketch_rnn", "nca", "", "x" * 1000])
        elif choice in (5, 6) and isinstance(meta.get("hyperparameters"), dict) and meta["hyperparameters"]:
            hp = meta["hyperparameters"]
            key = rng.choice(sorted(hp))
            hp[key] = rng.choice(_NASTY_VALUES + ["lstm", "hyper", "layernorm", "gru", 1, 2, 8])
        elif choice == 7:
            meta[rng.choice(["scale", "hyperparameters", "training"])] = rng.choice(_NASTY_VALUES)
        elif choice == 8:
            raw_meta = rng.choice(["[" * 100000 + "]" * 100000, "{\"kind\": " * 5000, "\"text\"", "[]", "1e999",
                                   json.dumps({"kind": "nca", "format_version": "1"})])
        else:
            header[rng.choice(["__metadata__", "w"])] = rng.choice(_NASTY_VALUES)
    try:
        if isinstance(header, dict) and isinstance(header.get("__metadata__"), dict):
            header["__metadata__"]["atelier"] = raw_meta if raw_meta is not None else json.dumps(meta)
        text = json.dumps(header).encode()
    except (TypeError, ValueError):
        return mutate_bytes(rng, data)
    if rng.random() < 0.05:
        text = rng.choice([b"[" * 100000, b"\"just a string\"", b"[1, 2]", b"null"])
    length = len(text) if rng.random() < 0.9 else rng.choice([0, len(text) - 1, len(text) + 1, 2 ** 63, len(data)])
    out = struct.pack("<Q", length % 2 ** 64) + text + body
    return mutate_bytes(rng, out) if rng.random() < 0.15 else out


def load_model(path):
    from core.modelfile import read_model
    read_model(path)


def load_sketch_model(path):
    from core.sketch.runtime import SketchModel
    model = SketchModel(path)
    model.sample(2, temperature=0.7, max_len=6)


def load_sketch_torch(path):
    from core.sketch.model import load_torch_model
    load_torch_model(path)


def seeds_nca(folder):
    """Shipped μNCA presets (4 and 12 channels) as model files and as compact binaries, and nasty ones."""
    import numpy as np
    from core.nca import files
    from core.nca.quantize import to_binary
    presets = ROOT / "core/assets/nca/presets"
    for name in ("stripes", "brick"):
        shutil.copyfile(presets / f"{name}.safetensors", folder / f"{name}.safetensors")
        (folder / f"{name}.nca").write_bytes(to_binary(files.load(presets / f"{name}.safetensors").quantized))
    nasty = _nasty_dir(folder)
    model = files.load(presets / "stripes.safetensors")
    for label, change in (("nan_w", lambda m: m.w.__setitem__((0, 0), np.nan)),
                          ("inf_b", lambda m: m.b.__setitem__(0, np.inf)),
                          ("nan_scale", lambda m: m.quantized["w_scale"].__setitem__(0, np.nan))):
        forged = files.from_float(model.w.copy(), model.b.copy(), model.meta)
        forged.quantized = {k: v.copy() for k, v in forged.quantized.items()}
        change(forged)
        files.save(nasty / f"{label}.safetensors", forged)
    data = bytearray((folder / "stripes.nca").read_bytes())
    data[6:8] = np.array([np.inf], "<f2").tobytes()  # the first row's scale
    (nasty / "inf_scale.nca").write_bytes(bytes(data))
    data[5] = 200  # channels
    (nasty / "channels.nca").write_bytes(bytes(data))


def mutate_nca(ctx, data):
    from core.nca.quantize import MAGIC
    return mutate_bytes(ctx.rng, data, ctx.all_seed_bytes()) if data[:4] == MAGIC else mutate_model(ctx, data)


def load_nca(path):
    """Load a μNCA model or binary, then do what the exporters and the bake do with it (cheaply): every
    generated source and a short render must hold finite numbers only."""
    import numpy as np
    from core.nca import codegen, files
    from core.nca.render import run_states
    model = files.load(path)
    files.check_rollout(model, str(path), steps=32, size=8)
    state = run_states(model, 8, 4, quantized=True)[0]
    for target in ("c", "glsl", "osl"):
        for text in codegen.generate(model, target, state, 4).values():
            if re.search(r"\b(nan|inf)\b", text, re.IGNORECASE):
                raise RuntimeError(f"{target} source holds a nan or inf literal")
    for quantized in (False, True):
        if not np.all(np.isfinite(run_states(model, 8, 2, quantized=quantized)[0])):
            raise RuntimeError("the model loaded, yet 2 steps of it are not finite")


def seeds_stylize_models(folder):
    """Small stylisation networks of both configurations (their hyperparameters shrunk)."""
    import torch
    from core.stylize import model as sty
    torch.manual_seed(0)
    for name, config in (("fast", dict(sty.FAST, filters=[4, 8, 8, 8, 4, 4], resnet_blocks=1)),
                         ("published", dict(sty.PUBLISHED, filters=[4, 4, 8, 8, 8, 4], resnet_blocks=1))):
        generator = sty.Generator(5, **config)
        sty.save(folder / f"{name}.safetensors", generator, {"hyperparameters": {"in_channels": 5, "config": config}})


def load_stylize_model(path):
    import numpy as np
    from core.stylize import model as sty
    generator, meta = sty.load(path)
    channels = meta["hyperparameters"]["in_channels"]
    sty.stylize_frames(generator, np.zeros((1, 12, 16, channels), np.float32), tile=16)


# ---------------------------------------------------------------------------- sketch data

def toy_stroke3(rng, count):
    import numpy as np
    sketches = []
    for _ in range(count):
        n = rng.randrange(3, 12)
        sketch = np.zeros((n, 3), np.float32)
        sketch[:, :2] = [[rng.uniform(-20, 20), rng.uniform(-20, 20)] for _ in range(n)]
        sketch[::3, 2] = 1
        sketch[-1, 2] = 1
        sketches.append(sketch)
    return sketches


def seeds_npz(folder):
    import numpy as np
    from core.drawing.npz import save_npz
    rng = random.Random(0)
    save_npz(folder / "int16.npz", {k: [np.round(s).astype(np.int16) for s in toy_stroke3(rng, n)]
                                     for k, n in (("train", 4), ("valid", 2), ("test", 2))})
    save_npz(folder / "float.npz", {"train": toy_stroke3(rng, 3), "test": toy_stroke3(rng, 1)})
    np.savez(folder / "plain3d.npz", train=np.zeros((3, 5, 3), np.int16), valid=np.ones((1, 4, 3), np.float32))
    np.savez_compressed(folder / "compressed.npz", train=np.arange(18, dtype=np.int32).reshape(6, 3))
    nasty = _nasty_dir(folder)
    obj = npy_header("|O", (1,))
    (nasty / "evil_pickle.npz").write_bytes(zip_bytes([("train.npy", obj + EVIL_PICKLE)]))
    (nasty / "forged_dtype.npz").write_bytes(zip_bytes([("train.npy", obj + FORGED_DTYPE_PICKLE)]))
    (nasty / "zero_d.npz").write_bytes(zip_bytes([("train.npy", npy_header("<i2", ()) + b"\1\0")]))
    (nasty / "structured.npz").write_bytes(zip_bytes([("train.npy", npy_header(None, (1,), text="{'descr': [('a', '<i4')], 'fortran_order': False, 'shape': (1,), }") + b"\0" * 4)]))
    (nasty / "deep_header.npz").write_bytes(zip_bytes([("train.npy", npy_header(None, (), text="{'descr': " + "(" * 3000 + ")" * 3000 + "}"))]))
    (nasty / "garbage_header.npz").write_bytes(zip_bytes([("train.npy", npy_header(None, (), text="{'descr': '<i2', __import__('os'): 1}"))]))
    (nasty / "negative_shape.npz").write_bytes(zip_bytes([("train.npy", npy_header("<i2", (-1, 3)))]))
    (nasty / "huge_shape.npz").write_bytes(zip_bytes([("train.npy", npy_header("<f8", (2 ** 40, 3)) + b"\0" * 64)]))
    (nasty / "big_endian_nan.npz").write_bytes(zip_bytes([("train.npy", npy_header(">f8", (2, 3)) + struct.pack(">6d", 1, float("nan"), 0, float("inf"), 2, 1))]))
    (nasty / "fortran.npz").write_bytes(zip_bytes([("train.npy", npy_header("<i2", (2, 3), True) + bytes(range(12)))]))
    deep = b"\x80\x03" + b"(" * 50000 + b"]" * 50000 + b"."
    (nasty / "deep_pickle.npz").write_bytes(zip_bytes([("train.npy", obj + deep)]))
    (nasty / "bzip2.npz").write_bytes(zip_bytes([("train.npy", obj + EVIL_PICKLE)], zipfile.ZIP_BZIP2))
    bomb = zip_bytes([("train.npy", npy_header("<i2", (50_000_000, 3)) + bytes(300_000_000))])
    (nasty / "zip_bomb_300MB.npz").write_bytes(bomb)
    lying = bytearray(bomb)  # declared 1,000 bytes, inflates to 300 MB
    local = lying.find(b"PK\x03\x04")
    central = lying.find(b"PK\x01\x02")
    lying[local + 22:local + 26] = struct.pack("<I", 1000)
    lying[central + 24:central + 28] = struct.pack("<I", 1000)
    (nasty / "zip_bomb_lying_size.npz").write_bytes(bytes(lying))
    ragged = npy_header("|O", (2,))
    # an object array whose items are lists (one ragged): hand-written protocol-2 instructions
    items = (b"]q\x05(]q\x06(K\x01K\x02K\x00e]q\x07(K\x03K\x04K\x01ee]q\x08(]q\x09(K\x01K\x02e]q\x0a(K\x03eee")
    ragged_pickle = (b"\x80\x02cnumpy.core.multiarray\n_reconstruct\nq\x00cnumpy\nndarray\nq\x01K\x00\x85C\x01b\x87Rq\x02"
                     b"(K\x01K\x02\x85cnumpy\ndtype\nX\x02\x00\x00\x00O8\x89\x88\x87R(K\x03X\x01\x00\x00\x00|NNNJ"
                     b"\xff\xff\xff\xffJ\xff\xff\xff\xffK?tb\x89" + items + b"tb.")
    (nasty / "ragged_lists.npz").write_bytes(zip_bytes([("train.npy", ragged + ragged_pickle)]))
    (nasty / "many_members.npz").write_bytes(zip_bytes([(f"m{i}.npy", npy_header("<i2", (1, 3)) + bytes(6))
                                                        for i in range(3000)]))


def mutate_npz(ctx, data):
    """Mutate one member of the archive and zip it again (valid CRCs), or mutate the zip's bytes."""
    rng = ctx.rng
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = [(info.filename, archive.read(info)) for info in archive.infolist()]
    except Exception:  # noqa: BLE001 (a seed made by another mutation: fall back to bytes)
        members = None
    if not members or rng.random() < 0.3:
        return mutate_bytes(rng, data, ctx.all_seed_bytes())
    index = rng.randrange(len(members))
    name, body = members[index]
    if rng.random() < 0.2:
        body = mutate_text_nesting(rng, body)
    members[index] = (name, mutate_bytes(rng, body))
    return zip_bytes(members, rng.choice([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))


def load_npz(path):
    from core.drawing.npz import load_npz as load
    load(path)


def seeds_ndjson(folder):
    rng = random.Random(1)
    lines = [json.dumps({"word": "cat", "drawing": [[[0, 100, 100], [0, 0, 100]], [[10, 20], [50, 50]]]}),
             json.dumps({"drawing": [[[0, 500, 1000, 1000], [0, 1, 0, 800], [0, 10, 20, 30]]]})]
    for _ in range(6):
        strokes = [[[rng.randrange(256) for _ in range(n)], [rng.randrange(256) for _ in range(n)]]
                   for n in (rng.randrange(1, 9) for _ in range(rng.randrange(1, 4)))]
        lines.append(json.dumps({"word": "x", "drawing": strokes}))
    (folder / "cats.ndjson").write_text("\n".join(lines) + "\n")
    (folder / "raw.ndjson").write_text(json.dumps({"drawing": [[[float(i) for i in range(40)], [float(i % 7) * 50 for i in range(40)],
                                                              list(range(40))]]}) + "\n")
    nasty = _nasty_dir(folder)
    (nasty / "deep.ndjson").write_text('{"drawing": ' + "[" * 100000 + "]" * 100000 + "}\n")
    (nasty / "digits.ndjson").write_text('{"drawing": [[[' + "9" * 400 + ', 1], [1, 2]]]}\n')
    (nasty / "digits5000.ndjson").write_text('{"drawing": [[[' + "9" * 5000 + ', 1], [1, 2]]]}\n')
    (nasty / "inf_nan.ndjson").write_text('{"drawing": [[[1e999, NaN, 1], [1, 2, Infinity]]]}\n')
    (nasty / "types.ndjson").write_text('{"drawing": [[["1", true, null], [{}, [], 2]]]}\n{"drawing": 5}\n[1]\n"x"\n')
    n = 80000
    zigzag = {"drawing": [[list(range(n)), [(i % 2) * 10 for i in range(n)], list(range(n))]]}
    (nasty / "zigzag_80000.ndjson").write_text(json.dumps(zigzag) + "\n")
    (nasty / "long_line_17MB.ndjson").write_bytes(b'{"drawing": [[[' + b"1," * (9 << 20) + b'1], [1]]]}\n')
    (nasty / "many_lines.ndjson").write_text('{"drawing": [[[1, 2], [3, 4]]]}\n' * 100000)
    (nasty / "not_utf8.ndjson").write_bytes(b'{"drawing": [[[1, 2], [3, 4]]], "word": "\xff\xfe"}\n')


def load_ndjson(path):
    from core.drawing.quickdraw import load_ndjson as load
    load(path)


def mutate_text(ctx, data):
    rng = ctx.rng
    return mutate_text_nesting(rng, data) if rng.random() < 0.1 else mutate_bytes(rng, data, ctx.all_seed_bytes())


def seeds_svg(folder):
    (folder / "paths.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg"><path d="M10,10 l10,0 h5 v5 c0,5 5,5 5,0 s 3 3 4 4 q 1 1 2 2 t 3 3 z"/>'
        '<polyline points="0,0 5,5 10,0"/><polygon points="1,1 2,2 3,1"/><line x1="0" y1="20" x2="30" y2="20"/>'
        '<path d="M0,0 A10,10 0 0,1 20,0 a5 5 0 1020 0"/></svg>')
    (folder / "groups.svg").write_text(
        '<?xml version="1.0" encoding="UTF-8"?><svg xmlns="http://www.w3.org/2000/svg"><defs><path d="M0,0 L1,1"/></defs>'
        '<g transform="translate(100, 0)"><g transform="rotate(90)"><line x1="0" y1="0" x2="10" y2="0" '
        'transform="scale(2 3)"/></g><polyline points="0,0 0,10" transform="matrix(1 0 0 1 0 5) skewX(45)"/></g>'
        '<path d="M10,0 L20,0" transform="rotate(180 15 0)"/></svg>')
    (folder / "kanji.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="109" height="109" viewBox="0 0 109 109"><g id="k">'
        '<path d="M22.5,26.25c1.5,0.5,4.25,0.5,5.75,0.25c9.25-1.5,36.25-5.25,50.25-5.75"/>'
        '<path d="M31.75,45.5c0.75,0.62,1.27,1.66,1.27,2.63C33.02,55,33,81.75,33,91.5"/></g></svg>')
    nasty = _nasty_dir(folder)
    (nasty / "encoding.svg").write_bytes(b'<?xml version="1.0" encoding="no-such"?><svg/>')
    (nasty / "shift_jis.svg").write_bytes(b'<?xml version="1.0" encoding="shift_jis"?><svg/>')
    (nasty / "utf16.svg").write_bytes('<svg><line x1="0" y1="0" x2="1" y2="1"/></svg>'.encode("utf-16"))
    (nasty / "nested_5000.svg").write_text("<svg>" + "<g>" * 5000 + '<line x1="0" y1="0" x2="1" y2="1"/>'
                                           + "</g>" * 5000 + "</svg>")
    (nasty / "nested_300000.svg").write_text("<svg>" + "<g>" * 300000 + "</g>" * 300000 + "</svg>")
    laughs = "".join(f'<!ENTITY l{i} "{("&l" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
    (nasty / "billion_laughs.svg").write_text(f'<!DOCTYPE svg [<!ENTITY l0 "lol">{laughs}]><svg a="&l9;"/>')
    (nasty / "external_entity.svg").write_text('<!DOCTYPE svg [<!ENTITY e SYSTEM "file:///etc/passwd">]><svg>&e;</svg>')
    (nasty / "points_1M.svg").write_text('<svg><path d="M0 0' + " L1 1" * 1_000_000 + '"/></svg>')
    (nasty / "points_3M.svg").write_text('<svg><path d="M0 0' + " 1 1" * 2_000_000 + '"/></svg>')
    (nasty / "huge_numbers.svg").write_text('<svg><path d="M1e999 0 L 1 1"/><line x1="1e308" x2="-1e308"/>'
                                            '<g transform="scale(1e300)"><line x1="1e300" y1="0" x2="1" y2="1"/></g></svg>')
    (nasty / "transform_args.svg").write_text('<svg><g transform="matrix(1 2) rotate() scale()"><line/></g></svg>')
    (nasty / "too_big.svg").write_bytes(b"<svg>" + b" " * (9 << 20) + b"</svg>")


def load_svg(path):
    from core.drawing.svg import load_svg as load
    load(path)


# ---------------------------------------------------------------------------- images

def _gradient(height, width, channels):
    import numpy as np
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.stack([x / max(width - 1, 1), y / max(height - 1, 1), (x + y) / (width + height), 1 - x / width][:channels], 2)


def seeds_images(folder):
    from core.imageio import write_image
    for name, channels, bits in (("rgb.png", 3, 8), ("grey16.png", 1, 16), ("rgba.png", 4, 8), ("photo.jpg", 3, 8),
                                 ("deep.tif", 3, 16), ("plain.bmp", 3, 8), ("plain.tga", 4, 8), ("float.exr", 3, 8),
                                 ("web.webp", 3, 8)):
        try:
            write_image(folder / name, _gradient(5, 7, channels), bits=bits)
        except Exception:  # noqa: BLE001 (a codec without that writer: one seed fewer)
            pass
    nasty = _nasty_dir(folder)
    (nasty / "declares_65535x65535.png").write_bytes(png_bytes(65535, 65535, idat=zlib.compress(b"\0" * 16)))
    (nasty / "declares_16000x16000.png").write_bytes(png_bytes(16000, 16000, idat=zlib.compress(b"\0" * 16)))
    (nasty / "declares_8000x8000_16bit.png").write_bytes(png_bytes(8000, 8000, 16, 6, idat=zlib.compress(b"\0" * 64)))
    (nasty / "one_by_100000.png").write_bytes(png_bytes(1, 100000, colour=0))
    (nasty / "100000_by_one.png").write_bytes(png_bytes(100000, 1))
    (nasty / "zero_by_zero.png").write_bytes(png_bytes(0, 0, idat=zlib.compress(b"")))
    (nasty / "zero_width.png").write_bytes(png_bytes(0, 5, idat=zlib.compress(b"\0" * 5)))
    (nasty / "bad_crc.png").write_bytes(png_bytes(4, 4)[:-5] + b"\0\0\0\0\0")
    sof = struct.pack(">BBHBHHB", 0xFF, 0xC0, 11, 8, 65535, 65535, 1) + b"\x01\x11\x00"
    (nasty / "declares_65535x65535.jpg").write_bytes(b"\xff\xd8" + sof + b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00"
                                                     + b"\0" * 32 + b"\xff\xd9")
    tiff = (b"II*\x00\x08\x00\x00\x00" + struct.pack("<H", 6)
            + struct.pack("<HHII", 256, 4, 1, 200000) + struct.pack("<HHII", 257, 4, 1, 200000)
            + struct.pack("<HHII", 258, 3, 1, 8) + struct.pack("<HHII", 262, 3, 1, 1)
            + struct.pack("<HHII", 273, 4, 1, 100) + struct.pack("<HHII", 279, 4, 1, 10) + b"\0\0\0\0" + b"\0" * 40)
    (nasty / "declares_200000x200000.tif").write_bytes(tiff)
    import numpy as np
    small = {"R": np.zeros((4, 4), np.float32)}
    (nasty / "window_huge.exr").write_bytes(exr_bytes(small, window=(0, 0, 999999, 999999)))
    (nasty / "window_32GiB.exr").write_bytes(exr_bytes(small, window=(0, 0, 65535, 131071)))


def mutate_image(ctx, data):
    out = mutate_bytes(ctx.rng, data, ctx.all_seed_bytes())
    return fix_png_crcs(out) if ctx.rng.random() < 0.6 else out


def load_image(path):
    from core.imageio import bits_per_channel, read_image
    read_image(path)
    bits_per_channel(path)
    read_image(path, channels=3)


# ---------------------------------------------------------------------------- EXR passes

def _vector_channels(height=6, width=8, layer="ViewLayer"):
    import numpy as np
    rng = np.random.default_rng(0)
    return {f"{layer}.Vector.{axis}": rng.uniform(-3, 3, (height, width)).astype(np.float32) for axis in "XYZW"}


def seeds_exr(folder):
    import numpy as np
    channels = _vector_channels()
    for compression in (0, 2, 3):
        for pixel_type in (1, 2):
            (folder / f"c{compression}_t{pixel_type}.exr").write_bytes(exr_bytes(channels, compression, pixel_type))
    (folder / "multipart.exr").write_bytes(exr_bytes(channels, 3, 2, multipart=True))
    (folder / "uint.exr").write_bytes(exr_bytes({"id": np.arange(48, dtype=np.float32).reshape(6, 8)}, 0, 0))
    (folder / "tall.exr").write_bytes(exr_bytes({"Y": np.ones((40, 3), np.float32)}, 3, 1))
    nasty = _nasty_dir(folder)
    good = bytearray(exr_bytes(channels, 3, 2))
    at = good.find(b"compression\0compression\0") + len(b"compression\0compression\0")
    negative = bytearray(good)
    negative[at:at + 4] = struct.pack("<i", -13)
    (nasty / "negative_attribute_size.exr").write_bytes(bytes(negative))
    (nasty / "window_32GiB.exr").write_bytes(exr_bytes({"R": np.zeros((4, 4), np.float32)}, window=(0, 0, 65535, 131071)))
    (nasty / "window_negative.exr").write_bytes(exr_bytes({"R": np.zeros((4, 4), np.float32)}, window=(5, 5, 0, 0)))
    # rows the chunk table does not cover: every offset points at the first chunk
    (nasty / "uncovered_rows.exr").write_bytes(_exr_same_offsets(exr_bytes({"Y": np.ones((40, 3), np.float32)}, 2, 2)))
    (nasty / "zlib_bomb.exr").write_bytes(_exr_zlib_bomb())


def _exr_table_at(data):
    """Offset of the chunk table of a single-part EXR (after the header's terminating zero)."""
    at = 8
    while data[at] != 0:
        at = data.index(b"\0", at) + 1
        at = data.index(b"\0", at) + 1
        (size,) = struct.unpack_from("<i", data, at)
        at += 4 + size
    return at + 1


def _exr_same_offsets(data):
    at = _exr_table_at(data)
    first = data[at:at + 8]
    out = bytearray(data)
    end = struct.unpack_from("<Q", data, at)[0]
    chunks = (end - at) // 8
    for i in range(chunks):
        out[at + 8 * i:at + 8 * i + 8] = first
    return bytes(out)


def _exr_zlib_bomb():
    """One 16-row chunk whose zlib data inflates to 200 MB instead of the rows' 3 KB."""
    import numpy as np
    data = bytearray(exr_bytes({"R": np.zeros((16, 48), np.float32)}, 3, 2))
    at = _exr_table_at(data)
    (offset,) = struct.unpack_from("<Q", data, at)
    packed = zlib.compress(bytes(200_000_000), 9)
    return bytes(data[:offset]) + struct.pack("<ii", 0, len(packed) if len(packed) < 3072 else 3000) + packed


def mutate_exr(ctx, data):
    rng = ctx.rng
    if rng.random() < 0.3:
        try:
            at = _exr_table_at(data)
            out = bytearray(data)
            slot = at + 8 * rng.randrange(max(1, (len(data) - at) // 64))
            if slot + 8 <= len(out):
                out[slot:slot + 8] = struct.pack("<Q", rng.choice([0, at, len(data), len(data) - 4, 2 ** 63,
                                                                   struct.unpack_from("<Q", data, at)[0]]))
                return bytes(out)
        except (ValueError, IndexError, struct.error):
            pass
    return mutate_bytes(rng, data, ctx.all_seed_bytes())


def load_exr(path):
    from core.stylize.exr import read_exr_channels
    read_exr_channels(path)


# ---------------------------------------------------------------------------- frame and motion folders

def seeds_frames(folder):
    from core.imageio import write_image
    sequence = folder / "seq"
    sequence.mkdir()
    for t in range(1, 5):
        write_image(sequence / f"frame_{t:04d}.png", _gradient(6, 8, 3) * (0.5 + 0.1 * t))


def seeds_motion(folder):
    sequence = folder / "vec"
    sequence.mkdir()
    for t in range(1, 4):
        (sequence / f"vec_{t:04d}.exr").write_bytes(exr_bytes(_vector_channels(), 3 if t % 2 else 0, 2, multipart=t == 2))


def folder_case(ctx, mutate_file):
    """A copy of a seed folder with 1-3 changes: a file mutated, renamed (gaps, f0/f99999999999,
    non-UTF-8), replaced by a FIFO, a /dev/zero link or a folder, another size, many frames."""
    rng = ctx.rng
    source = ctx.seed()
    folder = ctx.scratch / "frames"
    shutil.copytree(source, folder)
    for _ in range(rng.choice([1, 1, 2, 3])):
        files = sorted(folder.iterdir())
        if not files:
            break
        victim = rng.choice(files)
        suffix = victim.suffix
        regular = victim.is_file() and not victim.is_symlink()  # never open a FIFO made by an earlier change
        op = rng.randrange(12)
        if op in (0, 1, 2, 3) and regular:
            victim.write_bytes(mutate_file(ctx, victim.read_bytes()))
        elif op == 4:
            target = folder / f"frame_{rng.choice([0, 9, 99999999999, 10 ** 60])}{suffix}"
            if not (target.exists() or target.is_symlink()):
                victim.rename(target)
        elif op == 5:
            victim.unlink() if not victim.is_dir() else shutil.rmtree(victim)
            os.mkfifo(victim)
        elif op == 6:
            victim.unlink() if not victim.is_dir() else shutil.rmtree(victim)
            os.symlink("/dev/zero", victim)
        elif op == 7:
            victim.rename(folder / os.fsdecode(b"frame_\xff" + os.fsencode(victim.name)))
        elif op == 8:
            victim.unlink() if not victim.is_dir() else shutil.rmtree(victim)
            victim.mkdir()
        elif op == 9 and regular:
            tag = rng.randrange(10 ** 6)
            for i in range(rng.choice([50, 300])):
                shutil.copyfile(victim, folder / f"extra_{tag}_{i:05d}{suffix}")
        elif op == 10 and regular:
            victim.write_bytes(rng.choice([png_bytes(9, 5), png_bytes(8, 6, 16, 2), png_bytes(8, 6, colour=6),
                                           png_bytes(1, 100000, colour=0), b""]))
        elif op == 11:
            for other in files:
                if other.exists() or other.is_symlink():
                    other.unlink() if not other.is_dir() or other.is_symlink() else shutil.rmtree(other)
            if rng.random() < 0.5:
                (folder / "notes.txt").write_text("no frames here")
    return folder


def folder_nasties(ctx):
    def names(first, last):
        def make(ctx):
            folder = ctx.scratch / "frames"
            shutil.copytree(ctx.seed(), folder)
            files = sorted(folder.iterdir())
            files[0].rename(folder / f"f{first}{files[0].suffix}")
            files[-1].rename(folder / f"f{last}{files[-1].suffix}")
            for extra in files[1:-1]:
                extra.unlink()
            return folder
        return make

    def file_not_folder(ctx):
        return ctx.file(b"not a folder", "frames")

    def empty(ctx):
        folder = ctx.scratch / "frames"
        folder.mkdir()
        return folder

    def non_utf8_folder(ctx):
        folder = ctx.scratch / os.fsdecode(b"frames-\xff")
        shutil.copytree(ctx.seed(), folder)
        return folder

    return [("f0 and f99999999999", names(0, 99999999999)), ("f0 and f(10**200)", names(0, 10 ** 200)),
            ("a file, not a folder", file_not_folder), ("empty folder", empty), ("missing", lambda ctx: ctx.scratch / "nope"),
            ("non-UTF-8 folder name", non_utf8_folder), ("symlink to /dev/zero", _symlink("/dev/zero"))]


def load_frames(path):
    from core.stylize.frames import read_frames
    read_frames(path)


def load_motion(path):
    from core.stylize.frames import read_motion
    read_motion(path, (6, 8))


# ---------------------------------------------------------------------------- the command line and the worker

CLI_TEMPLATES = [
    ["sketch", "sample", "{model}", "-o", "{out}.svg", "-n", "2", "--temperature", "0.5", "--seed", "3"],
    ["sketch", "sample", "{model}", "-o", "{out}.npz", "-n", "3", "--int16"],
    ["sketch", "sample", "kanji", "-o", "{out}.svg", "-n", "1"],
    ["sketch", "eval", "{model}", "{data}", "--split", "train"],
    ["--help"], ["sketch", "sample", "--help"], ["--version"],
    ["nca", "render", "{nca}", "--size", "16", "--steps", "8", "-o", "{out}.png"],
    ["nca", "render", "{nca}", "--size", "8", "--steps", "4", "--frames", "2", "--quantized", "-o", "{out}.png"],
    ["nca", "export", "{nca}", "--format", "osl", "--size", "8", "--steps", "4", "-o", "{out}.osl"],
    ["nca", "export", "{badnca}", "--format", "glsl", "-o", "{out}.frag"],
    ["nca", "export", "{nca}", "--format", "bin", "-o", "{out}.nca"],
]
NASTY_WORDS = ["", "-1", "0", "1e999", "nan", "inf", "-inf", "99999999999999999999", "1000000000", "--help", "-h",
               "--hel", "--version", "--", "-", "x" * 5000, "--bogus", "-n", "-o", "\udcff.svg", "caf\udce9",
               "{fifo}", "{devzero}", "{folder}", "{missing}", "{nonutf8}", "{under_file}", "{model}", "{data}",
               "{badmodel}", "sketch", "nca", "train", "kanji", "hershey", "名前.svg", "{nca}", "{badnca}", "8192",
               "--frames", "--quantized", "glsl", "bin", "render", "export"]


def seeds_cli(folder):
    write_tiny_sketch_model(folder / "model.safetensors")
    import numpy as np
    from core.nca import files
    from core.nca.quantize import to_binary
    nca = files.load(ROOT / "core/assets/nca/presets/stripes.safetensors")
    files.save(folder / "nca.safetensors", nca)
    (folder / "nca.nca").write_bytes(to_binary(nca.quantized))
    grows = np.zeros((4, 16), np.float32)
    grows[:, :4] = 0.5 * np.eye(4)  # in the weights' range, yet its state overflows within 200 steps
    files.save(folder / "grows.safetensors", files.from_float(grows, np.zeros(4), {"name": "grows"}))
    seeds_ndjson(folder)
    shutil.rmtree(folder / "_nasty")
    (folder / "raw.ndjson").unlink()
    seeds_svg(folder)
    shutil.rmtree(folder / "_nasty")
    (folder / "templates.json").write_text(json.dumps(CLI_TEMPLATES))


def _resolve(ctx, word):
    """Placeholders of argv words -> paths in the scratch folder (made as the word asks)."""
    seeds, scratch, rng = ctx.seeds_dir / ctx.loader.name, ctx.scratch, ctx.rng
    if "{" not in word:
        return word
    if word == "{model}":
        return str(seeds / "model.safetensors")
    if word == "{badmodel}":
        data = mutate_model(ctx, (seeds / "model.safetensors").read_bytes())
        return str(ctx.file(data, f"bad{rng.randrange(1000)}.safetensors"))
    if word == "{nca}":
        return str(seeds / rng.choice(["nca.safetensors", "nca.nca", "grows.safetensors"]))
    if word == "{badnca}":
        source = seeds / rng.choice(["nca.safetensors", "nca.nca"])
        return str(ctx.file(mutate_nca(ctx, source.read_bytes()), f"bad{rng.randrange(1000)}{source.suffix}"))
    if word == "{data}":
        return str(seeds / rng.choice(["cats.ndjson", "paths.svg", "groups.svg", "kanji.svg"]))
    if word.startswith("{out}"):
        return str(scratch / "out" / ("result" + word[5:]))
    if word == "{fifo}":
        path = scratch / f"fifo{rng.randrange(10 ** 6)}.svg"
        os.mkfifo(path)
        return str(path)
    if word == "{devzero}":
        path = scratch / f"zero{rng.randrange(10 ** 6)}.safetensors"
        os.symlink("/dev/zero", path)
        return str(path)
    if word == "{folder}":
        path = scratch / f"folder{rng.randrange(10 ** 6)}.svg"
        path.mkdir()
        return str(path)
    if word == "{missing}":
        return str(scratch / "missing" / "nothing.safetensors")
    if word == "{nonutf8}":
        path = scratch / os.fsdecode(b"\xff\xfe%d.safetensors" % rng.randrange(10 ** 6))
        shutil.copyfile(seeds / "model.safetensors", path)
        return str(path)
    if word == "{under_file}":
        (scratch / "afile").write_bytes(b"x")
        return str(scratch / "afile" / "out.svg")
    return word


def mutate_argv(ctx, argv):
    rng = ctx.rng
    argv = list(argv)
    for _ in range(rng.choice([0, 1, 1, 2, 3])):
        op = rng.randrange(6)
        at = rng.randrange(len(argv) + 1)
        if op in (0, 1) and argv:
            argv[min(at, len(argv) - 1)] = rng.choice(NASTY_WORDS)
        elif op == 2 and argv:
            del argv[min(at, len(argv) - 1)]
        elif op == 3 and argv:
            argv.insert(at, argv[min(at, len(argv) - 1)])
        elif op == 4:
            argv[at:at] = rng.choice([["-n", rng.choice(NASTY_WORDS)], ["--temperature", rng.choice(NASTY_WORDS)],
                                      ["--seed", rng.choice(NASTY_WORDS)], ["-o", rng.choice(NASTY_WORDS)],
                                      ["--limit", rng.choice(NASTY_WORDS)], ["--int16"], ["--split", "valid"],
                                      ["--size", rng.choice(NASTY_WORDS)], ["--steps", rng.choice(NASTY_WORDS)],
                                      ["--frames", rng.choice(NASTY_WORDS)],
                                      ["--format", rng.choice(["glsl", "shadertoy", "osl", "c", "bin", "x"])]])
        else:
            argv = argv[:at]
    return argv


def argv_case(ctx):
    templates = json.loads((ctx.seeds_dir / ctx.loader.name / "templates.json").read_text())
    return mutate_argv(ctx, ctx.rng.choice(templates))


def argv_nasties(ctx):
    cases = [["--help"], ["-h"], ["--version"], [], ["sketch"], ["sketch", "sample", "--help"], ["no-such-group"],
             ["sketch", "sample", "{model}", "-o", "{folder}"], ["sketch", "sample", "{model}", "-o", "{under_file}"],
             ["sketch", "sample", "{model}", "-o", "{fifo}"], ["sketch", "sample", "{fifo}", "-o", "{out}.svg"],
             ["sketch", "sample", "{devzero}", "-o", "{out}.svg"], ["sketch", "sample", "{folder}", "-o", "{out}.svg"],
             ["sketch", "sample", "{nonutf8}", "-o", "{out}.svg"],
             ["sketch", "sample", "{model}", "-o", "{out}\udcff.svg"], ["sketch", "sample", "{model}", "-o", "{out}.png"],
             ["sketch", "sample", "{model}", "-o", "{out}.svg", "-n", "1000000000"],
             ["sketch", "sample", "{model}", "-o", "{out}.svg", "--temperature", "nan"],
             ["sketch", "sample", "{model}", "-o", "{out}.svg", "--temperature", "1e999"],
             ["sketch", "sample", "{model}", "-o", "{out}.svg", "--seed", "-1"],
             ["sketch", "sample", "{model}", "-o", "{out}.svg", "--seed", "9" * 400],
             ["sketch", "sample", "{badmodel}", "-o", "{out}.svg"], ["sketch", "eval", "{model}", "{fifo}"],
             ["sketch", "eval", "{model}", "{devzero}"], ["sketch", "eval", "{badmodel}", "{data}"],
             ["nca", "render", "{devzero}", "-o", "{out}.png"], ["nca", "export", "{fifo}", "--format", "c", "-o", "{out}.c"],
             ["nca", "render", "{nca}", "--size", "8192", "--steps", "1", "-o", "{out}.png"],
             ["nca", "render", "{nca}", "--size", "64", "--frames", "10000", "-o", "{out}.png"],
             ["nca", "render", "{nca}", "--size", "16", "-o", "{out}\udcff.png"],
             ["nca", "export", "{nca}", "--format", "osl", "-o", "{folder}"],
             ["nca", "render", "{nca}", "--seed", "-1", "-o", "{out}.png"]]
    return [(" ".join(case)[:60], (lambda case: lambda ctx: case)(case)) for case in cases]


class _BudgetProgress:
    """A progress reporter that cancels after COMMAND_BUDGET seconds, as a person pressing ESC would."""

    def __new__(cls, total=1, description="", stream=None):
        from core.progress import Progress

        class Budget(Progress):
            def update(self, done, **figures):
                if self.elapsed > COMMAND_BUDGET:
                    self.cancel_event.set()
                super().update(done, **figures)
        return Budget(total, description)


def load_cli(path):
    """``atelier ARGV`` as the command line runs it: exit 0 is ok, exit 2 (a clear error, argparse's
    included) and 130 (cancelled after the budget) are clean; an exception escaping main() is not."""
    from core import cli
    from core.errors import AtelierError
    argv = json.loads(Path(path).read_text(encoding="utf-8"))
    original, cli.ConsoleProgress = cli.ConsoleProgress, _BudgetProgress
    try:
        code = cli.main(argv)
    except SystemExit as error:  # argparse: 0 after --help/--version, 2 after a usage error
        code = error.code
    finally:
        cli.ConsoleProgress = original
    if code not in (0, None):
        if code in (2, 130):
            raise AtelierError(f"exit {code}")
        raise RuntimeError(f"exit {code}")


def seeds_worker(folder):
    seeds_cli(folder)


def request_case(ctx):
    rng = ctx.rng
    argv = argv_case(ctx)
    argv = [_resolve(ctx, word) for word in argv]
    text = json.dumps({"argv": argv}).encode()
    if rng.random() < 0.3:
        text = mutate_text_nesting(rng, text) if rng.random() < 0.15 else mutate_bytes(rng, text)
    return text


def request_nasties(ctx):
    raw = [b"", b"hello", b"[]", b"null", b"{}", b'{"argv": "sketch"}', b'{"argv": [1, 2]}', b'{"argv": [null]}',
           b'{"argv": ' + b"[" * 100000 + b"]" * 100000 + b"}", b'{"argv": [' + b"9" * 400 + b"]}",
           b'{"argv": ["\\ud800"]}', b'{"argv": ["a\\u0000b"]}', b'{"argv": ["sketch", "sample", "--help"]}',
           b'{"argv": ["--help"]}', b'{"argv": ["--vers"]}', b'{"argv": ["x"]}' + b" " * (2 << 20),
           b'{"argv": ["\xff\xfe"]}', b'{"argv": []}', b'{"argv": ["sketch", "sample", "kanji", "-o", "/"]}']
    cases = [(repr(r[:40]), (lambda r: lambda ctx: r)(r)) for r in raw]
    for name, make in argv_nasties(ctx):
        cases.append(("argv " + name, (lambda make: lambda ctx: json.dumps(
            {"argv": [_resolve(ctx, w) for w in make(ctx)]}).encode())(make)))
    return cases


def load_worker(path):
    """One request through ``python -m core.worker``'s main(): its stdin a pipe kept open (closed
    after the answer, "cancel" sent after the budget, as the add-on does), its stdout a file that
    must then hold JSON lines only, ending in exactly one result, error or cancelled message."""
    from core import worker
    from core.errors import AtelierError
    data = Path(path).read_bytes()
    protocol = tempfile.TemporaryFile(dir=Path(path).parent)
    read_end, write_end = os.pipe()
    done = threading.Event()

    def feed():
        os.set_blocking(write_end, False)
        view, started = memoryview(data + b"\n"), time.monotonic()
        try:
            while view and not done.is_set():
                try:
                    view = view[os.write(write_end, view):]
                except BlockingIOError:
                    time.sleep(0.01)
            if not done.wait(COMMAND_BUDGET - (time.monotonic() - started)):
                with contextlib.suppress(OSError):
                    os.write(write_end, b"cancel\n")
            done.wait()
        finally:
            os.close(write_end)

    saved_in, saved_out = os.dup(0), os.dup(1)
    saved_streams = sys.stdin, sys.stdout
    thread = threading.Thread(target=feed, daemon=True)
    try:
        os.dup2(read_end, 0)
        os.close(read_end)
        os.dup2(protocol.fileno(), 1)
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", line_buffering=True)
        thread.start()
        code = worker.main()
    finally:
        done.set()
        os.dup2(saved_in, 0)
        os.dup2(saved_out, 1)
        os.close(saved_in)
        os.close(saved_out)
        sys.stdin, sys.stdout = saved_streams
        if thread.is_alive():
            thread.join(5)
    protocol.seek(0)
    lines = protocol.read().decode("utf-8", "replace").splitlines()
    messages = []
    for line in lines:
        try:
            messages.append(json.loads(line))
        except ValueError:
            raise RuntimeError(f"the worker's stdout holds a line that is not JSON: {line[:80]!r}") from None
    final = [m for m in messages if isinstance(m, dict) and m.get("type") in ("result", "error", "cancelled")]
    if len(final) != 1 or messages[-1] is not final[0]:
        raise RuntimeError(f"the worker's answer is not exactly one final message: {lines[-3:]}")
    if code == 1:
        raise RuntimeError(f"the worker caught a bug: {final[0].get('message')}")
    if code != 0:
        raise AtelierError(final[0].get("message", "cancelled"))


# ---------------------------------------------------------------------------- the table

LOADERS = {loader.name: loader for loader in [
    Loader("model", load_model, seeds_models, suffix=".safetensors", mutate=mutate_model),
    Loader("nca", load_nca, seeds_nca, suffix=".safetensors", mutate=mutate_nca, nasty=_nasty_files("nca")),
    Loader("stylize_model", load_stylize_model, seeds_stylize_models, suffix=".safetensors", mutate=mutate_model),
    Loader("sketch_model", load_sketch_model, seeds_sketch_models, suffix=".safetensors", mutate=mutate_model),
    Loader("sketch_torch", load_sketch_torch, seeds_sketch_models, suffix=".safetensors", mutate=mutate_model),
    Loader("npz", load_npz, seeds_npz, suffix=".npz", mutate=mutate_npz, nasty=_nasty_files("npz")),
    Loader("ndjson", load_ndjson, seeds_ndjson, suffix=".ndjson", mutate=mutate_text, nasty=_nasty_files("ndjson")),
    Loader("svg", load_svg, seeds_svg, suffix=".svg", mutate=mutate_text, nasty=_nasty_files("svg")),
    Loader("image", load_image, seeds_images, suffix=".png", mutate=mutate_image, nasty=_nasty_files("image"),
           env={"ATELIER_IMAGE_CODEC": "OpenImageIO"}),
    Loader("image_opencv", load_image, seeds_images, suffix=".png", mutate=mutate_image, nasty=_nasty_files("image"),
           env={"ATELIER_IMAGE_CODEC": "OpenCV"}),
    Loader("image_pillow", load_image, seeds_images, suffix=".png", mutate=mutate_image, nasty=_nasty_files("image"),
           env={"ATELIER_IMAGE_CODEC": "Pillow"}),
    Loader("exr", load_exr, seeds_exr, suffix=".exr", mutate=mutate_exr, nasty=_nasty_files("exr")),
    Loader("frames", load_frames, seeds_frames, kind="folder", mutate=mutate_image, nasty=folder_nasties),
    Loader("motion", load_motion, seeds_motion, kind="folder", mutate=mutate_exr, nasty=folder_nasties),
    Loader("cli", load_cli, seeds_cli, kind="argv", nasty=argv_nasties, wall_seconds=90),
    Loader("worker", load_worker, seeds_worker, kind="request", nasty=request_nasties, wall_seconds=90),
]}


def _crash(path):
    import ctypes
    ctypes.string_at(0)


def _spin(path):
    while True:
        pass


def _blow_up(path):
    return bytearray(MEMORY_CAP + (1 << 30))


def _stray(path):
    raise KeyError(str(path))


# Loaders that fail on purpose, to check the harness tells the outcomes apart (tests/test_fuzz.py).
SELF_TESTS = {loader.name: loader for loader in [
    Loader(f"selftest_{name}", function, seeds_ndjson, suffix=".ndjson", cpu_seconds=2, wall_seconds=10)
    for name, function in (("crash", _crash), ("hang", _spin), ("memory", _blow_up), ("exception", _stray))]}


def find_loader(name):
    return LOADERS[name] if name in LOADERS else SELF_TESTS[name]


# Not yet in the table (their loaders are being rewritten): the μNCA model and .nca binary loaders,
# the StrokeNet models, the stylisation model.  Each is one Loader(...) line above.


# ============================================================================ making and running one input

def nasty_cases(loader, ctx):
    cases = []
    if loader.kind == "file":
        cases += file_nasties(ctx)
    if loader.nasty:
        cases += loader.nasty(ctx)
    return cases


def make_case(loader, seeds_dir, seed, index, scratch):
    """The input ``index`` of ``loader`` for ``seed``: the same every time, in any process."""
    rng = random.Random(f"{seed}/{loader.name}/{index}")
    ctx = Context(loader, seeds_dir, scratch, rng)
    ctx.seed_paths = [p for p in ctx.seed_paths if not p.name.startswith("_") and p.name != "templates.json"]
    nasties = nasty_cases(loader, ctx)
    if index < len(nasties):
        name, make = nasties[index]
        made, what = make(ctx), f"nasty: {name}"
    elif loader.kind == "file":
        source = ctx.seed()
        data = (loader.mutate or (lambda ctx, data: mutate_bytes(ctx.rng, data, ctx.all_seed_bytes())))(
            ctx, source.read_bytes())
        made, what = ctx.file(data), f"mutated {source.name}"
    elif loader.kind == "folder":
        made, what = folder_case(ctx, loader.mutate), "mutated folder"
    elif loader.kind == "argv":
        made, what = argv_case(ctx), "mutated argv"
    else:
        made, what = request_case(ctx), "mutated request"
    if loader.kind == "argv":
        argv = [_resolve(ctx, word) for word in made]
        (scratch / "out").mkdir(exist_ok=True)
        made = scratch / "argv.json"
        made.write_text(json.dumps(argv))
        what += f" {shown_words(argv)}"
    elif loader.kind == "request":
        (scratch / "out").mkdir(exist_ok=True)
        path = scratch / "request.json"
        path.write_bytes(made)
        what += f" {made[:120]!r}"
        made = path
    return Case(Path(made), what)


def shown_words(argv):
    return " ".join(word if len(word) < 40 else word[:37] + "..." for word in argv)[:200]


def run_one(loader, path):
    """-> (outcome, detail): ok, clean_errors, other_exceptions or memory."""
    from core.errors import AtelierError, Cancelled
    try:
        loader.load(path)
    except (AtelierError, Cancelled):
        return "clean_errors", ""
    except MemoryError as error:
        return "memory", f"MemoryError: {str(error)[:200]}"
    except Exception as error:  # noqa: BLE001 (what the fuzzer is looking for)
        return "other_exceptions", f"{type(error).__name__}: {str(error)[:300]}"
    return "ok", ""


# ============================================================================ the child process

def child_main(spec_path):
    spec = json.loads(Path(spec_path).read_text())
    resource_limits(spec["memory"])
    loader = find_loader(spec["loader"])
    os.environ.update(loader.env)
    report = os.fdopen(spec["report_fd"], "w", buffering=1)
    for index in spec["indices"]:
        scratch = Path(tempfile.mkdtemp(prefix=f"{index}-", dir=spec["work"]))
        case = make_case(loader, spec["seeds"], spec["seed"], index, scratch)
        report.write(json.dumps({"start": index, "what": case.what}) + "\n")
        import resource
        used = resource.getrusage(resource.RUSAGE_SELF)
        soft = int(used.ru_utime + used.ru_stime) + int(loader.cpu_seconds) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (soft, resource.RLIM_INFINITY))
        outcome, detail = run_one(loader, case.path)
        report.write(json.dumps({"done": index, "outcome": outcome, "detail": detail}) + "\n")
        remove_tree(scratch)
    report.close()


def resource_limits(memory):
    import resource
    if memory:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def remove_tree(folder):
    for root, folders, _ in os.walk(folder):
        for name in folders:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(root, name), 0o700)
    shutil.rmtree(folder, ignore_errors=True)


# ============================================================================ the parent

class Tally:
    def __init__(self):
        self.counts = {outcome: 0 for outcome in OUTCOMES}
        self.inputs, self.examples = 0, {}

    def add(self, outcome, index, what, detail):
        self.inputs += 1
        self.counts[outcome] += 1
        if outcome not in ("ok", "clean_errors"):
            examples = self.examples.setdefault(outcome, [])
            if len(examples) < 8:
                examples.append({"index": index, "input": what, "detail": detail})

    def as_dict(self):
        return {"inputs": self.inputs, **self.counts, "examples": self.examples}


class Child:
    """A child process working through ``indices`` of one loader."""

    def __init__(self, loader, indices, options, work):
        self.loader, self.indices, self.options = loader, list(indices), options
        self.read_end, write_end = os.pipe()
        spec = {"loader": loader.name, "indices": self.indices, "seed": options.seed, "seeds": str(work / "seeds"),
                "work": str(work / "scratch"), "memory": options.memory, "report_fd": write_end}
        spec_path = Path(tempfile.mkstemp(prefix="spec-", suffix=".json", dir=work)[1])
        spec_path.write_text(json.dumps(spec))
        self.log = tempfile.TemporaryFile(dir=work)
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
                   MALLOC_ARENA_MAX="2", PYTHONFAULTHANDLER="1", ATELIER_THREADS="1")
        self.process = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child", str(spec_path)],
                                        stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, env=env,
                                        pass_fds=(write_end,), start_new_session=True, cwd=str(work))
        os.close(write_end)
        self.buffer, self.current, self.what, self.started = b"", None, "", time.monotonic()
        self.input_started = self.started
        self.killed_for_time, self.done = False, set()

    def handle(self, tallies):
        """Record the complete lines the child has reported."""
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            message = json.loads(line)
            if "start" in message:
                self.current, self.what, self.input_started = message["start"], message["what"], time.monotonic()
            else:
                tallies[self.loader.name].add(message["outcome"], message["done"], self.what, message["detail"])
                self.done.add(message["done"])
                self.current = None

    def kill(self):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def log_tail(self):
        self.log.seek(0, os.SEEK_END)
        size = self.log.tell()
        self.log.seek(max(0, size - 3000))
        return self.log.read().decode("utf-8", "replace")


def classify_death(child):
    """The outcome of the input a child died on."""
    code, tail = child.process.returncode, child.log_tail()
    memory_words = ("MemoryError", "bad_alloc", "Cannot allocate memory", "out of memory", "std::length_error")
    if child.killed_for_time or code == -signal.SIGXCPU:
        return "hangs", f"no answer within the limits (exit {code})"
    if any(word in tail for word in memory_words):
        return "memory", f"exit {code}: {tail.strip().splitlines()[-1][:200] if tail.strip() else ''}"
    if code == -signal.SIGKILL:
        return "memory", "killed (SIGKILL), presumably by the system for memory"
    last = tail.strip().splitlines()[-6:] if tail.strip() else []
    return "crashes", f"exit {code} ({signal.Signals(-code).name if code and code < 0 else 'no signal'}): " + \
        " | ".join(line.strip()[:160] for line in last)


def build_seeds(loaders, work):
    for loader in loaders:
        folder = work / "seeds" / loader.name
        if not folder.exists():
            folder.mkdir(parents=True)
            loader.seeds(folder)


def fuzz(options):
    """Run every input of every loader asked for; returns the report."""
    names = options.loaders.split(",") if options.loaders else list(LOADERS)
    unknown = [name for name in names if name not in LOADERS and name not in SELF_TESTS]
    if unknown:
        raise SystemExit(f"fuzz: unknown loader(s) {', '.join(unknown)}; known: {', '.join(LOADERS)}")
    loaders = [find_loader(name) for name in names]
    work = Path(tempfile.mkdtemp(prefix="atelier-fuzz-", dir=options.work))
    started = time.monotonic()
    try:
        (work / "scratch").mkdir()
        build_seeds(loaders, work)
        seeding = time.monotonic() - started
        tallies = {loader.name: Tally() for loader in loaders}
        seconds = {loader.name: 0.0 for loader in loaders}
        first = getattr(options, "first", 0)
        pending = [(loader, range(start, min(start + options.batch, first + options.inputs)))
                   for loader in loaders for start in range(first, first + options.inputs, options.batch)]
        pending.sort(key=lambda unit: unit[0].name in ("sketch_torch", "cli", "worker", "image"), reverse=True)
        running, selector = [], selectors.DefaultSelector()

        def start(loader, indices):
            child = Child(loader, indices, options, work)
            selector.register(child.read_end, selectors.EVENT_READ, child)
            running.append(child)

        def finish(child):
            selector.unregister(child.read_end)
            os.close(child.read_end)
            running.remove(child)
            child.process.wait()
            seconds[child.loader.name] += time.monotonic() - child.started
            left = [index for index in child.indices if index not in child.done]
            if left:  # it died on an input (or while making it): record that one, go on after it
                current = child.current if child.current is not None else left[0]
                outcome, detail = classify_death(child)
                if child.current is None:
                    detail = "while making the input: " + detail
                tallies[child.loader.name].add(outcome, current, child.what, detail)
                remaining = [index for index in left if index != current]
                if remaining:
                    pending.insert(0, (child.loader, remaining))
            child.log.close()

        while pending or running:
            while pending and len(running) < options.jobs:
                start(*pending.pop(0))
            for key, _ in selector.select(timeout=0.5):
                child = key.data
                chunk = os.read(child.read_end, 65536)
                if not chunk:
                    continue
                child.buffer += chunk
                child.handle(tallies)
            for child in list(running):
                if time.monotonic() - child.input_started > child.loader.wall_seconds and not child.killed_for_time:
                    child.killed_for_time = True
                    child.kill()
                if child.process.poll() is not None:
                    while True:  # read what it reported before it ended
                        chunk = os.read(child.read_end, 65536) if select_ready(child.read_end) else b""
                        if not chunk:
                            break
                        child.buffer += chunk
                        child.handle(tallies)
                    finish(child)
            if options.progress:
                done = sum(t.inputs for t in tallies.values())
                print(f"\r{done}/{options.inputs * len(loaders)} inputs, {time.monotonic() - started:.0f} s",
                      end="", file=sys.stderr, flush=True)
        if options.progress:
            print(file=sys.stderr)
    finally:
        for child in list(locals().get("running", [])):
            child.kill()
        remove_tree(work)
    report = {
        "inputs_per_loader": options.inputs, "first_input": getattr(options, "first", 0), "seed": options.seed,
        "memory_cap_bytes": options.memory,
        "cpu_seconds_per_input": CPU_SECONDS, "wall_seconds_per_input": WALL_SECONDS, "jobs": options.jobs,
        "seconds": round(time.monotonic() - started, 1), "seeding_seconds": round(seeding, 1),
        "loaders": {name: {**tally.as_dict(), "child_seconds": round(seconds[name], 1)} for name, tally in tallies.items()},
    }
    report["totals"] = {key: sum(t.counts[key] if key in t.counts else t.inputs for t in tallies.values())
                        for key in ("inputs", *OUTCOMES)}
    return report


def merge(paths):
    """One report from the reports of parts of a run (loaders run apart, ``--first`` ranges)."""
    parts = [json.loads(Path(path).read_text()) for path in paths]
    loaders = {}
    for part in parts:
        for name, figures in part["loaders"].items():
            merged = loaders.setdefault(name, {"inputs": 0, **dict.fromkeys(OUTCOMES, 0), "examples": {},
                                               "child_seconds": 0.0})
            for key in ("inputs", *OUTCOMES):
                merged[key] += figures[key]
            merged["child_seconds"] = round(merged["child_seconds"] + figures["child_seconds"], 1)
            for outcome, examples in figures["examples"].items():
                merged["examples"].setdefault(outcome, []).extend(examples)
    report = {key: parts[0][key] for key in ("seed", "memory_cap_bytes", "cpu_seconds_per_input",
                                             "wall_seconds_per_input")}
    report["parts"] = [{"loaders": list(part["loaders"]), "first_input": part.get("first_input", 0),
                        "inputs_per_loader": part["inputs_per_loader"], "jobs": part["jobs"],
                        "seconds": part["seconds"]} for part in parts]
    report["loaders"] = loaders
    report["totals"] = {key: sum(figures[key] for figures in loaders.values()) for key in ("inputs", *OUTCOMES)}
    return report


def select_ready(fd):
    ready = selectors.DefaultSelector()
    ready.register(fd, selectors.EVENT_READ)
    try:
        return bool(ready.select(timeout=0))
    finally:
        ready.close()


def replay(options):
    """Make one input and run it in this process, with its traceback (for debugging a finding)."""
    name, _, index = options.replay.partition(":")
    loader = find_loader(name)
    work = Path(tempfile.mkdtemp(prefix="atelier-fuzz-", dir=options.work))
    try:
        build_seeds([loader], work)
        os.environ.update(loader.env)
        scratch = work / "case"
        scratch.mkdir()
        case = make_case(loader, work / "seeds", options.seed, int(index), scratch)
        print(f"{name}:{index}: {case.what}", file=sys.stderr)
        resource_limits(options.memory)
        loader.load(case.path)
        print("loaded without error", file=sys.stderr)
    finally:
        remove_tree(work)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=10000, help="inputs per loader")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--first", type=int, default=0,
                        help="index of the first input (inputs FIRST ... FIRST+INPUTS-1: a long run in parts)")
    parser.add_argument("--loaders", help=f"comma-separated, default all: {','.join(LOADERS)}")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="child processes at once")
    parser.add_argument("--batch", type=int, default=BATCH, help="inputs per child process")
    parser.add_argument("--memory", type=int, default=MEMORY_CAP, help="address-space cap of a child, bytes")
    parser.add_argument("--work", help="folder for seeds and inputs (default: the system's temporary folder)")
    parser.add_argument("--progress", action="store_true", help="show a counter on stderr")
    parser.add_argument("--replay", metavar="LOADER:INDEX", help="run one input here with its traceback")
    parser.add_argument("--merge", nargs="+", metavar="REPORT.json",
                        help="print one report adding up these reports (parts of one run)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.child:
        return child_main(options.child)
    if options.merge:
        print(json.dumps(merge(options.merge), indent=1, default=str))
        return 0
    if options.replay:
        return replay(options)
    report = fuzz(options)
    print(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
