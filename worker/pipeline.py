"""The read, generate, write loop and its life cycle.

The pipeline joins the cluster side and the model side, which never import
each other. One pass opens a point in time over the documents that lack the
current expansion, and for each page it splits paragraphs, generates queries,
weights their analysed terms and writes the expansions in bulk.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from worker.cluster.bulk import ItemOutcome, Update
from worker.cluster.engine import Engine, is_retryable
from worker.cluster.reader import SourceDocument, iter_pages, pending_query
from worker.cluster.writer import BulkWriter
from worker.errors import ClusterError
from worker.expansion.document import Expansion, source_hash
from worker.expansion.paragraphs import split_paragraphs
from worker.expansion.queries import clean_queries
from worker.expansion.terms import group_tokens_by_query, weigh_terms
from worker.expansion.text import extract_text
from worker.model.base import QueryGenerator

logger = logging.getLogger(__name__)

# A backfill runs another pass while documents changed under it (409), so
# they are expanded from their new text; this bounds the passes when a
# document keeps changing.
MAX_BACKFILL_PASSES = 5
NO_QUERIES_REASON = "the model produced no usable queries"


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


@dataclass
class RunSummary:
    """Counts of one backfill or daemon pass."""

    expanded: int = 0
    skipped: int = 0
    failed: int = 0
    conflicts: int = 0
    seconds: float = 0.0
    failures: list[ItemOutcome] = field(default_factory=list)

    @property
    def processed(self) -> int:
        return self.expanded + self.skipped + self.failed + self.conflicts

    def add(self, other: RunSummary) -> None:
        self.expanded += other.expanded
        self.skipped += other.skipped
        self.failed += other.failed
        self.conflicts += other.conflicts
        self.failures.extend(other.failures)

    def line(self) -> str:
        return (
            f"expanded={self.expanded} skipped={self.skipped} failed={self.failed} "
            f"conflicts={self.conflicts} seconds={self.seconds:.1f}"
        )


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
        self.stop_event = threading.Event()

    # --- life cycle ------------------------------------------------------------

    def request_stop(self) -> None:
        """Finish the page in flight, write it, then stop."""
        self.stop_event.set()

    def backfill(self, limit: int | None = None, progress: ProgressCallback | None = None) -> RunSummary:
        """Expand every pending document once; return the counts."""
        started = time.monotonic()
        summary = RunSummary()
        for number in range(1, MAX_BACKFILL_PASSES + 1):
            remaining = None if limit is None else limit - summary.processed
            if remaining is not None and remaining <= 0:
                break
            result = self.run_pass(remaining, progress)
            summary.add(result)
            if not result.conflicts or self.stop_event.is_set():
                break
            logger.info(
                "index=%s pass=%d: %d documents changed while they were expanded; "
                "expanding them again from their new text",
                self.config.index,
                number,
                result.conflicts,
            )
        summary.seconds = time.monotonic() - started
        return summary

    def run_forever(self, poll_seconds: float) -> RunSummary:
        """Expand pending documents until stopped, polling for new ones."""
        started = time.monotonic()
        total = RunSummary()
        while not self.stop_event.is_set():
            try:
                result = self.run_pass()
            except ClusterError as error:
                logger.error("index=%s pass failed: %s; retrying in %.0f s", self.config.index, error, poll_seconds)
                result = RunSummary()
            except Exception as error:
                if not is_retryable(error):
                    raise
                logger.warning(
                    "index=%s cluster unavailable (%s); retrying in %.0f s",
                    self.config.index,
                    error,
                    poll_seconds,
                )
                result = RunSummary()
            total.add(result)
            if result.processed:
                logger.info("index=%s pass done: %s", self.config.index, result.line())
                continue
            self.stop_event.wait(poll_seconds)
        total.seconds = time.monotonic() - started
        return total

    # --- one pass --------------------------------------------------------------

    def pending_count(self) -> int:
        return self.engine.count(self.config.index, self._query())

    def _query(self) -> dict[str, Any]:
        return pending_query(self.config.expansion_field, self.config.fingerprint, self.config.retry_failed)

    def _source_fields(self) -> list[str]:
        field_name = self.config.expansion_field
        return [*self.config.fields, f"{field_name}.status", f"{field_name}.attempts"]

    def run_pass(self, limit: int | None = None, progress: ProgressCallback | None = None) -> RunSummary:
        """Expand the documents pending when the pass starts, up to ``limit``."""
        summary = RunSummary()
        pages = iter_pages(
            self.engine,
            self.config.index,
            self._query(),
            self._source_fields(),
            self.config.page_size,
            self.config.keep_alive,
        )
        try:
            for batch_number, page in enumerate(pages, start=1):
                if limit is not None:
                    page = page[: max(0, limit - summary.processed)]
                if page:
                    result = self.process_page(page, batch_number)
                    summary.add(result)
                    if progress is not None:
                        progress(result.processed)
                if self.stop_event.is_set() or (limit is not None and summary.processed >= limit):
                    break
        finally:
            pages.close()
        if summary.processed:
            self.engine.refresh(self.config.index)
        return summary

    def process_page(self, documents: list[SourceDocument], batch_number: int = 0) -> RunSummary:
        """Expand one page of documents and write the results."""
        started = time.monotonic()
        expansions = self._expand(documents)
        updates = [
            Update(doc.index, doc.id, doc.seq_no, doc.primary_term, expansion.to_source())
            for doc, expansion in zip(documents, expansions)
        ]
        outcomes = self.writer.write(updates)
        summary = self._tally(documents, expansions, outcomes)
        logger.info(
            "index=%s batch=%d documents=%d %s",
            self.config.index,
            batch_number,
            len(documents),
            summary.line().rsplit(" seconds=", 1)[0] + f" seconds={time.monotonic() - started:.1f}",
        )
        return summary

    # --- expansion of a page -------------------------------------------------------

    def _previous_attempts(self, document: SourceDocument) -> int:
        previous = document.source.get(self.config.expansion_field)
        if isinstance(previous, dict) and previous.get("status") == "failed":
            attempts = previous.get("attempts")
            if isinstance(attempts, int) and not isinstance(attempts, bool):
                return attempts
        return 0

    def _new_expansion(self, document: SourceDocument, **values: Any) -> Expansion:
        return Expansion(
            model=self.config.model_name,
            fingerprint=self.config.fingerprint,
            attempts=self._previous_attempts(document) + 1,
            **values,
        )

    def _expand(self, documents: list[SourceDocument]) -> list[Expansion]:
        expansions: list[Expansion | None] = [None] * len(documents)
        paragraphs: list[list[str]] = [[] for _ in documents]
        texts: list[str] = [""] * len(documents)
        for position, document in enumerate(documents):
            extracted = extract_text(document.source, self.config.fields)
            if extracted.skip_reason is not None:
                expansions[position] = self._new_expansion(
                    document, status="skipped", reason=extracted.skip_reason
                )
                continue
            texts[position] = extracted.text
            paragraphs[position] = split_paragraphs(
                extracted.text, self.generator.count_tokens, self.config.max_input_tokens
            )

        generated = self._generate(documents, paragraphs, expansions)
        for position, document in enumerate(documents):
            if expansions[position] is not None:
                continue
            expansions[position] = self._build_expansion(
                document, texts[position], paragraphs[position], generated[position]
            )
        return [expansion for expansion in expansions if expansion is not None]

    def _generate(
        self,
        documents: list[SourceDocument],
        paragraphs: list[list[str]],
        expansions: list[Expansion | None],
    ) -> list[list[list[str]]]:
        """Generate for the whole page at once; on an error, document by document."""
        flat = [text for per_doc in paragraphs for text in per_doc]
        try:
            queries = self.generator.generate(flat)
        except (RuntimeError, ValueError) as error:
            logger.warning("index=%s generation failed for a page (%s); retrying one document at a time", self.config.index, error)
            return self._generate_each(documents, paragraphs, expansions)
        result: list[list[list[str]]] = []
        offset = 0
        for per_doc in paragraphs:
            result.append(queries[offset : offset + len(per_doc)])
            offset += len(per_doc)
        return result

    def _generate_each(
        self,
        documents: list[SourceDocument],
        paragraphs: list[list[str]],
        expansions: list[Expansion | None],
    ) -> list[list[list[str]]]:
        result: list[list[list[str]]] = []
        for position, per_doc in enumerate(paragraphs):
            try:
                result.append(self.generator.generate(per_doc) if per_doc else [])
            except (RuntimeError, ValueError) as error:
                document = documents[position]
                logger.error("index=%s id=%s generation failed: %s", document.index, document.id, error)
                expansions[position] = self._new_expansion(
                    document, status="failed", reason=f"generation failed: {error}"
                )
                result.append([])
        return result

    def _build_expansion(
        self,
        document: SourceDocument,
        text: str,
        paragraphs: list[str],
        generated: list[list[str]],
    ) -> Expansion:
        queries: list[str] = []
        query_paragraph: list[int] = []
        seen: set[str] = set()
        for paragraph_number, raw in enumerate(generated):
            for query in clean_queries(raw):
                key = query.casefold()
                if key not in seen:
                    seen.add(key)
                    queries.append(query)
                    query_paragraph.append(paragraph_number)
        if not queries:
            return self._new_expansion(
                document, status="skipped", reason=NO_QUERIES_REASON,
                source_hash=source_hash(text), paragraphs=len(paragraphs),
            )
        tokens = self.engine.analyze(document.index, f"{self.config.expansion_field}.queries", queries)
        terms = weigh_terms(group_tokens_by_query(tokens), self.config.max_terms)
        return self._new_expansion(
            document,
            status="expanded",
            source_hash=source_hash(text),
            queries=queries,
            query_paragraph=query_paragraph,
            terms=terms,
            paragraphs=len(paragraphs),
        )

    # --- outcomes ------------------------------------------------------------------

    def _tally(
        self,
        documents: list[SourceDocument],
        expansions: list[Expansion],
        outcomes: list[ItemOutcome],
    ) -> RunSummary:
        summary = RunSummary()
        failed: list[tuple[SourceDocument, Expansion, ItemOutcome]] = []
        for document, expansion, outcome in zip(documents, expansions, outcomes):
            if outcome.verdict == "done":
                if expansion.status == "expanded":
                    summary.expanded += 1
                elif expansion.status == "skipped":
                    summary.skipped += 1
                    logger.info("index=%s id=%s skipped: %s", document.index, document.id, expansion.reason)
                else:
                    summary.failed += 1
                    summary.failures.append(outcome)
            elif outcome.verdict == "conflict":
                summary.conflicts += 1
                logger.info("index=%s id=%s changed while it was expanded; it stays pending", document.index, document.id)
            else:
                summary.failed += 1
                summary.failures.append(outcome)
                logger.error(
                    "index=%s id=%s update failed with status %d: %s",
                    document.index, document.id, outcome.status, outcome.reason,
                )
                if outcome.verdict == "failed":
                    failed.append((document, expansion, outcome))
        self._record_failures(failed)
        return summary

    def _record_failures(self, failed: list[tuple[SourceDocument, Expansion, ItemOutcome]]) -> None:
        """Mark documents whose update failed permanently, so they are not retried in a loop."""
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
                reason=f"update rejected with status {outcome.status}: {outcome.reason}",
            )
            updates.append(
                Update(document.index, document.id, document.seq_no, document.primary_term, record.to_source())
            )
        for outcome in self.writer.write(updates):
            if outcome.verdict != "done":
                logger.error(
                    "index=%s id=%s could not record the failure (status %d): %s",
                    outcome.index, outcome.id, outcome.status, outcome.reason,
                )
