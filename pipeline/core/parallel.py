"""Running per-item work in batches: the stages take a `BatchMapper`, so the caller picks the engine."""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from itertools import islice
from typing import Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class BatchMapper(Protocol):
    def __call__(self, fn: Callable[[list[T]], list[R]], batches: Sequence[list[T]]) -> Iterable[list[R]]:
        """Apply `fn` to every batch; yield the results in the order of `batches`."""
        ...


def batch_size_for(items: int, workers: int) -> int:
    """About 8 batches per worker (balanced, and an interrupted run stops soon), of 8 to 1000 items."""
    return max(8, min(1000, math.ceil(items / (8 * workers))))


def batched(items: Iterable[T], size: int) -> list[list[T]]:
    iterator = iter(items)
    return list(iter(lambda: list(islice(iterator, size)), []))


def serial_map(fn: Callable[[list[T]], list[R]], batches: Sequence[list[T]]) -> Iterator[list[R]]:
    return map(fn, batches)


@contextmanager
def process_pool(workers: int) -> Iterator[Executor]:
    """A process pool that is safe to start from a threaded program (spawned, not forked), for the duration.

    Its processes ignore Ctrl-C and SIGTERM (a terminal or a scheduler signals the whole process group): the program
    that owns the pool decides. When the block ends in an error or an interrupt, the batches not started are dropped
    and the running ones are killed, so the program stops at once rather than after the longest batch. When the
    program dies without a word (SIGKILL, the OOM killer), its processes end too."""
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=start_worker, initargs=(os.getpid(),))
    _start_ignoring_signals(pool, workers)
    try:
        yield pool
    except BaseException:
        processes = list((pool._processes or {}).values())  # no public way before Python 3.14's terminate_workers()
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.kill()
        raise
    pool.shutdown()


IGNORED_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # what a pool's processes leave to the program that owns the pool


def start_worker(owner: int) -> None:
    """A worker process's start (a pool's, a DataLoader's): it ignores IGNORED_SIGNALS, and ends as soon as the program
    that started it (`owner`) is gone, even if that was before it got here."""
    for signum in IGNORED_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    exit_when_orphaned(owner)


ORPHAN_CHECK_SECONDS = 0.5


def exit_when_orphaned(parent: int | None = None) -> None:
    """End this process within ORPHAN_CHECK_SECONDS of the death of its parent (`parent`: its pid, by default the
    parent it has now), however the parent dies (SIGKILL, the OOM killer): a child whose parent is gone is adopted by
    another process, and its parent pid changes. For what a stage starts outside its process group or session, which a
    kill of the group would not reach: pool processes, Prefect's temporary server, torchrun's training processes."""
    expected = os.getppid() if parent is None else parent

    def watch() -> None:
        while os.getppid() == expected:
            time.sleep(ORPHAN_CHECK_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def _start_ignoring_signals(pool: ProcessPoolExecutor, workers: int) -> None:
    """Start the pool's processes now, with IGNORED_SIGNALS ignored while they start: a process inherits that and ignores
    them from birth, so a Ctrl-C during its start-up (before the initializer runs) cannot print a traceback. Only the
    main thread may change signal handlers; elsewhere the processes start on demand and the initializer covers them."""
    if threading.current_thread() is not threading.main_thread():
        return
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in IGNORED_SIGNALS}
    try:
        for _ in range(workers):
            pool.submit(int)  # each submit with no idle process starts one
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
