"""`--jobs N`: one function over many traces in worker processes, results in input order.

Workers are *spawned* (a fresh interpreter each, a ``ProcessPoolExecutor`` with the spawn
start method): the CLI process holds threads (the executor's own, rich's), and forking a
process that holds threads can copy a lock held by another thread, which then never opens.
Spawn is also what macOS and Windows use, so the pool behaves alike everywhere; it costs
one interpreter start per worker (govrun's imports, a fraction of a second), paid once,
since workers take trace after trace. Arguments and results are pickled: small summaries,
never whole traces.

Ctrl-C belongs to this process alone: workers start with SIGINT blocked (a terminal sends
it to every process in the foreground group), so none prints a traceback; this process
stops them all, with nothing left running, and raises ``KeyboardInterrupt`` as a command
run in-process would. A worker that dies (a segfault, killed for lack of memory) breaks the
pool: the items it may have held run again one by one, each in a process of its own, and
the one that dies again is reported as :class:`WorkerDied`; the others still report.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Generic, TypeVar

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from govrun.cli.console import err

T = TypeVar("T")
R = TypeVar("R")

_SPAWN = multiprocessing.get_context("spawn")


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
    line, which ``verb`` heads ("replay")."""

    fn: Callable[[T], R]
    failed: Callable[[R], bool]
    verb: str


def run_jobs(job: Job[T, R], items: Sequence[T], *, jobs: int) -> list[R | WorkerDied]:
    """``job.fn`` over ``items`` in up to ``jobs`` spawned workers; the results in the order
    of ``items`` whatever order they finish in. Progress goes to stderr on a terminal."""
    results: dict[int, R | WorkerDied] = {}
    with _progress(job, len(items)) as tick:
        todo = list(range(len(items)))
        while todo:
            suspects = _pool_round(job, items, todo, min(jobs, len(todo)), results, tick)
            for i in suspects:  # alone, so a death is its own
                results[i] = _isolated(job.fn, items[i])
                tick(results[i])
            todo = [i for i in todo if i not in results]
    return [results[i] for i in range(len(items))]


def _pool_round(
    job: Job[T, R],
    items: Sequence[T],
    todo: list[int],
    workers: int,
    results: dict[int, R | WorkerDied],
    tick: Callable[[R | WorkerDied], None],
) -> list[int]:
    """Run ``todo`` in a pool until done or the pool breaks; then return the items that
    had started and not finished (one of them killed its worker)."""
    started = _SPAWN.SimpleQueue()
    began: set[int] = set()
    pool: ProcessPoolExecutor | None = None
    broken = False
    try:
        with _sigint_blocked():  # workers start here, and inherit the blocked signal
            pool = ProcessPoolExecutor(
                workers, mp_context=_SPAWN, initializer=_start_worker, initargs=(started,)
            )
            futures = {pool.submit(_tracked, job.fn, items[i], i): i for i in todo}
        pending: set[Future[R]] = set(futures)
        while pending and not broken:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            _drain(started, began)  # never let the workers block on a full pipe
            for future in done:
                try:
                    result: R | WorkerDied = future.result()
                except BrokenProcessPool:
                    broken = True
                    continue
                except Exception as exc:  # a bug in the worker: said, never a traceback
                    result = WorkerDied(f"failed unexpectedly: {type(exc).__name__}: {exc}")
                results[futures[future]] = result
                tick(result)
    except BaseException:
        if pool is not None:
            _stop(pool)
        raise
    pool.shutdown(wait=True, cancel_futures=True)
    if not broken:
        return []
    _drain(started, began)
    suspects = sorted(i for i in began if i not in results)
    if not suspects:  # no worker ever took an item: it could not start at all
        for i in todo:
            if i not in results:
                results[i] = WorkerDied("a worker process could not start")
                tick(results[i])
    return suspects


def _drain(started: Any, into: set[int]) -> None:
    while not started.empty():
        into.add(started.get())


_started: Any = None
"""In a worker: where it says which item it takes."""


def _start_worker(started: Any) -> None:
    global _started
    _started = started
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # blocked already; ignored, to be sure


def _tracked(fn: Callable[[T], R], item: T, index: int) -> R:
    """In a worker: say which item it takes (to find the one that kills a worker), then
    run it."""
    _started.put(index)
    return fn(item)


def _stop(pool: ProcessPoolExecutor) -> None:
    """End every worker now (Ctrl-C): nothing is left running once this returns."""
    terminate = getattr(pool, "terminate_workers", None)  # Python 3.14+
    if terminate is not None:
        terminate()
    else:
        for process in list(getattr(pool, "_processes", {}).values()):
            process.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


def _isolated(fn: Callable[[T], R], item: T) -> R | WorkerDied:
    """``fn(item)`` in a process of its own: its result, or how the process died."""
    receive, send = _SPAWN.Pipe(duplex=False)
    process = _SPAWN.Process(target=_send_result, args=(fn, item, send), daemon=True)
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


def _send_result(fn: Callable[[T], R], item: T, send: Connection) -> None:
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
