"""How `dial run` learns it must stop early: SIGINT, SIGTERM, SIGHUP, or its output pipe closing."""

from __future__ import annotations

import os
import select
import signal
import stat
import sys
from types import FrameType
from typing import Callable

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_WHY = {signal.SIGINT: "Ctrl-C (SIGINT)", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP (the terminal closed)",
        signal.SIGPIPE: "the output pipe was closed"}


class Interrupted(Exception):
    """The run was stopped from outside; `exit_code` is the shell's convention, 128 + the signal."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def why(self) -> str:
        return _WHY.get(signal.Signals(self.signum), signal.Signals(self.signum).name)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def __str__(self) -> str:
        return self.why


class StopRequests:
    """Records stop signals instead of raising in the middle of whatever runs (a trial being
    started, results being written); the runner asks `pending()` between steps.

    Used as a context manager: the handlers are installed on entry and restored on exit.
    """

    def __init__(self) -> None:
        self.received: list[int] = []
        self._previous: dict[int, Callable[[int, FrameType | None], object] | int | None] = {}
        self._on_signal: Callable[[int], None] | None = None

    def __enter__(self) -> "StopRequests":
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)
        if self._on_signal is not None:
            self._on_signal(signum)

    def on_signal(self, callback: Callable[[int], None] | None) -> None:
        """Call `callback` for each further signal (while the running trials are being stopped)."""
        self._on_signal = callback

    def request(self, signum: int) -> None:
        self._handle(signum, None)

    def pending(self) -> Interrupted | None:
        """The first stop asked for, if any; a closed output pipe counts as SIGPIPE."""
        if not self.received and output_closed():
            self.received.append(signal.SIGPIPE)
        return Interrupted(self.received[0]) if self.received else None


def output_closed() -> bool:
    """True when stdout is a pipe whose reader has gone (`dial run ... | head -1` after one line)."""
    try:
        fd = sys.stdout.fileno()
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return False
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def silence_stdout() -> None:
    """Point stdout at /dev/null so that nothing more (nor the interpreter's final flush) fails on a closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
