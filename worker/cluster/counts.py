"""Count documents by the state of their expansion."""

from __future__ import annotations

from typing import Any

from worker.cluster.engine import Engine


def expansion_counts(
    engine: Engine, index: str, field: str, fingerprint: str
) -> dict[str, int]:
    """Return total, expanded, skipped, failed, stale and pending counts.

    Expanded, skipped and failed count documents whose expansion carries the
    current fingerprint. Stale documents have an expansion with another
    fingerprint (other settings or model). Pending is everything without the
    current fingerprint, stale documents included.
    """
    current = {"term": {f"{field}.fingerprint": fingerprint}}

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
        "pending": engine.count(index, {"bool": {"must_not": [current]}}),
    }
