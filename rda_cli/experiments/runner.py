"""Run an experiment's cells into a run folder, resuming what is already there."""

from __future__ import annotations

import datetime as _dt
import importlib
import time
from pathlib import Path

from .executors import run_tasks
from .rundir import RunDir

__all__ = ["EXPERIMENTS", "experiment_module", "default_run_dir", "run_experiment", "compute_task", "replot"]

EXPERIMENTS = ("denoise", "outliers", "features", "benchmark")


def experiment_module(name):
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}")
    return importlib.import_module(f"{__package__}.{name}")


def default_run_dir(experiment, config, root="results"):
    name = config.get("run_name") or _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(root) / experiment / name


def compute_task(task):
    """Top-level (picklable) entry point of one cell: ``(experiment, config, cell)``."""
    experiment, config, cell = task
    return experiment_module(experiment).compute_cell(config, cell)


def run_experiment(experiment, config, out_dir, cells=None, executor="local", workers=None, scheduler=None,
                   progress=None):
    """Compute the cells not yet in ``out_dir``, then write the summary and figures.

    ``progress(done, total, cell_id)`` is called after each cell (finished or read back).
    Returns ``(run, all_cells, computed_ids, figure_paths)``.
    """
    module = experiment_module(experiment)
    run = RunDir(out_dir, experiment, config).open()
    cells = module.list_cells(config) if cells is None else cells
    todo = [c for c in cells if not run.has_cell(c["id"])]
    done = len(cells) - len(todo)
    computed = []
    if progress:
        progress(done, len(cells), None)
    t0 = time.perf_counter()

    def on_result(task, result):
        nonlocal done
        cell = task[2]
        res, arrays = result
        run.write_cell(cell["id"], res, arrays)
        computed.append(cell["id"])
        done += 1
        if progress:
            progress(done, len(cells), cell["id"])

    if any(c.get("warm_from") for c in todo) and executor != "local":
        raise ValueError("a warm-started lambda path runs in order: use --executor local")
    task_config = dict(config, _run_dir=str(run.path))  # where a cell may read an earlier cell's state
    try:
        run_tasks(compute_task, [(experiment, task_config, c) for c in todo], on_result,
                  executor=executor, workers=workers, scheduler=scheduler)
    finally:
        wanted = {c["id"] for c in cells}
        finished = [c for c in run.read_cells() if c["id"] in wanted]
        figures = module.summarize(run, finished) if finished else []
        run.finish(compute_seconds=time.perf_counter() - t0, cells_total=len(cells), cells_done=len(finished))
    return run, finished, computed, figures


def replot(run_dir):
    """Re-draw the figures and summaries of a run folder from its saved cells (no training)."""
    import yaml

    run_dir = Path(run_dir)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    manifest = RunDir(run_dir, None, config).manifest()
    experiment = manifest.get("experiment") or run_dir.parent.name
    module = experiment_module(experiment)
    run = RunDir(run_dir, experiment, config)
    cells = run.read_cells()
    return experiment, cells, (module.summarize(run, cells) if cells else [])
