import numpy as np
import pytest

from core.atomic import atomic_directory, atomic_path
from core.errors import AtelierError
from core.imageio import read_image, write_image


def gradient(channels):
    y, x = np.mgrid[0:6, 0:9].astype(np.float32)
    planes = [x / 8, y / 5, (x + y) / 13, 1 - x / 8][:channels]
    return np.stack(planes, axis=2)


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("suffix, bits, tolerance", [(".png", 8, 1 / 255), (".png", 16, 1 / 65535), (".exr", 8, 1e-6),
                                                       (".tif", 16, 1 / 65535)])
def test_round_trip_keeps_orientation_channels_and_precision(tmp_path, channels, suffix, bits, tolerance):
    image = gradient(channels)
    path = write_image(tmp_path / f"x{suffix}", image, bits=bits)
    loaded = read_image(path)
    assert loaded.shape == image.shape and loaded.dtype == np.float32
    assert np.abs(loaded - image).max() <= tolerance
    assert loaded[0, -1, 0] > loaded[0, 0, 0]  # row 0 is the top, x grows to the right


def test_channel_conversion():
    image = gradient(4)
    from core.imageio import convert_channels
    assert convert_channels(image, 3).shape[2] == 3
    assert convert_channels(image[:, :, :1], 4)[:, :, 3].min() == 1.0
    np.testing.assert_allclose(convert_channels(image, 1)[:, :, 0], image[:, :, :3].mean(axis=2), atol=1e-6)


def test_non_images_name_the_file(tmp_path):
    bogus = tmp_path / "notes.png"
    bogus.write_text("not a picture")
    with pytest.raises(AtelierError, match="notes.png: not an image"):
        read_image(bogus)
    with pytest.raises(AtelierError, match="no such image"):
        read_image(tmp_path / "missing.png")


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError
    assert target.read_bytes() == b"old" and len(list(tmp_path.iterdir())) == 1


def test_atomic_directory_refuses_to_overwrite_without_force(tmp_path):
    with atomic_directory(tmp_path / "frames") as folder:
        (folder / "a.png").write_bytes(b"1")
    with pytest.raises(AtelierError, match="already exists"):
        with atomic_directory(tmp_path / "frames"):
            pass
    with atomic_directory(tmp_path / "frames", force=True) as folder:
        (folder / "b.png").write_bytes(b"2")
    assert [p.name for p in (tmp_path / "frames").iterdir()] == ["b.png"]


def test_outputs_get_the_umasks_permissions_and_are_fsynced(tmp_path, monkeypatch):
    import os
    import stat
    import core.atomic as atomic
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")),
                                                         real_fsync(fd)))
    old = os.umask(0o022)
    try:
        write_image(tmp_path / "a.png", gradient(3))
        with atomic_directory(tmp_path / "frames") as folder:
            write_image(folder / "f1.png", gradient(3))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "a.png").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(tmp_path / "frames").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(tmp_path / "frames" / "f1.png").st_mode) == 0o644
    assert any(path.endswith(".png") and ".partial" in path for path in synced)  # the file, before its rename
    assert str(tmp_path) in synced  # the folder, after it


def test_writing_over_a_folder_or_under_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "out.png").mkdir()
    with pytest.raises(AtelierError, match="is a folder"):
        write_image(tmp_path / "out.png", gradient(3))
    (tmp_path / "file").write_text("x")
    with pytest.raises(AtelierError, match="is a file"):
        write_image(tmp_path / "file" / "out.png", gradient(3))
    with pytest.raises(AtelierError, match="is a file"):
        with atomic_directory(tmp_path / "file", force=True):
            pass


@pytest.mark.parametrize("codec", ["OpenImageIO", "OpenCV", "Pillow"])
def test_every_codec_refuses_special_files_and_damaged_sizes(tmp_path, monkeypatch, codec):
    import os
    monkeypatch.setenv("ATELIER_IMAGE_CODEC", codec)
    os.mkfifo(tmp_path / "fifo.png")
    with pytest.raises(AtelierError, match="FIFO"):
        read_image(tmp_path / "fifo.png")
    (tmp_path / "zero.png").symlink_to("/dev/zero")
    with pytest.raises(AtelierError, match="device"):
        read_image(tmp_path / "zero.png")
    import zlib
    import struct

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    huge = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    (tmp_path / "huge.png").write_bytes(huge)
    with pytest.raises(AtelierError, match="20000x20000|400000000 pixels"):
        read_image(tmp_path / "huge.png")
