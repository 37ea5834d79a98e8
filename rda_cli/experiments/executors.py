"""Where cells run: in this process, in a local process pool, or on a Dask cluster.

Every executor calls ``fn(task)`` for each task and hands ``(task, result)`` back to the calling
process as each finishes, so results are written by the caller as soon as they exist, whoever
computed them: an interrupted sweep loses at most the cells in flight.

Pool workers die with their parent: each asks the kernel for SIGKILL when its parent exits
(``prctl(PR_SET_PDEATHSIG)`` on Linux) and also watches ``os.getppid()`` from a thread (every
:data:`PARENT_CHECK_SECONDS`, on every platform); an interrupted ``run_tasks`` stops its workers
before it returns.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

from .config import ConfigError

__all__ = ["EXECUTORS", "run_tasks"]

EXECUTORS = ("local", "processes", "dask")
PARENT_CHECK_SECONDS = 1.0
# not TF_NUM_INTRAOP_THREADS: see limit_threads
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def threads_per_worker(workers):
    """Cores per worker when ``workers`` processes share this machine (at least 1)."""
    return max(1, (os.cpu_count() or 1) // max(1, int(workers)))


def limit_threads(threads):
    """Make this (fresh) process use ``threads`` threads for the BLAS libraries and the prox step, and
    one TensorFlow inter-op thread.

    Called first thing in each pool worker: N workers each running multi-thread NumPy products on
    N cores would fight over them. TensorFlow's intra-op pool keeps its default size, the one the
    calling process has: its kernels split sums by thread, so another size would change a cell's
    numbers in the last float32 bits (the same config and seed give the same numbers in-process and in a pool).
    TensorFlow reads its variables when it starts; a variable the user already set is kept.
    Also applies the command's process settings (:func:`rda_cli._process.setup_process`).
    """
    from .._process import setup_process

    setup_process()
    for var in THREAD_VARIABLES:
        os.environ.setdefault(var, str(threads))
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(int(os.environ["OMP_NUM_THREADS"]))
    except Exception:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass


def die_with_parent(parent_pid):
    """End this (worker) process as soon as process ``parent_pid``, its parent, is gone.

    On Linux the kernel is asked to send SIGKILL when the parent exits (``PR_SET_PDEATHSIG``); on every
    platform a daemon thread also checks ``os.getppid()`` every :data:`PARENT_CHECK_SECONDS` and exits
    when the parent has changed (the process was re-parented). Exits at once if the parent is gone already.
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1: PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # pragma: no cover - no prctl: the thread below still watches
            pass
    if os.getppid() != parent_pid:
        os._exit(1)

    def watch():
        while True:
            time.sleep(PARENT_CHECK_SECONDS)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="rda-parent-watch", daemon=True).start()


def init_worker(threads, parent_pid):
    """A pool worker's first step: die with the parent (:func:`die_with_parent`), then :func:`limit_threads`."""
    die_with_parent(parent_pid)
    limit_threads(threads)


def _stop_workers(pool, grace=2.0):
    """Stop a pool's worker processes now (the cells they run are abandoned): SIGTERM, then SIGKILL."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    for proc in procs:
        try:
            proc.terminate()
        except (OSError, ValueError, AttributeError):
            pass
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join(1.0)
        except (OSError, ValueError, AttributeError, AssertionError):
            pass
    pool.shutdown(wait=False, cancel_futures=True)


def run_tasks(fn, tasks, on_result, executor="local", workers=None, scheduler=None):
    """Run ``fn`` over ``tasks``; call ``on_result(task, result)`` for each, in completion order."""
    tasks = list(tasks)
    if not tasks:
        return
    if executor == "local":
        for task in tasks:
            on_result(task, fn(task))
    elif executor == "processes":
        # "spawn": TensorFlow's runtime does not survive fork()
        ctx = multiprocessing.get_context("spawn")
        workers = workers or 2
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=init_worker,
                                   initargs=(threads_per_worker(workers), os.getpid()))
        try:
            futures = {pool.submit(fn, task): task for task in tasks}
            for fut in as_completed(futures):
                on_result(futures[fut], fut.result())
        except BaseException:
            _stop_workers(pool)
            raise
        pool.shutdown(wait=True)
    elif executor == "dask":
        if not scheduler:
            raise ConfigError("the dask executor needs a scheduler address (`scheduler`, e.g. tcp://HOST:PORT)")
        from dask.distributed import Client
        from dask.distributed import as_completed as dask_as_completed

        with Client(scheduler, timeout="30s") as client:
            futures = client.map(fn, tasks, pure=False)
            index = {fut.key: task for fut, task in zip(futures, tasks)}
            try:
                for fut in dask_as_completed(futures):
                    on_result(index[fut.key], fut.result())
            except BaseException:
                client.cancel(futures)
                raise
    else:
        raise ConfigError(f"executor must be one of {EXECUTORS}, got {executor!r}")
