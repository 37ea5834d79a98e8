"""Run an experiment's cells into a run folder, resuming what is already there."""

from __future__ import annotations

import datetime as _dt
import importlib
import time
from pathlib import Path

from ..progress import listening
from .contract import Experiment
from .executors import run_tasks
from .rundir import RunDir

__all__ = ["EXPERIMENTS", "experiment_module", "default_run_dir", "run_experiment", "compute_task", "replot"]

EXPERIMENTS = ("denoise", "outliers", "features", "benchmark")


def experiment_module(name) -> Experiment:
    """The module implementing experiment ``name`` (see :class:`~.contract.Experiment`)."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}")
    return importlib.import_module(f"{__package__}.{name}")


def default_run_dir(experiment, config, root="results"):
    name = config.get("run_name") or _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(root) / experiment / name


def compute_task(task):
    """Top-level (picklable) entry point of one cell: ``(experiment, config, cell, finished_cells)``."""
    experiment, config, cell, finished = task
    return experiment_module(experiment).compute_cell(config, cell, finished)


def run_experiment(experiment, config, out_dir, cells=None, executor="local", workers=None, scheduler=None,
                   progress=None, warn=None):
    """Compute the cells not yet in ``out_dir``, then write the summary and figures.

    Before anything is created the folder is checked (see :meth:`RunDir.check_usable`) and the
    experiment's ``preflight(config)`` (if it has one) checks the data against the config; a folder
    this call created is removed again if it fails before finishing a cell.
    ``progress(done, total, cell_id, outer=None)`` is called after each cell (finished or read back)
    and, with the local executor, after each outer iteration of a fit inside a cell (``outer`` is
    ``(iterations done, iterations in all)``);
    ``warn(message)`` receives one-line warnings (invalid cells set aside, a stale lock taken over).
    Returns ``(run, all_cells, computed_ids, figure_paths)``.
    """
    module = experiment_module(experiment)
    run = RunDir(out_dir, experiment, config, check_cell=getattr(module, "check_cell", None), warn=warn)
    run.check_usable()
    cells = module.list_cells(config) if cells is None else cells
    if hasattr(module, "preflight"):
        module.preflight(config)
    try:
        run.open()
        return _run_cells(module, run, config, cells, executor, workers, scheduler, progress)
    except BaseException:
        run.release_lock()
        run.discard_if_empty()
        raise


def _run_cells(module, run, config, cells, executor, workers, scheduler, progress):
    experiment = run.experiment
    todo = [c for c in cells if not run.has_cell(c["id"], c)]
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
        raise ValueError("a warm-started lambda path runs in order: use `executor`='local'")
    finished_cells = run.finished_cells()  # where a cell may read an earlier cell's state
    tasks = [(experiment, config, c, finished_cells) for c in todo]
    fn = compute_task
    if progress and executor == "local":  # cells computed here also report their outer iterations
        def fn(task):
            def within(i, n):
                progress(done, len(cells), task[2]["id"], (i, n))

            with listening(within):
                return compute_task(task)
    try:
        run_tasks(fn, tasks, on_result, executor=executor, workers=workers, scheduler=scheduler)
    finally:
        wanted = {c["id"] for c in cells}
        finished = [c for c in run.read_cells() if c["id"] in wanted]
        figures = module.summarize(run, finished) if finished else []
        run.finish(compute_seconds=time.perf_counter() - t0, cells_total=len(cells), cells_done=len(finished))
    return run, finished, computed, figures


def replot(run_dir, invalid=None):
    """Re-draw the figures and summaries of a run folder from its valid saved cells (no training).

    ``invalid``: a list that receives ``(cell name, problem)`` for each cell that fails validation
    (those are skipped, not moved). Raises ValueError for a folder that is not a readable run.
    """
    import yaml

    run_dir = Path(run_dir)
    try:
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{run_dir / 'config.yaml'} cannot be read as YAML ({' '.join(str(exc).split())[:200]})") \
            from None
    if not isinstance(config, dict):
        raise ValueError(f"{run_dir / 'config.yaml'} is not a run config")
    manifest = RunDir(run_dir, None, config).manifest()
    experiment = manifest.get("experiment") or run_dir.parent.name
    if experiment not in EXPERIMENTS:
        raise ValueError(f"{run_dir} is not a run folder of an rda experiment (experiment {experiment!r})")
    module = experiment_module(experiment)
    run = RunDir(run_dir, experiment, config, check_cell=getattr(module, "check_cell", None))
    cells = run.read_cells(invalid)
    return experiment, cells, (module.summarize(run, cells) if cells else [])
