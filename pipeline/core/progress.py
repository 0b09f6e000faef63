"""Progress for long loops: a bar in a terminal, and log lines (which Prefect shows) every 10%."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sized
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T", bound=Sized)
log = logging.getLogger(__name__)


class Progress:
    """A bar in a terminal and, for logs (which Prefect shows), a line at each 10% of `total` with done/total, the rate
    and the figures last given to `update`; `quiet` shows neither (e.g. on all but one of several processes)."""

    def __init__(self, total: int, desc: str, unit: str = "img", initial: int = 0, quiet: bool = False) -> None:
        self.total, self.desc, self.unit, self.done, self.initial, self.quiet = total, desc, unit, initial, initial, quiet
        self.next_report = (int(10 * initial / total) + 1) / 10 if total else 1.0
        self.start = time.monotonic()
        self.bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True, disable=True if quiet else None)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()

    def update(self, count: int = 1, **figures: str) -> None:
        self.done += count
        self.bar.update(count)
        if figures:
            self.bar.set_postfix(figures, refresh=False)
        if self.quiet or not self.total or self.done / self.total < self.next_report:
            return
        rate = (self.done - self.initial) / max(time.monotonic() - self.start, 1e-9)
        extra = "".join(f", {name} {value}" for name, value in figures.items())
        log.info("%s: %d/%d %s (%.0f%%, %.1f %s/s%s)", self.desc, self.done, self.total, self.unit, 100 * self.done / self.total, rate, self.unit, extra)
        self.next_report = (int(10 * self.done / self.total) + 1) / 10


def track_batches(batches: Iterable[T], total: int, desc: str, unit: str = "img") -> Iterator[T]:
    """Yield each batch unchanged, counting len(batch) items towards `total`."""
    with Progress(total, desc, unit) as progress:
        for batch in batches:
            yield batch
            progress.update(len(batch))
