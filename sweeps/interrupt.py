"""SIGINT / SIGTERM during a sweep: stop Tune gracefully and remember that the sweep did not finish.

While Tune runs, the first signal is handed to Tune's own graceful stop (Tune listens to
SIGUSR1: it saves its state and returns from `fit`); Tune's SIGINT handler is switched off
so that SIGINT and SIGTERM take the same path. Outside `fit`, or on a second signal, the
signal raises KeyboardInterrupt. Either way `signal` records what arrived, so the driver
never reports an interrupted sweep as finished, and `exit_code` is 128 + the signal number
(130 for Ctrl-C, 143 for SIGTERM).
"""

from __future__ import annotations

import os
import signal
from types import FrameType
from typing import Any

HANDLED = (signal.SIGINT, signal.SIGTERM)


class Interrupts:
    def __init__(self) -> None:
        self.signal: int | None = None
        self.tune_running = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Interrupts:
        os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
        for sig in HANDLED:
            self._previous[sig] = signal.getsignal(sig)
        self.install()
        return self

    def install(self) -> None:
        """(Re)install the handlers; `ray.init` replaces the SIGTERM handler with its own, which aborts."""
        for sig in HANDLED:
            signal.signal(sig, self._handle)

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    @property
    def exit_code(self) -> int:
        return 128 + (self.signal or signal.SIGINT)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first = self.signal is None
        if first:
            self.signal = signum
        # Forward only once Tune listens to SIGUSR1 (it installs its handler late in `fit`).
        if first and self.tune_running and signal.getsignal(signal.SIGUSR1) not in (signal.SIG_DFL, signal.SIG_IGN):
            os.kill(os.getpid(), signal.SIGUSR1)  # Tune's graceful stop
            name = signal.Signals(signum).name
            # os.write, not print: the handler may interrupt a print to stderr in progress.
            os.write(2, f"{name}: stopping the sweep, saving its state (send it again to quit at once)\n".encode())
            return
        raise KeyboardInterrupt
