#!/usr/bin/env python
"""Measure rda's speed as ratios to this machine's own limits; write results/bench/bench.json.

1. the roofline: TensorFlow's fp32 4096^3 matmul throughput;
2. the trainer's throughput (GFLOP/s, 6 * rows * 2 * sum d_i d_{i+1} per epoch) on the outlier
   network (784-400-200, 5124 rows) and the denoising network (784-196-49, 50,000 rows) at
   several batch sizes, as a fraction of (1);
   - the same, two single-thread worker processes training at once (how `--executor processes`
     runs a sweep's cells), as their summed throughput;
   - K networks stacked in one compiled step (rda_cli.stacked), as their summed throughput;
3. a reference loop in the authors' style (one compiled graph call per mini-batch from Python,
   as their sess.run per batch; l2,1 shrink with Python loops) against ours: both speedups;
4. the prox operators' throughput against a plain array copy of the same size, in place (as the
   estimator calls them, on the residual it has just computed) and into a new array;
5. the CI-scale outlier sweep end to end (sequential and two workers), an estimate of the
   paper-scale sweep, and resident memory over a 100-cell sweep.

6. with ``--tables`` (only these, into results/bench/tables.json): reading a 1,000,000 x 20 CSV
   (vectorised readers and the exact one), ``rda score`` streaming 1,000,000 and 10,000,000 rows
   (time and peak resident memory of the process), and ``rda detect`` on 1,000,000 x 20 rows with
   5% planted outlier rows against a 100,000-row subsample (time, AUROC of the scores).

7. with ``--fresh`` (only this, into results/bench/fresh.json): a whole fit in a fresh process, as
   ``rda detect`` or a one-cell run does it, against the same fit written in the authors' style
   (scripts/authors_style.py: TF1 graph, one Session.run per mini-batch), each in its own process, at
   2 x 10 and 20 x 50 epochs on the paper's outlier set; where ours spends its time (import, data,
   first training call with its tracing and compilation, later training calls, prox, history, the
   rest); and a whole outer iteration's throughput against the trainer's alone, as fractions of the
   roofline.

8. with ``--ensemble`` (only this, into results/bench/ensemble.json): the table rule's ensemble
   (rda_cli.ensemble) on a 2,000 x 24 and a 20,000 x 64 table: one member (``n_members=1``, no tail
   score, no forest), the default detector (2 members + the tail score + the forest), the same without
   its forest, and 8 members, each with its members of
   one network trained together (stacked) and one after another (``train_together=False``), each
   setting in its own fresh process (imports, tracing and compiling included, as ``rda detect`` pays
   them) and then fitted again in that process (seed 1: what a benchmark or a second fit pays; with the
   time spent in the trainers' compiled programs, the networks' training steps), the
   settings alternating, ``--repeat`` times each, the best kept; as seconds and ratios to one member
   measured in the same run; and (unless ``--skip-detect``) ``rda detect`` (the default ensemble) on
   1,000,000 x 20 rows end to end in a fresh process: seconds, peak resident memory (VmHWM of /proc)
   and the AUROC of its scores against the planted rows.

9. with ``--csv`` (only this, into results/bench/csv.json): reading a 300,000 x 20 CSV of numbers
   (``%.6g``, with a header) with ``rda_cli.tabular.read_table`` against NumPy's ``np.loadtxt`` on the
   same file, measured in the same run: the best of 5 alternating reads in one process, and the first
   read in a fresh process (the reader's own imports included: pyarrow's for rda, none for NumPy's,
   whose import both pay); as seconds and the ratio rda / loadtxt.

Usage: python scripts/bench.py [--quick] [--skip-sweep] [--tables] [--fresh] [--ensemble [--repeat N] [--skip-detect]] [--csv]
       [--out results/bench/bench.json]
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

# TensorFlow and rda's trainer are imported inside the functions: the pool workers of section 2
# import this file too, and must set their thread counts before TensorFlow starts.


def best_of(fn, repeat=3):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


class Roofline:
    """TensorFlow's fp32 n^3 matmul throughput, measured on demand.

    The machine's speed drifts during a run (a shared host); each throughput below is divided by
    the mean of the roofline measured just before and just after it, so that a ratio compares
    the two at the same time.
    """

    def __init__(self, n=4096):
        import tensorflow as tf

        self.n = n
        self.a = tf.random.uniform((n, n), seed=1)
        self.b = tf.random.uniform((n, n), seed=2)
        self.f = tf.function(lambda a, b: tf.reduce_sum(tf.matmul(a, b)))
        self.f(self.a, self.b).numpy()

    def measure(self, repeat=3):
        return 2 * self.n**3 / best_of(lambda: self.f(self.a, self.b).numpy(), repeat) / 1e9

    def around(self, fn):
        """``(fn(), roofline)``, the roofline the mean of one measurement before and one after."""
        before = self.measure()
        out = fn()
        return out, (before + self.measure()) / 2


def epoch_flops(rows, layers):
    return 6 * rows * 2 * sum(a * b for a, b in zip(layers[:-1], layers[1:]))


def compiled_trainer(layers, rows, batch, epochs=1):
    """Random data of ``rows`` rows and an XLA-compiled trainer for it, traced and compiled by one call
    of ``epochs`` epochs (a call of another number of epochs is another program: it compiles again)."""
    from rda_cli.autoencoder import AutoencoderTrainer, DeepAutoencoder

    X = np.random.default_rng(0).random((rows, layers[0]), dtype=np.float32)
    trainer = AutoencoderTrainer(DeepAutoencoder(layers), batch_size=batch, seed=0, jit_compile=True)
    trainer.train(X, epochs)
    return X, trainer


def trainer_gflops(layers, rows, batch, epochs):
    X, trainer = compiled_trainer(layers, rows, batch, epochs)
    seconds = best_of(lambda: trainer.train(X, epochs), 2 if epochs * rows > 100_000 else 3) / epochs
    return epoch_flops(rows, layers) / seconds / 1e9, seconds


def _worker_epochs(task):
    """In a pool worker: compile, wait for the other workers, then time ``epochs`` epochs."""
    layers, rows, batch, epochs, barrier = task
    X, trainer = compiled_trainer(layers, rows, batch, epochs)
    barrier.wait()
    t0 = time.perf_counter()
    trainer.train(X, epochs)
    return time.perf_counter() - t0


def _limit_all_threads(threads):
    """A bench worker: ``threads`` threads for TensorFlow's intra-op pool too (the executor leaves it)."""
    from rda_cli.experiments.executors import limit_threads

    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(threads))
    limit_threads(threads)


