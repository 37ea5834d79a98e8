"""The ``rda`` command line: a thin shell over :mod:`rda_cli.experiments`.

Errors: an :class:`~rda_cli.errors.RdaError` (a problem with the request) is one ``rda: error:`` line
and exit status 2 (or the error's own ``exit_code``: 1 for a fault met while running, such as an output
folder that changed during the run); a usage error (an unknown option, a bad choice) is one line and
status 2 too; an OSError met while running (e.g. a full disk) one line and status 1; an interruption
one line and status 130 (SIGINT) or 143 (SIGTERM, handled like SIGINT by every command). Any other
exception is a bug in ``rda``: one line naming it and status 1,
or with ``RDA_DEBUG=1`` in the environment the exception itself, with its traceback.
"""

from __future__ import annotations

import os
import sys
import time
from importlib import resources
from pathlib import Path

import click

from . import __version__

EXECUTOR_CHOICES = click.Choice(["local", "processes", "dask"])


# Library and experiment messages name parameters in backticks (`out_dir`); the command line shows its flags.
FLAGS = {"out_dir": "--out", "out": "--out", "config_path": "--config", "overrides": "--set", "executor": "--executor",
         "scheduler": "--scheduler",
         "model_dir": "--model", "data_path": "--data", "array": "--array", "id_column": "--id-column", "lam": "--lam",
         "contamination": "--contamination", "lam_for_fraction": "--lam-for-fraction", "force": "--force", "layers": "--layers", "penalty": "--penalty",
         "missing": "--missing", "members": "--members", "threshold": "--threshold"}
MISSING_OPTION = click.option(
    "--missing", type=click.Choice(["allow", "refuse"]), default="allow", show_default=True,
    help="allow: empty or NaN cells are missing values, left out of the fit and the scores and filled in by "
         "the model; refuse: every cell must be a number")


def as_flags(message):
    r"""``\`out_dir\``` -> ``--out``, ``\`executor\`='local'`` -> ``--executor local`` in a library message."""
    import re

    def flag(m):
        name, value = m.group(1), m.group(2)
        if name not in FLAGS:
            return m.group(0)
        return FLAGS[name] + (f" {value}" if value is not None else "")

    return re.sub(r"`(\w+)`(?:='([^']*)')?", flag, str(message))


def fail(message, code=2):
    """Print a one-line error and exit (never a traceback).

    Exit codes: 2 for a request refused before any work (bad options, config, data, an output
    location that is refused or cannot be written), 1 for a fault met while running (a write that
    fails part-way, e.g. a full disk, or a bug in rda), 130 for an interruption.
    """
    click.echo(f"rda: error: {' '.join(as_flags(message).split())}", err=True)
    sys.exit(code)


def warn(message):
    """Print a one-line warning."""
    click.echo(f"rda: warning: {' '.join(str(message).split())}", err=True)


def fail_oserror(exc, doing="write"):
    from .safeio import oserror_line

    fail(oserror_line(exc, doing), code=1)


def packaged_config(name):
    return resources.files("rda_cli") / "configs" / f"{name}.yaml"


def _load(experiment, config_path, overrides):
    from .experiments.config import load_config
    from .experiments.runner import experiment_module

    module = experiment_module(experiment)
    path = Path(config_path) if config_path else packaged_config(experiment)
    return load_config(path, module.SCHEMA, overrides, module.post_check)


