"""`--jobs N`: one function over many traces in worker processes, results in input order.

Workers are *forked* from this process when that is safe — a POSIX system and no thread
here but this one — after :attr:`Job.warm` has imported what they need, so each starts warm
at once instead of paying govrun's imports (~0.5 s) again; the pool's processes all start
before its management thread, and the progress bar (a thread) only afterwards. Anywhere
else, or once a thread runs (a pool started again after a worker died), they are
*spawned*: a fresh interpreter each, which runs ``warm`` first. Arguments and results are
pickled: small summaries, never whole traces. A worker leaves with ``os._exit`` once the
pool lets it go: its garbage dies with it, without a last collection of every trace it
replayed.

Ctrl-C belongs to this process alone: workers start with SIGINT blocked (a terminal sends
it to every process in the foreground group), so none prints a traceback; this process
stops them all, with nothing left running, and raises ``KeyboardInterrupt`` as a command
run in-process would. A worker that dies (a segfault, killed for lack of memory) breaks the
pool: the items it may have held run again one by one, each in a process of its own, and
the one that dies again is reported as :class:`WorkerDied`; the others still report.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Generic, TypeVar

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from govrun.cli.console import err

T = TypeVar("T")
R = TypeVar("R")

_SPAWN = multiprocessing.get_context("spawn")
_FORK = (
    multiprocessing.get_context("fork")
    if "fork" in multiprocessing.get_all_start_methods() and sys.platform != "darwin"
    else None
)


@dataclass(frozen=True)
class WorkerDied:
    """The worker process handling an item ended without a result."""

    message: str


def default_jobs() -> int:
    """One worker per core."""
    return os.cpu_count() or 1


@dataclass(frozen=True)
class Job(Generic[T, R]):
    """What to run: ``fn(item)`` for each item (picklable: a module-level function or a
    method of a picklable object); ``failed(result)`` counts as a failure in the progress
    line, which ``verb`` heads ("replay"). ``warm`` (module-level, picklable) imports what
    ``fn`` needs: run here before workers are forked, or first thing in a spawned one."""

    fn: Callable[[T], R]
    failed: Callable[[R], bool]
    verb: str
    warm: Callable[[], None] | None = None


def _context() -> multiprocessing.context.BaseContext:
    """Fork when nothing but this thread runs here (a fork copies only the calling thread,
    and a lock another thread held would stay shut in the child); else spawn."""
    if _FORK is not None and threading.active_count() == 1:
        return _FORK
    return _SPAWN


def _start(job: Job[T, R]) -> tuple[multiprocessing.context.BaseContext, Callable[[], None] | None]:
    """How to start workers for ``job`` now, and what each must run first: forked workers
    inherit ``job.warm`` done here, once; spawned ones run it themselves."""
    context = _context()
    if context is not _FORK:
        return context, job.warm
    if job.warm is not None:
        job.warm()
    return context, None


def run_jobs(job: Job[T, R], items: Sequence[T], *, jobs: int) -> list[R | WorkerDied]:
    """``job.fn`` over ``items`` in up to ``jobs`` worker processes; the results in the order
    of ``items`` whatever order they finish in. Progress goes to stderr on a terminal."""
    results: dict[int, R | WorkerDied] = {}
    todo = list(range(len(items)))
    pool = _Round(job, items, todo, min(jobs, len(todo)))  # forked before any thread
    try:
        with _progress(job, len(items)) as tick:
            while True:
                suspects = pool.finish(results, tick)
                for i in suspects:  # alone, so a death is its own
                    results[i] = _isolated(job, items[i])
                    tick(results[i])
                todo = [i for i in todo if i not in results]
                if not todo:
                    break
                pool = _Round(job, items, todo, min(jobs, len(todo)))
    except BaseException:
        pool.stop()
        raise
    return [results[i] for i in range(len(items))]


class _Round:
    """One pool over the items still to do: its workers start (and take their items) as it
    is made; :meth:`finish` collects what they return."""

    def __init__(self, job: Job[T, R], items: Sequence[T], todo: list[int], workers: int) -> None:
        context, warm = _start(job)
        self.started = context.SimpleQueue()
        self.began: set[int] = set()
        self.pool: ProcessPoolExecutor | None = None
        try:
            with _sigint_blocked():  # workers start here, and inherit the blocked signal
                self.pool = ProcessPoolExecutor(
                    workers,
                    mp_context=context,
                    initializer=_start_worker,
                    initargs=(self.started, job.fn, warm),
                )
                self.futures = {self.pool.submit(_tracked, items[i], i): i for i in todo}
        except BaseException:
            self.stop()
            raise
        self.todo = todo

    def stop(self) -> None:
        """End every worker now (Ctrl-C): nothing is left running once this returns."""
        if self.pool is not None:
            _stop(self.pool)

    def finish(
        self, results: dict[int, R | WorkerDied], tick: Callable[[R | WorkerDied], None]
    ) -> list[int]:
        """Collect results until done or the pool breaks; then return the items that had
        started and not finished (one of them killed its worker)."""
        assert self.pool is not None
        broken = False
        for future in as_completed(self.futures):
            _drain(self.started, self.began)  # never let the workers block on a full pipe
            try:
                result: R | WorkerDied = future.result()
            except BrokenProcessPool:
                broken = True  # every future still pending says so too
                break
            except Exception as exc:  # a bug in the worker: said, never a traceback
                result = WorkerDied(f"failed unexpectedly: {type(exc).__name__}: {exc}")
            results[self.futures[future]] = result
            tick(result)
        self.pool.shutdown(wait=True, cancel_futures=True)
        if not broken:
            return []
        _drain(self.started, self.began)
        suspects = sorted(i for i in self.began if i not in results)
        if not suspects:  # no worker ever took an item: it could not start at all
            for i in self.todo:
                if i not in results:
                    results[i] = WorkerDied("a worker process could not start")
                    tick(results[i])
        return suspects


def _drain(started: Any, into: set[int]) -> None:
    while not started.empty():
        into.add(started.get())


_started: Any = None
"""In a worker: where it says which item it takes."""
_fn: Callable[[Any], Any] | None = None
"""In a worker: what it runs on each item (sent once, not with every item)."""


def _start_worker(started: Any, fn: Callable[[Any], Any], warm: Callable[[], None] | None) -> None:
    global _started, _fn
    _started, _fn = started, fn
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # blocked already; ignored, to be sure
    atexit.register(_leave)  # a spawned worker; a forked one leaves with os._exit anyway
    if warm is not None:
        warm()


def _leave() -> None:
    """A spawned worker's last act: what it printed goes out, and nothing else is done (the
    interpreter's teardown would collect every cycle left by every item, for nobody)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _tracked(item: Any, index: int) -> Any:
    """In a worker: say which item it takes (to find the one that kills a worker), then
    run it."""
    assert _fn is not None
    _started.put(index)
    return _fn(item)


