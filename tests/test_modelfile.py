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