class _Progress:
    """A progress bar over cells (or fits) that also moves inside one: ``outer=(3, 10)`` (outer iterations
    done of a cell's fit) advances it by that fraction of a step, and the line (elapsed time, ETA) is redrawn every
    ``REFRESH`` seconds even when nothing finishes. The bar starts at what was already done when it first
    shows (cells read back by a resumed run), and the ETA counts only the work done since."""

    SCALE = 100  # bar steps per cell, so a cell's outer iterations move it
    REFRESH = 2.0

    def __init__(self, quiet, label):
        import threading

        self.quiet, self.label, self.bar, self.t0 = quiet, label, None, time.time()
        self.text, self.pos, self.base, self.t_base = "", 0, 0, None
        self.lock, self.stop = threading.Lock(), threading.Event()

    def _show(self, _item=None):
        now = time.time()
        eta = ""
        if self.bar is not None and self.pos > self.base and self.t_base is not None:
            left = (now - self.t_base) / (self.pos - self.base) * (self.bar.length - self.pos)
            eta = f", ETA {_duration(left)}"
        return f"{self.text}  {now - self.t0:.0f}s elapsed{eta}"

    def __call__(self, done, total, cell_id=None, outer=None):
        if self.quiet:
            return
        frac = min(1.0, outer[0] / outer[1]) if outer and outer[1] > 0 else 0.0
        self.text = f"{done}/{total}" + (f" ({cell_id}: outer iteration {outer[0]}/{outer[1]})" if outer else
                                         f" ({cell_id})" if cell_id else "")
        with self.lock:
            target = min(int((done + frac) * self.SCALE), total * self.SCALE)
            if self.bar is None:
                self._start(total, target)
            elif target > self.pos:
                self.bar.update(target - self.pos)
                self.pos = target
            else:
                self.bar.render_progress()

    def detail(self, text):
        """Show ``text`` (e.g. the outer iteration of the fit in progress) without moving the bar."""
        if self.quiet or self.bar is None:
            return
        self.text = self.text.split(" (")[0] + f" ({text})"
        with self.lock:
            self.bar.render_progress()

    def _start(self, total, done=0):
        import threading

        self.bar = click.progressbar(length=max(1, total) * self.SCALE, label=self.label, show_eta=False,
                                     show_pos=False, show_percent=True, item_show_func=self._show, file=sys.stderr)
        self.bar.pos = self.pos = self.base = done  # already done: drawn, but not counted in the ETA
        self.bar.finished = done >= self.bar.length
        self.t_base = time.time()
        self.bar.__enter__()

        def tick():
            while not self.stop.wait(self.REFRESH):
                with self.lock:
                    if self.bar is not None:
                        self.bar.render_progress()

        threading.Thread(target=tick, daemon=True).start()

    def close(self):
        self.stop.set()
        with self.lock:
            if self.bar is not None:
                self.bar.__exit__(None, None, None)
                self.bar = None


