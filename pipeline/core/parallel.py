"""Running per-item work in batches: the stages take a `BatchMapper`, so the caller picks the engine."""

from __future__ import annotations

import math
import multiprocessing
import signal
import threading
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

    Its processes ignore Ctrl-C (a terminal signals the whole process group): the program that owns the pool
    decides. When the block ends in an error or an interrupt, the batches not started are dropped and the
    running ones are killed, so the program stops at once rather than after the longest batch."""
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
        initializer=signal.signal, initargs=(signal.SIGINT, signal.SIG_IGN),
    )
    _start_ignoring_ctrl_c(pool, workers)
    try:
        yield pool
    except BaseException:
        processes = list((pool._processes or {}).values())  # no public way before Python 3.14's terminate_workers()
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        raise
    pool.shutdown()



def _start_ignoring_ctrl_c(pool: ProcessPoolExecutor, workers: int) -> None:
    """Start the pool's processes now, with Ctrl-C ignored while they start: a process inherits that and ignores it from
    birth, so a Ctrl-C during its start-up (before the initializer runs) cannot print a traceback. Only the main
    thread may change signal handlers; elsewhere the processes start on demand and the initializer covers them."""
    if threading.current_thread() is not threading.main_thread():
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for _ in range(workers):
            pool.submit(int)  # each submit with no idle process starts one
    finally:
        signal.signal(signal.SIGINT, previous)
