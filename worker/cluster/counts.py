"""Count documents by the state of their expansion."""

from __future__ import annotations

from typing import Any

from worker.cluster.engine import Engine
from worker.cluster.reader import current_expansion_query, slice_clause


def expansion_counts(
    engine: Engine, index: str, field: str, fingerprint: str
) -> dict[str, int]:
    """Return total, expanded, skipped, failed, stale, changed and pending counts.

    Expanded, skipped and failed count documents whose expansion carries the
    current fingerprint and is not marked as changed. Stale documents have an
    expansion that is out of date: made with another fingerprint (other
    settings or model), or marked ``changed`` because their text was written
    again. Changed counts the second kind alone. Pending is everything without
    an up-to-date expansion, stale documents included.
    """
    current = current_expansion_query(field, fingerprint)

    def with_status(status: str) -> dict[str, Any]:
        return {"bool": {"filter": [current, {"term": {f"{field}.status": status}}]}}

    stale = {
        "bool": {
            "filter": [{"exists": {"field": f"{field}.fingerprint"}}],
            "must_not": [current],
        }
    }
    return {
        "total": engine.count(index, {"match_all": {}}),
        "expanded": engine.count(index, with_status("expanded")),
        "skipped": engine.count(index, with_status("skipped")),
        "failed": engine.count(index, with_status("failed")),
        "stale": engine.count(index, stale),
        "changed": engine.count(index, {"term": {f"{field}.status": "changed"}}),
        "pending": engine.count(index, {"bool": {"must_not": [current]}}),
    }


def count_in_slice(
    engine: Engine,
    index: str,
    query: dict[str, Any],
    slice_id_max: tuple[int, int] | None,
    keep_alive: str = "1m",
) -> int:
    """Count the documents matching ``query`` in one slice, or in all without one.

    The count API takes no slice, so a sliced count runs a point in time
    search of size 0 that tracks the total number of hits.
    """
    if slice_id_max is None or slice_id_max[1] <= 1:
        return engine.count(index, query)
    pit_id = engine.open_pit(index, keep_alive)
    try:
        body = {
            "size": 0,
            "query": query,
            "slice": slice_clause(*slice_id_max),
            "track_total_hits": True,
        }
        response = engine.search_pit(pit_id, keep_alive, body)
    finally:
        engine.close_pit(pit_id)
    return int(response["hits"]["total"]["value"])
