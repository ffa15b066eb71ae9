"""Run three stages at once: fetch the next item, work on this one, finish the last.

The pipeline uses it so that reading the next page from the cluster and
writing the previous page's expansions happen while the model generates. Two
bounded queues join the stages, so at most ``depth`` fetched items and
``depth`` finished results wait at any time, however many items there are.
Results are finished in the order the items came in.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from worker.cluster.reader import SourceDocument
from worker.expansion.document import Expansion

logger = logging.getLogger(__name__)

DEFAULT_DEPTH = 2
_POLL_SECONDS = 0.1

Item = TypeVar("Item")
Result = TypeVar("Result")


class _Done:
    """Marks the end of a queue."""


_DONE = _Done()


class _Failed:
    """Carries an error from the fetching thread to the working one."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _put(target: queue.Queue[Any], value: Any, give_up: threading.Event) -> bool:
    """Put ``value`` unless ``give_up`` is set while the queue is full."""
    while not give_up.is_set():
        try:
            target.put(value, timeout=_POLL_SECONDS)
            return True
        except queue.Full:
            continue
    return False


class Overlap(Generic[Item, Result]):
    """Fetches, works and finishes on three threads joined by bounded queues."""

    def __init__(
        self,
        work: Callable[[Item], Result],
        finish: Callable[[Result], None],
        depth: int = DEFAULT_DEPTH,
    ) -> None:
        if depth < 1:
            raise ValueError(f"depth must be 1 or more, not {depth}")
        self.work = work
        self.finish = finish
        self.depth = depth

    def run(
        self, items: Iterator[Item], should_stop: Callable[[], bool] | None = None
    ) -> None:
        """Work through ``items``; return when every result is finished.

        ``should_stop`` is checked after each item: when it returns True, no
        further item is taken, and the results already made are finished.
        ``items`` is advanced on a separate thread and is not closed here.

        Raises:
            BaseException: the first error of fetching, working or finishing,
                after the results made before it were finished.
        """
        inbox: queue.Queue[Any] = queue.Queue(maxsize=self.depth)
        outbox: queue.Queue[Any] = queue.Queue(maxsize=self.depth)
        stop_fetching = threading.Event()
        finish_failed = threading.Event()
        errors: list[BaseException] = []

        fetcher = threading.Thread(
            target=self._fetch,
            args=(items, inbox, stop_fetching),
            name="d2q-fetch",
            daemon=True,
        )
        finisher = threading.Thread(
            target=self._finish_all,
            args=(outbox, finish_failed, errors),
            name="d2q-finish",
            daemon=True,
        )
        fetcher.start()
        finisher.start()
        try:
            self._work_all(inbox, outbox, finish_failed, should_stop)
        finally:
            stop_fetching.set()
            _put(outbox, _DONE, finish_failed)
            finisher.join()
            self._drain(inbox)
            fetcher.join()
        if errors:
            raise errors[0]

    def _work_all(
        self,
        inbox: queue.Queue[Any],
        outbox: queue.Queue[Any],
        finish_failed: threading.Event,
        should_stop: Callable[[], bool] | None,
    ) -> None:
        while not finish_failed.is_set():
            try:
                item = inbox.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                continue
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            result = self.work(item)
            if not _put(outbox, result, finish_failed):
                return
            if should_stop is not None and should_stop():
                return

    def _fetch(
        self,
        items: Iterator[Item],
        inbox: queue.Queue[Any],
        stop_fetching: threading.Event,
    ) -> None:
        try:
            for item in items:
                if not _put(inbox, item, stop_fetching):
                    return
        except BaseException as error:  # noqa: BLE001 - handed to the working thread
            _put(inbox, _Failed(error), stop_fetching)
            return
        _put(inbox, _DONE, stop_fetching)

    def _finish_all(
        self,
        outbox: queue.Queue[Any],
        finish_failed: threading.Event,
        errors: list[BaseException],
    ) -> None:
        while True:
            result = outbox.get()
            if result is _DONE:
                return
            try:
                self.finish(result)
            except BaseException as error:  # noqa: BLE001 - raised by run()
                logger.error("finishing a result failed: %s", error)
                errors.append(error)
                finish_failed.set()
                return

    @staticmethod
    def _drain(inbox: queue.Queue[Any]) -> None:
        """Empty the inbox so a fetching thread blocked on it can see the stop."""
        while True:
            try:
                inbox.get_nowait()
            except queue.Empty:
                return


# --- the pipeline's pages ------------------------------------------------------


@dataclass(frozen=True)
class ExpandedPage:
    """One page's documents and their expansions, waiting to be written."""

    batch_number: int
    documents: list[SourceDocument]
    expansions: list[Expansion]
    started: float


NumberedPage = tuple[int, list[SourceDocument]]


def numbered_pages(
    pages: Iterable[list[SourceDocument]], limit: int | None = None
) -> Iterator[NumberedPage]:
    """Number pages from 1 and stop once ``limit`` documents were read.

    The limit counts documents read, not written, because reading runs ahead
    of writing.
    """
    read = 0
    for number, page in enumerate(pages, start=1):
        if limit is not None:
            page = page[: max(0, limit - read)]
        if page:
            read += len(page)
            yield number, page
        if limit is not None and read >= limit:
            return