def parallel_trainer_gflops(layers, rows, batch, epochs, workers=2):
    """Summed throughput of ``workers`` single-model trainers in their own processes at once,
    each limited to its share of the cores (TensorFlow's intra-op pool included)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from rda_cli.experiments.executors import threads_per_worker

    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_limit_all_threads, initargs=(threads_per_worker(workers),)
    ) as pool:
        barrier = manager.Barrier(workers)
        seconds = list(pool.map(_worker_epochs, [(layers, rows, batch, epochs, barrier)] * workers))
    # all workers' epochs over the time the slowest took
    return workers * epochs * epoch_flops(rows, layers) / max(seconds) / 1e9


def stacked_trainer_gflops(layers, rows, batch, k, epochs):
    from rda_cli.stacked import StackedTrainer

    X = np.random.default_rng(0).random((rows, layers[0]), dtype=np.float32)
    XX = np.broadcast_to(X, (k,) + X.shape).copy()
    trainer = StackedTrainer(layers, k, list(range(k)), batch_size=batch, jit_compile=True)
    trainer.reinitialize()
    trainer.train(XX, 1)
    seconds = best_of(lambda: trainer.train(XX, epochs), 2) / epochs
    return k * epoch_flops(rows, layers) / seconds / 1e9


class AuthorsStyleLoop:
    """One compiled graph call per mini-batch, driven from Python (as a TF1 sess.run per batch)."""

    def __init__(self, layers, batch, seed=0):
        import tensorflow as tf

        from rda_cli.autoencoder import DeepAutoencoder

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


def prox_fraction_of_copy(fn, S, copy_s, repeat=30):
    """Copy time over the prox's, in place on fresh copies of ``S`` and into a new array."""
    work = [S.copy() for _ in range(repeat)]
    in_place = []
    for w in work:
        t0 = time.perf_counter()
        fn(w, out=w)
        in_place.append(time.perf_counter() - t0)
    new = best_of(lambda: fn(S), repeat)
    return copy_s / min(in_place), copy_s / new, min(in_place)


def rss_mb():
    """Resident memory of this process now, in MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def hundred_cell_sweep(tmp):
    """Resident memory over a 100-cell outlier sweep (tiny network, 100 lambdas) in this process."""
    from rda_cli.experiments.config import validate
    from rda_cli.experiments.outliers import BASELINES, SCHEMA, list_cells
    from rda_cli.experiments.runner import run_experiment

    config = validate({"run_name": "rss", "data": {"n_source": 2000, "n_outliers": 20},
                       "model": {"layers": [784, 32, 8], "lambdas": [round(0.0002 + 0.00001 * i, 6) for i in range(100)],
                                 "outer_iterations": 2, "inner_epochs": 1, "batch_size": 133},
                       "baselines": {b: {"enabled": False} for b in BASELINES},
                       "tiles": 4}, SCHEMA)
    cells = [c for c in list_cells(config, True) if c["kind"] == "rda"]
    trace = []
    run_experiment("outliers", config, Path(tmp) / "rss", cells=cells,
                   progress=lambda done, total, cid, outer=None: trace.append(rss_mb()) if cid and outer is None else None)
    return {"cells": len(trace), "rss_mb_after_10": trace[9], "rss_mb_after_100": trace[-1],
            "rss_mb_growth_10_to_100": trace[-1] - trace[9]}


# ---------------------------------------------------------------------------- 6. tables of millions of rows
TABLE_COLUMNS = 20


def _child(code, *args):
    """Run ``code`` in a fresh Python process (its own peak memory); returns the JSON it prints last."""
    import subprocess

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                       os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"child failed ({out.returncode}): {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def write_planted_csv(path, n_rows, seed=0, chunk=500_000, mild=False):
    """``n_rows`` x 20 rows of the tests' manifold with 5% outlier rows, written in chunks; the truth goes
    to ``path.with_suffix('.truth.npy')``. Outlier rows are uniform noise, or with ``mild`` manifold
    rows moved by Gaussian noise of standard deviation 0.05 per entry (harder to tell apart)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from synthetic import manifold, with_outlier_rows

    truth = []
    with open(path, "w") as fh:
        fh.write(",".join(f"f{j}" for j in range(TABLE_COLUMNS)) + "\n")
        for k, start in enumerate(range(0, n_rows, chunk)):
            X, out = with_outlier_rows(n=min(chunk, n_rows - start), d=TABLE_COLUMNS, fraction=0.05, seed=seed,
                                       sample_seed=seed + 1000 + k)
            if mild:
                clean = manifold(n=len(X), d=TABLE_COLUMNS, seed=seed, sample_seed=seed + 1000 + k)
                noise = np.random.default_rng(seed + 2000 + k).normal(0, 0.05, X.shape)
                X = np.where(out[:, None], np.clip(clean + noise, 0, 1), clean)
            np.savetxt(fh, X, delimiter=",", fmt="%.6g")
            truth.append(out)
    np.save(path.with_suffix(".truth.npy"), np.concatenate(truth))
    return path


