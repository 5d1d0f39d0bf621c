"""Live stylisation figures for ``bench/stylize.py --live`` (issue: interactive stylisation).

1. **Latency**: `atelier stylize live --watch` on the 24-frame 256² bench scene, previews 0, 1, 12.
   After it has trained on the painted frame 0, a 48x48 region of the keyframe file is repainted
   (atomic write) and the clock runs until the preview of frame 0 and of frame 1 moved by more than
   THRESHOLD there (mean absolute change).  Three regions, one after another.
2. **Quality**: 60 s of live training where the artist changes their mind (20 s on the ``edge``
   painting of frame 0, then 40 s on the final ``stylization`` painting) against 60 s of batch
   training from scratch on the final painting; both models stylise every frame and are scored by
   the video judge against the ``stylization`` ground truth.
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


def quality(frames, first, final, work, threads, score, atelier):
    from core.imageio import write_image
    key, previews = work / "key_quality.png", work / "quality_previews"
    write_image(key, first)
    live_model = work / "live_60s.safetensors"
    process = start_live(frames, key, previews, live_model, threads)
    # the clock starts with training, as batch's --minutes does: the first preview is written after step 1
    wait_until(lambda: previews.is_dir() and any(previews.glob("*.png")), 300)
    started = time.monotonic()
    wait_until(lambda: time.monotonic() - started > 20, 25)
    write_image(key, final)  # the artist's final painting
    wait_until(lambda: time.monotonic() - started > 60, 45)
    live_summary = stop_live(process)
    atelier("stylize", "run", live_model, "--frames", frames, "-o", work / "live_frames")
    batch_model = work / "batch_60s.safetensors"
    write_image(work / "final.png", final)
    batch = atelier("stylize", "train", "--frames", frames, "--keyframe", f"0={work / 'final.png'}", "--minutes", 1.0,
                    "-o", batch_model, "--stylize-to", work / "batch_frames")
    return {"live_60s": {**score(work / "live_frames"), "steps": live_summary["steps"]},
            "batch_60s": {**score(work / "batch_frames"), "steps": batch["steps"]}}


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


def live_figures(frames, ground_truth, score, atelier, threads=2):
    """All three figures; ``ground_truth(painter)`` gives a painter's folder, ``score(pred_folder)`` the judge."""
    from core.imageio import read_image
    work = ROOT / "out" / "bench" / "stylize_live"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    frames_dir = Path(frames[0]).parent
    final = read_image(ground_truth("stylization") / frames[0].name, 3)
    first = read_image(ground_truth("edge") / frames[0].name, 3)
    report = {"threads": threads,
              "latency_seconds": latency(frames_dir, final, work, threads),
              "quality": quality(frames_dir, first, final, work, threads, score, atelier)}
    report["ui"] = ui_stalls(frames_dir, ground_truth("stylization") / frames[0].name)
    return report