def _stop(pool: ProcessPoolExecutor) -> None:
    """End every worker now (Ctrl-C): nothing is left running once this returns."""
    terminate = getattr(pool, "terminate_workers", None)  # Python 3.14+
    if terminate is not None:
        terminate()
    else:
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


def _isolated(job: Job[T, R], item: T) -> R | WorkerDied:
    """``job.fn(item)`` in a process of its own: its result, or how the process died."""
    context, warm = _start(job)
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_send_result, args=(job.fn, item, send, warm), daemon=True)
    try:
        with _sigint_blocked():
            process.start()
        send.close()
        try:
            ok, value = receive.recv()
        except EOFError:
            process.join()
            return WorkerDied(_death(process.exitcode))
        process.join()
    except BaseException:
        if process.pid is not None:
            process.terminate()
            process.join()
        raise
    finally:
        receive.close()
    if ok:
        return value  # type: ignore[no-any-return]
    return WorkerDied(f"failed unexpectedly: {value}")


def _send_result(
    fn: Callable[[T], R], item: T, send: Connection, warm: Callable[[], None] | None
) -> None:
    if warm is not None:
        warm()
    try:
        result: tuple[bool, Any] = (True, fn(item))
    except Exception as exc:
        result = (False, f"{type(exc).__name__}: {exc}")
    send.send(result)
    send.close()


def _death(code: int | None) -> str:
    """Why a worker process ended without a result, from its exit code."""
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        why = " (out of memory?)" if -code == signal.SIGKILL else ""
        return f"the worker process was killed by {name}{why}"
    return f"the worker process exited with code {code} before it finished"


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """Hold Ctrl-C while processes and threads start, so they begin with it blocked; it is
    delivered here once the block lifts. (Without signal masks, as on Windows, workers
    ignore it from their first line of Python on.)"""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextlib.contextmanager
def _progress(job: Job[T, R], total: int) -> Iterator[Callable[[R | WorkerDied], None]]:
    """A progress bar on stderr (a terminal only; it is gone once done): items done of the
    total and how many failed so far. Yields what to call with each result."""
    if not err.is_terminal:
        yield lambda result: None
        return
    failed = 0
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task(job.verb, total=total, failed="")

        def tick(result: R | WorkerDied) -> None:
            nonlocal failed
            failed += isinstance(result, WorkerDied) or job.failed(result)  # type: ignore[arg-type]
            progress.update(task, advance=1, failed=f"[red]{failed} failed[/]" if failed else "")

        yield tick
