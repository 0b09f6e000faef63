"""Progress for long loops: a bar in a terminal, and log lines (which Prefect shows) every 10%."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sized
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T", bound=Sized)
log = logging.getLogger(__name__)


def track_batches(batches: Iterable[T], total: int, desc: str, unit: str = "img") -> Iterator[T]:
    """Yield each batch unchanged, counting len(batch) items towards `total`."""
    done, next_report, start = 0, 0.1, time.monotonic()
    with tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, disable=None) as bar:
        for batch in batches:
            yield batch
            done += len(batch)
            bar.update(len(batch))
            if total and done / total >= next_report:
                rate = done / max(time.monotonic() - start, 1e-9)
                log.info("%s: %d/%d %s (%.0f%%, %.1f %s/s)", desc, done, total, unit, 100 * done / total, rate, unit)
                next_report = (int(10 * done / total) + 1) / 10
