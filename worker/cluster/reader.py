"""Read the documents that need an expansion, page by page, from a point in time."""

from __future__ import annotations

import logging
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

from worker.cluster.engine import Engine
from worker.errors import ClusterError, PartialResultsError

logger = logging.getLogger(__name__)

# A point in time that expires again right after it was opened this many
# times in a row means keep_alive is too short to read even one page.
MAX_PIT_REOPENINGS = 3
_CONTEXT_MISSING = "search_context_missing_exception"


@dataclass(frozen=True)
class SourceDocument:
    """A document as read, with the version its expansion must be written against."""

    index: str
    id: str
    seq_no: int | None
    primary_term: int | None
    source: dict[str, Any]


def current_expansion_query(field: str, fingerprint: str) -> dict[str, Any]:
    """Select documents expanded with ``fingerprint`` and not marked as changed."""
    return {
        "bool": {
            "filter": [{"term": {f"{field}.fingerprint": fingerprint}}],
            "must_not": [{"term": {f"{field}.status": "changed"}}],
        }
    }


def pending_query(
    field: str, fingerprint: str, retry_failed: bool = False
) -> dict[str, Any]:
    """Select documents without an up-to-date expansion of the current fingerprint.

    An expansion marked ``changed`` by the change-marking ingest pipeline is
    not up to date. Documents whose current expansion failed are selected too
    when ``retry_failed`` is set.
    """
    current = current_expansion_query(field, fingerprint)
    if not retry_failed:
        return {"bool": {"must_not": [current]}}
    failed = {"bool": {"filter": [current, {"term": {f"{field}.status": "failed"}}]}}
    return {
        "bool": {
            "should": [{"bool": {"must_not": [current]}}, failed],
            "minimum_should_match": 1,
        }
    }


def slice_clause(slice_id: int, slice_max: int) -> dict[str, Any]:
    """Return the ``slice`` of a point in time search: share ``slice_id`` of ``slice_max``.

    Slicing on ``_id`` hashes each document's id, so the share a document
    falls in does not depend on the point in time. Workers that open their own
    points in time at different moments therefore still read disjoint shares.
    """
    return {"field": "_id", "id": slice_id, "max": slice_max}


def _to_document(hit: dict[str, Any]) -> SourceDocument:
    return SourceDocument(
        index=hit["_index"],
        id=hit["_id"],
        seq_no=hit.get("_seq_no"),
        primary_term=hit.get("_primary_term"),
        source=hit.get("_source") or {},
    )


def is_expired_pit(error: BaseException) -> bool:
    """Tell whether a search failed because its point in time no longer exists.

    Both engines respond with 404 and ``search_context_missing_exception`` once a
    point in time has expired or was closed. The check reads the status and
    the error body by attribute, so it works with either client library.
    """
    status = getattr(error, "status_code", None)
    if status is None:
        status = getattr(getattr(error, "meta", None), "status", None)
    if status != 404:
        return False
    body = getattr(error, "info", None) or getattr(error, "body", None) or ""
    return _CONTEXT_MISSING in f"{body} {error}"


def _check_shards(index: str, response: dict[str, Any]) -> None:
    """Raise when some shards failed, since their documents are missing from the page."""
    shards = response.get("_shards") or {}
    failed = int(shards.get("failed") or 0)
    if not failed:
        return
    failures = shards.get("failures") or [{}]
    reason = failures[0].get("reason", {})
    text = (
        f"{reason.get('type')}: {reason.get('reason')}"
        if isinstance(reason, dict)
        else str(reason)
    )
    if _CONTEXT_MISSING in text:
        raise PointInTimeExpired(text)
    raise PartialResultsError(index, failed, text)


class PointInTimeExpired(Exception):
    """Some or all shards no longer have the point in time's search context."""


@dataclass
class ReadStats:
    """Counts of the reading of one pass, filled in by :func:`iter_pages`."""

    pages: int = 0
    reopened: int = 0


def iter_pages(
    engine: Engine,
    index: str,
    query: dict[str, Any],
    source_fields: Sequence[str],
    page_size: int,
    keep_alive: str,
    stats: ReadStats | None = None,
    slice_id_max: tuple[int, int] | None = None,
) -> Generator[list[SourceDocument], None, None]:
    """Yield pages of matching documents from one point in time.

    The point in time is a snapshot, so documents indexed or updated after it
    opened are seen by the next call, not this one. It may expire when the
    model takes longer than ``keep_alive`` over a page. Then a new one is
    opened and the search goes on after the sort values of the last page read.
    With the ``_id`` tiebreaker this reads no document twice and skips none
    after that point. Documents that became pending before that point wait for
    the next pass, and ``stats`` counts the reopenings so the caller runs one.
    The point in time
    is closed when the generator finishes or is closed early. With
    ``slice_id_max`` (id, max), only that slice of the matches is read.

    Raises:
        ClusterError: the point in time expired again right after it was
            opened, ``MAX_PIT_REOPENINGS`` times in a row.
        PartialResultsError: some shards failed for another reason.
    """
    stats = stats if stats is not None else ReadStats()
    pit_id = engine.open_pit(index, keep_alive)
    search_after: list[Any] | None = None
    reopened_in_a_row = 0
    try:
        while True:
            body: dict[str, Any] = {
                "size": page_size,
                "query": query,
                "sort": engine.pit_sort,
                "_source": list(source_fields),
                "seq_no_primary_term": True,
                "track_total_hits": False,
            }
            if slice_id_max is not None and slice_id_max[1] > 1:
                body["slice"] = slice_clause(*slice_id_max)
            if search_after is not None:
                body["search_after"] = search_after
            try:
                response = engine.search_pit(pit_id, keep_alive, body)
                _check_shards(index, response)
            except Exception as error:
                if not (isinstance(error, PointInTimeExpired) or is_expired_pit(error)):
                    raise
                reopened_in_a_row += 1
                if reopened_in_a_row > MAX_PIT_REOPENINGS:
                    raise ClusterError(
                        f"the point in time on {index!r} expired {reopened_in_a_row} "
                        f"times in a row right after it was opened; raise "
                        f"--pit-keep-alive (now {keep_alive})"
                    ) from error
                logger.warning(
                    "index=%s point in time expired after %d pages (keep_alive %s); "
                    "opening a new one and going on after the last page",
                    index,
                    stats.pages,
                    keep_alive,
                )
                _close_quietly(engine, index, pit_id)
                pit_id = engine.open_pit(index, keep_alive)
                stats.reopened += 1
                continue
            reopened_in_a_row = 0
            pit_id = response.get("pit_id", pit_id)
            hits = response["hits"]["hits"]
            if not hits:
                return
            stats.pages += 1
            yield [_to_document(hit) for hit in hits]
            search_after = hits[-1]["sort"]
    finally:
        _close_quietly(engine, index, pit_id)


def _close_quietly(engine: Engine, index: str, pit_id: str) -> None:
    try:
        engine.close_pit(pit_id)
    except Exception as error:  # noqa: BLE001 - closing is best effort
        logger.warning("could not close point in time on %s: %s", index, error)
