"""Find edited documents that no ingest pipeline saw, by hashing their text again.

The change-marking pipeline does not see every write: bulk ``update`` actions
pass it by, and an index may have no pipeline at all. ``d2q verify`` reads
every document with an up-to-date expansion, hashes its current text and marks
those whose hash differs from the stored ``source_hash`` as ``changed``, as
the pipeline would. The daemon then expands them again. Reading costs no model
time, so a scheduled verify (a cron job, for example) bounds how long such an
edit stays unseen.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from worker.cluster.bulk import Update
from worker.cluster.engine import Engine
from worker.cluster.reader import SourceDocument, current_expansion_query, iter_pages
from worker.cluster.writer import BulkWriter
from worker.expansion.changes import CHANGED_STATUS, RESTORABLE_STATUSES
from worker.expansion.document import source_hash
from worker.expansion.text import extract_text

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VerifyConfig:
    """Plain values the check needs, taken from the settings."""

    index: str
    fields: Sequence[str]
    expansion_field: str
    fingerprint: str
    page_size: int = 64
    keep_alive: str = "10m"
    slice_id_max: tuple[int, int] | None = None


@dataclass
class VerifySummary:
    """Counts of one verify run."""

    checked: int = 0
    marked: int = 0
    conflicts: int = 0
    failed: int = 0


def current_text_hash(source: dict[str, Any], fields: Sequence[str]) -> str | None:
    """Return the source hash of a document's text now, or None if it has none."""
    extracted = extract_text(source, fields)
    if extracted.skip_reason is not None:
        return None
    return source_hash(extracted.text)


def marked_expansion(
    document: SourceDocument, field: str, fields: Sequence[str]
) -> dict[str, Any] | None:
    """Return the expansion marked as changed if the text changed, else None."""
    previous = document.source.get(field)
    if not isinstance(previous, dict):
        return None
    if current_text_hash(document.source, fields) == previous.get("source_hash"):
        return None
    return {
        **previous,
        "status": CHANGED_STATUS,
        "changed_from": previous.get("status"),
    }


def verify_query(field: str, fingerprint: str) -> dict[str, Any]:
    """Select documents whose expansion is up to date, expanded or skipped."""
    statuses = {"terms": {f"{field}.status": list(RESTORABLE_STATUSES)}}
    return {"bool": {"filter": [current_expansion_query(field, fingerprint), statuses]}}


def verify_sources(
    engine: Engine, writer: BulkWriter, config: VerifyConfig
) -> VerifySummary:
    """Mark the documents whose text changed since their expansion; return counts.

    Each mark is written against the sequence number of the read, so a
    document written again meanwhile is left alone (a conflict) for the next run.
    """
    summary = VerifySummary()
    field = config.expansion_field
    pages = iter_pages(
        engine,
        config.index,
        verify_query(field, config.fingerprint),
        [*config.fields, field],
        config.page_size,
        config.keep_alive,
        slice_id_max=config.slice_id_max,
    )
    try:
        for page in pages:
            summary.checked += len(page)
            updates = []
            for document in page:
                expansion = marked_expansion(document, field, config.fields)
                if expansion is not None:
                    updates.append(
                        Update(
                            document.index,
                            document.id,
                            document.seq_no,
                            document.primary_term,
                            expansion,
                        )
                    )
            _count_outcomes(writer.write(updates) if updates else [], summary)
    finally:
        pages.close()
    if summary.marked:
        engine.refresh(config.index)
    return summary


def _count_outcomes(outcomes: Sequence[Any], summary: VerifySummary) -> None:
    for outcome in outcomes:
        if outcome.verdict == "done":
            summary.marked += 1
            logger.info(
                "index=%s id=%s text changed since its expansion; marked",
                outcome.index,
                outcome.id,
            )
        elif outcome.verdict == "conflict":
            summary.conflicts += 1
        else:
            summary.failed += 1
            logger.error(
                "index=%s id=%s could not be marked as changed (status %d): %s",
                outcome.index,
                outcome.id,
                outcome.status,
                outcome.reason,
            )
