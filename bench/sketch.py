"""Sketch-RNN benchmark: training throughput vs a straightforward port, sampling speed, L_R / L_KL.

Prints one JSON object (and each section on stderr as it finishes).  Sections, all on the CPU:

* ``training``: sketches per second at the reference size (encoder 256, LSTM decoder 512, z 128,
  batch 100, sequences padded to 250) for this implementation and for a straightforward port of
  the reference (one ``cat([x, z, h]) @ W`` per step, autograd through every step);
* ``sampling``: the numpy runtime, a batch of 100 and one sketch at a time, the shipped models and
  the reference size (the three decoders, forced to draw all 250 rows);
* ``quality``: L_R and L_KL of the shipped models on their test splits, and of a small model
  trained for ``--budget`` seconds on the Hershey glyphs (a fixed data set).

    .venv/bin/python bench/sketch.py [--budget 300] [--steps 2] [--sections training sampling quality]
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.modelfile import save_model  # noqa: E402
from core.device import cpu_threads  # noqa: E402
from core.progress import SilentProgress  # noqa: E402
from core.sketch import cells  # noqa: E402
from core.sketch.cli import _load_clean  # noqa: E402
from core.sketch.model import (REFERENCE, SMALL, Batches, SketchRNN, evaluate, fast_bf16,  # noqa: E402
                               keep_freed_memory, kl_loss, load_torch_model, recurrent_dropout, reconstruction_loss,
                               to_tensors, train)
from core.sketch.runtime import SketchModel  # noqa: E402
from core.sketch.data import normalizing_scale  # noqa: E402

ASSETS = Path(__file__).resolve().parents[1] / "core/assets/sketch"
SECTIONS = ["training", "sampling", "quality"]


class PortedSketchRNN(SketchRNN):
    """The straightforward port of the reference (Magenta's sketch_rnn): every step concatenates its
    inputs and multiplies by the full weights; the encoder stops at the batch's longest sketch and
    the decoder runs all padded steps, as the reference's dynamic RNNs do."""

    def _lstm(self, inputs, h, c, W, b, mask):
        outputs = []
        for t in range(inputs.shape[0]):
            gates = torch.cat([inputs[t], h], 1) @ W + b
            i, j, f, o = gates.chunk(4, 1)
            candidate = torch.tanh(j) if mask is None else torch.tanh(j) * mask[t]
            c = torch.sigmoid(f + 1.0) * c + torch.sigmoid(i) * candidate
            h = torch.tanh(c) * torch.sigmoid(o)
            outputs.append(h)
        return torch.stack(outputs)

    def encode(self, strokes, lengths, dropout=None):
        """As the reference's bidirectional dynamic RNN with ``sequence_length``: the encoder's loop
        ends at the longest sketch of the batch, not at the padded length."""
        p, e = self.p, self.hp["enc_rnn_size"]
        strokes = strokes[:, :int(lengths.max())]
        x = strokes.transpose(0, 1)
        batch, finals = x.shape[1], []
        reverse = torch.stack([torch.cat([s[:n].flip(0), s[n:]]) for s, n in zip(strokes, lengths)]).transpose(0, 1)
        for direction, inputs in (("fw", x), ("bw", reverse)):
            W = torch.cat([p[f"encoder.{direction}.W_x"], p[f"encoder.{direction}.W_h"]])
            zeros = x.new_zeros(batch, e)
            hs = self._lstm(inputs, zeros, zeros, W, p[f"encoder.{direction}.b"],
                            dropout(x.shape[0], batch, e) if dropout else None)
            finals.append(hs[lengths - 1, torch.arange(batch)])
        h = torch.cat(finals, -1)
        return h @ p["mu.W"] + p["mu.b"], h @ p["presig.W"] + p["presig.b"]

    def decode(self, inputs, z, dropout=None):
        p, n = self.p, self.hp["dec_rnn_size"]
        x = inputs.transpose(0, 1)
        x = torch.cat([x, z[None].expand(x.shape[0], -1, -1)], -1)
        h, c = cells.split_state(self.initial_state(z, x.shape[1], x), self.hp)
        W = torch.cat([p["decoder.W_x"], p["decoder.W_h"]])
        hs = self._lstm(x, h, c, W, p["decoder.b"], dropout(x.shape[0], x.shape[1], n) if dropout else None)
        return (hs @ p["output.W"] + p["output.b"]).transpose(0, 1)


def training_throughput(model_class, batches, hp, steps, bf16=False):
    model = model_class(hp)
    model.bf16 = bf16
    optimizer = torch.optim.Adam(model.parameters(), lr=hp["learning_rate"])
    dropout = recurrent_dropout(hp["recurrent_dropout_keep"])
    times, cpu_times = [], []
    for _ in range(steps + 1):  # the first step warms up allocators and is not counted
        started, started_cpu = time.perf_counter(), time.process_time()
        batch, lengths = batches.random()
        y, mu, presig = model(batch, lengths, dropout=dropout)
        offsets, pen = reconstruction_loss(y, batch[:, 1:], hp["num_mixture"])
        loss = offsets + pen + hp["kl_weight"] * torch.clamp(kl_loss(mu, presig), min=hp["kl_tolerance"])
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_value_(model.parameters(), hp["grad_clip"])
        optimizer.step()
        times.append(time.perf_counter() - started)
        cpu_times.append(time.process_time() - started_cpu)
    return times[1:], cpu_times[1:]


def sampling_speed(model, singles=9):
    """A batch of 100, then one sketch at a time: wall-clock and CPU time (the CPU time of this
    process leaves out the time other jobs held the cores, so it varies less under contention)."""
    started = time.perf_counter()
    batch = model.sample(100, temperature=0.5, seed=0)
    batch_seconds = time.perf_counter() - started
    wall, cpu = [], []
    for seed in range(singles):
        started, started_cpu = time.perf_counter(), time.process_time()
        model.sample(1, temperature=0.5, seed=seed)
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return {"batch100_sketches_per_second": round(100 / batch_seconds, 1),
            "one_sketch_ms": round(1000 * float(np.median(wall)), 1),
            "one_sketch_ms_min": round(1000 * min(wall), 1),
            "one_sketch_cpu_ms": round(1000 * float(np.median(cpu)), 1),
            "mean_points": round(float(np.mean([len(s) for s in batch])), 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--budget", type=float, default=300, help="seconds of small-model training for quality")
    parser.add_argument("--steps", type=int, default=2, help="rounds of timed steps (each variant once a round)")
    parser.add_argument("--sections", nargs="+", default=SECTIONS, choices=SECTIONS)
    parser.add_argument("--threads", type=int, help="training threads (default: the idle cores, as training does)")
    args = parser.parse_args()
    result = {"note": "2-core CPU shared with other jobs: timings taken under contention",
              "load_average": os.getloadavg()}
    for section in args.sections:
        figures = {"training": lambda: training_figures(args.steps, args.threads), "sampling": sampling_figures,
                   "quality": lambda: quality_figures(args.budget)}[section]()
        result[section] = figures
        print(json.dumps({section: figures}), file=sys.stderr, flush=True)  # partial results as they come
    print(json.dumps(result))


def training_figures(rounds, threads=None):
    """Sketches per second at the reference size: this implementation and the straightforward port.

    On as many threads as training takes (``cpu_threads``: the idle cores); wall-clock and the
    process's CPU time, which leaves out the time other jobs held the cores."""
    threads = cpu_threads(threads)
    keep_freed_memory()  # as training does; for every variant alike
    kanji, _ = _load_clean("kanji", 250, limit=2000)
    hp = dict(REFERENCE, max_seq_len=250)
    batches = Batches(kanji["train"], hp, normalizing_scale(kanji["train"]))
    # the variants take turns, one timed step each per round, so other jobs' load falls on all of them alike
    variants = {"straightforward_port": (PortedSketchRNN, False), "this_fp32": (SketchRNN, False),
                "this": (SketchRNN, fast_bf16("cpu"))}
    wall, cpu = {name: [] for name in variants}, {name: [] for name in variants}
    for _ in range(rounds):
        for name, (model_class, bf16) in variants.items():
            times, cpu_times = training_throughput(model_class, batches, hp, 1, bf16)
            wall[name] += times
            cpu[name] += cpu_times
    figures = {"size": "enc 256, dec 512 lstm, z 128, batch 100, seq 250", "recurrent_bf16": fast_bf16("cpu"),
               "threads": threads}
    for name in variants:
        step, cpu_step = float(np.median(wall[name])), float(np.median(cpu[name]))
        figures[name] = {"seconds_per_step": round(step, 2), "sketches_per_second": round(hp["batch_size"] / step, 2),
                         "cpu_seconds_per_step": round(cpu_step, 2)}
    for name in ("this", "this_fp32"):
        suffix = name[4:]
        figures["speedup" + suffix] = round(figures["straightforward_port"]["seconds_per_step"]
                                            / figures[name]["seconds_per_step"], 2)
        figures["speedup_cpu_time" + suffix] = round(figures["straightforward_port"]["cpu_seconds_per_step"]
                                                     / figures[name]["cpu_seconds_per_step"], 2)
    return figures


def sampling_figures():
    """The numpy runtime on the shipped models, and at the reference size forced to draw all 250 rows."""
    figures = {}
    with tempfile.TemporaryDirectory() as folder:
        for decoder in ("lstm", "layernorm", "hyper"):
            reference, hp = Path(folder) / f"{decoder}.safetensors", dict(REFERENCE, decoder=decoder)
            tensors = to_tensors(SketchRNN(hp))
            tensors["output.b"][-1] = -30.0  # never 'finished': every sketch runs all 250 steps, the worst case
            save_model(reference, "sketch_rnn", tensors, {"hyperparameters": hp, "scale": 1.0})
            figures[f"reference_size_{decoder}_250_steps"] = sampling_speed(SketchModel(reference))
    for name in ("kanji", "hershey"):
        figures[f"shipped_{name}"] = sampling_speed(SketchModel(ASSETS / f"{name}.safetensors"))
    return figures


def quality_figures(budget):
    figures = {}
    for name in ("kanji", "hershey"):
        model, meta, _ = load_torch_model(ASSETS / f"{name}.safetensors")
        splits, _ = _load_clean(name, model.hp["max_seq_len"])
        figures[f"shipped_{name}"] = {   # test splits hold no training item (core/sketch/data_splits.py)
            **evaluate(model, splits["test"], meta["scale"]), "test_sketches": len(splits["test"]),
            "training": {k: meta["training"].get(k) for k in ("steps", "seconds", "device")}}
    splits, _ = _load_clean("hershey", 250)
    hp = dict(SMALL, max_seq_len=max(len(s) for part in splits.values() for s in part), kl_decay_rate=0.9995)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "hershey.safetensors"
        summary = train(splits, path, hp, minutes=budget / 60, progress=SilentProgress(), device="cpu")
        model, meta, _ = load_torch_model(path)
        figures[f"small_hershey_{int(budget)}s_cpu"] = {
            **evaluate(model, splits["test"], meta["scale"]), "steps": summary["steps"]}
    return figures


if __name__ == "__main__":
    main()
