"""SIGINT/SIGTERM: stop at the end of the current chunk, checkpoint, say how to continue."""

from __future__ import annotations

import signal
from typing import Optional


class StopOnSignal:
    """SIGINT/SIGTERM ask the run to stop after the current chunk; a second one aborts."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, console):
        self.console = console
        self.signum: Optional[int] = None

    def __enter__(self):
        self.previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:
            self.__exit__()
            raise KeyboardInterrupt
        self.signum = signum
        self.console.print(
            f"ppo-jax: {signal.Signals(signum).name}: finishing the current chunk and saving a checkpoint "
            "(send it again to abort without saving)",
            soft_wrap=True,
        )

    def __exit__(self, *exc):
        for s, handler in self.previous.items():
            signal.signal(s, handler)

    @property
    def name(self) -> str:
        assert self.signum is not None, "no signal was received"
        return signal.Signals(self.signum).name
