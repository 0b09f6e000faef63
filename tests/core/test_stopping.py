"""Ctrl-C and SIGTERM held back until work can stop, then handed on once to the handler they had."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from pipeline.core.stopping import deferred_stop


class Handled(Exception):
    """What the handler before raises: the program stops."""


@pytest.fixture
def handler():
    def handle(signum: int, frame: object) -> None:
        raise Handled(signum)

    previous = {signum: signal.signal(signum, handle) for signum in (signal.SIGINT, signal.SIGTERM)}
    yield handle
    for signum, old in previous.items():
        signal.signal(signum, old)


def _signal_self(signum: int) -> None:
    os.kill(os.getpid(), signum)
    time.sleep(0.05)  # Python runs handlers between bytecodes, here at once


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_is_held_until_stop_then_handed_on_once(handler, signum):
    with pytest.raises(Handled) as handled, deferred_stop() as stop:
        stop.stop()  # nothing came: nothing happens
        _signal_self(signum)
        assert stop.requested and stop.signum == signum  # held: the work goes on
        stop.stop()
        pytest.fail("stop() hands the signal on")
    assert handled.value.args == (signum,)
    assert signal.getsignal(signum) is handler


def test_a_second_signal_is_handed_on_at_once(handler):
    with pytest.raises(Handled), deferred_stop():
        _signal_self(signal.SIGTERM)
        _signal_self(signal.SIGTERM)
        pytest.fail("the second signal stops at once")


def test_a_signal_still_held_at_the_end_is_handed_on_then(handler):
    with pytest.raises(Handled), deferred_stop():
        _signal_self(signal.SIGINT)
    with deferred_stop():
        pass  # nothing came: the handlers are back, nothing is raised
    assert signal.getsignal(signal.SIGINT) is handler and signal.getsignal(signal.SIGTERM) is handler


def test_outside_the_main_thread_nothing_is_held(handler):
    seen = []
    thread = threading.Thread(target=lambda: seen.append(deferred_stop().__enter__().requested))
    thread.start()
    thread.join()
    assert seen == [False] and signal.getsignal(signal.SIGTERM) is handler
