"""Write expansions with bulk updates, reading every item's outcome."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from worker.cluster.bulk import ItemOutcome, Update, chunk_updates, read_bulk_items, update_lines
from worker.cluster.engine import Engine, is_retryable

logger = logging.getLogger(__name__)

DEFAULT_MAX_ATTEMPTS = 6
DEFAULT_MAX_ITEMS_PER_REQUEST = 500


class BulkWriter:
    """Sends bulk updates bounded in bytes and count; retries only rejected items."""

    def __init__(
        self,
        engine: Engine,
        field: str,
        max_bytes: int,
        max_items: int = DEFAULT_MAX_ITEMS_PER_REQUEST,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        backoff_seconds: float = 0.5,
    ) -> None:
        self.engine = engine
        self.field = field
        self.max_bytes = max_bytes
        self.max_items = max_items
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds

    def _send(self, ndjson: str) -> dict:
        retrying = Retrying(
            retry=retry_if_exception(is_retryable),
            stop=stop_after_attempt(self.max_attempts),
            wait=wait_exponential_jitter(initial=self.backoff_seconds, max=30),
            reraise=True,
            before_sleep=lambda state: logger.warning(
                "bulk request failed (attempt %d): %s; retrying",
                state.attempt_number,
                state.outcome.exception() if state.outcome else None,
            ),
        )
        return retrying(self.engine.bulk, ndjson)

    def write(self, updates: Sequence[Update]) -> list[ItemOutcome]:
        """Write ``updates`` and return one outcome per update, in order.

        An update that alone exceeds ``max_bytes`` is not sent and comes back
        as failed. Items rejected with 429 or 502-504 are sent again, alone,
        up to ``max_attempts`` times.
        """
        outcomes: dict[int, ItemOutcome] = {}
        pending: list[tuple[int, Update, str]] = []
        for position, update in enumerate(updates):
            action, body = update_lines(update, self.field)
            text = f"{action}\n{body}\n"
            size = len(text.encode("utf-8"))
            if size > self.max_bytes:
                reason = f"update of {size} bytes exceeds the bulk limit of {self.max_bytes} bytes"
                outcomes[position] = ItemOutcome(update.index, update.id, "failed", 413, reason)
            else:
                pending.append((position, update, text))

        for attempt in range(1, self.max_attempts + 1):
            retry: list[tuple[int, Update, str]] = []
            by_update = {id(update): position for position, update, _ in pending}
            pairs = [(update, text) for _, update, text in pending]
            for chunk in chunk_updates(pairs, self.max_bytes, self.max_items):
                response = self._send("".join(text for _, text in chunk))
                chunk_updates_only = [update for update, _ in chunk]
                for (update, text), outcome in zip(chunk, read_bulk_items(response, chunk_updates_only)):
                    position = by_update[id(update)]
                    if outcome.verdict == "retry" and attempt < self.max_attempts:
                        retry.append((position, update, text))
                    else:
                        outcomes[position] = outcome
            if not retry:
                break
            logger.warning("%d bulk items rejected (attempt %d); retrying them", len(retry), attempt)
            time.sleep(min(30.0, self.backoff_seconds * 2 ** (attempt - 1)))
            pending = retry
        return [outcomes[position] for position in range(len(updates))]