READ_CODE = """
import json, resource, sys, time
from rda_cli import tabular
reader = sys.argv[2]
if reader == "numpy":
    tabular._have_arrow = lambda: False
t = time.perf_counter()
if reader == "exact":
    table = tabular._read_csv_exact(sys.argv[1], None)
else:
    table = tabular.read_table(sys.argv[1])
print(json.dumps({"seconds": time.perf_counter() - t, "rows": table.n_rows,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

CLI_CODE = """
import json, resource, sys, time
from click.testing import CliRunner
from rda_cli.cli import main
t = time.perf_counter()
res = CliRunner().invoke(main, sys.argv[1:], catch_exceptions=False)
assert res.exit_code == 0, res.output
print(json.dumps({"seconds": time.perf_counter() - t, "output": res.output.strip().splitlines()[-1],
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


CSV_FIRST_READ_CODE = """
import json, sys, time
import numpy as np
from rda_cli import tabular
t = time.perf_counter()
if sys.argv[2] == "loadtxt":
    X = np.loadtxt(sys.argv[1], delimiter=",", skiprows=1, ndmin=2)
else:
    X = tabular.read_table(sys.argv[1]).X
print(json.dumps({"seconds": time.perf_counter() - t, "shape": list(X.shape)}))
"""


def csv_benchmarks(work, quick=False, rows=300_000, repeat=5):
    """Section 9 (see the module docstring)."""
    from rda_cli import tabular

    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"numbers_{rows}.csv"
    if not path.exists():
        X = np.random.default_rng(0).normal(size=(rows, TABLE_COLUMNS))
        np.savetxt(path, X, delimiter=",", fmt="%.6g", header=",".join(f"f{j}" for j in range(TABLE_COLUMNS)),
                   comments="")
    res = {"rows": rows, "columns": TABLE_COLUMNS, "csv_bytes": path.stat().st_size,
           "pyarrow": tabular._have_arrow()}
    first = {name: _child(CSV_FIRST_READ_CODE, path, name)["seconds"] for name in ("loadtxt", "rda")}
    times = {"loadtxt": [], "rda": []}
    for _ in range(2 if quick else repeat):
        t = time.perf_counter()
        a = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
        times["loadtxt"].append(time.perf_counter() - t)
        t = time.perf_counter()
        b = tabular.read_table(path).X
        times["rda"].append(time.perf_counter() - t)
        assert np.array_equal(a, b)
    best = {k: min(v) for k, v in times.items()}
    res.update(best_seconds=best, ratio=best["rda"] / best["loadtxt"], first_read_seconds=first,
               first_read_ratio=first["rda"] / first["loadtxt"], load_average=os.getloadavg()[0])
    print(f"read {rows} x {TABLE_COLUMNS} CSV ({res['csv_bytes'] / 1e6:.0f} MB): rda {best['rda']:.2f} s, "
          f"np.loadtxt {best['loadtxt']:.2f} s (ratio {res['ratio']:.2f}); first read in a fresh process: "
          f"rda {first['rda']:.2f} s, np.loadtxt {first['loadtxt']:.2f} s (ratio {res['first_read_ratio']:.2f})")
    return res


def _auroc(scores_csv, truth):
    from sklearn.metrics import roc_auc_score

    scores = np.loadtxt(scores_csv, delimiter=",", skiprows=1, usecols=1)
    return float(roc_auc_score(truth, scores))


def table_benchmarks(work, quick=False, mild=False):
    """Section 6 (see the module docstring); ``work`` holds the generated files (GBs at full size).
    ``mild``: only the detect comparison, on mild outliers (see :func:`write_planted_csv`)."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    n_big = 200_000 if quick else 1_000_000
    n_stream = 1_000_000 if quick else 10_000_000
    n_sub = n_big // 10
    res = {}
    big = work / f"planted_{'mild_' if mild else ''}{n_big}.csv"
    if not big.exists():
        write_planted_csv(big, n_big, mild=mild)
    truth = np.load(big.with_suffix(".truth.npy"))
    res["csv_bytes"] = big.stat().st_size
    for reader in () if mild else ("arrow", "numpy", "exact"):
        res[f"read_{reader}"] = r = _child(READ_CODE, big, reader)
        print(f"read {n_big} x {TABLE_COLUMNS} CSV ({res['csv_bytes'] / 1e6:.0f} MB), {reader}: {r['seconds']:.1f} s, "
              f"peak RSS {r['peak_rss_mb']:.0f} MB")

    sub = work / f"planted_{'mild_' if mild else ''}{n_sub}.csv"
    with open(big) as src, open(sub, "w") as dst:
        for i, line in enumerate(src):
            if i > n_sub:
                break
            dst.write(line)
    for name, path, t in (("detect_subsample", sub, truth[:n_sub]), ("detect_full", big, truth)):
        name += "_mild" if mild else ""
        out = work / f"run_{name}"
        res[name] = r = _child(CLI_CODE, "detect", "--data", path, "--out", out, "--force", "--quiet")
        r["auroc"] = _auroc(out / "scores.csv", t)
        r["rows"] = len(t)
        print(f"rda detect {len(t)} rows: {r['seconds']:.0f} s, AUROC {r['auroc']:.4f}, peak RSS "
              f"{r['peak_rss_mb']:.0f} MB ({r['output']})")
    model = work / "run_detect_subsample" / "model"
    for n in () if mild else (n_big, n_stream):
        path = big if n == n_big else work / f"planted_{n}.csv"
        if not path.exists():
            write_planted_csv(path, n, seed=0)
        r = _child(CLI_CODE, "score", "--model", model, "--data", path, "--out", work / f"scores_{n}.csv", "--force")
        r["rows"] = n
        res[f"score_stream_{n}"] = r
        print(f"rda score {n} rows (streamed): {r['seconds']:.0f} s, peak RSS {r['peak_rss_mb']:.0f} MB")
    return res


# ---------------------------------------------------------------------------- 8. the ensemble
ENSEMBLE_CODE = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
from rda_cli import RobustAutoencoderEnsemble
n, d = map(int, sys.argv[1:3])
params = json.loads(sys.argv[3])
rng = np.random.default_rng(0)
u = rng.uniform(-1, 1, size=(n, 4))
X = 40 + 20 / (1 + np.exp(-(u @ rng.normal(0, 1.5, size=(4, d))))) + rng.normal(0, 0.3, size=(n, d))
t1 = time.perf_counter()
ens = RobustAutoencoderEnsemble(random_state=0, **params).fit(X)
t2 = time.perf_counter()
ens.decision_function(X[::-1])
t3 = time.perf_counter()
from rda_cli import autoencoder
run, steps = autoencoder.CompiledLoop._run, [0.0]
def timed(*args):  # the networks' training steps (and the fused reconstruction), in the trainers' programs
    t = time.perf_counter()
    out = run(*args)
    steps[0] += time.perf_counter() - t
    return out
autoencoder.CompiledLoop._run = timed
again = RobustAutoencoderEnsemble(random_state=1, **params).fit(X)
t4 = time.perf_counter()
print(json.dumps({"rows": n, "features": d, "params": params, "fit_seconds": t2 - t1, "score_seconds": t3 - t2,
                  "process_seconds": t3 - t0, "second_fit_seconds": t4 - t3, "second_fit_training_seconds": steps[0]}))
"""

HWM_CLI_CODE = CLI_CODE.replace('"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024',
                                '"peak_rss_mb": [int(l.split()[1]) for l in open("/proc/self/status") '
                                'if l.startswith("VmHWM")][0] / 1024')

ENSEMBLE_FITS = {  # name: RobustAutoencoderEnsemble parameters (the rest default)
    "one member": {"n_members": 1, "tail": False, "forest": False},
    "default, stacked": {},
    "default without the forest, stacked": {"forest": False},
    "default, sequential": {"train_together": False},
    "8 members, stacked": {"n_members": 8},
    "8 members, sequential": {"n_members": 8, "train_together": False},
}


def ensemble_benchmarks(work, quick=False, repeat=2, detect=True):
    """Section 8 (see the module docstring)."""
    res = {"cpu_count": os.cpu_count(), "repeat": repeat, "fits": [], "load_average_start": os.getloadavg()}
    shapes = ((2000, 24),) if quick else ((2000, 24), (20000, 64))
    for n, d in shapes:
        runs = {name: [] for name in ENSEMBLE_FITS}
        for _ in range(repeat):  # the settings alternate, so that the host's load drifts over all of them
            for name, params in ENSEMBLE_FITS.items():
                runs[name].append(_child(ENSEMBLE_CODE, n, d, json.dumps(params)))
        best = {name: {key: min(r[key] for r in rs) for key in ("fit_seconds", "second_fit_seconds", "score_seconds",
                                                              "process_seconds", "second_fit_training_seconds")}
                for name, rs in runs.items()}
        one = best["one member"]
        for name, b in best.items():
            r = dict(b, rows=n, features=d, setting=name, params=ENSEMBLE_FITS[name],
                     ratio_to_one_member=b["fit_seconds"] / one["fit_seconds"],
                     second_fit_ratio_to_one_member=b["second_fit_seconds"] / one["second_fit_seconds"],
                     training_ratio_to_one_member=b["second_fit_training_seconds"] / one["second_fit_training_seconds"])
            res["fits"].append(r)
            print(f"ensemble {n} x {d}, {name}: fit {r['fit_seconds']:.1f} s ({r['ratio_to_one_member']:.2f} x one "
                  f"member), a second fit in the same process {r['second_fit_seconds']:.2f} s "
                  f"({r['second_fit_ratio_to_one_member']:.2f} x; its training steps {r['second_fit_training_seconds']:.2f} s, "
                  f"{r['training_ratio_to_one_member']:.2f} x), scoring {r['score_seconds']:.2f} s", flush=True)
    res["load_average_end"] = os.getloadavg()
    if not detect:
        return res
    n_big = 200_000 if quick else 1_000_000
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    big = work / f"planted_{n_big}.csv"
    if not big.exists():
        write_planted_csv(big, n_big)
    truth = np.load(big.with_suffix(".truth.npy"))
    out = work / "run_detect_ensemble"
    r = _child(HWM_CLI_CODE, "detect", "--data", big, "--out", out, "--force", "--quiet")
    r.update(rows=n_big, features=TABLE_COLUMNS, auroc=_auroc(out / "scores.csv", truth))
    res["detect_1m"] = r
    print(f"rda detect {n_big} x {TABLE_COLUMNS} (ensemble): {r['seconds']:.0f} s, peak RSS {r['peak_rss_mb']:.0f} MB, "
          f"AUROC {r['auroc']:.4f} ({r['output']})", flush=True)
    return res


# ---------------------------------------------------------------------------- 7. a fit in a fresh process
def _fresh_child(outer, inner, jit):
    """Run in a new interpreter: one fit of the outlier network on the paper's mix, as ``rda detect`` or a
    one-cell run does it; print where its time went. ``jit``: "auto" (the default), "1" or "0" (XLA on, off)."""
    t_start = time.perf_counter()
    from rda_cli import RobustAutoencoder
    from rda_cli import autoencoder as ae
    from rda_cli import solver
    from rda_cli.data import load_mnist, outlier_mix

    import tensorflow  # noqa: F401
    t_import = time.perf_counter() - t_start
    X, y = load_mnist(os.environ.get("RDA_DATA_DIR"))
    X_mix, _, truth = outlier_mix(X, y)
    t_data = time.perf_counter() - t_start - t_import
    spent = {"train": [], "prox": [], "record": []}
    for owner, name, key in ((ae.AutoencoderTrainer, "train", "train"), (solver.SparsePart, "prox", "prox"),
                             (solver, "record", "record")):
        original = getattr(owner, name)

        def timed(*a, _original=original, _key=key, **k):
            t = time.perf_counter()
            out = _original(*a, **k)
            spent[_key].append(time.perf_counter() - t)
            return out

        setattr(owner, name, timed)
    if jit != "auto":
        init = ae.AutoencoderTrainer.__init__
        ae.AutoencoderTrainer.__init__ = lambda self, *a, **k: init(self, *a, **dict(k, jit_compile=jit == "1"))
    t0 = time.perf_counter()
    model = RobustAutoencoder(layers=[784, 400, 200], lam=0.00095, outer_iterations=outer, inner_epochs=inner,
                              reinitialize=True, random_state=0).fit(X_mix)
    t_fit = time.perf_counter() - t0
    train = spent["train"]
    from rda_cli.experiments.outliers import flag_metrics
    print(json.dumps({
        "who": "rda", "jit_compile": jit, "xla": model._use_xla(ae.cached_trainer(model.layers_, True, model.learning_rate, model.batch_size),
                              X_mix.shape[0]),
        "import_s": t_import, "data_s": t_data, "fit_s": t_fit,
        "first_train_call_s": train[0], "later_train_calls_s": sum(train[1:]), "prox_s": sum(spent["prox"]),
        "history_s": sum(spent["record"]),
        "other_s": t_fit - sum(train) - sum(spent["prox"]) - sum(spent["record"]),
        "f1": flag_metrics(truth, model.outlier_mask_)[2], "outer": outer, "inner": inner,
    }))


def _fresh_run(args):
    import subprocess

    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, *args], capture_output=True, text=True, check=True)
    row = json.loads(res.stdout.strip().splitlines()[-1])
    row["process_wall_s"] = time.perf_counter() - t0
    row.setdefault("who", "authors")
    print(json.dumps(row))
    return row


def fresh_fits(schedules=((2, 10, 3), (20, 50, 1))):
    """Each schedule (outer, inner, repeats): the authors'-style fit (scripts/authors_style.py) and ours,
    each in a fresh process, in turn (so that both see the same drift of the host); at the short
    schedule ours also with XLA forced on. Ratios compare the fastest run of each."""
    here = Path(__file__).resolve().parent
    out = []
    for outer, inner, repeats in schedules:
        variants = [[str(here / "authors_style.py"), str(outer), str(inner)],
                    [__file__, "--fresh-child", str(outer), str(inner), "auto"]]
        if outer * inner <= 20:
            variants.append([__file__, "--fresh-child", str(outer), str(inner), "1"])
        rows = [_fresh_run(v) for _ in range(repeats) for v in variants]
        authors = [r for r in rows if r["who"] == "authors"]
        ours = [r for r in rows if r["who"] == "rda" and r["jit_compile"] == "auto"]
        best = {k: min(rs, key=lambda r: r["fit_s"]) for k, rs in (("authors", authors), ("rda", ours))}
        out.append({"outer": outer, "inner": inner, "runs": rows, "best": best,
                    "fit_speedup": best["authors"]["fit_s"] / best["rda"]["fit_s"],
                    "process_speedup": min(r["process_wall_s"] for r in authors) / min(r["process_wall_s"] for r in ours)})
        print(f"{outer} x {inner}: fit {best['authors']['fit_s']:.2f} s (authors' style) / {best['rda']['fit_s']:.2f} s "
              f"(rda) = {out[-1]['fit_speedup']:.2f}x; whole process {out[-1]['process_speedup']:.2f}x")
    return out


def outer_iteration_fraction(roof, outer=12, inner=5):
    """Throughput of whole outer iterations of a fit (training, reconstruction, prox, history) and of the
    trainer alone, both XLA-compiled, as fractions of the roofline measured around each."""
    from rda_cli import RobustAutoencoder
    from rda_cli import autoencoder as ae_module
    from rda_cli.data import load_mnist, outlier_mix

    X, y = load_mnist(os.environ.get("RDA_DATA_DIR"))
    X, _, _ = outlier_mix(X, y)
    layers, n = [784, 400, 200], X.shape[0]
    flops = (inner + 1 / 3) * epoch_flops(n, layers)  # the reconstruction: a forward pass, a third of an epoch

    def fit():
        m = RobustAutoencoder(layers=layers, lam=0.00095, outer_iterations=outer, inner_epochs=inner, tol=0,
                              reinitialize=True, random_state=0).fit(X)
        assert m._use_xla(ae_module.cached_trainer(layers, True, m.learning_rate, m.batch_size), n)
        return min(h["seconds"] for h in m.history_[1:])  # the first one compiles

    seconds, peak = roof.around(fit)
    _, trainer = compiled_trainer(layers, n, 133, inner)
    alone, peak_alone = roof.around(lambda: best_of(lambda: trainer.train(X, inner), 5))
    res = {"outer_iteration_seconds": seconds, "outer_iteration_fraction_of_peak": flops / seconds / 1e9 / peak,
           "trainer_alone_seconds": alone,
           "trainer_alone_fraction_of_peak": inner * epoch_flops(n, layers) / alone / 1e9 / peak_alone,
           "roofline_gflops": (peak + peak_alone) / 2, "epochs": inner, "rows": n, "batch_size": 133}
    print(f"outer iteration ({inner} epochs, reconstruction, prox, history): {seconds:.3f} s, "
          f"{res['outer_iteration_fraction_of_peak']:.1%} of peak; the trainer alone "
          f"{res['trainer_alone_fraction_of_peak']:.1%}")
    return res


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--fresh-child":
        _fresh_child(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    ap.add_argument("--skip-sweep", action="store_true", help="skip the end-to-end CI-scale sweep")
    ap.add_argument("--tables", action="store_true",
                    help="only section 6 (tables of millions of rows), into results/bench/tables.json")
    ap.add_argument("--mild", action="store_true",
                    help="with --tables: only the detect comparison, on mild outliers (into tables_mild.json)")
    ap.add_argument("--fresh", action="store_true",
                    help="only section 7 (a fit in a fresh process), into results/bench/fresh.json")
    ap.add_argument("--ensemble", action="store_true",
                    help="only section 8 (the ensemble's cost; rda detect on 1,000,000 rows), into "
                         "results/bench/ensemble.json")
    ap.add_argument("--repeat", type=int, default=2, help="with --ensemble: fresh processes per setting (best kept)")
    ap.add_argument("--skip-detect", action="store_true", help="with --ensemble: without the 1,000,000-row rda detect")
    ap.add_argument("--work", default=None, help="folder for section 6's generated files  [default: a temporary one]")
    ap.add_argument("--out", default=None, help="[default: results/bench/bench.json, or tables.json with --tables]")
    ap.add_argument("--csv", action="store_true",
                    help="only section 9: a 300,000 x 20 CSV read by rda against np.loadtxt, into results/bench/csv.json")
    args = ap.parse_args()

    def section(run, default_out):
        """Run ``run(work, quick)`` in ``--work`` (default: a temporary folder); write its JSON."""
        with tempfile.TemporaryDirectory() as tmp:
            res = run(args.work or tmp, args.quick)
        out = Path(args.out or default_out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=1))
        print(f"wrote {out}")
        return 0

    if args.csv:
        return section(csv_benchmarks, "results/bench/csv.json")
    if args.ensemble:
        return section(lambda work, quick: ensemble_benchmarks(work, quick, args.repeat, not args.skip_detect),
                       "results/bench/ensemble.json")
    if args.fresh:
        out = Path(args.out or "results/bench/fresh.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        schedules = ((2, 10, 1),) if args.quick else ((2, 10, 3), (20, 50, 1))
        res = {"fresh_process_fits": fresh_fits(schedules)}
        res["outer_iteration"] = outer_iteration_fraction(Roofline(2048 if args.quick else 4096))
        out.write_text(json.dumps(res, indent=1))
        print(f"wrote {out}")
        return
    if args.tables:
        with tempfile.TemporaryDirectory() as tmp:
            res = table_benchmarks(args.work or tmp, args.quick, args.mild)
        out = Path(args.out or f"results/bench/tables{'_mild' if args.mild else ''}.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=1))
        print(f"wrote {out}")
        return 0
    args.out = args.out or "results/bench/bench.json"
    epochs = 1 if args.quick else 3
    import tensorflow as tf

    from rda_cli.experiments.executors import threads_per_worker
    from rda_cli.prox import l1_shrink, l21_shrink

    res = {"host": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "tensorflow": tf.__version__, "gpus": len(tf.config.list_physical_devices("GPU"))}}

    roof = Roofline(2048 if args.quick else 4096)
    peak = roof.measure(5)
    res["matmul_gflops"] = peak
    print(f"fp32 matmul 4096^3: {peak:.1f} GFLOP/s (the roofline)")

    res["trainer"] = []
    print(f"\n{'network':>14} {'rows':>6} {'batch':>5} {'GFLOP/s':>8} {'roofline':>8} {'of peak':>8} {'s/epoch':>8}")
    # One timed call = one outer iteration's training: the experiments' inner epochs (outliers: 10 in the
    # CI and fast schedules, 50 in the authors'; denoising: 5), copying the data into a tensor once.
    for name, layers, rows, call_epochs in (("784-400-200", [784, 400, 200], 5124, 10),
                                            ("784-196-49", [784, 196, 49], 50000, 5)):
        call_epochs = 1 if args.quick else call_epochs
        for batch in (30, 133, 256, 1024):
            if args.quick and rows > 10000:
                rows = 10000
            (g, s), peak = roof.around(lambda: trainer_gflops(layers, rows, batch, call_epochs))
            res["trainer"].append({"network": name, "rows": rows, "batch_size": batch, "gflops": g,
                                   "fraction_of_peak": g / peak, "seconds_per_epoch": s,
                                   "epochs_per_call": call_epochs, "roofline_gflops": peak})
            print(f"{name:>14} {rows:>6} {batch:>5} {g:>8.1f} {peak:>8.1f} {g / peak:>8.1%} {s:>8.3f}")

    workers = 2
    res["trainer_parallel"] = []
    res["trainer_stacked"] = []
    print(f"\nseveral models at once (summed throughput): {workers} single-thread worker processes, or K networks "
          "stacked in one compiled step")
    print(f"{'network':>14} {'rows':>6} {'batch':>5} {'how':>12} {'GFLOP/s':>8} {'roofline':>8} {'of peak':>8}")
    for name, layers, rows in (("784-400-200", [784, 400, 200], 5124), ("784-196-49", [784, 196, 49], 50000)):
        rows = min(rows, 10000) if (args.quick or name == "784-196-49") else rows
        for batch in (133, 256):
            g, peak = roof.around(lambda: parallel_trainer_gflops(layers, rows, batch, 2 * epochs, workers))
            res["trainer_parallel"].append({"network": name, "rows": rows, "batch_size": batch, "workers": workers,
                                            "threads_per_worker": threads_per_worker(workers),
                                            "gflops": g, "fraction_of_peak": g / peak, "roofline_gflops": peak})
            print(f"{name:>14} {rows:>6} {batch:>5} {f'{workers} processes':>12} {g:>8.1f} {peak:>8.1f} {g / peak:>8.1%}")
            k = 4
            g, peak = roof.around(lambda: stacked_trainer_gflops(layers, rows, batch, k, epochs))
            res["trainer_stacked"].append({"network": name, "rows": rows, "batch_size": batch, "models": k,
                                           "gflops": g, "fraction_of_peak": g / peak, "roofline_gflops": peak})
            print(f"{name:>14} {rows:>6} {batch:>5} {f'{k} stacked':>12} {g:>8.1f} {peak:>8.1f} {g / peak:>8.1%}")

    # 3. authors' style per-batch loop vs ours, outlier network, batch 133
    layers, rows = [784, 400, 200], 5124
    X, ours = compiled_trainer(layers, rows, 133)
    ref = AuthorsStyleLoop(layers, 133)
    ref.epoch(X)
    ref_times, our_times = [], []
    for _ in range(4):  # alternated, so that both see the same drift of the machine's speed
        ref_times.append(best_of(lambda: ref.epoch(X), 1))
        our_times.append(best_of(lambda: ours.train(X, 1), 1))
    ref_s, ours_s = min(ref_times), min(our_times)
    res["reference_seconds_per_epoch_b133"] = ref_s
    res["reference_gflops_b133"] = epoch_flops(rows - rows % 133, layers) / ref_s / 1e9
    res["reference_speedup_b133"] = ref_s / ours_s
    print(f"\nauthors'-style per-batch loop, batch 133: {ref_s:.3f} s/epoch "
          f"({res['reference_gflops_b133']:.1f} GFLOP/s); ours {ours_s:.3f} s/epoch: {ref_s / ours_s:.2f}x")

    # 3b/4. prox
    S = np.random.default_rng(1).normal(size=(rows, 784)).astype(np.float32)
    t = 0.5 * float(np.median(np.linalg.norm(S, axis=1)))
    loops_s = best_of(lambda: l21_shrink_loops(t, S), 1)
    assert np.allclose(l21_shrink_loops(t, S[:50]), l21_shrink(S[:50], t), atol=1e-5)
    copy_s = best_of(lambda: S.copy(), 30)
    l21_frac, l21_new_frac, prox_s = prox_fraction_of_copy(lambda A, out=None: l21_shrink(A, t, out=out), S, copy_s)
    l1_frac, l1_new_frac, l1_s = prox_fraction_of_copy(lambda A, out=None: l1_shrink(A, 0.5, out=out), S, copy_s)
    res["prox_seconds"] = {"l21_loops": loops_s, "l21": prox_s, "l1": l1_s, "copy": copy_s}
    res["prox_speedup_vs_loops"] = loops_s / prox_s
    res["prox_fraction_of_copy"] = l21_frac
    res["prox_l1_fraction_of_copy"] = l1_frac
    res["prox_fraction_of_copy_new_array"] = l21_new_frac
    res["prox_l1_fraction_of_copy_new_array"] = l1_new_frac
    print(f"l2,1 shrink on {rows}x784 (every row survives): Python loops {loops_s:.2f} s, ours {prox_s * 1e3:.2f} ms "
          f"({loops_s / prox_s:.0f}x); plain copy {copy_s * 1e3:.2f} ms: in place at {l21_frac:.2f}x copy speed, "
          f"into a new array {l21_new_frac:.2f}x (l1: {l1_frac:.2f}x, {l1_new_frac:.2f}x)")

    # 5. sweeps
    per_epoch_paper = ours_s  # outlier network, batch 133, 5124 rows
    if not args.skip_sweep:
        from rda_cli.experiments.config import load_config
        from rda_cli.experiments.outliers import SCHEMA, list_cells, post_check
        from rda_cli.experiments.runner import run_experiment

        cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "outliers-ci.yaml", SCHEMA, (), post_check)
        for executor, key in (("local", "ci_outlier_sweep_seconds"), ("processes", "ci_outlier_sweep_seconds_processes")):
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                _, cells, _, _ = run_experiment("outliers", cfg, Path(tmp) / "run", cells=list_cells(cfg, True),
                                                executor=executor, workers=workers)
                res[key] = time.perf_counter() - t0
            best = max((c for c in cells if c["kind"] == "rda"), key=lambda c: c["f1"])
            res[key.replace("seconds", "best_f1")] = best["f1"]
            print(f"\nCI-scale outlier sweep end to end, --executor {executor}: {res[key]:.0f} s "
                  f"(best F1 {best['f1']:.3f})")
        with tempfile.TemporaryDirectory() as tmp:
            res["sweep_100_cells"] = hundred_cell_sweep(tmp)
        r = res["sweep_100_cells"]
        print(f"100-cell sweep in one process: resident memory {r['rss_mb_after_10']:.0f} MB after 10 cells, "
              f"{r['rss_mb_after_100']:.0f} MB after 100 ({r['rss_mb_growth_10_to_100']:+.0f} MB)")
    # paper scale: 15 lambdas x 20 outer x 50 epochs, plus per-outer-iteration reconstruct + prox
    res["paper_outlier_sweep_seconds_estimate"] = 15 * 1000 * per_epoch_paper + 15 * 20 * (prox_s + 0.05)
    par = next(t for t in res["trainer_parallel"] if t["network"] == "784-400-200" and t["batch_size"] == 133)
    res["paper_outlier_sweep_processes_seconds_estimate"] = (
        15 * 1000 * epoch_flops(5124, [784, 400, 200]) / (par["gflops"] * 1e9) + 15 * 20 * (prox_s + 0.05) / workers)
    res["paper_outlier_sweep_authors_style_seconds_estimate"] = 15 * 1000 * ref_s + 15 * 20 * loops_s
    print(f"paper-scale outlier sweep (15 lambdas x 1000 epochs): estimated "
          f"{res['paper_outlier_sweep_seconds_estimate'] / 60:.0f} min with ours "
          f"({res['paper_outlier_sweep_processes_seconds_estimate'] / 60:.0f} min on {workers} worker processes), "
          f"{res['paper_outlier_sweep_authors_style_seconds_estimate'] / 60:.0f} min in the authors' style")
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    print(f"\npeak RSS {res['peak_rss_mb']:.0f} MB; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
