"""Wait out a cluster that does not respond, within a budget of seconds."""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable

from worker.cluster.engine import is_retryable
from worker.errors import OutageError, PartialResultsError

logger = logging.getLogger(__name__)

DEFAULT_OUTAGE_BUDGET_SECONDS = 600.0
DEFAULT_FIRST_DELAY_SECONDS = 1.0
DEFAULT_MAX_DELAY_SECONDS = 30.0


def is_transient(error: BaseException) -> bool:
    """Tell whether ``error`` may go away if the same work is tried again later.

    Connection errors, timeouts, 429 and 502-504 responses qualify, and so do
    searches with failed shards (a node restarting, a shard recovering).
    """
    return is_retryable(error) or isinstance(error, PartialResultsError)


class OutageBudget:
    """Spaces the retries of one outage and ends it once the budget is spent.

    An outage starts at the first transient error after work that succeeded
    and ends at :meth:`recovered`. Waits grow exponentially with random jitter,
    up to ``max_delay`` seconds, and end early when ``stop_event`` is set.
    """

    def __init__(
        self,
        index: str,
        budget_seconds: float,
        stop_event: threading.Event,
        first_delay: float = DEFAULT_FIRST_DELAY_SECONDS,
        max_delay: float = DEFAULT_MAX_DELAY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.index = index
        self.budget_seconds = budget_seconds
        self.stop_event = stop_event
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.clock = clock
        self.started: float | None = None
        self.attempts = 0
        self.outages = 0

    def wait(self, error: BaseException) -> None:
        """Log ``error`` and sleep before the next try.

        Raises:
            OutageError: the outage has lasted ``budget_seconds`` or more.
        """
        now = self.clock()
        if self.started is None:
            self.started = now
            self.outages += 1
            budget = (
                "without limit"
                if math.isinf(self.budget_seconds)
                else f"for up to {self.budget_seconds:.0f} s"
            )
            logger.warning(
                "index=%s cluster unavailable (%s); retrying %s",
                self.index,
                error,
                budget,
            )
        elapsed = now - self.started
        if elapsed >= self.budget_seconds:
            raise OutageError(self.index, elapsed, self.budget_seconds, str(error))
        cap = min(self.max_delay, self.first_delay * 2**self.attempts)
        delay = min(random.uniform(cap / 2, cap), self.budget_seconds - elapsed)
        self.attempts += 1
        logger.info(
            "index=%s still unavailable after %.0f s (attempt %d: %s); next try "
            "in %.1f s",
            self.index,
            elapsed,
            self.attempts,
            error,
            delay,
        )
        self.stop_event.wait(delay)

    def recovered(self) -> None:
        """End the outage in progress, if any, and log how long it lasted."""
        if self.started is None:
            return
        logger.warning(
            "index=%s cluster responds again after %.0f s; resuming",
            self.index,
            self.clock() - self.started,
        )
        self.started = None
        self.attempts = 0
