"""The worker processes of a sweep: each loads the market data once and replays it many times.

Where it sits: :mod:`lts.backtest.sweep` and :mod:`lts.backtest.walk_forward` hand
:func:`run_jobs` the combinations to run (:class:`Job`); a :class:`SweepPool` of worker
processes (``spawn``: a fresh interpreter, no state forked from the parent) runs them through
:func:`lts.backtest.replay.run_replay` and the results come back as they finish.

Per-run costs a worker pays once instead (measured in bench/sweep.py):

- the market data: read once into a :class:`~lts.backtest.market_tape.MarketTape`, not parsed
  again for every run;
- the plugin registry and a strategy file: loaded once;
- the garbage collector's full pass: ``run_replay`` collects the whole heap before it starts
  (:func:`lts.engine.heap.freeze_startup_heap`), 30-100 ms a run here for a worker's ~90k
  objects, and thaws it at the end. The worker freezes its heap just before each run, so that
  pass finds nothing to scan, and collects in full every ``_COLLECT_EVERY`` runs instead
  (what one run left is thawed when it ends, so nothing stays frozen past the next full pass).

Each run is ``run_replay`` without a database URL: in memory (fills kept in memory, no
database, no file written).

Ctrl-C: the workers ignore SIGINT (they are spawned with it ignored, so a terminal's Ctrl-C,
sent to the whole process group, reaches only the parent); the parent stops submitting, cancels
what is queued and terminates the workers (:meth:`SweepPool.abort`).
"""

import gc
import importlib.util
import logging
import multiprocessing
import os
import signal
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, replace
from decimal import Decimal
from types import TracebackType

from lts.backtest.market_tape import MarketTape
from lts.backtest.replay import ReplayOptions, ReplayResult, ReplaySummary
from lts.backtest.sweep_grid import GridValue, plain_params
from lts.errors import ConfigError, LtsError

__all__ = ["Job", "JobResult", "MarketFiles", "SweepFailed", "SweepPool", "WorkerSetup",
           "default_workers", "run_jobs"]

log = logging.getLogger("lts.sweep")

_COLLECT_EVERY = 16


class SweepFailed(LtsError):
    """A combination's replay failed with an error the user can act on (bad data, bad
    params); the message names the combination."""


@dataclass(frozen=True)
class MarketFiles:
    """Market data files, opened by each worker (see :func:`lts.backtest.data.open_market_data`)."""

    paths: tuple[str, ...]
    symbol: str | None = None
    tick_size: Decimal | None = None

    def record(self) -> MarketTape:
        from lts.backtest.data import open_market_data

        return MarketTape.record(open_market_data(self.paths, self.symbol, self.tick_size))


@dataclass(frozen=True)
class WorkerSetup:
    """What every worker is started with: the market data (files, or a tape already in
    memory), the replay's options (each job adds its strategy params; never a database) and the
    log level of its engine loggers."""

    market: MarketFiles | MarketTape
    options: ReplayOptions
    log_level: str = "WARNING"


@dataclass(frozen=True)
class Job:
    """One replay: a combination (``key`` numbers it for the caller), over the whole market or
    the bars with ``window[0] <= time < window[1]``; ``keep`` brings the fills, the curve and
    the trades back too (else the summary only). ``group`` is the caller's (a walk-forward
    window's number)."""

    key: int
    params: dict[str, GridValue]
    window: tuple[int, int] | None = None
    keep: bool = False
    group: int | None = None


@dataclass
class JobResult:
    job: Job
    summary: ReplaySummary | None = None
    result: ReplayResult | None = None
    error: str | None = None  # an LtsError's message (the user's to fix)
    crash: str | None = None  # an unexpected error's traceback
    seconds: float = 0.0  # the whole run in the worker


def default_workers() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# -- inside a worker ---------------------------------------------------------------------------

