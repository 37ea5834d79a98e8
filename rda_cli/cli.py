"""The ``rda`` command line: a thin shell over :mod:`rda_cli.experiments`."""

from __future__ import annotations

import os
import sys
import time
from importlib import resources
from pathlib import Path

import click

from . import __version__

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter is not for our users

EXECUTOR_CHOICES = click.Choice(["local", "processes", "dask"])


def fail(message, code=2):
    """Print a one-line error and exit (never a traceback)."""
    click.echo(f"rda: error: {' '.join(str(message).split())}", err=True)
    sys.exit(code)


def packaged_config(name):
    return resources.files("rda_cli") / "configs" / f"{name}.yaml"


def _load(experiment, config_path, overrides):
    from .experiments.config import ConfigError, load_config
    from .experiments.runner import experiment_module

    module = experiment_module(experiment)
    path = Path(config_path) if config_path else packaged_config(experiment)
    try:
        return load_config(path, module.SCHEMA, overrides, module.post_check)
    except ConfigError as exc:
        fail(exc)


class _Progress:
    def __init__(self, quiet, label):
        self.quiet, self.label, self.bar, self.t0 = quiet, label, None, time.time()

    def __call__(self, done, total, cell_id):
        if self.quiet:
            return
        if self.bar is None:
            self.bar = click.progressbar(length=total, label=self.label, show_eta=True, show_pos=True,
                                         item_show_func=lambda _: f"{time.time() - self.t0:.0f}s elapsed",
                                         file=sys.stderr)
            self.bar.__enter__()
            self.bar.update(done)
            return
        self.bar.update(1, current_item=cell_id)

    def close(self):
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def _run(experiment, config, out, quiet, executor, workers, scheduler, cells=None):
    from .data import DataError
    from .experiments.config import ConfigError
    from .experiments.runner import default_run_dir, experiment_module, run_experiment

    out_dir = Path(out) if out else default_run_dir(experiment, config)
    progress = _Progress(quiet, f"rda {experiment}")
    t0 = time.time()
    try:
        run, finished, computed, figures = run_experiment(
            experiment, config, out_dir, cells=cells, executor=executor, workers=workers,
            scheduler=scheduler, progress=progress)
    except KeyboardInterrupt:
        progress.close()
        fail(f"interrupted; finished cells are kept in {out_dir}: re-run the same command to resume", code=130)
    except (ConfigError, DataError, ValueError) as exc:
        progress.close()
        fail(exc)
    progress.close()
    line = experiment_module(experiment).one_line_summary(run, finished)
    click.echo(f"rda {experiment}: {line}; {len(computed)} computed, {len(finished) - len(computed)} read back "
               f"in {time.time() - t0:.0f}s -> {out_dir}")


def _common_options(f):
    options = [
        click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
                     help="YAML experiment config  [default: the packaged paper-scale config]"),
        click.option("--out", type=click.Path(file_okay=False), default=None,
                     help="run folder  [default: results/<experiment>/<run_name>]"),
        click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                     help="override a config key by its dotted path, e.g. model.inner_epochs=5 (repeatable)"),
        click.option("--quiet", is_flag=True, help="no progress bar"),
        click.option("--executor", type=EXECUTOR_CHOICES, default="local", show_default=True,
                     help="where cells run: sequentially here, a local process pool, or a Dask cluster"),
        click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True,
                     help="processes for --executor processes"),
        click.option("--scheduler", default=None, metavar="ADDRESS",
                     help="Dask scheduler address for --executor dask, e.g. tcp://127.0.0.1:8786"),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="rda")
def main():
    """Robust Deep Autoencoders (Zhou & Paffenroth, KDD 2017): reproduce the paper, find anomalies."""


def _seeds_option(f):
    return click.option("--seeds", "n_seeds", type=click.IntRange(min=1), default=None, metavar="N",
                        help="repeat over seeds 0..N-1 with 95% intervals (sets the config's seeds)  "
                             "[default: the config's seeds, or just its seed]")(f)


def _with_seeds(overrides, n_seeds):
    if n_seeds is None:
        return overrides
    return tuple(overrides) + (f"seeds={list(range(n_seeds))}",)


@main.command()
@_common_options
@_seeds_option
def denoise(config_path, out, overrides, quiet, executor, workers, scheduler, n_seeds):
    """The paper's Figure 2: l1 RDA vs plain autoencoder features under pixel corruption."""
    config = _load("denoise", config_path, _with_seeds(overrides, n_seeds))
    _run("denoise", config, out, quiet, executor, workers, scheduler)


@main.command()
@_common_options
@click.option("--sweep-lambda", is_flag=True, help="run the config's lambda grid instead of its single lambda")
@_seeds_option
def outliers(config_path, out, overrides, quiet, executor, workers, scheduler, sweep_lambda, n_seeds):
    """The paper's Figures 4-6: l2,1 RDA vs Isolation Forest and other baselines on MNIST "4"s with other digits."""
    from .experiments.outliers import list_cells

    config = _load("outliers", config_path, _with_seeds(overrides, n_seeds))
    _run("outliers", config, out, quiet, executor, workers, scheduler, cells=list_cells(config, sweep_lambda))


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
def plot(run_dir):
    """Re-draw every figure of a (partly) finished run from its saved results, without training."""
    from .experiments.runner import replot

    if not (Path(run_dir) / "config.yaml").exists():
        fail(f"{run_dir} is not a run folder (no config.yaml in it)")
    try:
        experiment, cells, figures = replot(run_dir)
    except (ValueError, OSError) as exc:
        fail(exc)
    click.echo(f"rda plot: {experiment} run with {len(cells)} cells; wrote "
               + (", ".join(Path(f).name for f in figures) or "no figures"))


