"""The μNCA training kernels as C libraries: prebuilt, else compiled here, loaded with ctypes.

``shaders/nca_train.c`` (one library per channel count: 4, 6, 8, 12) and ``shaders/nca_loss.c``
make training fast on a CPU (fast.py is their torch side).  An artist's machine may have no C
compiler (Windows, macOS without the command-line tools), so each library is looked for in turn:

1. **prebuilt**, shipped in the extension under ``core/nca/prebuilt/<platform>/`` (``linux-x64``,
   ``macos-arm64``, ...; see :func:`platform_tag`), made by :func:`build_prebuilt` when the
   extension is packaged, with portable flags.  On x86-64 there is one build per
   micro-architecture level (v4: AVX-512; v3: AVX2 and FMA; v2: SSE4.2, the oldest CPU Blender
   runs on), each with and without OpenMP (an artist may lack the OpenMP runtime, libgomp); the
   best one that this CPU can run (``shaders/nca_cpu.c`` asks it) and that loads is used.  Builds
   whose sources differ from the ``shaders/`` beside them are ignored.
2. **compiled** with the system C compiler (``CC``, else ``cc``) for this very CPU
   (``-march=native``), cached under ``ATELIER_CACHE`` (about a second a library, once).
3. neither: training runs the torch step instead (same numbers, :data:`TORCH_SLOWDOWN` x slower).

``ATELIER_NCA_PREBUILT`` names another folder of platform folders to look in (empty: none).
This module needs neither torch nor numpy: :func:`kernel_report` runs in any Python.
"""

import ctypes
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..paths import PREBUILT_KERNELS as PREBUILT, SHADERS, cache_dir
from .rule import CHANNEL_COUNTS

CHANNELS = CHANNEL_COUNTS  # one library per model size
LIBRARIES = {**{f"train{c}": ("nca_train.c", (f"C={c}",)) for c in CHANNELS}, "loss": ("nca_loss.c", ())}
PROBE = "nca_cpu.c"
MANIFEST = "manifest.json"
COMMON_FLAGS = ["-shared", "-fPIC", "-std=gnu99"]
# compiling here: tried in turn, the first set the compiler accepts and that loads wins (Apple's
# clang has no OpenMP; -mprefer-vector-width is x86 only); without OpenMP the kernels run on one thread
FLAG_SETS = (["-O3", "-march=native", "-mprefer-vector-width=512", "-fopenmp"], ["-O3", "-march=native", "-fopenmp"],
             ["-O3", "-march=native"], ["-O3", "-fopenmp"], ["-O3"])
# prebuilt for x86-64: (name, flags, level), best first
X86_LEVELS = (("x86-64-v4", ["-march=x86-64-v4", "-mprefer-vector-width=512"], 4),
              ("x86-64-v3", ["-march=x86-64-v3"], 3),
              ("x86-64-v2", ["-march=x86-64-v2"], 2))
# training iterations with the torch step and the convolution loss against the C kernels, both
# on 2 threads, at 68 and 588 parameters: rounded down, so the message never overstates it
TORCH_SLOWDOWN = 5

_libraries: dict = {}  # library name -> Kernel, or None where none loads
_cpu_levels: dict = {}  # prebuilt folder -> the CPU's x86-64 level (0 elsewhere)


@dataclass
class Kernel:
    """A loaded library and where it came from."""
    cdll: ctypes.CDLL
    origin: str  # "prebuilt" or "compiled"
    path: Path
    detail: str  # "linux-x64, x86-64-v3, OpenMP" or the compiler and its flags
    openmp: bool

    @property
    def description(self):
        return f"{self.origin} C ({self.detail}{'' if self.openmp else ', one thread: no OpenMP'})"


def platform_tag():
    """``<os>-<cpu>`` of this Python: linux-x64, linux-arm64, macos-x64, macos-arm64, windows-x64."""
    system = {"linux": "linux", "darwin": "macos", "win32": "windows"}.get(sys.platform, sys.platform)
    machine = platform.machine().lower()
    machine = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)
    return f"{system}-{machine}"


def _suffix():
    return {"win32": ".dll", "darwin": ".dylib"}.get(sys.platform, ".so")


def _build_levels():
    """The prebuilt variants for this machine's architecture: (name, flags, level), best first."""
    if platform_tag().endswith("-x64"):
        return X86_LEVELS
    return (("baseline", [], 0),)  # arm64: NEON is part of the baseline


def compiler():
    """The C compiler's path (``CC``, else ``cc``), or None."""
    return shutil.which(os.environ.get("CC") or "cc")


