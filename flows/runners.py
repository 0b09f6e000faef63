"""Where a stage's flow runs its per-item work (params.runner): the task runner (local threads or Dask), and batches
submitted as Prefect tasks to a local process pool or a Dask cluster."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from prefect import Flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.futures import PrefectWrappedFuture
from prefect.settings import PREFECT_API_URL
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from flows.cli import call_flow
from pipeline.config import Params
from pipeline.core.errors import PipelineError
from pipeline.core.parallel import process_pool

if TYPE_CHECKING:  # imported when a runner needs them: the default runner does without (0.5 s a process)
    from distributed import Client

T = TypeVar("T")
R = TypeVar("R")

CONNECT_TIMEOUT = 5  # seconds for runner.address to answer
WINDOW_PER_WORKER = 4  # batches submitted ahead per worker: enough to keep each busy, never the whole plan at once
_IN_FOLDER = threading.Lock()  # a Dask worker process works in one flow's folder at a time


class RunnerError(PipelineError):
    """params.runner names no usable Dask scheduler, or a Dask worker cannot see the workspace."""


@contextlib.contextmanager
def _in_folder(folder: str | None) -> Iterator[None]:
    """Work in the flow's folder (None: already there), so that relative paths mean what they mean to the flow."""
    if folder is None:
        yield
        return
    if not os.path.isdir(folder):
        raise RunnerError(f"runner: the Dask worker on {socket.gethostname()} has no folder {folder}: workers need the workspace at the same path")
    with _IN_FOLDER, contextlib.chdir(folder):
        yield


@task(cache_policy=NO_CACHE)
def run_batch(pool: Executor | None, folder: str | None, fn: Callable[[T], R], batch: T) -> R:
    """One batch of per-item work: in the flow's process pool, or else right here (a thread of the flow, or a Dask worker in `folder`)."""
    if pool is not None:
        return pool.submit(fn, batch).result()
    with _in_folder(folder):
        return fn(batch)


@dataclass(frozen=True)
class Batches:
    """Submits per-item work as Prefect task runs on the flow's task runner, at most `window` of them at a time;
    called, it is a `pipeline.core.parallel.BatchMapper`."""

    name: str
    window: int
    pool: Executor | None = None
    folder: str | None = None

    def submit(self, fn: Callable[[T], R], batch: T, name: str, **options: Any) -> PrefectWrappedFuture[R, Any]:
        return run_batch.with_options(task_run_name=name, **options).submit(self.pool, self.folder, fn, batch)

    def map(self, fn: Callable[[T], R], batches: Iterable[T], name: Callable[[int, T], str], **options: Any) -> Iterator[R]:
        """fn(batch) for each batch, in order; batches are drawn from `batches` only as the window has room. When the
        caller stops early (an error, Ctrl-C), the batches submitted but not started are cancelled."""
        pending: deque[PrefectWrappedFuture[R, Any]] = deque()
        try:
            for index, batch in enumerate(batches):
                pending.append(self.submit(fn, batch, name(index, batch), **options))
                if len(pending) >= self.window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.wrapped_future.cancel()  # a no-op for those already running

    def __call__(self, fn: Callable[[list[T]], list[R]], batches: Sequence[list[T]]) -> Iterator[list[R]]:
        return self.map(fn, batches, lambda index, _: f"{self.name}-{index:04d}")


def _dask_client() -> Client | None:
    """The Dask client of the running flow's task runner (connecting, or starting its cluster, now); None when not on Dask."""
    context, dask = FlowRunContext.get(), sys.modules.get("prefect_dask")  # not imported: not on Dask
    on_dask = context is not None and dask is not None and isinstance(context.task_runner, dask.DaskTaskRunner)
    return context.task_runner.client if on_dask else None


@contextlib.contextmanager
def batch_tasks(name: str, workers: int, processes: bool = True) -> Iterator[Batches]:
    """Where the running flow's per-item work goes, logged: its Dask cluster, else a process pool of `workers`
    (with `processes` false: the task runner's threads)."""
    logger = get_run_logger()
    client = _dask_client()
    with contextlib.ExitStack() as stack:
        if client is not None:
            threads = client.nthreads()
            logger.info("%s: per-item work on Dask: scheduler %s, %d workers, %d threads; dashboard %s",
                        name, client.scheduler.address, len(threads), sum(threads.values()), client.dashboard_link)
            batches = Batches(name, WINDOW_PER_WORKER * max(1, sum(threads.values())), folder=os.getcwd())
        elif processes:
            logger.info("%s: per-item work in a local process pool of %d workers", name, workers)
            batches = Batches(name, WINDOW_PER_WORKER * workers, stack.enter_context(process_pool(workers)))
        else:
            logger.info("%s: per-item work in local threads", name)
            batches = Batches(name, WINDOW_PER_WORKER * workers)
        try:
            yield batches
        except BaseException:  # the flow stops early (an error, Ctrl-C, SIGTERM): the batches it cuts short report
            logging.getLogger("prefect.task_runs").setLevel(logging.CRITICAL)  # nothing more, to not bury its one line
            raise


def check_scheduler(address: str) -> None:
    """Fail with one line, within about CONNECT_TIMEOUT, unless a Dask scheduler answers at `address`."""
    from distributed.core import rpc

    async def identity() -> dict[str, Any]:
        async with rpc(address, timeout=CONNECT_TIMEOUT) as scheduler:
            return await scheduler.identity()

    try:
        kind = asyncio.run(asyncio.wait_for(identity(), CONNECT_TIMEOUT + 1)).get("type")
    except (OSError, ValueError, TimeoutError) as exc:
        reason = str(exc) or f"no answer within {CONNECT_TIMEOUT + 1} s"
        raise RunnerError(f"runner.address: no Dask scheduler answers at {address!r} ({reason})") from None
    if kind != "Scheduler":
        raise RunnerError(f"runner.address: {address!r} is a Dask {kind}, not a scheduler")


def task_runner(params: Params) -> TaskRunner:
    """params.runner as a Prefect task runner: `workers` threads (local), or Dask: the scheduler at runner.address,
    or else a temporary local cluster of `workers` single-threaded processes."""
    runner = params.runner
    if runner.kind == "local":
        return ThreadPoolTaskRunner(max_workers=params.workers)
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")  # before importing distributed: not 60 lines at info a cluster
    from distributed import LocalCluster
    from prefect_dask import DaskTaskRunner

    if runner.address is None:
        cluster = {"n_workers": params.workers, "threads_per_worker": 1, "processes": True,
                   "host": "127.0.0.1", "dashboard_address": "127.0.0.1:8787"}
        return DaskTaskRunner(cluster_class=LocalCluster, cluster_kwargs=cluster)
    check_scheduler(runner.address)
    return DaskTaskRunner(address=runner.address)


def run_stage(stage: Flow[[Params], R], params: Params) -> R:
    """Run a stage's flow on `task_runner(params)`."""
    runner = task_runner(params)
    if params.runner.kind == "dask" and not PREFECT_API_URL.value():
        from flows.temporary_server import api_for_workers

        with api_for_workers():
            return call_flow(stage.with_options(task_runner=runner), params)
    return call_flow(stage.with_options(task_runner=runner), params)
