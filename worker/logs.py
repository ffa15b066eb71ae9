"""Log set-up: text or JSON lines with index, slice and batch ids, and a repeat limit.

The ids come from context variables that the worker sets once (index, slice)
and per page (batch), so every line logged while a page is processed carries
them, whichever module logs it. Repeated warnings and errors of the same kind
are let through once per window and counted, so an outage does not flood the
log with one line per retry.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

DEFAULT_REPEAT_SECONDS = 60.0
NOISY_LOGGERS = ("opensearch", "elastic_transport", "urllib3", "httpx")
CONTEXT_FIELDS = ("index", "slice", "batch")

_index: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "d2q_index", default=None
)
_slice: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "d2q_slice", default=None
)
_batch: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "d2q_batch", default=None
)
# The worker's index and slice are set once, in the main thread. The metrics
# server and the pipeline's other threads fall back to these values.
_worker_ids: dict[str, str | None] = {"index": None, "slice": None}


def set_worker_ids(index: str | None, slice_text: str | None) -> None:
    """Set the index and slice logged in every line of this process."""
    _worker_ids["index"] = index
    _worker_ids["slice"] = slice_text
    _index.set(index)
    _slice.set(slice_text)


@contextlib.contextmanager
def batch_context(batch: str) -> Iterator[None]:
    """Log ``batch`` as the batch id of every line inside the block."""
    token = _batch.set(batch)
    try:
        yield
    finally:
        _batch.reset(token)


class ContextFilter(logging.Filter):
    """Adds ``index``, ``slice`` and ``batch`` attributes to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.index = _index.get() or _worker_ids["index"]
        record.slice = _slice.get() or _worker_ids["slice"]
        record.batch = _batch.get()
        return True


class RepeatFilter(logging.Filter):
    """Lets one warning or error of a kind through per window and counts the rest.

    A kind is the logger, level and message template, so the same failure for
    other documents counts as a repeat. The first record after a window
    carries ``repeated``, the number of records dropped in that window.
    ``window_seconds`` 0 lets everything through.
    """

    def __init__(
        self,
        window_seconds: float = DEFAULT_REPEAT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.window_seconds = window_seconds
        self.clock = clock
        self._last: dict[tuple[str, int, str], float] = {}
        self._dropped: dict[tuple[str, int, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if self.window_seconds <= 0 or record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.window_seconds:
            self._dropped[key] = self._dropped.get(key, 0) + 1
            return False
        self._last[key] = now
        record.repeated = self._dropped.pop(key, 0)
        return True


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            entry[name] = getattr(record, name, None)
        repeated = getattr(record, "repeated", 0)
        if repeated:
            entry["repeated"] = repeated
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Formats a record as one text line, with the ids that are set."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = [
            f"{name}={getattr(record, name)}"
            for name in CONTEXT_FIELDS
            if getattr(record, name, None) is not None
        ]
        repeated = getattr(record, "repeated", 0)
        if repeated:
            ids.append(f"repeated={repeated}")
        return f"{line} [{' '.join(ids)}]" if ids else line


def configure_logging(
    level: str,
    log_format: str,
    repeat_seconds: float = DEFAULT_REPEAT_SECONDS,
    stream: Any = None,
) -> logging.Handler:
    """Send log lines to ``stream`` (standard error by default); return the handler."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    handler.addFilter(RepeatFilter(repeat_seconds))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Library warnings become log records, so JSON output stays one object a line.
    logging.captureWarnings(True)
    root.setLevel(level.upper())
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    return handler
