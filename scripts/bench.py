#!/usr/bin/env python
"""Measure rda's speed as ratios to this machine's own limits; write results/bench/bench.json.

1. the roofline: TensorFlow's fp32 4096^3 matmul throughput;
2. the trainer's throughput (GFLOP/s, 6 * rows * 2 * sum d_i d_{i+1} per epoch) on the outlier
   network (784-400-200, 5124 rows) and the denoising network (784-196-49, 50,000 rows) at
   several batch sizes, as a fraction of (1);
3. a reference loop in the authors' style (one compiled graph call per mini-batch from Python,
   as their sess.run per batch; l2,1 shrink with Python loops) against ours: both speedups;
4. the prox operators' throughput against a plain array copy of the same size;
5. the CI-scale outlier sweep end to end, and an estimate of the paper-scale sweep.

Usage: python scripts/bench.py [--quick] [--skip-sweep] [--out results/bench/bench.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from rda_cli.autoencoder import AutoencoderTrainer, DeepAutoencoder  # noqa: E402
from rda_cli.prox import l1_shrink, l21_shrink  # noqa: E402


def best_of(fn, repeat=3):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def matmul_gflops(n=4096, repeat=5):
    a = tf.random.uniform((n, n), seed=1)
    b = tf.random.uniform((n, n), seed=2)
    f = tf.function(lambda a, b: tf.reduce_sum(tf.matmul(a, b)))
    f(a, b).numpy()
    return 2 * n**3 / best_of(lambda: f(a, b).numpy(), repeat) / 1e9


def epoch_flops(rows, layers):
    return 6 * rows * 2 * sum(a * b for a, b in zip(layers[:-1], layers[1:]))


def trainer_gflops(layers, rows, batch, epochs):
    X = np.random.default_rng(0).random((rows, layers[0]), dtype=np.float32)
    trainer = AutoencoderTrainer(DeepAutoencoder(layers), batch_size=batch, seed=0)
    trainer.train(X, 1)  # trace and compile
    seconds = best_of(lambda: trainer.train(X, epochs), 3) / epochs
    return epoch_flops(rows, layers) / seconds / 1e9, seconds


class AuthorsStyleLoop:
    """One compiled graph call per mini-batch, driven from Python (as a TF1 sess.run per batch)."""

    def __init__(self, layers, batch, seed=0):
        self.model = DeepAutoencoder(layers)
        self.opt = tf.keras.optimizers.Adam(0.001)
        self.batch = batch
        self.rng = np.random.default_rng(seed)

        @tf.function
        def step(xb):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(self.model(xb) - xb))
            grads = tape.gradient(loss, self.model.trainable_variables)
            self.opt.apply(grads, self.model.trainable_variables)
            return loss

        self.step = step

    def epoch(self, X):
        perm = self.rng.permutation(len(X))
        for i in range(0, len(X) - self.batch + 1, self.batch):
            self.step(X[perm[i : i + self.batch]])


def l21_shrink_loops(threshold, S):
    """The l2,1 shrink over rows written with Python loops over groups and elements."""
    out = S.copy()
    for i in range(S.shape[0]):
        norm = 0.0
        for j in range(S.shape[1]):
            norm += S[i, j] * S[i, j]
        norm = norm**0.5
        if norm > threshold:
            for j in range(S.shape[1]):
                out[i, j] = S[i, j] - threshold * S[i, j] / norm
        else:
            for j in range(S.shape[1]):
                out[i, j] = 0.0
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    ap.add_argument("--skip-sweep", action="store_true", help="skip the end-to-end CI-scale sweep")
    ap.add_argument("--out", default="results/bench/bench.json")
    args = ap.parse_args()
    epochs = 1 if args.quick else 3
    res = {"host": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "tensorflow": tf.__version__, "gpus": len(tf.config.list_physical_devices("GPU"))}}

    peak = matmul_gflops(2048 if args.quick else 4096)
    res["matmul_gflops"] = peak
    print(f"fp32 matmul 4096^3: {peak:.1f} GFLOP/s (the roofline)")

    res["trainer"] = []
    print(f"\n{'network':>14} {'rows':>6} {'batch':>5} {'GFLOP/s':>8} {'of peak':>8} {'s/epoch':>8}")
    for name, layers, rows in (("784-400-200", [784, 400, 200], 5124), ("784-196-49", [784, 196, 49], 50000)):
        for batch in (30, 133, 256, 1024):
            if args.quick and rows > 10000:
                rows = 10000
            g, s = trainer_gflops(layers, rows, batch, epochs)
            res["trainer"].append({"network": name, "rows": rows, "batch_size": batch, "gflops": g,
                                   "fraction_of_peak": g / peak, "seconds_per_epoch": s})
            print(f"{name:>14} {rows:>6} {batch:>5} {g:>8.1f} {g / peak:>8.1%} {s:>8.3f}")

    # 3. authors' style per-batch loop vs ours, outlier network, batch 133
    layers, rows = [784, 400, 200], 5124
    X = np.random.default_rng(0).random((rows, 784), dtype=np.float32)
    ref = AuthorsStyleLoop(layers, 133)
    ref.epoch(X)
    ref_s = best_of(lambda: ref.epoch(X), 3)
    ours_s = next(t["seconds_per_epoch"] for t in res["trainer"] if t["network"] == "784-400-200" and t["batch_size"] == 133)
    res["reference_seconds_per_epoch_b133"] = ref_s
    res["reference_gflops_b133"] = epoch_flops(rows - rows % 133, layers) / ref_s / 1e9
    res["reference_speedup_b133"] = ref_s / ours_s
    print(f"\nauthors'-style per-batch loop, batch 133: {ref_s:.3f} s/epoch "
          f"({res['reference_gflops_b133']:.1f} GFLOP/s); ours {ours_s:.3f} s/epoch: {ref_s / ours_s:.2f}x")

    # 3b/4. prox
    S = np.random.default_rng(1).normal(size=(rows, 784)).astype(np.float32)
    t = 0.5 * float(np.median(np.linalg.norm(S, axis=1)))
    loops_s = best_of(lambda: l21_shrink_loops(t, S), 1)
    prox_s = best_of(lambda: l21_shrink(S, t), 20)
    l1_s = best_of(lambda: l1_shrink(S, 0.5), 20)
    copy_s = best_of(lambda: S.copy(), 20)
    res["prox_seconds"] = {"l21_loops": loops_s, "l21": prox_s, "l1": l1_s, "copy": copy_s}
    res["prox_speedup_vs_loops"] = loops_s / prox_s
    res["prox_fraction_of_copy"] = copy_s / prox_s
    res["prox_l1_fraction_of_copy"] = copy_s / l1_s
    print(f"l2,1 shrink on {rows}x784: Python loops {loops_s:.2f} s, ours {prox_s * 1e3:.1f} ms "
          f"({loops_s / prox_s:.0f}x); plain copy {copy_s * 1e3:.2f} ms: prox at {copy_s / prox_s:.2f}x copy speed "
          f"(l1: {copy_s / l1_s:.2f}x)")

    # 5. sweeps
    per_epoch_paper = ours_s  # outlier network, batch 133, 5124 rows
    if not args.skip_sweep:
        from rda_cli.experiments.config import load_config
        from rda_cli.experiments.outliers import SCHEMA, list_cells, post_check
        from rda_cli.experiments.runner import run_experiment

        cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "outliers-ci.yaml", SCHEMA, (), post_check)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            _, cells, _, _ = run_experiment("outliers", cfg, Path(tmp) / "run", cells=list_cells(cfg, True))
            res["ci_outlier_sweep_seconds"] = time.perf_counter() - t0
        best = max((c for c in cells if c["kind"] == "rda"), key=lambda c: c["f1"])
        res["ci_outlier_sweep_best_f1"] = best["f1"]
        print(f"\nCI-scale outlier sweep end to end: {res['ci_outlier_sweep_seconds']:.0f} s (best F1 {best['f1']:.3f})")
    # paper scale: 15 lambdas x 20 outer x 50 epochs, plus per-outer-iteration reconstruct + prox
    res["paper_outlier_sweep_seconds_estimate"] = 15 * 1000 * per_epoch_paper + 15 * 20 * (prox_s + 0.05)
    res["paper_outlier_sweep_authors_style_seconds_estimate"] = 15 * 1000 * ref_s + 15 * 20 * loops_s
    print(f"paper-scale outlier sweep (15 lambdas x 1000 epochs): estimated "
          f"{res['paper_outlier_sweep_seconds_estimate'] / 60:.0f} min with ours, "
          f"{res['paper_outlier_sweep_authors_style_seconds_estimate'] / 60:.0f} min in the authors' style")
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    print(f"\npeak RSS {res['peak_rss_mb']:.0f} MB; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
