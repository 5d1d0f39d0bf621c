"""Issue 16: every loader survives the fuzzer (a seeded subset of bench/fuzz.py), and regressions for
the faults it found: clear errors, no crash, no hang, bounded memory."""

import argparse
import json
import os
import struct
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import fuzz  # noqa: E402

from core.errors import AtelierError  # noqa: E402

INPUTS = 200


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    options = argparse.Namespace(inputs=INPUTS, seed=16, loaders=None, jobs=os.cpu_count() or 1, batch=INPUTS,
                                 memory=fuzz.MEMORY_CAP, work=str(tmp_path_factory.mktemp("fuzz")), progress=False)
    return fuzz.fuzz(options)


@pytest.mark.parametrize("loader", list(fuzz.LOADERS))
def test_loader_survives_the_fuzzer(report, loader):
    figures = report["loaders"][loader]
    assert figures["inputs"] == INPUTS
    failures = {key: figures[key] for key in ("other_exceptions", "crashes", "hangs", "memory")}
    assert failures == dict.fromkeys(failures, 0), json.dumps(figures["examples"], indent=1)[:4000]
    assert figures["clean_errors"] > 0  # the hand-made cases alone give some


def test_the_fuzzer_tells_failures_apart(tmp_path):
    """The harness itself: a crash, a hang, a memory blow-up and a stray exception are each recognised."""
    options = argparse.Namespace(inputs=2, seed=0, loaders=",".join(fuzz.SELF_TESTS), jobs=2, batch=2,
                                 memory=fuzz.MEMORY_CAP, work=str(tmp_path), progress=False)
    loaders = fuzz.fuzz(options)["loaders"]
    assert loaders["selftest_crash"]["crashes"] == 2
    assert loaders["selftest_hang"]["hangs"] == 2
    assert loaders["selftest_memory"]["memory"] == 2
    assert loaders["selftest_exception"]["other_exceptions"] == 2


# ----------------------------------------------------------------------------- regressions, one per finding

def test_fifo_and_devices_are_refused_without_blocking(tmp_path):
    from core.modelfile import read_model
    from core.drawing.quickdraw import load_ndjson
    fifo = tmp_path / "model.safetensors"
    os.mkfifo(fifo)
    (tmp_path / "zero.ndjson").symlink_to("/dev/zero")
    started = time.monotonic()
    with pytest.raises(AtelierError, match="FIFO"):
        read_model(fifo)
    with pytest.raises(AtelierError, match="device"):
        load_ndjson(tmp_path / "zero.ndjson")
    assert time.monotonic() - started < 5


def test_nca_model_from_a_fifo_a_device_or_a_huge_binary(tmp_path):
    """Found by the nca loader of the fuzzer: the first 4 bytes were read with a blocking open (a FIFO
    hung), and a file starting with the binary's magic was read whole."""
    from core.nca import files
    from core.nca.quantize import MAGIC
    os.mkfifo(tmp_path / "fifo.nca")
    (tmp_path / "zero.nca").symlink_to("/dev/zero")
    with open(tmp_path / "huge.nca", "wb") as handle:
        handle.write(MAGIC)
        handle.truncate(8 << 30)
    started = time.monotonic()
    for name, problem in (("fifo.nca", "FIFO"), ("zero.nca", "device"), ("huge.nca", "at most 4,096")):
        with pytest.raises(AtelierError, match=f"{name}.*{problem}"):
            files.load(tmp_path / name)
    assert time.monotonic() - started < 5


def test_seeds_out_of_range_are_clear_errors(tmp_path):
    """Found by the 10,000-input run (cli:107): `sketch eval --seed 99999999999999999999` ended in
    torch's OverflowError, and `nca render --seed -1` in numpy's ValueError."""
    from core.cli import run_command
    from core.progress import SilentProgress
    model = ROOT / "core/assets/nca/presets/stripes.safetensors"
    for seed in ("-1", "9" * 20):
        for argv in (["nca", "render", str(model), "--size", "8", "--steps", "1", "-o", str(tmp_path / "x.png")],
                     ["sketch", "eval", "kanji", str(tmp_path / "none.ndjson")]):
            with pytest.raises(AtelierError, match=f"--seed {seed}: must lie in"):
                run_command([*argv, f"--seed={seed}"], SilentProgress())
    assert not (tmp_path / "x.png").exists()


