"""Stop on SIGTERM or SIGINT: finish the batch in flight, within a grace period."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType

logger = logging.getLogger(__name__)

DEFAULT_GRACE_SECONDS = 30.0


class StopHandler:
    """Turns the first stop signal into a graceful stop and the second into an exit.

    First SIGTERM or SIGINT: ``request_stop`` is called, so the worker stops
    pulling documents and writes the batch in flight, and a timer starts. If the
    process is still running when ``grace_seconds`` have passed, or when a
    second signal arrives, it exits at once with status 128 + signal number.
    Every bulk item is applied whole or not at all, so an exit at any moment
    leaves each document fully updated or untouched.
    """

    def __init__(
        self,
        request_stop: Callable[[], None],
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
        exit_now: Callable[[int], None] = os._exit,
    ) -> None:
        self.request_stop = request_stop
        self.grace_seconds = grace_seconds
        self.exit_now = exit_now
        self.received: list[int] = []
        self.timer: threading.Timer | None = None

    def install(self) -> None:
        """Handle SIGINT and SIGTERM in this process from now on."""
        signal.signal(signal.SIGINT, self.handle)
        signal.signal(signal.SIGTERM, self.handle)

    def handle(self, signum: int, frame: FrameType | None = None) -> None:
        self.received.append(signum)
        name = signal.Signals(signum).name
        if len(self.received) == 1:
            logger.info(
                "received %s; stopping after the batch in flight (grace period %.0f s)",
                name,
                self.grace_seconds,
            )
            self.timer = threading.Timer(self.grace_seconds, self._grace_expired)
            self.timer.daemon = True
            self.timer.start()
            self.request_stop()
            return
        logger.warning("received a second signal (%s); exiting now", name)
        self.exit_now(128 + signum)

    def cancel(self) -> None:
        """Stop the grace timer once the worker has stopped by itself."""
        if self.timer is not None:
            self.timer.cancel()

    def _grace_expired(self) -> None:
        signum = self.received[0]
        logger.error(
            "the batch in flight did not finish within the grace period of %.0f s; "
            "exiting now",
            self.grace_seconds,
        )
        self.exit_now(128 + signum)
