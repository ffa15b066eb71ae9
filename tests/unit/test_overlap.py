"""The three-stage overlap: order, completeness, bounds and errors."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator

import pytest

from worker.overlap import Overlap, numbered_pages


def _jitter(seed: int) -> None:
    # Random short sleeps shuffle which thread runs first; nothing is timed.
    time.sleep(random.Random(seed).random() / 500)


def test_overlap_keeps_order_and_loses_nothing():
    finished: list[int] = []

    def items() -> Iterator[int]:
        for number in range(200):
            _jitter(number)
            yield number

    def work(number: int) -> int:
        _jitter(number + 1)
        return number * 10

    def finish(result: int) -> None:
        _jitter(result)
        finished.append(result)

    Overlap(work, finish).run(items())

    assert finished == [number * 10 for number in range(200)]


def test_fetching_stays_within_depth():
    fetched = 0
    worked = 0
    ahead: list[int] = []
    lock = threading.Lock()

    def items() -> Iterator[int]:
        nonlocal fetched
        for number in range(50):
            with lock:
                fetched += 1
            yield number

    def work(number: int) -> int:
        nonlocal worked
        time.sleep(0.002)
        with lock:
            worked += 1
            ahead.append(fetched - worked)
        return number

    Overlap(work, lambda result: None, depth=2).run(items())

    # The queue contains up to 2 items, and the fetching thread may keep 1 more
    # that it cannot put yet.
    assert max(ahead) <= 3


def test_stop_finishes_item_in_flight():
    finished: list[int] = []
    stop = threading.Event()

    def work(number: int) -> int:
        if number == 3:
            stop.set()
        return number

    Overlap(work, finished.append).run(iter(range(100)), should_stop=stop.is_set)

    assert finished == [0, 1, 2, 3]


def test_fetch_error_is_raised_after_earlier_results():
    finished: list[int] = []

    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise ConnectionError("cluster went away")

    with pytest.raises(ConnectionError, match="cluster went away"):
        Overlap(lambda number: number, finished.append).run(items())
    assert finished == [1, 2]


def test_finish_error_stops_work():
    worked: list[int] = []

    def work(number: int) -> int:
        worked.append(number)
        return number

    def finish(result: int) -> None:
        if result == 2:
            raise RuntimeError("bulk request failed")

    with pytest.raises(RuntimeError, match="bulk request failed"):
        Overlap(work, finish, depth=1).run(iter(range(1000)))
    assert len(worked) < 1000


def test_work_error_still_finishes_earlier_results():
    finished: list[int] = []

    def work(number: int) -> int:
        if number == 5:
            raise ValueError("model failed")
        return number

    with pytest.raises(ValueError, match="model failed"):
        Overlap(work, finished.append).run(iter(range(10)))
    assert finished == [0, 1, 2, 3, 4]


def test_depth_below_one_is_rejected():
    with pytest.raises(ValueError, match="depth must be 1 or more"):
        Overlap(lambda item: item, lambda result: None, depth=0)


def test_numbered_pages_stop_at_limit():
    pages = [["a", "b", "c"], ["d", "e", "f"], ["g"]]

    numbered = list(numbered_pages(iter(pages), limit=4))

    assert numbered == [(1, ["a", "b", "c"]), (2, ["d"])]


def test_numbered_pages_without_limit():
    pages = [["a"], [], ["b"]]

    assert list(numbered_pages(iter(pages))) == [(1, ["a"]), (3, ["b"])]
