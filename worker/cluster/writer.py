"""Write expansions with bulk updates, reading every item's outcome."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from worker.cluster.bulk import (
    ItemOutcome,
    Update,
    chunk_updates,
    read_bulk_items,
    update_lines,
)
from worker.cluster.engine import Engine, is_retryable

logger = logging.getLogger(__name__)

DEFAULT_MAX_ATTEMPTS = 6
DEFAULT_MAX_ITEMS_PER_REQUEST = 500
DEFAULT_BACKOFF_SECONDS = 0.5
DEFAULT_MAX_BACKOFF_SECONDS = 30.0
# Status of a request body larger than the server's http.max_content_length.
REQUEST_TOO_LARGE = 413

_Line = tuple[Update, str]


def _status_of(error: BaseException) -> int | None:
    """Return the HTTP status of a client error from either client library."""
    status = getattr(error, "status_code", None)
    if status is None:
        status = getattr(getattr(error, "meta", None), "status", None)
    return status if isinstance(status, int) else None


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    logger.warning(
        "bulk request failed (attempt %d): %s; retrying", state.attempt_number, error
    )


class BulkWriter:
    """Sends bulk updates bounded in bytes and count; retries only rejected items.

    Two kinds of retry exist. A whole request that fails with a connection
    error, a timeout, 429 or 502-504 is sent again as it was. When the cluster responds to a
    request, only the items rejected with 429 or 502-504 are sent again. Both
    wait with capped exponential backoff and jitter. Every update replaces the
    whole expansion object and carries the sequence number of its read, so an
    update that is sent twice (a timeout after the cluster applied it) comes
    back as a version conflict and leaves the document as one write would.
    """

    def __init__(
        self,
        engine: Engine,
        field: str,
        max_bytes: int,
        max_items: int = DEFAULT_MAX_ITEMS_PER_REQUEST,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        backoff_seconds: float = DEFAULT_BACKOFF_SECONDS,
        max_backoff_seconds: float = DEFAULT_MAX_BACKOFF_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.engine = engine
        self.field = field
        self.max_bytes = max_bytes
        self.max_items = max_items
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.sleep = sleep

    def _send(self, ndjson: str) -> dict:
        retrying = Retrying(
            retry=retry_if_exception(is_retryable),
            stop=stop_after_attempt(self.max_attempts),
            wait=wait_exponential_jitter(
                initial=self.backoff_seconds, max=self.max_backoff_seconds
            ),
            sleep=self.sleep,
            reraise=True,
            before_sleep=_log_retry,
        )
        return retrying(self.engine.bulk, ndjson)

    def _item_backoff(self, attempt: int) -> float:
        """Full jitter: a random wait up to the capped exponential delay."""
        cap = min(self.max_backoff_seconds, self.backoff_seconds * 2 ** (attempt - 1))
        return random.uniform(0, cap)

    def write(self, updates: Sequence[Update]) -> list[ItemOutcome]:
        """Write ``updates`` and return one outcome per update, in order.

        An update that alone exceeds ``max_bytes`` is not sent and comes back
        as failed with status 413. Items rejected with 429 or 502-504 are sent
        again, alone, up to ``max_attempts`` times, and keep the verdict
        ``retry`` when they are still rejected after the last attempt.

        Raises:
            Exception: the client's error when a whole request still fails
                after ``max_attempts`` (connection errors, timeouts, 429,
                502-504), or at once for other statuses.
        """
        outcomes: dict[int, ItemOutcome] = {}
        pending: list[tuple[int, _Line]] = []
        for position, update in enumerate(updates):
            action, body = update_lines(update, self.field)
            text = f"{action}\n{body}\n"
            size = len(text.encode("utf-8"))
            if size > self.max_bytes:
                reason = (
                    f"update of {size} bytes exceeds the bulk limit of "
                    f"{self.max_bytes} bytes"
                )
                outcomes[position] = ItemOutcome(
                    update.index, update.id, "failed", REQUEST_TOO_LARGE, reason
                )
            else:
                pending.append((position, (update, text)))

        for attempt in range(1, self.max_attempts + 1):
            retry: list[tuple[int, _Line]] = []
            # chunk_updates builds new pairs, so positions are found by update.
            positions = {id(line[0]): position for position, line in pending}
            lines = [line for _, line in pending]
            for chunk in chunk_updates(lines, self.max_bytes, self.max_items):
                for line, outcome in self._write_chunk(chunk):
                    position = positions[id(line[0])]
                    if outcome.verdict == "retry" and attempt < self.max_attempts:
                        retry.append((position, line))
                    else:
                        outcomes[position] = outcome
            if not retry:
                break
            delay = self._item_backoff(attempt)
            logger.warning(
                "%d bulk items rejected (attempt %d, first id %s); retrying them "
                "in %.1f s",
                len(retry),
                attempt,
                retry[0][1][0].id,
                delay,
            )
            self.sleep(delay)
            pending = retry
        return [outcomes[position] for position in range(len(updates))]

    def _write_chunk(self, chunk: list[_Line]) -> Iterator[tuple[_Line, ItemOutcome]]:
        """Send one request; halve it when the server rejects its size."""
        try:
            response = self._send("".join(text for _, text in chunk))
        except Exception as error:
            if _status_of(error) != REQUEST_TOO_LARGE:
                raise
            if len(chunk) > 1:
                middle = len(chunk) // 2
                logger.warning(
                    "bulk request of %d items was too large for the server; "
                    "sending it in two halves",
                    len(chunk),
                )
                yield from self._write_chunk(chunk[:middle])
                yield from self._write_chunk(chunk[middle:])
                return
            update, text = chunk[0]
            reason = (
                f"update of {len(text.encode('utf-8'))} bytes is larger than "
                f"the server accepts: {error}"
            )
            outcome = ItemOutcome(
                update.index, update.id, "failed", REQUEST_TOO_LARGE, reason
            )
            yield chunk[0], outcome
            return
        updates = [update for update, _ in chunk]
        yield from zip(chunk, read_bulk_items(response, updates), strict=True)
