import json
import struct

import numpy as np
import pytest

from core.errors import AtelierError
from core.modelfile import read_model, save_model


def example(path):
    tensors = {"weights": np.arange(12, dtype=np.int8).reshape(3, 4), "scale": np.array([0.5], np.float32)}
    save_model(path, "nca", tensors, {"hyperparameters": {"channels": 4}})
    return tensors


def test_round_trip_keeps_tensors_and_metadata(tmp_path):
    tensors = example(tmp_path / "m.safetensors")
    loaded, meta = read_model(tmp_path / "m.safetensors", "nca")
    assert meta["kind"] == "nca" and meta["hyperparameters"] == {"channels": 4} and meta["format_version"] == 1
    for name in tensors:
        assert loaded[name].dtype == tensors[name].dtype
        np.testing.assert_array_equal(loaded[name], tensors[name])


def test_files_are_standard_safetensors(tmp_path):
    from safetensors.numpy import load_file, safe_open
    example(tmp_path / "m.safetensors")
    assert set(load_file(tmp_path / "m.safetensors")) == {"weights", "scale"}
    with safe_open(tmp_path / "m.safetensors", "np") as handle:
        assert json.loads(handle.metadata()["atelier"])["kind"] == "nca"


def test_reads_files_written_by_safetensors(tmp_path):
    from safetensors.numpy import save_file
    save_file({"w": np.ones((2, 2), np.float32)}, tmp_path / "s.safetensors",
              metadata={"atelier": json.dumps({"kind": "stylize"})})
    tensors, meta = read_model(tmp_path / "s.safetensors", "stylize")
    assert tensors["w"].sum() == 4 and meta["kind"] == "stylize"


@pytest.mark.parametrize("damage, message", [
    (lambda raw: raw[:len(raw) - 5], "truncated"),
    (lambda raw: raw[:4], "too short"),
    (lambda raw: b"PK\x03\x04" + raw[4:], "header"),
    (lambda raw: struct.pack("<Q", 20) + b"{" * 20 + raw[28:], "no Atelier metadata"),
])
def test_damaged_files_give_clear_errors(tmp_path, damage, message):
    path = tmp_path / "m.safetensors"
    example(path)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(AtelierError, match=message) as error:
        read_model(path, "nca")
    assert str(path) in str(error.value)


def test_other_kind_and_missing_file_are_refused(tmp_path):
    example(tmp_path / "m.safetensors")
    with pytest.raises(AtelierError, match="is a 'nca' model, expected 'sketch_rnn'"):
        read_model(tmp_path / "m.safetensors", "sketch_rnn")
    with pytest.raises(AtelierError, match="cannot read"):
        read_model(tmp_path / "absent.safetensors")


def test_non_finite_values_are_refused(tmp_path):
    save_model(tmp_path / "m.safetensors", "nca", {"w": np.array([1.0, np.nan], np.float32)})
    with pytest.raises(AtelierError, match="NaN"):
        read_model(tmp_path / "m.safetensors")


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "m.safetensors"
    example(path)
    before = path.read_bytes()
    with pytest.raises(TypeError):
        save_model(path, "nca", {"w": np.array(["text"])})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def _rewrite_header(path, change):
    raw = path.read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + size])
    change(header)
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + size:])


def _set_meta(key, value):
    def change(header):
        meta = json.loads(header["__metadata__"]["atelier"])
        meta[key] = value
        header["__metadata__"]["atelier"] = json.dumps(meta)
    return change


def _set_tensor(key, value):
    def change(header):
        header["weights"][key] = value
    return change


@pytest.mark.parametrize("change, message", [
    (_set_meta("format_version", "1"), "format_version is '1'"),
    (_set_meta("format_version", 1.5), "format_version"),
    (_set_meta("kind", ["nca"]), "its kind is list"),
    (_set_tensor("shape", [-3, -4]), "malformed shape"),
    (_set_tensor("shape", [3.0, 4]), "malformed shape"),
    (_set_tensor("shape", [2 ** 62, 2 ** 62]), "malformed shape"),
    (_set_tensor("data_offsets", [0, 2 ** 70]), "truncated"),
    (_set_tensor("data_offsets", [-4, 8]), "malformed data_offsets"),
    (_set_tensor("data_offsets", "0,12"), "malformed data_offsets"),
    (_set_tensor("dtype", "F8_E4M3"), "unknown dtype"),
    (_set_tensor("dtype", ["I8"]), "unknown dtype"),
    (lambda header: header.__setitem__("scale", dict(header["weights"])), "overlap"),
    (lambda header: header.__setitem__("__metadata__", {"atelier": "[" * 100000}), "nested too deeply"),
])
def test_malformed_headers_are_clear_errors_before_anything_is_allocated(tmp_path, change, message):
    path = tmp_path / "m.safetensors"
    example(path)
    _rewrite_header(path, change)
    with pytest.raises(AtelierError, match=message) as error:
        read_model(path, "nca")
    assert str(path) in str(error.value)


@pytest.mark.parametrize("header", [b'"just text"', b"[" * 100000 + b"]" * 100000, b"[1, 2]"])
def test_a_header_that_is_not_an_object(tmp_path, header):
    path = tmp_path / "m.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    with pytest.raises(AtelierError, match="no Atelier metadata"):
        read_model(path)


def test_special_files_are_refused(tmp_path):
    import os
    os.mkfifo(tmp_path / "fifo.safetensors")
    (tmp_path / "zero.safetensors").symlink_to("/dev/zero")
    (tmp_path / "folder.safetensors").mkdir()
    for name, kind in (("fifo", "FIFO"), ("zero", "device"), ("folder", "folder")):
        with pytest.raises(AtelierError, match=kind):
            read_model(tmp_path / f"{name}.safetensors")


def test_models_are_written_with_the_umasks_permissions(tmp_path):
    import os
    import stat
    old = os.umask(0o027)
    try:
        example(tmp_path / "a.safetensors")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "a.safetensors").st_mode) == 0o640
    os.chmod(tmp_path / "a.safetensors", 0o604)
    example(tmp_path / "a.safetensors")  # a file that is replaced keeps its mode
    assert stat.S_IMODE(os.stat(tmp_path / "a.safetensors").st_mode) == 0o604
