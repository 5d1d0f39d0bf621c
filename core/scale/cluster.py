"""Connect to a Ray cluster; start and stop a loopback-only local one (tests, benchmarks)."""

import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..errors import AtelierError

RAY_MISSING = ("Ray is not installed in this Python: pip install 'atelier[ray]' (in the source tree, "
               "`make setup` installs it into .venv)")
# Ray turns a loopback address into the machine's network address unless "clusters" are off; with them
# off, every Ray process of ours binds and connects on 127.0.0.1 only.
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
# ray.init retries an address where nothing listens for minutes (and ignores Ctrl-C/Esc meanwhile):
# a TCP connection to the head's port, at most this long, says so at once
PROBE_SECONDS = 3.0


class MalformedAddress(AtelierError):
    pass


class Unreachable(AtelierError):
    def __init__(self, address, port, reason):
        super().__init__(f"--ray {address}: cannot be reached ({reason}); start the head there "
                         f"(ray start --head --port {port}) or correct the address")
        self.port, self.reason = port, reason


def split_address(address):
    """(host, port) of ``HOST:PORT`` or ``ray://HOST:PORT``, else :class:`MalformedAddress`."""
    host, colon, port = address.split("://", 1)[-1].rpartition(":")
    host = host.strip("[]")
    if not colon or not host or not port.isdigit():
        raise MalformedAddress(f"--ray {address}: write auto, local or the head's host:port (e.g. 10.0.0.5:6379)")
    return host, int(port)


def check_reachable(address, seconds=PROBE_SECONDS):
    """Raise :class:`MalformedAddress` or :class:`Unreachable` unless something listens at ``address``
    (``HOST:PORT`` or ``ray://HOST:PORT``); ``auto`` and ``local`` need no check (Ray answers at once)."""
    if address in ("auto", "local"):
        return
    host, port = split_address(address)
    try:
        socket.create_connection((host, port), timeout=seconds).close()
    except OSError as error:
        raise Unreachable(address, port, error.strerror or str(error)) from None


def is_loopback(address):
    """Whether ``address`` (HOST:PORT) names this machine."""
    host = address.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def import_ray(address=None):
    """``ray``, or an AtelierError saying how to install it.  A loopback ``address`` keeps Ray on 127.0.0.1."""
    if address and address not in ("auto", "local") and is_loopback(address):
        os.environ[LOOPBACK_ENV] = "0"
    try:
        import ray
        from ray._private import ray_constants
    except ModuleNotFoundError as error:
        if error.name and error.name.split(".")[0] == "ray":
            raise AtelierError(RAY_MISSING) from None
        raise
    if os.environ.get(LOOPBACK_ENV) == "0":  # also when ray was imported before the variable was set
        ray_constants.ENABLE_RAY_CLUSTER = False
    return ray


def connect(address):
    """Connect this process (the driver) to ``address``: ``auto`` (the running cluster: RAY_ADDRESS or
    the one ``ray start`` left on this machine), ``local`` (start a private one for this run) or
    ``HOST:PORT`` of the head node.  Returns ``ray``."""
    import logging
    check_reachable(address)
    ray = import_ray(address)
    if ray.is_initialized():
        return ray
    kwargs = dict(logging_level=logging.ERROR, log_to_driver=False, namespace="atelier",
                  configure_logging=True)
    try:
        if address == "local":
            ray.init(include_dashboard=False, **kwargs)
        else:
            # the nodes run this driver's code, whatever the top package is called here (``core`` in
            # the repository and the extension, ``atelier`` when pip-installed): Ray ships it with the job
            kwargs["runtime_env"] = {"py_modules": [sys.modules[__name__.split(".")[0]]],
                                     "excludes": ["__pycache__", "*.pyc"]}
            if is_loopback(address):
                kwargs["_node_ip_address"] = "127.0.0.1"
            ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise AtelierError(f"--ray {address}: cannot connect to a Ray cluster ({str(error).splitlines()[0]}); "
                           "start one with `ray start --head` (see docs/scale.md)") from None
    return ray


def disconnect():
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


def slots(ray, num_cpus=1.0, num_gpus=0.0):
    """How many tasks of this size the cluster runs at once."""
    resources = ray.cluster_resources()
    counts = []
    if num_cpus:
        counts.append(resources.get("CPU", 0) / num_cpus)
    if num_gpus:
        counts.append(resources.get("GPU", 0) / num_gpus)
    return max(1, int(min(counts))) if counts else 1


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def session_processes(sid):
    """Process ids whose session id is ``sid`` (Linux /proc): every daemon and worker of a cluster
    that `ray start` launched in its own session (workers change their group, not their session)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def process_title(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


class LocalCluster:
    """``ray start --head`` on 127.0.0.1 with ``cpus`` worker slots, in a session of its own so that
    :meth:`stop` ends exactly its processes (by pid; never ``ray stop``, which would end every Ray
    cluster of this user on the machine)."""

    def __init__(self, cpus=2, gpus=0, object_store_mb=300):
        self.cpus, self.gpus, self.object_store_mb = cpus, gpus, object_store_mb
        self.sid = None
        self.address = None
        self.temp = None

    def start(self, timeout=90):
        ray_exe = Path(sys.executable).with_name("ray")
        if not ray_exe.exists():
            raise AtelierError(RAY_MISSING)
        port = free_port()
        # short: Ray's unix sockets live under it and their paths are limited to ~107 bytes
        self.temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
        env = {**os.environ, LOOPBACK_ENV: "0", "RAY_USAGE_STATS_ENABLED": "0"}
        command = [str(ray_exe), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
                   f"--num-cpus={self.cpus}", f"--num-gpus={self.gpus}", "--include-dashboard=false",
                   "--disable-usage-stats", f"--temp-dir={self.temp}",
                   f"--object-store-memory={self.object_store_mb * 1024 * 1024}"]
        process = subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        self.sid = process.pid
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AtelierError(f"ray start did not finish within {timeout} s")
        if process.returncode != 0:
            self.stop()
            raise AtelierError(f"ray start failed:\n{output[-2000:]}")
        self.address = f"127.0.0.1:{port}"
        return self

    def processes(self):
        return session_processes(self.sid) if self.sid else []

    def workers(self, title=""):
        """Ray worker processes (``ray::...``), those whose title contains ``title``."""
        return [pid for pid in self.processes()
                if process_title(pid).startswith("ray::") and title in process_title(pid)]

    def stop(self, grace=5.0):
        """SIGTERM every process of the cluster, SIGKILL what is left after ``grace`` s; returns the
        pids that were still alive at the end (empty when clean)."""
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
            for pid in self.processes():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait
            while self.processes() and time.monotonic() < deadline:
                time.sleep(0.1)
        left = self.processes()
        if self.temp and not left:
            shutil.rmtree(self.temp, ignore_errors=True)
        return left

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