def _duration(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else (
        f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s")


def report_error(exc):
    """Exit with the line for ``exc``, an exception that ended a command (see the module docstring).
    Called from an ``except`` block: with ``RDA_DEBUG=1`` a bug is re-raised there, traceback and all."""
    from .errors import RdaError

    if isinstance(exc, RdaError):
        fail(exc, code=getattr(exc, "exit_code", 2))
    if isinstance(exc, OSError):
        fail_oserror(exc)
    if os.environ.get("RDA_DEBUG", "") not in ("", "0"):
        raise exc
    click.echo(f"rda: error: a bug in rda: {type(exc).__name__}: {' '.join(str(exc).split())[:500]} "
               "(run again with RDA_DEBUG=1 to see the traceback, and please report it)", err=True)
    sys.exit(1)


class _Group(click.Group):
    """The command group: every exception a command raises ends as one line (:func:`report_error`), click's
    usage errors and an interruption outside a command's guarded call too."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        from .experiments.interrupt import EXIT_SIGINT, EXIT_SIGTERM, Terminated

        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except getattr(click.exceptions, "NoArgsIsHelpError", ()) as exc:  # plain `rda`: the help, as click shows it
            exc.show()
            sys.exit(exc.exit_code)
        except click.exceptions.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else "rda"
            fail(f"{exc.format_message()} (see {where} --help)", code=exc.exit_code)
        except click.exceptions.ClickException as exc:
            fail(exc.format_message(), code=exc.exit_code)
        except (click.exceptions.Abort, KeyboardInterrupt) as exc:  # outside a command's guarded call
            cause = exc.__cause__ if isinstance(exc, click.exceptions.Abort) else exc
            fail_interrupted(getattr(cause, "message", "interrupted"),
                 code=getattr(cause, "exit_code", EXIT_SIGTERM if isinstance(cause, Terminated) else EXIT_SIGINT))
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise  # click's own: usage errors, --help, --version
        except Exception as exc:
            report_error(exc)


def fail_interrupted(message, code):
    """:func:`fail` for an interruption that has been handled: further SIGINT/SIGTERM are ignored, and a
    KeyboardInterrupt already pending (pyarrow re-sends the signal that cancelled a read; Python raises
    it at the next instruction) cannot replace the line and the status 130 / 143 with a death by signal."""
    _ignore_further_signals()
    line = f"rda: error: {' '.join(as_flags(message).split())}"
    while True:
        try:
            if line is not None:
                click.echo(line, err=True)
                line = None
            sys.exit(code)
        except KeyboardInterrupt:
            continue


def _ignore_further_signals():
    """After an interruption has been handled (partial files removed), a second SIGINT or SIGTERM --
    pyarrow re-sends the one that cancelled a read, an impatient user presses Ctrl-C twice -- must not
    kill the process while it prints its line and exits with 130 / 143."""
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(sig, signal.SIG_IGN)
        except ValueError:  # not the main thread (e.g. the command invoked from a worker thread)
            pass


def _guarded(call, progress, interrupted):
    """``call()``, the progress bar closed in every case (before any error line); an interruption exits
    with the line ``interrupted`` and status 130 (SIGINT) or 143 (SIGTERM). Other errors go on to
    :func:`report_error`."""
    from .experiments.interrupt import EXIT_SIGINT, EXIT_SIGTERM, Terminated

    try:
        return call()
    except KeyboardInterrupt as exc:  # an experiments.interrupt.Interrupted carries its own line and status
        _ignore_further_signals()
        progress.close()
        how = " by SIGTERM" if isinstance(exc, Terminated) else ""
        fail_interrupted(getattr(exc, "message", interrupted.replace("interrupted", f"interrupted{how}", 1)),
             code=getattr(exc, "exit_code", EXIT_SIGTERM if isinstance(exc, Terminated) else EXIT_SIGINT))
    finally:
        progress.close()


def _run(experiment, config, out, quiet, executor, workers, scheduler, cells=None):
    from .experiments.runner import default_run_dir, experiment_module, run_experiment

    out_dir = Path(out) if out else default_run_dir(experiment, config)
    progress = _Progress(quiet, f"rda {experiment}")
    t0 = time.time()
    run, finished, computed, figures = _guarded(
        lambda: run_experiment(experiment, config, out_dir, cells=cells, executor=executor, workers=workers,
                               scheduler=scheduler, progress=progress, warn=warn),
        progress, f"interrupted; finished cells are kept in {out_dir}: re-run the same command to resume")
    line = experiment_module(experiment).one_line_summary(run, finished)
    click.echo(f"rda {experiment}: {line}; {len(computed)} computed, {len(finished) - len(computed)} read back "
               f"in {time.time() - t0:.0f}s -> {out_dir}")


def _common_options(f):
    from .experiments.config import MAX_WORKERS

    options = [
        click.option("--config", "config_path", default=None, metavar="FILE",
                     help="YAML experiment config  [default: the packaged configs/<experiment>.yaml]"),
        click.option("--out", default=None, metavar="DIR",
                     help="run folder  [default: results/<experiment>/<run_name>]"),
        click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                     help="override a config key by its dotted path, e.g. model.inner_epochs=5 (repeatable)"),
        click.option("--quiet", is_flag=True, help="no progress bar"),
        click.option("--executor", type=EXECUTOR_CHOICES, default="local", show_default=True,
                     help="where cells run: sequentially here, a local process pool, or a Dask cluster"),
        click.option("--workers", type=click.IntRange(min=1, max=MAX_WORKERS), default=2, show_default=True,
                     help="processes for --executor processes"),
        click.option("--scheduler", default=None, metavar="ADDRESS",
                     help="Dask scheduler address for --executor dask, e.g. tcp://127.0.0.1:8786"),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="rda")
def main():
    """Robust Deep Autoencoders (Zhou & Paffenroth, KDD 2017): reproduce the paper, find anomalies."""
    from ._process import setup_process
    from .experiments.interrupt import sigterm_as_interrupt

    setup_process()  # TensorFlow's start-up chatter is not for our users; figures off-screen
    # SIGTERM ends every command as Ctrl-C does (cleaned up, one line, exit 143), from here until it returns
    click.get_current_context().with_resource(sigterm_as_interrupt())


def _seeds_option(f):
    from .experiments.config import MAX_SEEDS

    return click.option("--seeds", "n_seeds", type=click.IntRange(min=1, max=MAX_SEEDS), default=None, metavar="N",
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
@click.argument("run_dir")
def plot(run_dir):
    """Re-draw every figure of a (partly) finished run, or of an rda detect result folder, from its saved
    results, without training."""
    from .experiments.runner import replot
    from .outputs import MARKER

    if (Path(run_dir) / MARKER).is_file():  # an rda detect result
        from .outputs import replot as replot_detect

        n_rows, figures = replot_detect(run_dir)
        click.echo(f"rda plot: rda detect result with {n_rows} rows; wrote {', '.join(figures)}")
        return

    invalid = []
    experiment, cells, figures = replot(run_dir, invalid)
    if invalid:
        names = ", ".join(f"{name} ({problem})" for name, problem in invalid[:5])
        more = f" and {len(invalid) - 5} more" if len(invalid) > 5 else ""
        warn(f"{len(invalid)} invalid cell(s) not drawn: {names}{more}; re-run the experiment on this folder "
             "to recompute them")
    click.echo(f"rda plot: {experiment} run with {len(cells)} cells; wrote "
               + (", ".join(Path(f).name for f in figures) or "no figures"))


class _TableRuleHelp(click.Command):
    """A command whose help quotes the table rule's numbers (``{RULE.name}``) from their one home,
    :data:`rda_cli.table_rule.DEFAULT_RULE`, read when the help is shown (importing NumPy at start-up would
    widen the window in which a signal finds the command without its handlers)."""

    def get_help(self, ctx):
        import re

        from .table_rule import DEFAULT_RULE

        return re.sub(r"\{RULE\.(\w+)\}", lambda m: f"{getattr(DEFAULT_RULE, m.group(1)):g}", super().get_help(ctx))


@main.command(cls=_TableRuleHelp)
@click.option("--data", "data_path", required=True, metavar="FILE",
              help=".csv (header row optional, detected), .parquet, .npy (2-D) or .npz (array 'X', else the "
                   "first 2-D one)")
@click.option("--penalty", type=click.Choice(["l21_rows", "l1", "l21_cols"]), default="l21_rows",
              help="l21_rows: outlying rows; l1: single bad cells; l21_cols: corrupted columns")
@click.option("--lam", type=float, default=None,
              help="fix lambda (paper scaling, on the [0, 1]-scaled data: l2,1 threshold = lambda x rows; "
                   "l1: 10 lambda / mu, see README)")
@click.option("--contamination", type=float, default=None, metavar="F",
              help="the expected fraction of anomalies, as in PyOD: flag the top F of the ensemble's scores (a "
                   "cut-off; the fit does not depend on it)  [default: the ensemble's robust cut-off, median + 2.5 x "
                   "1.4826 MAD of the scores]")
@click.option("--lam-for-fraction", type=float, default=None, metavar="F",
              help="one RDA: lambda by bisection so that about F of the rows (columns for l21_cols) are flagged "
                   "(rda_cli.selection.lambda_for_fraction)  [default: without --lam, the knee rule]")
@click.option("--members", type=click.IntRange(1, 8), default=None, metavar="N",
              help="members of the RDA ensemble (the default detector)  [default: {RULE.n_members}; 1: a single RDA]")
@click.option("--layers", default=None, metavar="H1,H2,...",
              help="one RDA's hidden layer sizes; the input width is put in front  [default: the table rule's, "
                   "h = clip(ceil(width/2), {RULE.hidden_min}, {RULE.hidden_max}), ceil(h/2)]")
@click.option("--id-column", default=None, metavar="NAME", help="CSV column holding row ids (not a feature)")
@click.option("--array", "array_name", default=None, metavar="NAME",
              help=".npz input: the array to read  [default: 'X', or the only 2-D array]")
@click.option("--out", default=None, metavar="DIR",
              help="result folder, new or empty  [default: results/detect/<data file stem>]")
@click.option("--force", is_flag=True,
              help="replace an --out folder that an earlier rda detect wrote (never any other folder)")
@click.option("--set", "overrides", multiple=True, metavar="NAME=VALUE",
              help="override an estimator setting, e.g. inner_epochs=20, random_state=1 (repeatable)")
@MISSING_OPTION
@click.option("--quiet", is_flag=True, help="no progress bar")
def detect(data_path, penalty, lam, contamination, lam_for_fraction, members, layers, id_column, array_name, out, force, overrides,
           missing, quiet):
    """Find outlying rows (or cells, or columns) in your own table with an RDA.

    Default: the RDA ensemble of the table rule (rda_cli/table_rule.py): columns scaled robustly (1st..99th
    percentile -> [0, 1]), {RULE.n_members} members (--members) whose pilots learn at learning rates 0.01 and
    0.001, each a pilot autoencoder then a warm l2,1 RDA, a per-feature tail score and an Isolation Forest
    (the networks do not learn the fraction {RULE.isolate} of rows these two score highest: isolate);
    a row's score is their averaged robust z-score minus the cut-off (> 0: flagged); --set changes the rule's
    settings (e.g. pilot_steps=100, random_state=1).

    With --lam, --lam-for-fraction, or --penalty l1 / l21_cols: one RDA on min-max scaled features ([0, 1],
    constant columns to 0.5; the scaler is saved with the model), the table rule's single model (as
    rda_cli.pyod_detector.RDA fits it): its network from the width (--layers), {RULE.pilot_outer} outer
    iterations of about {RULE.pilot_steps} gradient steps at learning rate {RULE.pilot_learning_rate}, batch
    min(rows, max({RULE.batch_min}, ceil(rows/{RULE.max_steps_per_epoch}))), no re-initialisation, random_state=0
    (change with --set). Without --lam or --lam-for-fraction, lambda is chosen label-free at the knee of the number
    of flagged groups vs lambda over 8 lambdas (9 fits).

    Writes scores.csv (row,score,flagged,top_features; for the row penalties score > 0 means flagged; a flagged
    row's top features by share of its S row), explain.csv (each flagged row's top features: value, expected
    value and share, in the table's units), L.npy and S.npy in the original units, imputed.npy (with missing
    cells), model/ (for rda score), score_hist.png, top_rows.png and report.md. With --penalty l21_cols the
    columns are what is flagged (columns.csv: each column's S norm and flag); no row is, and a row's score is
    its residual norm (a ranking, > 0 for any row the network does not fit exactly).
    """
    from .detect import detect as run_detect
    from .detect_report import plural
    from .progress import listening
    from .safeio import show_path

    progress = _Progress(quiet, "rda detect")
    with listening(lambda i, n: progress.detail(f"outer iteration {i}/{n}")):
        info = _guarded(
            lambda: run_detect(data_path, out, penalty=penalty, lam=lam, contamination=contamination,
                               lam_for_fraction=lam_for_fraction, layers=layers,
                               id_column=id_column, overrides=overrides, progress=progress, force=force,
                               array=array_name, missing=missing, members=members),
            progress, "interrupted; nothing was written")
    if "flagged_columns" in info:  # a column penalty flags columns, not rows
        flagged = f"{len(info['flagged_columns'])} of {info['n_features']} columns flagged"
    else:
        flagged = f"{info['n_flagged']} of {info['n_rows']} rows flagged"
    what = "columns" if penalty == "l21_cols" else "rows"
    if info.get("detector") == "ensemble":
        click.echo(f"rda detect: {flagged} by the RDA ensemble ({plural(info['n_members'], 'member')}; cut-off "
                   f"{info['threshold']:.4g}) -> {show_path(info['out_dir'])}")
        return
    click.echo(f"rda detect: {flagged} at lambda={info['lam']:.4g} (threshold {info['threshold']:.4g}; {what} "
               f"penalty {penalty}) -> {show_path(info['out_dir'])}")
    if info.get("none_flagged"):
        from .detect_report import none_flagged_line

        click.echo(f"rda detect: no row flagged: {none_flagged_line(info)}")



@main.command()
@click.option("--model", "model_dir", required=True, metavar="DIR",
              help="the model/ folder written by rda detect, or its result folder")
@click.option("--data", "data_path", required=True, metavar="FILE",
              help="new rows: .csv (read in chunks: any length), .parquet, .npy or .npz; with a header, columns "
                   "are matched to the model's by name (any order)")
@click.option("--id-column", default=None, metavar="NAME",
              help="CSV column holding row ids (not a feature)  [default: the model's id column if the file has "
                   "it, else rows are numbered from 0]")
@click.option("--contamination", type=float, default=None, metavar="F",
              help="flag the top fraction F of these rows' scores (PyOD's contamination: a cut-off on the scores)  "
                   "[default: the model's cut-off]")
@click.option("--threshold", type=float, default=None, metavar="T",
              help="flag rows whose score on the model's scale (detect's scores.csv: 0 is the model's cut-off) "
                   "exceeds T  [default: 0]")
@click.option("--array", "array_name", default=None, metavar="NAME",
              help=".npz input: the array to read  [default: 'X', or the only 2-D array]")
@click.option("--out", default="scores.csv", show_default=False, metavar="FILE",
              help="output CSV (row,score,flagged,top_features), its histogram beside it as <FILE stem>_hist.png  "
                   "[default: scores.csv in the current folder]; an existing file is replaced only if rda wrote it")
@click.option("--force", is_flag=True, help="replace an existing --out file (or its histogram) that rda did not "
                                            "write (never the input file or a file in the model folder)")
@MISSING_OPTION
def score(model_dir, data_path, id_column, contamination, threshold, array_name, out, force, missing):
    """Score new rows with a model saved by rda detect (higher is more abnormal; > 0 is flagged, except by an
    l21_cols model, which flags columns: its score is a row's residual norm and no row is flagged).

    The saved scaler is applied first; values outside the training range are not clipped (they fall outside
    [0, 1], which the network cannot reconstruct, so they raise the score). --contamination or --threshold
    move the cut-off: the scores written are then the model's less the new cut-off, so > 0 is still flagged.
    """
    from .detect import score as run_score
    from .safeio import show_path

    info = _guarded(lambda: run_score(model_dir, data_path, out, force=force, array=array_name, missing=missing,
                                      id_column=id_column, contamination=contamination, threshold=threshold),
                    _Progress(True, "rda score"), "interrupted; nothing was written")
    if not info["rows_flagged"]:
        what = f"0 of {info['n_rows']} rows flagged (an l21_cols model flags columns; the scores are residual norms)"
    else:
        what = f"{info['n_flagged']} of {info['n_rows']} rows flagged ({info['how']})"
    click.echo(f"rda score: {what} -> {show_path(info['out'])}, histogram {show_path(info['figure'])}")


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
