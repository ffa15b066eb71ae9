"""Read the documents that need an expansion, page by page, from a point in time."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from worker.cluster.engine import Engine

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceDocument:
    """A document as read, with the version its expansion must be written against."""

    index: str
    id: str
    seq_no: int | None
    primary_term: int | None
    source: dict[str, Any]


def pending_query(field: str, fingerprint: str, retry_failed: bool = False) -> dict[str, Any]:
    """Select documents without an expansion of the current fingerprint.

    Documents whose current expansion failed are selected too when
    ``retry_failed`` is set.
    """
    current = {"term": {f"{field}.fingerprint": fingerprint}}
    if not retry_failed:
        return {"bool": {"must_not": [current]}}
    failed = {"bool": {"filter": [current, {"term": {f"{field}.status": "failed"}}]}}
    return {"bool": {"should": [{"bool": {"must_not": [current]}}, failed], "minimum_should_match": 1}}


def _to_document(hit: dict[str, Any]) -> SourceDocument:
    return SourceDocument(
        index=hit["_index"],
        id=hit["_id"],
        seq_no=hit.get("_seq_no"),
        primary_term=hit.get("_primary_term"),
        source=hit.get("_source") or {},
    )


def iter_pages(
    engine: Engine,
    index: str,
    query: dict[str, Any],
    source_fields: Sequence[str],
    page_size: int,
    keep_alive: str,
) -> Iterator[list[SourceDocument]]:
    """Yield pages of matching documents from one point in time.

    The point in time is a snapshot, so documents indexed or updated after it
    opened are seen by the next call, not this one. It is closed when the
    generator finishes or is closed early.
    """
    pit_id = engine.open_pit(index, keep_alive)
    search_after: list[Any] | None = None
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
            if search_after is not None:
                body["search_after"] = search_after
            response = engine.search_pit(pit_id, keep_alive, body)
            pit_id = response.get("pit_id", pit_id)
            hits = response["hits"]["hits"]
            if not hits:
                return
            yield [_to_document(hit) for hit in hits]
            search_after = hits[-1]["sort"]
    finally:
        try:
            engine.close_pit(pit_id)
        except Exception as error:  # noqa: BLE001 - closing is best effort
            logger.warning("could not close point in time on %s: %s", index, error)