def _source_key(name, flags=()):
    """Hash of a library's source, the shared headers, its defines and ``flags``."""
    source, defines = LIBRARIES[name]
    headers = b"".join(header.read_bytes() for header in sorted(SHADERS.glob("*.h")))
    text = (SHADERS / source).read_bytes() + headers + " ".join([*defines, *flags]).encode()
    return hashlib.sha1(text).hexdigest()[:16]


def _run_compiler(cc, source, flags, output):
    """Compile ``source`` with ``flags`` into the shared library ``output``; CalledProcessError on failure."""
    subprocess.run([cc, *flags, *COMMON_FLAGS, "-o", str(output), str(source), "-lm"],
                   check=True, capture_output=True, timeout=300)


def _declare(name, cdll):
    """Set the argument types of a library's functions (AttributeError where one is missing)."""
    floats, longs, i = ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_int64), ctypes.c_int
    if name == "loss":
        projection = [floats, i, i, i, longs, i, i, floats, i, floats, i]
        cdll.nca_project_patches.argtypes = projection
        cdll.nca_project_patches_backward.argtypes = projection
        cdll.nca_argsort_rows.argtypes = [floats, i, i, longs, i]
    else:
        cdll.nca_forward.argtypes = [floats, i, i, i, i, i, floats, floats, floats, i]
        cdll.nca_backward.argtypes = [floats, floats, floats, i, i, i, i, i, floats, floats, floats, floats, i]
    return cdll


def _open(name, path):
    try:
        return _declare(name, ctypes.CDLL(str(path)))
    except (OSError, AttributeError):  # a missing runtime (libgomp), another platform, a broken file
        return None


def prebuilt_folder():
    """Where prebuilt libraries for this platform would be (``ATELIER_NCA_PREBUILT`` or the
    package's ``prebuilt``, then the platform tag); None where ``ATELIER_NCA_PREBUILT`` is empty."""
    root = os.environ.get("ATELIER_NCA_PREBUILT")
    if root == "":
        return None
    return Path(root or PREBUILT) / platform_tag()


def _cpu_level(folder, manifest):
    if folder not in _cpu_levels:
        level = 2 if platform_tag().endswith("-x64") else 0  # x86-64-v2: what Blender requires
        probe = manifest.get("cpu_probe")
        if probe:
            try:
                level = ctypes.CDLL(str(folder / probe)).nca_x86_64_level()
            except (OSError, AttributeError):
                pass
        _cpu_levels[folder] = level
    return _cpu_levels[folder]


def _prebuilt(name):
    """The best prebuilt build of ``name`` that runs here, or None."""
    folder = prebuilt_folder()
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        entry = manifest["libraries"][name]
    except (TypeError, OSError, ValueError, KeyError):  # no folder, no manifest, no such library
        return None
    source = SHADERS / LIBRARIES[name][0]
    if source.exists() and entry["key"] != _source_key(name):
        return None  # built from other sources: the compiled path below rebuilds from these
    level = _cpu_level(folder, manifest)
    for build in entry["builds"]:
        if build["level"] <= level:
            cdll = _open(name, folder / build["file"])
            if cdll is not None:
                openmp = build["openmp"]
                detail = ", ".join([manifest["platform"], *([build["variant"]] if build["level"] else []),
                                    *(["OpenMP"] if openmp else [])])
                return Kernel(cdll, "prebuilt", folder / build["file"], detail, openmp)
    return None


def _compiled(name):
    """``name`` built here with the first of FLAG_SETS that works, cached on disk under a hash
    of the sources and the flags; None without a working compiler."""
    cc = compiler()
    source = SHADERS / LIBRARIES[name][0]
    if cc is None or not source.exists():
        return None
    cache = cache_dir()
    for flags in FLAG_SETS:
        flags = [*flags, *(f"-D{d}" for d in LIBRARIES[name][1])]
        path = cache / f"nca_{name}_{_source_key(name, flags)}{_suffix()}"
        try:
            if not path.exists():
                cache.mkdir(parents=True, exist_ok=True)
                with tempfile.TemporaryDirectory(dir=cache) as folder:
                    built = Path(folder) / path.name
                    _run_compiler(cc, source, flags, built)
                    os.replace(built, path)  # atomic: a parallel build never sees half a library
        except (OSError, subprocess.SubprocessError):
            continue
        cdll = _open(name, path)
        if cdll is not None:
            shown = [flag for flag in flags if not flag.startswith("-D")]
            return Kernel(cdll, "compiled", path, " ".join([Path(cc).name, *shown]), "-fopenmp" in flags)
    return None