class _Worker:
    def __init__(self, setup: WorkerSetup) -> None:
        from lts.plugins.registry import Registry
        from lts.plugins.strategy_files import is_strategy_file, load_strategy_file

        self.options = replace(setup.options, db_url=None, progress=False)
        self.registry = Registry.discover(("strategy", "portfolio", "broker", "pipeline"),
                                          lazy=True)
        if is_strategy_file(self.options.strategy):
            load_strategy_file(self.registry, self.options.strategy)
        market = setup.market
        self.tape = market if isinstance(market, MarketTape) else market.record()
        self.runs = 0
        self.uvloop = importlib.util.find_spec("uvloop") is not None

    def run(self, job: Job) -> JobResult:
        import anyio

        from lts.backtest.replay import run_replay

        started = time.perf_counter()
        out = JobResult(job)
        try:
            market = self.tape if job.window is None else self.tape.window(*job.window)
            opts = replace(self.options, params={**self.options.params,
                                                 **plain_params(job.params)})
            gc.freeze()  # see the module docstring
            results: list[ReplayResult] = []

            async def replay() -> None:
                # not the main task's result: Python 3.11 formats the main task (and its
                # result, every fill) when asyncio's Runner restores the SIGINT handler
                results.append(await run_replay(market, opts, self.registry))

            try:
                anyio.run(replay, backend_options={"use_uvloop": self.uvloop})
                (result,) = results
            finally:
                gc.unfreeze()  # run_replay thaws too; this covers a run that failed early
            self.runs += 1
            if self.runs % _COLLECT_EVERY == 0:
                gc.collect()
            out.summary = result.summary
            if job.keep:
                out.result = result
        except LtsError as exc:
            out.error = str(exc)
        except Exception:
            out.crash = traceback.format_exc()
        out.seconds = time.perf_counter() - started
        return out


_worker: _Worker | None = None


def _start_worker(setup: WorkerSetup) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=setup.log_level,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    if setup.log_level != "DEBUG":
        for name in ("lts.orders", "lts.runner", "lts.strategy", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)
    global _worker
    _worker = _Worker(setup)


def _run_job(job: Job) -> JobResult:
    assert _worker is not None, "the worker was not started"
    return _worker.run(job)


# -- in the parent -----------------------------------------------------------------------------

@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """While a worker is spawned: it inherits SIGINT ignored (an ignored signal stays ignored
    across exec, and Python then installs no KeyboardInterrupt handler)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class SweepPool:
    """``workers`` processes started with ``setup``; use as a context manager. Leaving it on an
    exception (Ctrl-C included) aborts: nothing new starts and the workers are terminated."""

    def __init__(self, setup: WorkerSetup, workers: int) -> None:
        if workers < 1:
            raise ConfigError("--workers must be at least 1")
        self.workers = workers
        self._setup = setup
        self._before: set[int | None] = set()
        self._executor: ProcessPoolExecutor | None = None
        self._spawned = 0

    def __enter__(self) -> "SweepPool":
        self._before = {p.pid for p in multiprocessing.active_children()}
        self._executor = ProcessPoolExecutor(
            self.workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker, initargs=(self._setup,))
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def submit(self, job: Job) -> "Future[JobResult]":
        assert self._executor is not None, "use the pool as a context manager"
        if self._spawned < self.workers:  # this submit may spawn a worker
            self._spawned += 1
            with _sigint_ignored():
                return self._executor.submit(_run_job, job)
        return self._executor.submit(_run_job, job)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def abort(self) -> None:
        """Cancel what has not started, terminate the workers."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        workers = [p for p in multiprocessing.active_children() if p.pid not in self._before]
        for process in workers:
            process.terminate()
        for process in workers:
            process.join(10)


def run_jobs(pool: SweepPool, jobs: Iterable[Job],
             on_result: Callable[[JobResult], Iterable[Job]]) -> None:
    """Run ``jobs`` on ``pool``, at most two per worker queued at a time, and hand each result
    to ``on_result`` as it finishes (in the calling thread); the jobs it returns run next,
    before the rest. A job that failed raises :class:`SweepFailed` (an error of the user's) or
    ``RuntimeError`` (with the worker's traceback) and stops the run."""
    queued = iter(jobs)
    first: deque[Job] = deque()
    pending: set[Future[JobResult]] = set()
    limit = 2 * pool.workers
    while True:
        while len(pending) < limit:
            job = first.popleft() if first else next(queued, None)
            if job is None:
                break
            pending.add(pool.submit(job))
        if not pending:
            return
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        for future in done:
            result = future.result()
            if result.crash is not None:
                raise RuntimeError(f"the run of {_describe(result.job)} failed in its "
                                   f"worker:\n{result.crash}")
            if result.error is not None:
                raise SweepFailed(f"{_describe(result.job)}: {result.error}")
            first.extendleft(reversed(list(on_result(result))))


def _describe(job: Job) -> str:
    from lts.backtest.sweep_grid import format_value

    params = " ".join(f"{k}={format_value(v)}" for k, v in job.params.items())
    return f"combination {job.key} ({params})" if params else f"combination {job.key}"
