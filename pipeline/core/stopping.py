"""Ctrl-C and SIGTERM held back while work reaches a point where it can stop cleanly (a training step's end, where a
checkpoint can be written), then handed on to whoever handled them before."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class DeferredStop:
    """Whether a stop signal came (`signum`); `stop()` hands it on. A second signal is handed on at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}
        self._handed_on = False

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _hold(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            self.stop()
        self.signum = signum

    def _release(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def stop(self) -> None:
        """If a signal came, handle it (once) as it would have been without this: by the handler before (which may
        raise or end the program), or by the default action; else nothing."""
        if self.signum is not None and not self._handed_on:
            self._handed_on = True
            self._release()
            signal.raise_signal(self.signum)


@contextmanager
def deferred_stop() -> Iterator[DeferredStop]:
    """Hold Ctrl-C and SIGTERM for the duration (in the main thread, where signals are handled; elsewhere, and for a
    signal that is ignored, nothing is held); one still held at the end is handed on then."""
    deferred = DeferredStop()
    if threading.current_thread() is threading.main_thread():
        for signum in STOP_SIGNALS:
            if signal.getsignal(signum) is not signal.SIG_IGN:
                deferred._previous[signum] = signal.signal(signum, deferred._hold)
    try:
        yield deferred
    finally:
        deferred.stop()
        deferred._release()
