"""Live stylisation figures for ``bench/stylize.py --live`` (issue: interactive stylisation).

1. **Latency**: `atelier stylize live --watch` on the 24-frame 256² bench scene, previews 0, 1, 12.
   After it has trained on the painted frame 0, a 48x48 region of the keyframe file is repainted
   (atomic write) and the clock runs until the preview of frame 0 and of frame 1 moved by more than
   THRESHOLD there (mean absolute change).  Three regions, one after another.
2. **Quality**, every model stylising every frame, scored by the video judge against the
   ``stylization`` ground truth:
   - the same work: 60 s of live training (previews included) against 60 s of batch training
     from scratch, both on the final ``stylization`` painting of frame 0;
   - continuing: the artist changes their mind (20 s on the ``edge`` painting, then the final
     one): the live session's 60 s on the final painting after the change, and its 60 s in all
     (40 s after the change) against restarting from scratch for those 40 s.
3. **UI**: the add-on's LiveSession in a headless Blender, ticked every 0.2 s for 30 s while the
   keyframe image is repainted every 5 s: ticks over 100 ms.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
THRESHOLD = 0.05
REGIONS = ((40, 40), (150, 60), (90, 170))
REGION_SIZE = 48


def start_live(frames, key, previews, model, threads):
    env = dict(os.environ, ATELIER_DEVICE="cpu", ATELIER_THREADS=str(threads))
    return subprocess.Popen([sys.executable, "-m", "core.cli", "stylize", "live", "--frames", str(frames),
                             "--keyframe", f"0={key}", "--preview", "0,1,12", "--watch", "-o", str(previews),
                             "--model", str(model)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)


def stop_live(process):
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=300)
    return json.loads(out.strip().splitlines()[-1])


def wait_until(condition, timeout):
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(0.05)
    return None


def latency(frames, painting, work, threads):
    from core.imageio import read_image, write_image
    key, previews = work / "key.png", work / "latency_previews"
    write_image(key, painting)
    process = start_live(frames, key, previews, work / "latency.safetensors", threads)
    try:
        wait_until(lambda: (previews / f"{frames_name(frames, 1)}.png").exists(), 300)
        time.sleep(20)  # the artist looks at the first result before painting on
        results = []
        for y, x in REGIONS:
            region = (slice(y, y + REGION_SIZE), slice(x, x + REGION_SIZE))
            before = {i: read_image(previews / f"{frames_name(frames, i)}.png", 3) for i in (0, 1)}
            painted = read_image(key, 3)
            painted[region] = (0.9, 0.1, 0.1)
            write_image(key, painted)

            def moved(index):
                now = read_image(previews / f"{frames_name(frames, index)}.png", 3)
                return float(np.abs(now - before[index])[region].mean()) > THRESHOLD
            seconds = {f"frame_{i}": wait_until(lambda i=i: moved(i), 60) for i in (0, 1)}
            results.append({"region": [y, x], **{k: round(v, 2) if v else None for k, v in seconds.items()}})
            time.sleep(5)
    finally:
        summary = stop_live(process)
    return {"changes": results, "steps": summary["steps"], "session_seconds": summary["seconds"]}


def frames_name(frames, index):
    return sorted(Path(frames).glob("*.png"))[index].stem


def live_run(frames, schedule, stop_after, work, name, threads, atelier):
    """A live session whose keyframe file is painted per ``schedule`` [(seconds, painting), ...]; the clock
    starts with training, as batch's --minutes does (the first preview is written after step 1).  The
    session is stopped ``stop_after`` seconds in, its model stylises every frame."""
    from core.imageio import write_image
    key, previews, model = work / f"key_{name}.png", work / f"{name}_previews", work / f"{name}.safetensors"
    write_image(key, schedule[0][1])
    load = os.getloadavg()[0]
    process = start_live(frames, key, previews, model, threads)
    wait_until(lambda: previews.is_dir() and any(previews.glob("*.png")), 300)
    started = time.monotonic()
    for seconds, painting in schedule[1:]:
        wait_until(lambda: time.monotonic() - started > seconds, seconds + 5)
        write_image(key, painting)  # the artist's next painting
    wait_until(lambda: time.monotonic() - started > stop_after, stop_after + 5)
    summary = stop_live(process)
    atelier("stylize", "run", model, "--frames", frames, "-o", work / f"{name}_frames")
    return work / f"{name}_frames", {"steps": summary["steps"], "load_average": round(load, 1)}


def batch_run(frames, painting, seconds, work, name, atelier):
    from core.imageio import write_image
    write_image(work / "final.png", painting)
    load = os.getloadavg()[0]
    batch = atelier("stylize", "train", "--frames", frames, "--keyframe", f"0={work / 'final.png'}",
                    "--minutes", seconds / 60, "-o", work / f"{name}.safetensors", "--stylize-to", work / f"{name}_frames")
    return work / f"{name}_frames", {"steps": batch["steps"], "load_average": round(load, 1)}


def quality(frames, first, final, work, threads, score, atelier):
    """Live against batch on the same painting, and a change of mind continued against a restart."""
    runs = {
        # the same work: 60 s on the final painting, live (previews included) or batch
        "live_60s": lambda: live_run(frames, [(0, final)], 60, work, "live_60s", threads, atelier),
        "batch_60s": lambda: batch_run(frames, final, 60, work, "batch_60s", atelier),
        # continuing: 20 s on the `edge` painting, then 60 s on the final one, weights and Adam kept
        "live_changed_then_60s": lambda: live_run(frames, [(0, first), (20, final)], 80, work,
                                                  "live_changed_then_60s", threads, atelier),
        # 60 s in all with the change at 20 s, against restarting from scratch at the change
        "live_changed_60s_total": lambda: live_run(frames, [(0, first), (20, final)], 60, work,
                                                   "live_changed_60s_total", threads, atelier),
        "batch_40s_restart": lambda: batch_run(frames, final, 40, work, "batch_40s_restart", atelier),
    }
    report = {}
    for name, run in runs.items():
        folder, figures = run()
        report[name] = {**score(folder), **figures}
        print(json.dumps({name: report[name]}), file=sys.stderr, flush=True)
    return report


def quality_steps(frames_dir, first, final, work, score, steps=700, change_at=230):
    """The same comparisons at matched step counts, in this process (deterministic, whatever the load):
    ``steps`` live steps (LiveTrainer, previews left out) against ``steps`` batch steps
    (core.stylize.model.train) on the final painting; ``change_at`` steps on ``edge`` and then
    ``steps`` on the final painting; ``change_at`` + the rest, against the rest from scratch."""
    import torch
    from core.imageio import write_image
    from core.progress import SilentProgress
    from core.stylize import frames as seq
    from core.stylize import model as sty
    from core.stylize.guides import build_inputs
    from core.stylize.live import LiveTrainer
    torch.set_num_threads(1)  # two threads on a loaded machine wait on each other; steps are what count here
    frames, files = seq.read_frames(frames_dir)
    inputs = build_inputs(frames, None, 0, "gaussian", 0)
    config, mask = dict(sty.CONFIGS["fast"]), np.ones(frames.shape[1:3], np.float32)

    def judged(generator, trained_steps, name):
        folder = work / f"{name}_frames"
        folder.mkdir()
        with torch.no_grad():
            for file, image in zip(files, sty.stylize_frames(generator.eval(), inputs)):
                write_image(folder / (file.stem + ".png"), image)
        return {**score(folder), "steps": trained_steps}

    def live(schedule, total):
        trainer = LiveTrainer(inputs, {0: schedule[0][1]}, {0: mask}, config, torch.device("cpu"))
        for at, painting in schedule[1:]:
            while trainer.steps < at:
                trainer.step()
            trainer.update_keyframe(0, painting)
        while trainer.steps < total:
            trainer.step()
        return trainer.averaged, trainer.steps  # what the live session previews and saves

    def batch(count):
        generator, _ = sty.train(inputs[[0]], final[None], mask[None], config, SilentProgress(), steps=count)
        return generator, count

    runs = {"live": lambda: live([(0, final)], steps),
            "batch": lambda: batch(steps),
            "live_changed_then_same": lambda: live([(0, first), (change_at, final)], change_at + steps),
            "live_changed_same_total": lambda: live([(0, first), (change_at, final)], steps),
            "batch_restart_at_change": lambda: batch(steps - change_at)}
    report = {"steps": steps, "change_at": change_at}
    for name, run in runs.items():
        report[name] = judged(*run(), name)
        print(json.dumps({name: report[name]}), file=sys.stderr, flush=True)
    return report


UI_SCRIPT = """
import json, time, importlib, numpy as np
from pathlib import Path
live = importlib.import_module("bl_ext.atelier_dev.atelier.addon.live")
images = importlib.import_module("bl_ext.atelier_dev.atelier.addon.images")
scene = bpy.context.scene
s = scene.atelier_stylize
s.frames_dir, s.live_previews = {frames!r}, "1, 12"
item = s.keyframes.add()
item.frame = int(sorted(Path({frames!r}).glob("*.png"))[0].stem)
item.image = bpy.data.images.load({key!r})
session = live.LiveSession(scene)
started, painted = time.monotonic(), 0
while time.monotonic() - started < 30:
    if time.monotonic() - started > 5 * (painted + 1):
        pixels = images.image_to_array(item.image)
        y, x = 30 * painted + 20, 40
        pixels[y:y + 40, x:x + 40, :3] = np.random.default_rng(painted).random(3)
        item.image.pixels.foreach_set(np.ascontiguousarray(pixels[::-1]).ravel())
        painted += 1
    session.tick()
    time.sleep(0.2)
