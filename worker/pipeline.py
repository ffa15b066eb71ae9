"""The read, generate, write loop and its life cycle.

The pipeline joins the cluster side and the model side, which never import
each other. One pass opens a point in time over the documents that lack the
current expansion, and for each page it expands the documents (see
:mod:`worker.page`) and writes the expansions in bulk. Passes that meet a
cluster outage are tried again within an outage budget.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from worker.cluster.bulk import ItemOutcome, Update
from worker.cluster.counts import count_in_slice
from worker.cluster.engine import Engine
from worker.cluster.reader import ReadStats, SourceDocument, iter_pages, pending_query
from worker.cluster.writer import BulkWriter
from worker.errors import ClusterError
from worker.expansion.document import Expansion
from worker.model.base import QueryGenerator
from worker.outage import DEFAULT_OUTAGE_BUDGET_SECONDS, OutageBudget, is_transient
from worker.overlap import ExpandedPage, Overlap, numbered_pages
from worker.page import DEFAULT_MAX_TEXT_CHARS, PageExpander, PageSettings

logger = logging.getLogger(__name__)

# A backfill runs another pass while documents changed under it (409), were
# rejected until the last retry, or were read across a reopened point in
# time, so they are expanded too; this bounds the passes when a document
# keeps changing.
MAX_BACKFILL_PASSES = 5
# Documents whose failure could not even be recorded are left out of later
# passes of this process by id; past this many, the oldest are tried again.
MAX_UNWRITABLE_IDS = 10_000
# Pages fetched ahead of the model, and pages of results waiting for the
# writer: memory stays at a few pages however large the index is.
OVERLAP_DEPTH = 2


@dataclass(frozen=True)
class PipelineConfig:
    """Plain values the pipeline needs, taken from the settings."""

    index: str
    fields: Sequence[str]
    expansion_field: str
    model_name: str
    fingerprint: str
    page_size: int = 64
    keep_alive: str = "10m"
    max_terms: int = 256
    max_input_tokens: int = 320
    retry_failed: bool = False
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS
    outage_budget_seconds: float = DEFAULT_OUTAGE_BUDGET_SECONDS
    # The slice this worker reads, as (id, max); None reads every document.
    slice_id_max: tuple[int, int] | None = None

    def page_settings(self) -> PageSettings:
        return PageSettings(
            fields=self.fields,
            expansion_field=self.expansion_field,
            model_name=self.model_name,
            fingerprint=self.fingerprint,
            max_terms=self.max_terms,
            max_input_tokens=self.max_input_tokens,
            max_text_chars=self.max_text_chars,
        )


@dataclass
class RunSummary:
    """Counts of one backfill or daemon pass.

    ``conflicts`` changed while they were expanded, ``missing`` were deleted,
    and ``deferred`` were still rejected (429, 502-504) after the last retry;
    all of these stay pending.
    """

    expanded: int = 0
    skipped: int = 0
    failed: int = 0
    conflicts: int = 0
    missing: int = 0
    deferred: int = 0
    reopened: int = 0
    seconds: float = 0.0
    failures: list[ItemOutcome] = field(default_factory=list)

    @property
    def processed(self) -> int:
        return (
            self.expanded
            + self.skipped
            + self.failed
            + self.conflicts
            + self.missing
            + self.deferred
        )

    @property
    def needs_another_pass(self) -> bool:
        """Tell whether documents of this pass may still be pending."""
        return bool(self.conflicts or self.deferred or self.reopened)

    def add(self, other: RunSummary) -> None:
        self.expanded += other.expanded
        self.skipped += other.skipped
        self.failed += other.failed
        self.conflicts += other.conflicts
        self.missing += other.missing
        self.deferred += other.deferred
        self.reopened += other.reopened
        self.failures.extend(other.failures)

    def counts(self) -> str:
        return (
            f"expanded={self.expanded} skipped={self.skipped} failed={self.failed} "
            f"conflicts={self.conflicts} missing={self.missing} "
            f"deferred={self.deferred}"
        )

    def line(self) -> str:
        return f"{self.counts()} seconds={self.seconds:.1f}"


ProgressCallback = Callable[[int], None]


class Pipeline:
    """Expands the documents of one index that lack the current expansion."""

    def __init__(
        self,
        engine: Engine,
        generator: QueryGenerator,
        writer: BulkWriter,
        config: PipelineConfig,
    ) -> None:
        self.engine = engine
        self.generator = generator
        self.writer = writer
        self.config = config
        self.expander = PageExpander(engine, generator, config.page_settings())
        self.stop_event = threading.Event()
        # id -> reason, for documents whose failure record was rejected too.
        self.unwritable: dict[str, str] = {}

    # --- life cycle ------------------------------------------------------------

    def request_stop(self) -> None:
        """Finish the page in flight, write it, then stop."""
        self.stop_event.set()

    def backfill(
        self, limit: int | None = None, progress: ProgressCallback | None = None
    ) -> RunSummary:
        """Expand every pending document once; return the counts.

        Raises:
            OutageError: the cluster stayed unavailable past the outage budget.
                Documents written before stay written; a new backfill goes on
                with the rest.
        """
        started = time.monotonic()
        summary = RunSummary()
        outage = OutageBudget(
            self.config.index, self.config.outage_budget_seconds, self.stop_event
        )
        number = 0
        while number < MAX_BACKFILL_PASSES and not self.stop_event.is_set():
            remaining = None if limit is None else limit - summary.processed
            if remaining is not None and remaining <= 0:
                break
            result = RunSummary()
            try:
                self.run_pass(remaining, progress, result)
            except Exception as error:
                summary.add(result)
                if not is_transient(error):
                    raise
                if result.processed:
                    # Pages were written since the last error: a new outage.
                    outage.recovered()
                outage.wait(error)
                continue
            outage.recovered()
            number += 1
            summary.add(result)
            if not result.needs_another_pass:
                break
            logger.info(
                "index=%s pass=%d: %d changed, %d deferred, %d point in time "
                "reopenings; running another pass for the documents still pending",
                self.config.index,
                number,
                result.conflicts,
                result.deferred,
                result.reopened,
            )
        summary.seconds = time.monotonic() - started
        return summary

    def run_forever(self, poll_seconds: float) -> RunSummary:
        """Expand pending documents until stopped, polling for new ones.

        A cluster outage is waited out without limit; other cluster errors are
        logged and the pass is tried again after ``poll_seconds``.
        """
        started = time.monotonic()
        total = RunSummary()
        outage = OutageBudget(
            self.config.index, math.inf, self.stop_event, max_delay=poll_seconds
        )
        while not self.stop_event.is_set():
            result = RunSummary()
            try:
                self.run_pass(summary=result)
            except Exception as error:
                total.add(result)
                if is_transient(error):
                    if result.processed:
                        outage.recovered()
                    outage.wait(error)
                    continue
                if not isinstance(error, ClusterError):
                    raise
                logger.error(
                    "index=%s pass failed: %s; retrying in %.0f s",
                    self.config.index,
                    error,
                    poll_seconds,
                )
                self.stop_event.wait(poll_seconds)
                continue
            outage.recovered()
            total.add(result)
            if result.processed:
                logger.info("index=%s pass done: %s", self.config.index, result.line())
                continue
            self.stop_event.wait(poll_seconds)
        total.seconds = time.monotonic() - started
        return total

    # --- one pass --------------------------------------------------------------

    def pending_count(self) -> int:
        return count_in_slice(
            self.engine, self.config.index, self._query(), self.config.slice_id_max
        )

    def _query(self) -> dict[str, Any]:
        query = pending_query(
            self.config.expansion_field,
            self.config.fingerprint,
            self.config.retry_failed,
        )
        if not self.unwritable:
            return query
        excluded = {"ids": {"values": list(self.unwritable)}}
        return {"bool": {"filter": [query], "must_not": [excluded]}}

    def _source_fields(self) -> list[str]:
        field_name = self.config.expansion_field
        # The whole expansion object, so that one marked as changed whose text
        # did not change can be written back with its old status.
        return [*self.config.fields, field_name]

    def run_pass(
        self,
        limit: int | None = None,
        progress: ProgressCallback | None = None,
        summary: RunSummary | None = None,
    ) -> RunSummary:
        """Expand the documents pending when the pass starts, up to ``limit``.

        Counts go into ``summary`` page by page, so a caller that catches an
        error still has the counts of the pages written before it.
        """
        summary = summary if summary is not None else RunSummary()
        stats = ReadStats()
        pages = iter_pages(
            self.engine,
            self.config.index,
            self._query(),
            self._source_fields(),
            self.config.page_size,
            self.config.keep_alive,
            stats,
            slice_id_max=self.config.slice_id_max,
        )

        def finish(expanded: ExpandedPage) -> None:
            result = self.write_page(expanded)
            summary.add(result)
            if progress is not None:
                progress(result.processed)

        overlap = Overlap(self.expand_page, finish, depth=OVERLAP_DEPTH)
        try:
            overlap.run(
                numbered_pages(pages, limit), should_stop=self.stop_event.is_set
            )
        finally:
            summary.reopened += stats.reopened
            pages.close()
        if summary.processed:
            self.engine.refresh(self.config.index)
        return summary

    def process_page(
        self, documents: list[SourceDocument], batch_number: int = 0
    ) -> RunSummary:
        """Expand one page of documents and write the results."""
        return self.write_page(self.expand_page((batch_number, documents)))

    def expand_page(self, page: tuple[int, list[SourceDocument]]) -> ExpandedPage:
        """Generate the expansions of one numbered page; the model's stage."""
        batch_number, documents = page
        started = time.monotonic()
        expansions = self.expander.expand(documents)
        return ExpandedPage(batch_number, documents, expansions, started)

    def write_page(self, expanded: ExpandedPage) -> RunSummary:
        """Write one page's expansions and count the outcomes; the writer's stage."""
        batch_number, documents = expanded.batch_number, expanded.documents
        expansions, started = expanded.expansions, expanded.started
        updates = [
            Update(
                doc.index, doc.id, doc.seq_no, doc.primary_term, expansion.to_source()
            )
            for doc, expansion in zip(documents, expansions, strict=True)
        ]
        outcomes = self.writer.write(updates)
        summary = self._tally(documents, expansions, outcomes)
        logger.info(
            "index=%s batch=%d documents=%d %s seconds=%.1f",
            self.config.index,
            batch_number,
            len(documents),
            summary.counts(),
            time.monotonic() - started,
        )
        return summary

    # --- outcomes --------------------------------------------------------------

    def _tally(
        self,
        documents: list[SourceDocument],
        expansions: list[Expansion],
        outcomes: list[ItemOutcome],
    ) -> RunSummary:
        summary = RunSummary()
        failed: list[tuple[SourceDocument, Expansion, ItemOutcome]] = []
        for document, expansion, outcome in zip(
            documents, expansions, outcomes, strict=True
        ):
            index, doc_id = document.index, document.id
            if outcome.verdict == "done":
                if expansion.status == "expanded":
                    summary.expanded += 1
                elif expansion.status == "skipped":
                    summary.skipped += 1
                    logger.info(
                        "index=%s id=%s skipped: %s", index, doc_id, expansion.reason
                    )
                else:
                    summary.failed += 1
                    summary.failures.append(outcome)
            elif outcome.verdict == "conflict":
                summary.conflicts += 1
                logger.info(
                    "index=%s id=%s changed while it was expanded; it stays pending",
                    index,
                    doc_id,
                )
            elif outcome.verdict == "missing":
                summary.missing += 1
                logger.info(
                    "index=%s id=%s was deleted while it was expanded", index, doc_id
                )
            elif outcome.verdict == "retry":
                summary.deferred += 1
                logger.warning(
                    "index=%s id=%s still rejected with status %d after the last "
                    "retry; it stays pending: %s",
                    index,
                    doc_id,
                    outcome.status,
                    outcome.reason,
                )
            else:
                summary.failed += 1
                summary.failures.append(outcome)
                logger.error(
                    "index=%s id=%s update failed with status %d: %s",
                    index,
                    doc_id,
                    outcome.status,
                    outcome.reason,
                )
                failed.append((document, expansion, outcome))
        self._record_failures(failed)
        return summary

    def _record_failures(
        self, failed: list[tuple[SourceDocument, Expansion, ItemOutcome]]
    ) -> None:
        """Mark documents whose update failed permanently, so no pass retries them.

        The record is written against the version that was read, like the
        expansion. When the cluster rejects the record too (the document
        itself no longer fits the mapping), the id is left out of the later
        passes of this process instead.
        """
        if not failed:
            return
        updates = []
        for document, expansion, outcome in failed:
            record = Expansion(
                model=expansion.model,
                fingerprint=expansion.fingerprint,
                status="failed",
                source_hash=expansion.source_hash,
                paragraphs=expansion.paragraphs,
                attempts=expansion.attempts,
                reason=f"update rejected with status {outcome.status}: "
                f"{outcome.reason}",
            )
            updates.append(
                Update(
                    document.index,
                    document.id,
                    document.seq_no,
                    document.primary_term,
                    record.to_source(),
                )
            )
        for outcome in self.writer.write(updates):
            if outcome.verdict in ("done", "conflict", "missing", "retry"):
                continue
            logger.error(
                "index=%s id=%s could not record the failure (status %d): %s; "
                "this process leaves it out from now on",
                outcome.index,
                outcome.id,
                outcome.status,
                outcome.reason,
            )
            if len(self.unwritable) >= MAX_UNWRITABLE_IDS:
                self.unwritable.pop(next(iter(self.unwritable)))
            self.unwritable[outcome.id] = outcome.reason or ""
