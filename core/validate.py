"""One layer of checks for data that comes from outside: files, requests, hyperparameters.

Every reader of untrusted data goes through these, so that every way a file can be wrong ends in
:class:`AtelierError` ("<file>: <problem>") before anything large is allocated:

* :func:`open_regular` refuses FIFOs, devices, sockets and folders (a symlink to ``/dev/zero`` is
  a device) *before* reading, and opens without blocking, so a FIFO can never hang a reader;
* :func:`read_file` reads a whole file only up to a size limit;
* :func:`loads_json` maps deep nesting (``RecursionError``) and bad JSON to ``AtelierError``;
* :func:`inflate` decompresses zlib data to a known size and never further;
* :func:`check_int` / :func:`check_number` check values against sane ranges;
* :func:`shown` prints any path, even one whose name is not valid UTF-8;
* :func:`library_name` gives C libraries (OpenImageIO) a name they can open for such a path.

numpy and the standard library only: Blender's own Python imports this.
"""

import contextlib
import json
import math
import os
import shutil
import stat
import tempfile
import zlib
from pathlib import Path

from .errors import AtelierError

MiB = 1024 * 1024


def shown(path):
    """``path`` as printable text: bytes of a name that are not UTF-8 appear as ``\\xNN``."""
    text = os.fsdecode(path) if isinstance(path, bytes) else str(path)
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _kind(mode):
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _refuse_special(path, mode, what):
    if not stat.S_ISREG(mode):
        raise AtelierError(f"{shown(path)}: is {_kind(mode)}, not a {what}")


def check_regular(path, what="file"):
    """Raise unless ``path`` names a regular file (symlinks followed); returns its size."""
    try:
        info = os.stat(path)
    except (OSError, ValueError) as error:
        raise AtelierError(f"{shown(path)}: cannot read {what} ({_reason(error)})") from None
    _refuse_special(path, info.st_mode, what)
    return info.st_size


def _reason(error):
    if isinstance(error, FileNotFoundError):
        return "no such file"
    return getattr(error, "strerror", None) or str(error)


def open_regular(path, what="file"):
    """Open ``path`` for binary reading, refusing FIFOs, devices and folders without ever blocking.

    The kind is checked with ``stat`` before opening and again with ``fstat`` on what was opened (so
    a file swapped in between is caught); ``O_NONBLOCK`` keeps the open of a FIFO from waiting for a
    writer.  Returns a file object; ``os.fstat(f.fileno()).st_size`` is its size.
    """
    check_regular(path, what)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    except (OSError, ValueError) as error:
        raise AtelierError(f"{shown(path)}: cannot read {what} ({_reason(error)})") from None
    try:
        _refuse_special(path, os.fstat(fd).st_mode, what)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def file_size(handle):
    return os.fstat(handle.fileno()).st_size


def read_file(path, limit, what="file"):
    """The bytes of regular file ``path``; more than ``limit`` bytes is an error, not a read."""
    with open_regular(path, what) as handle:
        size = file_size(handle)
        if size > limit:
            raise AtelierError(f"{shown(path)}: {what} is {size:,} bytes; at most {limit:,} are read")
        try:
            data = handle.read(size + 1)  # read(n) allocates n bytes first: ask for what fstat said
        except OSError as error:
            raise AtelierError(f"{shown(path)}: cannot read {what} ({_reason(error)})") from None
    if len(data) > size:
        raise AtelierError(f"{shown(path)}: {what} grew while being read; read it again once it is complete")
    return data


def loads_json(text, source, what="JSON"):
    """``json.loads`` whose every failure (bad syntax, bad UTF-8, nesting too deep) is an AtelierError."""
    try:
        return json.loads(text)
    except RecursionError:
        raise AtelierError(f"{shown(source)}: {what} is nested too deeply") from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, integers of more than 4300 digits
        raise AtelierError(f"{shown(source)}: not valid {what} ({str(error)[:200]})") from None


def inflate(data, size, source, what="data"):
    """zlib-compressed ``data`` that must inflate to exactly ``size`` bytes; never produces more."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, size) if size else b""
    except zlib.error as error:
        raise AtelierError(f"{shown(source)}: damaged compressed {what} ({error})") from None
    if len(out) != size or inflater.unconsumed_tail:
        raise AtelierError(f"{shown(source)}: compressed {what} inflates to "
                           f"{'more' if inflater.unconsumed_tail else len(out)} bytes, expected {size}")
    return out


def check_int(source, name, value, low, high):
    """``value`` if it is an integer (not a bool) in ``low..high``, else an AtelierError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise AtelierError(f"{shown(source)}: {name} is {_short(value)}; expected an integer from {low} to {high}")
    return value


def check_number(source, name, value, low, high):
    """``value`` as a float if it is a finite number in ``low..high``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AtelierError(f"{shown(source)}: {name} is {_short(value)}; expected a number from {low} to {high}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number) or not low <= number <= high:
        raise AtelierError(f"{shown(source)}: {name} is {_short(value)}; expected a number from {low} to {high}")
    return number


def _short(value):
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def encodes_as_utf8(text):
    """Whether ``text`` (a str, maybe with surrogate escapes of non-UTF-8 bytes) is valid UTF-8."""
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


@contextlib.contextmanager
def library_name(path, write=False):
    """A ``str`` file name that C libraries taking UTF-8 names (OpenImageIO) can use for ``path``.

    That is ``str(path)`` whenever it encodes as UTF-8.  A name that does not (bytes of another
    encoding on Linux) is read through a temporary hard link (or copy) with an ASCII name; with
    ``write`` the library writes to a temporary ASCII name that is then moved (or copied) to ``path``.
    """
    text = os.fspath(path)
    if encodes_as_utf8(text):
        yield text
        return
    suffix = Path(text).suffix if encodes_as_utf8(Path(text).suffix) else ""
    folder = tempfile.mkdtemp(prefix="atelier-name-")
    alias = os.path.join(folder, "file" + suffix)
    try:
        if not write:
            try:
                os.link(text, alias)
            except OSError:
                shutil.copyfile(text, alias)
        yield alias
        if write:
            try:
                os.replace(alias, text)
            except OSError:
                shutil.copyfile(alias, text)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def memory_budget():
    """Bytes one array set may take: half of the smaller of this machine's memory and the process's
    address-space limit (``RLIMIT_AS``) where one is set."""
    limits = []
    try:
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        pass
    try:
        import resource
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            limits.append(soft)
    except (ImportError, OSError, ValueError):
        pass
    return min(limits) // 2 if limits else 8 << 30
