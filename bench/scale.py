"""Scale-out benchmark: stylisation frames/s locally and on a local Ray cluster with 1 and 2 worker
slots, the per-frame overhead of Ray against the local run at 256x256, the time to recover from a killed
worker, and the throughput projected on N nodes.  Prints one JSON object.

The cluster is real (`ray start --head` on 127.0.0.1, separate processes) and is stopped by its process
ids.  This machine has 2 cores shared with other jobs (the load average is printed): speed-ups here are
small and noisy; the projection uses the measured per-task time and the driver's serial time per frame.

    .venv/bin/python bench/scale.py [--frames 24] [--size 256]
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.cli import run_command  # noqa: E402
from core.imageio import read_image, write_image  # noqa: E402
from core.progress import SilentProgress  # noqa: E402
from core.scale.cluster import LocalCluster  # noqa: E402
from core.scale.stylize import MANIFEST, iter_inputs  # noqa: E402
from core.stylize import frames as seq  # noqa: E402


def sequence(folder, size, count):
    import cv2
    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.uniform(0, 1, (size + 10, size + 2 * count + 10, 3)).astype(np.float32), (0, 0), 3)
    base = (base - base.min()) / (base.max() - base.min())
    for t in range(count):
        write_image(folder / f"frame_{t + 1:04d}.png", base[5:5 + size, 2 * count - 2 * t:2 * count - 2 * t + size])
    return folder


def cli(argv, env=None):
    """Run `atelier ...` in its own process; returns (summary, wall seconds)."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "core.cli", *map(str, argv)], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, **(env or {})})
    wall = time.monotonic() - started
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1]), wall


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", type=int, default=256)
    options = parser.parse_args()
    n = options.frames
    work = Path(tempfile.mkdtemp(prefix="atelier-scale-"))
    frames = sequence(work / "frames", options.size, n)
    painted = work / "painted.png"
    write_image(painted, 1.0 - read_image(frames / "frame_0001.png"))
    model = work / "model.safetensors"
    run_command(["stylize", "train", "--frames", str(frames), "--keyframe", f"0={painted}", "--steps", "3",
                 "--patch", "16", "-o", str(model)], SilentProgress())
    result = {"frames": n, "size": options.size, "cores": os.cpu_count(),
              "load_average_before": [round(x, 2) for x in os.getloadavg()],
              "note": "2 cores shared with other agents' jobs: figures are noisy, speed-ups small"}

    # driver-side serial work per frame: the streamed guides (flow, advection, Gaussian mixture, edges)
    files = seq.frame_files(frames)
    hyper = {"guide": "gaussian", "prefilter": False, "seed": 0, "reference": 0}
    started = time.monotonic()
    for _ in iter_inputs(files, range(n), hyper):
        pass
    result["guides_s_per_frame"] = round((time.monotonic() - started) / n, 4)
    started = time.monotonic()
    for _ in iter_inputs(files, range(n), hyper, defer_mixture=True):  # what the driver does with --ray
        pass
    guide_s = (time.monotonic() - started) / n
    result["driver_guides_s_per_frame"] = round(guide_s, 4)

    def local(threads, name, extra=()):
        summary, _ = cli(["stylize", "run", model, "--frames", frames, "-o", work / name, *extra],
                         {"ATELIER_THREADS": str(threads)})
        return summary["seconds"]

    local2, local1 = local(2, "local2"), local(1, "local1")
    local1_one = local(1, "local1_one", ["--only", "0"])
    result["local_2_threads_fps"] = round(n / local2, 3)
    result["local_1_thread_fps"] = round(n / local1, 3)

    def on_ray(cluster, name, chunk=None, kill=False, extra=()):
        argv = ["stylize", "run", model, "--frames", frames, "--ray", cluster.address, "-o", work / name, *extra]
        argv += ["--chunk", str(chunk)] if chunk else []
        if not kill:
            return cli(argv)[0]
        driver = subprocess.Popen([sys.executable, "-m", "core.cli", *map(str, argv)], cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, killed_at = work / name, None
        while driver.poll() is None and killed_at is None:
            if (out / MANIFEST).is_dir() and len(list((out / MANIFEST).glob("frame_*.json"))) >= 2:
                victims = cluster.workers("stylize_chunk")
                if victims:
                    os.kill(victims[0], signal.SIGKILL)
                    killed_at = time.monotonic()
            time.sleep(0.01)
        stdout, stderr = driver.communicate()
        if driver.returncode:
            raise SystemExit(stderr[-3000:])
        return json.loads(stdout.strip().splitlines()[-1]), killed_at is not None

    for workers in (1, 2):
        cluster = LocalCluster(cpus=workers).start()
        try:
            on_ray(cluster, f"warm{workers}")  # the first job on a fresh cluster
            summary = on_ray(cluster, f"ray{workers}")
            if workers == 1:  # a job of one frame: what a job costs besides its frames
                one = on_ray(cluster, "ray1_one", extra=["--only", "0"])
                result["ray_job_fixed_seconds"] = round(one["seconds"] - summary["seconds"] / n, 3)
                ray1_one = one["seconds"]
            result[f"ray_{workers}_workers_fps"] = round(n / summary["seconds"], 3)
            result[f"ray_{workers}_workers"] = {k: summary[k] for k in ("seconds", "tasks", "chunk", "connect_seconds",
                                                                        "task_seconds")}
            same = all(np.array_equal(read_image(work / f"ray{workers}" / p.name), read_image(work / "local2" / p.name))
                       for p in sorted((work / "local2").iterdir()))
            result[f"ray_{workers}_workers_equal_to_local"] = same
            if workers == 2:
                summary = on_ray(cluster, "deferred", extra=["--guides-in-tasks"])
                result["ray_2_workers_guides_in_tasks_fps"] = round(n / summary["seconds"], 3)
                task_per_frame_deferred = summary["task_seconds"] / n
                undisturbed = result["ray_2_workers"]["seconds"]
                faulty, killed = on_ray(cluster, "faulty", kill=True)
                result["killed_worker"] = {"killed": killed, "seconds": faulty["seconds"],
                                           "undisturbed_seconds": undisturbed,
                                           "recovery_seconds": round(faulty["seconds"] - undisturbed, 2),
                                           "frames": faulty["computed"]}
                per_frame_one_worker = result["ray_1_workers"]["seconds"] / n
                task_per_frame = result["ray_1_workers"]["task_seconds"] / n
        finally:
            left = cluster.stop()
            assert not left, left
    # overhead: one Ray worker (1 thread) against the local run on 1 thread, connection and all
    result["overhead_per_frame_s"] = round(per_frame_one_worker - local1 / n, 4)
    result["overhead_per_frame_percent"] = round(100 * (per_frame_one_worker * n / local1 - 1), 1)
    # per frame, without the fixed cost of a job (Ray: connect, a new worker process per job that imports
    # torch and loads the model; local: loading): (T(n frames) - T(1 frame)) / (n - 1), Ray against local
    marginal_ray = (result["ray_1_workers"]["seconds"] - ray1_one) / (n - 1)
    marginal_local = (local1 - local1_one) / (n - 1)
    result["marginal_s_per_frame"] = {"ray_1_worker": round(marginal_ray, 4), "local_1_thread": round(marginal_local, 4)}
    result["marginal_overhead_per_frame_percent"] = round(100 * (marginal_ray / marginal_local - 1), 1)
    # steady state, without connecting: wall time per frame minus the time inside the tasks, against
    # the time inside the tasks (what one frame costs wherever it runs)
    steady = (result["ray_1_workers"]["seconds"] - result["ray_1_workers"]["connect_seconds"]) / n
    result["steady_overhead_per_frame_s"] = round(steady - task_per_frame, 4)
    result["steady_overhead_per_frame_percent"] = round(100 * (steady / task_per_frame - 1), 1)
    # projection: N nodes of 2 worker slots; each slot takes per_frame_one_worker per frame (overhead
    # included); the driver's guides are serial and cap the rate at 1 / guide_s
    slots_per_node = 2
    result["projection"] = {
        "model": "fps(N) = min(N * slots / (t_task + t_overhead), 1 / t_driver), per frame",
        "t_task_s": round(task_per_frame, 4), "t_overhead_s": round(max(0.0, steady - task_per_frame), 4),
        "t_driver_s": round(guide_s, 4), "t_driver_full_guides_s": result["guides_s_per_frame"],
        "slots_per_node": slots_per_node,
        "fps_driver_computes_guides": {
            str(nodes): round(min(nodes * slots_per_node / max(steady, task_per_frame),
                                  1 / result["guides_s_per_frame"]), 2) for nodes in (1, 2, 4, 8, 16, 32, 64)},
        "fps_guides_in_tasks": {
            str(nodes): round(min(nodes * slots_per_node / (task_per_frame_deferred + max(0.0, steady - task_per_frame)),
                                  1 / guide_s), 2) for nodes in (1, 2, 4, 8, 16, 32, 64)}}
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