def library(name):
    """The loaded library ``name`` ("train4" ... "train12", "loss"): prebuilt, else compiled
    here; None where neither works.  Looked up once per process."""
    if name not in _libraries:
        _libraries[name] = _prebuilt(name) or _compiled(name)
    return _libraries[name]


def _threads():
    """The threads an OpenMP kernel is given: torch's count (what fast.py passes) once torch is loaded."""
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None else os.cpu_count() or 1


def kernel_report(channels=4):
    """What μNCA training on this CPU will run, for the add-on's Check button and the training
    summary: {"kernel": description, "kernel_origin": "prebuilt" | "compiled" | "torch",
    "threads": n, "kernel_file": path}.  May compile (a few seconds, once: the cache is then warm)."""
    kernel = library(f"train{channels}")
    if kernel is None:
        cc = compiler()
        why = "no C compiler" if cc is None else f"{Path(cc).name} could not build the kernels"
        return {"kernel": f"torch ({why}: ~{TORCH_SLOWDOWN}x slower training)", "kernel_origin": "torch",
                "threads": _threads()}
    library("loss")  # loaded (or built) now, so that training does not wait for it
    return {"kernel": kernel.description, "kernel_origin": kernel.origin, "threads": _threads() if kernel.openmp else 1,
            "kernel_file": str(kernel.path)}


def build_prebuilt(dest_dir=PREBUILT, names=tuple(LIBRARIES)):
    """Compile every kernel library training can ask for (``names``: train4, train6, train8,
    train12 and loss) for shipping: portable flags (never ``-march=native``), each x86-64 level
    with and without OpenMP, into ``dest_dir/<platform_tag()>/`` with a ``manifest.json`` that the
    loader reads; the folder is replaced whole once every build is done.  Builds for this
    machine's platform only, with ``CC`` (else ``cc``).  Returns the manifest.

    AtelierError without a compiler or when a library has no build at all; builds the compiler
    refuses (OpenMP on Apple's clang) are left out and listed in the manifest's "failed"."""
    from ..atomic import atomic_directory
    from ..errors import AtelierError
    cc = compiler()
    if cc is None:
        raise AtelierError(f"no C compiler: {os.environ.get('CC') or 'cc'} is not on PATH (set CC)")
    tag, suffix = platform_tag(), _suffix()
    jobs = [(name, variant, [*flags, *(["-fopenmp"] if openmp else [])], level, openmp)
            for name in names for variant, flags, level in _build_levels() for openmp in (True, False)]
    version = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout.partition("\n")[0]
    folder = Path(dest_dir) / tag
    with atomic_directory(folder, force=True) as building:
        os.chmod(building, 0o755)  # (made 0700 as a temporary folder)
        def build(job):
            name, variant, flags, level, openmp = job
            file = f"nca_{name}_{variant}{'_openmp' if openmp else ''}{suffix}"
            flags = ["-O3", *flags, *(f"-D{d}" for d in LIBRARIES[name][1])]
            try:
                _run_compiler(cc, SHADERS / LIBRARIES[name][0], flags, building / file)
            except subprocess.CalledProcessError as error:
                return None, f"{file}: {error.stderr.decode(errors='replace').strip()[-300:]}"
            if _open(name, building / file) is None:  # loads (the code is not run: it may need a newer CPU)
                return None, f"{file}: built but does not load"
            return {"file": file, "variant": variant, "level": level, "openmp": openmp, "flags": flags}, None

        with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
            results = list(pool.map(build, jobs))
        manifest = {"platform": tag, "compiler": version, "libraries": {}, "failed": []}
        if tag.endswith("-x64"):
            probe = f"nca_cpu{suffix}"
            try:
                _run_compiler(cc, SHADERS / PROBE, ["-O2"], building / probe)
            except subprocess.CalledProcessError as error:
                raise AtelierError(f"{PROBE}: {error.stderr.decode(errors='replace').strip()[-300:]}") from None
            manifest["cpu_probe"] = probe
        for name in names:
            builds = [done for (done, _), job in zip(results, jobs) if done and job[0] == name]
            if not builds:
                problems = "; ".join(problem for (_, problem), job in zip(results, jobs) if job[0] == name)
                raise AtelierError(f"{LIBRARIES[name][0]}: no build for {tag} ({problems})")
            manifest["libraries"][name] = {"key": _source_key(name), "builds": builds}
        manifest["failed"] = [problem for _, problem in results if problem]
        (building / MANIFEST).write_text(json.dumps(manifest, indent=1))
    _cpu_levels.pop(folder, None)
    return manifest