message = session.stop()
print("UI " + json.dumps({{"ticks": session.ticks, "stalls_over_100ms": session.stalls,
                          "slowest_tick_ms": round(1000 * session.slowest, 1), "paint_changes": painted,
                          "message": message}}))
"""


def ui_stalls(frames, key):
    sys.path.insert(0, str(ROOT / "tools"))
    from blender_session import run_blender_script
    result = run_blender_script(UI_SCRIPT.format(frames=str(frames), key=str(key)), timeout=600)
    lines = [line for line in result.stdout.splitlines() if line.startswith("UI ")]
    return json.loads(lines[-1][3:]) if lines else {"error": result.stderr[-1000:]}


def live_figures(frames, ground_truth, score, atelier, threads=2, parts=("latency", "quality", "ui")):
    """The figures named in ``parts``; ``ground_truth(painter)`` gives a painter's folder, ``score(pred_folder)``
    the judge."""
    from core.imageio import read_image
    work = ROOT / "out" / "bench" / "stylize_live"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    frames_dir = Path(frames[0]).parent
    final = read_image(ground_truth("stylization") / frames[0].name, 3)
    first = read_image(ground_truth("edge") / frames[0].name, 3)
    report = {"threads": threads}
    if "latency" in parts:
        report["latency_seconds"] = latency(frames_dir, final, work, threads)
    if "quality" in parts:
        report["quality"] = quality(frames_dir, first, final, work, threads, score, atelier)
    if "quality_steps" in parts:
        report["quality_steps"] = quality_steps(frames_dir, first, final, work, score)
    if "ui" in parts:
        report["ui"] = ui_stalls(frames_dir, ground_truth("stylization") / frames[0].name)
    return report