@main.command()
@click.option("--data", "data_path", required=True, metavar="FILE",
              help=".csv (header row optional, detected), .npy (2-D) or .npz (array 'X', else the first 2-D one)")
@click.option("--penalty", type=click.Choice(["l21_rows", "l1", "l21_cols"]), default="l21_rows",
              help="l21_rows: outlying rows; l1: single bad cells; l21_cols: corrupted columns")
@click.option("--lam", type=float, default=None,
              help="fix lambda (paper scaling, on the [0, 1]-scaled data: l2,1 threshold = lambda x rows; "
                   "l1: 10 lambda / mu, see README)")
@click.option("--contamination", type=float, default=None, metavar="F",
              help="choose lambda so that about this fraction of rows (l21_cols: columns) is flagged, by bisection "
                   "on log lambda (one fit per step, at most 8)  [default without --lam: the knee rule]")
@click.option("--layers", default=None, metavar="H1,H2,...",
              help="hidden layer sizes; the input width is put in front  [default: rda.default_layers(width): "
                   "max(2, ceil(width/2)), max(1, ceil(width/4))]")
@click.option("--id-column", default=None, metavar="NAME", help="CSV column holding row ids (not a feature)")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="result folder  [default: results/detect/<data file stem>]")
@click.option("--set", "overrides", multiple=True, metavar="NAME=VALUE",
              help="override an estimator setting, e.g. inner_epochs=20, random_state=1 (repeatable)")
@click.option("--quiet", is_flag=True, help="no progress bar")
def detect(data_path, penalty, lam, contamination, layers, id_column, out, overrides, quiet):
    """Find outlying rows (or cells, or columns) in your own table with an RDA.

    Features are min-max scaled to [0, 1] (constant columns to 0.5); the scaler is saved with the model.
    Default schedule: outer_iterations=10, inner_epochs=10, batch_size=min(133, rows), learning_rate=0.001,
    reinitialize=false, random_state=0 (change with --set). Without --lam or --contamination, lambda is
    chosen label-free at the knee of the number of flagged groups vs lambda over 8 lambdas (9 fits).

    Writes scores.csv (row,score,flagged; score > 0 means flagged), L.npy and S.npy in the original
    units, model/ (for rda score), score_hist.png and report.md.
    """
    from .detect import DetectError, detect as run_detect
    from .tabular import TableError

    progress = _Progress(quiet, "rda detect")
    try:
        info = run_detect(data_path, out, penalty=penalty, lam=lam, contamination=contamination, layers=layers,
                          id_column=id_column, overrides=overrides, progress=progress)
    except KeyboardInterrupt:
        progress.close()
        fail("interrupted; nothing was written", code=130)
    except (DetectError, TableError, ValueError) as exc:
        progress.close()
        fail(exc)
    progress.close()
    what = "columns" if penalty == "l21_cols" else "rows"
    extra = f" ({len(info['flagged_columns'])} columns flagged)" if "flagged_columns" in info else ""
    click.echo(f"rda detect: {info['n_flagged']} of {info['n_rows']} rows flagged{extra} at lambda={info['lam']:.4g} "
               f"(threshold {info['threshold']:.4g}; {what} penalty {penalty}) -> {info['out_dir']}")


@main.command()
@click.option("--model", "model_dir", required=True, metavar="DIR", help="the model/ folder written by rda detect")
@click.option("--data", "data_path", required=True, metavar="FILE", help="new rows: .csv, .npy or .npz, same columns")
@click.option("--out", type=click.Path(dir_okay=False), default="scores.csv", show_default=False,
              help="output CSV (row,score,flagged)  [default: scores.csv in the current folder]")
def score(model_dir, data_path, out):
    """Score new rows with a model saved by rda detect (higher is more abnormal; > 0 is flagged).

    The saved scaler is applied first; values outside the training range are not clipped (they fall outside
    [0, 1], which the network cannot reconstruct, so they raise the score). If the model was fitted with an id
    column and the new CSV has it, its values name the rows; otherwise rows are numbered from 0.
    """
    from .detect import DetectError, score as run_score
    from .tabular import TableError

    try:
        info = run_score(model_dir, data_path, out)
    except (DetectError, TableError, ValueError) as exc:
        fail(exc)
    click.echo(f"rda score: {info['n_flagged']} of {info['n_rows']} rows flagged -> {info['out']}")


@main.command()
@_common_options
def features(config_path, out, overrides, quiet, executor, workers, scheduler):
    """l2,1-over-columns RDA finds stuck pixels (corrupted features) in MNIST images, swept over lambda."""
    config = _load("features", config_path, overrides)
    _run("features", config, out, quiet, executor, workers, scheduler)


@main.command()
@_common_options
@click.option("--data", "data_paths", multiple=True, metavar="PATH",
              help="ADBench .npz file, folder or glob (repeatable; sets data.paths)  [default: the config's, else "
                   "$RDA_ADBENCH_DIR or ../shared/data/adbench]")
@click.option("--detectors", default=None, metavar="A,B,...",
              help="detectors to run, e.g. rda,ae,iforest (sets the config's detectors)")
@_seeds_option
def benchmark(config_path, out, overrides, quiet, executor, workers, scheduler, data_paths, detectors, n_seeds):
    """RDA and the field's detectors on ADBench's tabular sets, label-free (70/30 split, AUROC, AP, ranks)."""
    import json

    extra = list(_with_seeds(overrides, n_seeds))
    if data_paths:
        extra.append(f"data.paths={json.dumps(list(data_paths))}")
    if detectors is not None:
        extra.append(f"detectors={json.dumps([d.strip() for d in detectors.split(',') if d.strip()])}")
    config = _load("benchmark", config_path, tuple(extra))
    _run("benchmark", config, out, quiet, executor, workers, scheduler)


if __name__ == "__main__":  # pragma: no cover
    main()
