"""Write outputs under a temporary name and rename them into place, so nothing is ever half-written.

Outputs get the permissions any other program would give them under the user's umask (0644 files
and 0755 folders with the usual umask 022; a file that is replaced keeps its mode), and are
flushed to disk (``fsync``) before the rename, and the folder after it, so a crash or power cut
leaves either the old file or the complete new one.
"""

import contextlib
import os
import shutil
import stat
import tempfile
from pathlib import Path

from .errors import AtelierError
from .validate import shown


def current_umask():
    """The process's umask, read without changing it where Linux says it (else set and restored)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_path(path, directory=False):
    """Flush ``path`` (a file, or a folder's entries) to disk; a no-op where the system cannot."""
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _oserror(path, error, doing="cannot write"):
    return AtelierError(f"{shown(path)}: {doing} ({error.strerror or error})")


def _make_parent(path):
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise AtelierError(f"{shown(path)}: cannot write: a part of the folder path is a file") from None
    except OSError as error:
        raise _oserror(path.parent, error, "cannot create the folder") from None


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename.

    The temporary name keeps the suffix, so libraries that pick a format from the
    extension still work.  On any exception the temporary file is removed and ``path`` is
    untouched.  ``path`` naming a folder is an :class:`AtelierError`.
    """
    path = Path(path)
    if path.is_dir():
        raise AtelierError(f"{shown(path)}: is a folder; give the name of a file to write")
    _make_parent(path)
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode) if path.is_file() else 0o666 & ~current_umask()
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem[:100]}.", suffix=f".partial{path.suffix[:20]}",
                                   dir=path.parent)
        os.close(fd)
    except OSError as error:
        raise _oserror(path, error) from None
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, mode)
        _fsync_path(tmp)
        try:
            os.replace(tmp, path)
        except OSError as error:
            raise _oserror(path, error) from None
        _fsync_path(path.parent, directory=True)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes_atomic(path, data: bytes):
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path, text: str):
    write_bytes_atomic(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_directory(path, force=False):
    """Yield a temporary directory that becomes ``path`` on success.

    An existing ``path`` is an error unless ``force``; with ``force`` an existing folder is replaced
    only once the new one is complete (a file of that name is never replaced by a folder).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise AtelierError(f"{shown(path)}: is a file; give the name of a folder to write")
    if path.exists() and not force:
        raise AtelierError(f"{shown(path)}: already exists; choose another folder or pass --force")
    _make_parent(path)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name[:100]}.", suffix=".partial", dir=path.parent))
        os.chmod(tmp, 0o777 & ~current_umask())
    except OSError as error:
        raise _oserror(path, error, "cannot create the folder") from None
    old = None
    try:
        yield tmp
        for entry in tmp.iterdir():
            if entry.is_file():
                _fsync_path(entry)
        _fsync_path(tmp, directory=True)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name[:100]}.", suffix=".old", dir=path.parent))
            os.replace(path, old / "previous")
        try:
            os.replace(tmp, path)
        except OSError as error:
            if old is not None:
                os.replace(old / "previous", path)
            raise _oserror(path, error) from None
        _fsync_path(path.parent, directory=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
