"""Run an experiment's cells into a run folder, resuming what is already there."""

from __future__ import annotations

import datetime as _dt
import importlib
import time
from pathlib import Path

from ..progress import listening
from .contract import Experiment
from .executors import run_tasks
from .interrupt import EXIT_SIGINT, EXIT_SIGTERM, Interrupted, Terminated, sigterm_as_interrupt
from .config import ConfigError
from .rundir import RunDir

__all__ = ["EXPERIMENTS", "experiment_module", "default_run_dir", "run_experiment", "compute_task", "replot"]

EXPERIMENTS = ("denoise", "outliers", "features", "benchmark")


def experiment_module(name) -> Experiment:
    """The module implementing experiment ``name`` (see :class:`~.contract.Experiment`)."""
    if name not in EXPERIMENTS:
        raise ConfigError(f"unknown experiment {name!r}")
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
    this call created is removed again if it fails before finishing a cell. SIGTERM is handled as SIGINT
    (see :mod:`.interrupt`): either ends in :class:`~.interrupt.Interrupted`, whose message says what was
    kept and whose ``exit_code`` is 130 (SIGINT) or 143 (SIGTERM).
    ``progress(done, total, cell_id, outer=None)`` is called after each cell (finished or read back)
    and, with the local executor, after each outer iteration of a fit inside a cell (``outer`` is
    ``(iterations done, iterations in all)``);
    ``warn(message)`` receives one-line warnings (invalid cells set aside, a stale lock taken over).
    Returns ``(run, all_cells, computed_ids, figure_paths)``.
    """
    with sigterm_as_interrupt():
        module = experiment_module(experiment)
        run = RunDir(out_dir, experiment, config, check_cell=getattr(module, "check_cell", None), warn=warn)
        try:
            run.check_usable()
            cells = module.list_cells(config) if cells is None else cells
            if hasattr(module, "preflight"):
                module.preflight(config)
            run.open()
            result = _run_cells(module, run, config, cells, executor, workers, scheduler, progress)
            run.release_lock()
            return result
        except KeyboardInterrupt as exc:
            run.abandon()
            code = EXIT_SIGTERM if isinstance(exc, Terminated) else EXIT_SIGINT
            raise Interrupted(_what_was_kept(run, "by SIGTERM" if code == EXIT_SIGTERM else ""), code) from None
        except BaseException:
            run.abandon()
            raise


def _what_was_kept(run, how=""):
    """The line an interrupted run ends with: where its finished cells are, or that nothing was kept."""
    what = f"interrupted {how}".strip()
    if run.removed:
        return f"{what} before any cell finished; nothing was kept (the run folder {run.path} it created was removed)"
    if not run.path.exists():
        return f"{what} before anything was written"
    n = len(list(run.cells_dir.glob("*.json"))) if run.cells_dir.is_dir() else 0
    if not n:
        return f"{what} before any cell finished; {run.path} holds no finished cell: re-run the same command to start"
    return f"{what}; {n} finished cell(s) are kept in {run.path}: re-run the same command to resume"


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
        raise ConfigError("a warm-started lambda path runs in order: use `executor`='local'")
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
    from .config import ConfigError, quote, read_yaml
    from .rundir import MANIFEST_MAX_BYTES, read_json

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is not a folder")
    manifest, _ = read_json(run_dir / "manifest.json", MANIFEST_MAX_BYTES, "manifest")
    manifest = manifest if isinstance(manifest, dict) else {}
    experiment = manifest.get("experiment") or run_dir.parent.name
    cfg_file = run_dir / "config.yaml"
    if not cfg_file.exists():
        n = len(list((run_dir / "cells").glob("*.json"))) if (run_dir / "cells").is_dir() else 0
        if not n and not manifest:
            raise ConfigError(f"{run_dir} is not a run folder (no config.yaml, manifest.json or cells in it)")
        command = f"rda {experiment}" if experiment in EXPERIMENTS else "the rda command that made it"
        raise ConfigError(f"config.yaml is missing from {run_dir} ({n} cell file(s) there); to recover, run "
                         f"'{command} --config CONFIG --out {run_dir}' with the config that wrote it: config.yaml is "
                         "written again and finished cells whose fingerprint matches are read back, not recomputed")
    try:
        config = read_yaml(cfg_file, "the run's config")
    except ConfigError as exc:
        raise ConfigError(f"{exc}; it is not a usable run config") from None
    if experiment not in EXPERIMENTS:
        raise ConfigError(f"{run_dir} is not a run folder of an rda experiment (experiment {quote(experiment)})")
    module = experiment_module(experiment)
    run = RunDir(run_dir, experiment, config, check_cell=getattr(module, "check_cell", None))
    cells = run.read_cells(invalid)
    return experiment, cells, (module.summarize(run, cells) if cells else [])