def test_reading_a_builtin_set_or_evaluating_can_be_stopped():
    """Found by the 10,000-input run (cli:3963): `sketch eval MODEL kanji` read thousands of SVGs, then
    evaluated, without a progress update, so neither Esc nor the fuzzer's budget could stop it."""
    from core.errors import Cancelled
    from core.progress import SilentProgress
    from core.sketch.data import load_dataset
    seen = []

    class StopAfterSome(SilentProgress):
        def update(self, done, **figures):
            seen.append((self.description, done))
            if done >= 64:
                raise Cancelled()
    with pytest.raises(Cancelled):
        load_dataset("kanji", progress=StopAfterSome())
    assert seen[-1] == ("reading KanjiVG", 64)
    from core.sketch.model import evaluate, load_torch_model
    model, meta, _ = load_torch_model(ROOT / "core/assets/sketch/hershey.safetensors")
    sketches = [np.array([[1, 1, 0], [2, 0, 0], [0, 2, 1]], np.float32)] * (model.hp["batch_size"] * 3)
    seen.clear()
    with pytest.raises(Cancelled):
        evaluate(model, sketches, meta["scale"], progress=StopAfterSome())
    assert seen[-1][0] == "evaluating" and seen[-1][1] >= 64


def test_frame_numbers_far_apart_are_checked_in_one_pass(tmp_path):
    from core.stylize.frames import frame_files
    for name in ("f0.png", "f99999999999.png"):
        (tmp_path / name).write_bytes(fuzz.png_bytes(2, 2))
    started = time.monotonic()
    with pytest.raises(AtelierError, match="99,999,999,998 missing frame"):
        frame_files(tmp_path)
    assert time.monotonic() - started < 1


def test_png_declaring_65535_squared_is_refused_before_decoding(tmp_path):
    from core.imageio import read_image
    path = tmp_path / "tiny.png"
    path.write_bytes(fuzz.png_bytes(65535, 65535, idat=b"x\x9c\x03\x00\x00\x00\x00\x01"))
    with pytest.raises(AtelierError, match="65535x65535 pixels"):
        read_image(path)
    path.write_bytes(fuzz.png_bytes(8000, 8000, idat=b"x\x9c\x03\x00\x00\x00\x00\x01"))
    with pytest.raises(AtelierError, match="damaged or truncated"):
        read_image(path)


def test_exr_faults_are_errors(tmp_path):
    from core.stylize.exr import read_exr_channels
    cases = {"uncovered.exr": fuzz._exr_same_offsets(fuzz.exr_bytes({"Y": np.ones((40, 3), np.float32)}, 2, 2)),
             "bomb.exr": fuzz._exr_zlib_bomb(),
             "window.exr": fuzz.exr_bytes({"R": np.zeros((4, 4), np.float32)}, window=(0, 0, 65535, 131071))}
    good = bytearray(fuzz.exr_bytes({"R": np.zeros((4, 4), np.float32)}))
    at = good.find(b"compression\0compression\0") + len(b"compression\0compression\0")
    good[at:at + 4] = struct.pack("<i", -13)
    cases["negative.exr"] = bytes(good)
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(AtelierError, match=name):
            read_exr_channels(tmp_path / name)


def test_exr_writer_of_the_fuzzer_round_trips(tmp_path):
    from core.stylize.exr import read_exr_channels
    channels = fuzz._vector_channels(7, 5)
    for compression in (0, 2, 3):
        for multipart in (False, True):
            path = tmp_path / f"v{compression}{multipart}.exr"
            path.write_bytes(fuzz.exr_bytes(channels, compression, 2, multipart))
            back = read_exr_channels(path)
            assert all(np.array_equal(back[name], channels[name]) for name in channels)


def test_npz_forged_dtype_is_refused_not_run(tmp_path):
    from core.drawing.npz import load_npz
    path = tmp_path / "forged.npz"
    path.write_bytes(fuzz.zip_bytes([("train.npy", fuzz.npy_header("|O", (1,)) + fuzz.FORGED_DTYPE_PICKLE)]))
    with pytest.raises(AtelierError, match="forged.npz"):
        load_npz(path)


def test_npz_zip_bomb_is_refused_from_its_declared_size(tmp_path):
    from core.drawing.npz import load_npz
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("train.npy", bytes(300 << 20))
    with pytest.raises(AtelierError, match="at most"):
        load_npz(path)


def test_npz_empty_array_with_a_huge_dimension(tmp_path):
    """Found by the 10,000-input run: shape (0, 2**64) holds no items, yet numpy cannot shape it."""
    from core.drawing.npz import load_npz
    path = tmp_path / "huge.npz"
    path.write_bytes(fuzz.zip_bytes([("train.npy", fuzz.npy_header("<f4", (0, 2 ** 64)))]))
    with pytest.raises(AtelierError, match=r"huge.npz.*shape \(0, 18446744073709551616\)"):
        load_npz(path)


def test_ndjson_deep_nesting_huge_numbers_and_a_long_line(tmp_path):
    from core.drawing.quickdraw import load_ndjson
    n = 80000
    lines = ['{"drawing": ' + "[" * 100000 + "]" * 100000 + "}", '{"drawing": [[[' + "9" * 400 + ", 1], [1, 2]]]}",
             '{"drawing": [[[1e999, 1], [1, 2]]]}',
             json.dumps({"drawing": [[list(range(n)), [(i * 7919) % 1000 for i in range(n)], list(range(n))]]})]
    path = tmp_path / "nasty.ndjson"
    path.write_text("\n".join(lines) + "\n")
    started = time.monotonic()
    sketches, skipped = load_ndjson(path)
    assert skipped == 3 and len(sketches) == 1
    assert time.monotonic() - started < 5  # the RDP of 80,000 points took 22 s before


