"""Log lines: JSON with index, slice and batch ids, and the repeat limit."""

from __future__ import annotations

import io
import json
import logging

import pytest

from worker.logs import RepeatFilter, batch_context, configure_logging, set_worker_ids


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(
    message: str, level: int = logging.ERROR, *args: object
) -> logging.LogRecord:
    return logging.LogRecord("worker.test", level, __file__, 1, message, args, None)


@pytest.fixture()
def json_lines():
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging("INFO", "json", repeat_seconds=60, stream=stream)
    set_worker_ids("news", "1/3")
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.handlers[:], level = saved
    root.setLevel(level)
    set_worker_ids(None, None)


def test_json_lines_carry_ids(json_lines):
    log = logging.getLogger("worker.test")
    log.info("outside a page")
    with batch_context("2.7"):
        log.info("inside page %d", 7)

    outside, inside = json_lines()

    assert outside["index"] == "news"
    assert outside["slice"] == "1/3"
    assert outside["batch"] is None
    assert inside["batch"] == "2.7"
    assert inside["message"] == "inside page 7"


def test_json_lines_limit_repeated_errors(json_lines):
    log = logging.getLogger("worker.test")
    for number in range(5):
        log.error("bulk request failed for %s", f"doc-{number}")

    lines = json_lines()

    assert len(lines) == 1
    assert lines[0]["message"] == "bulk request failed for doc-0"


def test_repeat_filter_counts_dropped_records():
    clock = FakeClock()
    limit = RepeatFilter(window_seconds=60, clock=clock)

    first = record("cluster unavailable: %s", logging.ERROR, "timeout")
    assert limit.filter(first)
    assert not limit.filter(record("cluster unavailable: %s", logging.ERROR, "reset"))
    assert not limit.filter(record("cluster unavailable: %s", logging.ERROR, "reset"))
    clock.now = 61.0
    later = record("cluster unavailable: %s", logging.ERROR, "timeout")

    assert limit.filter(later)
    assert later.repeated == 2


def test_repeat_filter_keeps_other_messages_and_info():
    limit = RepeatFilter(window_seconds=60, clock=FakeClock())

    assert limit.filter(record("first problem"))
    assert limit.filter(record("second problem"))
    assert limit.filter(record("progress", logging.INFO))
    assert limit.filter(record("progress", logging.INFO))


def test_repeat_filter_zero_window_keeps_all():
    limit = RepeatFilter(window_seconds=0, clock=FakeClock())

    assert limit.filter(record("same"))
    assert limit.filter(record("same"))
