"""Stopping a run: the errors that end training, and SIGTERM / Ctrl-C turned into a stop at the next safe point."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

from .reporting import log


class TrainingError(RuntimeError):
    """Training cannot go on (for example a non-finite loss); the message says where and what to do."""


class TrainingInterrupted(TrainingError):
    """The run stopped at a safe point on SIGTERM or Ctrl-C, after writing a checkpoint; ``signum`` says which."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum


@contextlib.contextmanager
def stop_requests() -> Iterator[list[int]]:
    """While active, SIGTERM and the first Ctrl-C only record their number in the yielded list (the loop stops at its
    next safe point); a second Ctrl-C interrupts at once. Outside the main thread nothing is installed."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum: int, _frame: Any) -> None:
        if signum == signal.SIGINT and signal.SIGINT in received:
            raise KeyboardInterrupt
        received.append(signum)
        log(
            f"\n{signal.Signals(signum).name} received: stopping after this step, with a checkpoint "
            "(Ctrl-C again to stop at once, without one)"
        )

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