def test_svg_unknown_encoding_and_deep_groups(tmp_path):
    from core.drawing.svg import load_svg
    (tmp_path / "enc.svg").write_bytes(b'<?xml version="1.0" encoding="no-such"?><svg/>')
    with pytest.raises(AtelierError, match="enc.svg"):
        load_svg(tmp_path / "enc.svg")
    (tmp_path / "deep.svg").write_text("<svg>" + '<g transform="translate(1 0)">' * 5000
                                       + '<line x1="0" y1="0" x2="1" y2="0"/>' + "</g>" * 5000 + "</svg>")
    (line,) = load_svg(tmp_path / "deep.svg")
    np.testing.assert_allclose(line, [[5000, 0], [5001, 0]])


def test_sketch_model_hyperparameters_are_checked_before_building(tmp_path):
    from core.modelfile import read_model, save_model
    from core.sketch.runtime import SketchModel
    path = tmp_path / "m.safetensors"
    fuzz.write_tiny_sketch_model(path)
    tensors, meta = read_model(path)
    meta["hyperparameters"]["dec_rnn_size"] = 4096  # in range, but the tensors do not match: refused, not built
    save_model(path, "sketch_rnn", tensors, {k: v for k, v in meta.items() if k not in ("kind", "format_version")})
    with pytest.raises(AtelierError, match="its hyperparameters make"):
        SketchModel(path)
    meta["hyperparameters"]["dec_rnn_size"] = 10 ** 7
    save_model(path, "sketch_rnn", tensors, {k: v for k, v in meta.items() if k not in ("kind", "format_version")})
    with pytest.raises(AtelierError, match="dec_rnn_size is 10000000"):
        SketchModel(path)


def test_non_utf8_names_work_for_images(tmp_path):
    from core.imageio import read_image, write_image
    folder = tmp_path / os.fsdecode(b"caf\xe9")
    image = fuzz._gradient(5, 7, 3)
    path = write_image(folder / os.fsdecode(b"\xff\xfe.png"), image)
    assert os.fsencode(path.name) == b"\xff\xfe.png"
    assert np.abs(read_image(path) - image).max() <= 1 / 255
    with pytest.raises(AtelierError) as error:
        read_image(folder / os.fsdecode(b"\xff-missing.png"))
    str(error.value).encode("utf-8")  # the message can be shown anywhere: no lone surrogates


def test_stylize_tile_out_of_range_is_a_clear_error(tmp_path):
    """Found by a sweep of the commands' numeric options: `stylize run --tile 0` ended in ZeroDivisionError."""
    from core.cli import run_command
    from core.progress import SilentProgress
    from core.stylize.model import check_tile
    for tile in (0, -5, 15, 10 ** 6):
        with pytest.raises(AtelierError, match=f"--tile {tile}: must be"):
            run_command(["stylize", "run", str(tmp_path / "missing.safetensors"), "--frames", str(tmp_path),
                         "--tile", str(tile), "-o", str(tmp_path / "out")], SilentProgress())
    assert check_tile(16) == 16


def test_stylize_model_hyperparameters_are_checked_before_building(tmp_path):
    """The stylisation loader built whatever network the header described (filters of 100,000
    channels: terabytes) before comparing it with the tensors; now sizes, then shapes on torch's
    meta device, come first."""
    from core.modelfile import read_model, save_model
    from core.stylize import model as sty
    fuzz.seeds_stylize_models(tmp_path)
    tensors, meta = read_model(tmp_path / "fast.safetensors")
    config = meta["hyperparameters"]["config"]
    cases = {"huge.safetensors": (dict(config, filters=[100000] * 6), "a filter count is 100000"),
             "deep.safetensors": (dict(config, resnet_blocks=10 ** 7), "resnet_blocks is 10000000"),
             "other.safetensors": (dict(config, filters=[8] * 6), "do not match the network"),
             "twice.safetensors": (dict(config, in_channels=3), "do not describe"),
             "norm.safetensors": (dict(config, norm="batch"), "norm 'batch'")}
    for name, (changed, problem) in cases.items():
        save_model(tmp_path / name, "stylize", tensors, {"hyperparameters": {"in_channels": 5, "config": changed}})
        with pytest.raises(AtelierError, match=f"{name}: .*{problem}"):
            sty.load(tmp_path / name)
    fuzz.load_stylize_model(tmp_path / "fast.safetensors")
    fuzz.load_stylize_model(tmp_path / "published.safetensors")
