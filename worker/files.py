"""File import: expansions from queries produced elsewhere.

``import-queries`` reads one ``{"id": DOC_ID, "queries": [...]}`` object per
line and writes each document's expansion as the pipeline would: the same
clean-up, term weights, bookkeeping and optimistic concurrency. The model
name is ``imported:<file name>``, which distinguishes imported expansions from
generated ones. ``export-pairs`` (in :mod:`worker.pairs`) writes the opposite
direction.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worker.cluster.bulk import Update
from worker.cluster.engine import Engine
from worker.cluster.reader import SourceDocument
from worker.cluster.writer import BulkWriter
from worker.errors import InputFileError, ModelLoadError
from worker.expansion.document import Expansion, source_hash
from worker.expansion.paragraphs import TokenCounter, split_paragraphs
from worker.expansion.queries import normalise_query
from worker.expansion.terms import group_tokens_by_query, weigh_terms
from worker.expansion.text import extract_text

logger = logging.getLogger(__name__)

IMPORTED_MODEL_PREFIX = "imported:"
# query_paragraph value of an imported query whose paragraph is not known
# (the file gives none and the document has several paragraphs).
UNKNOWN_PARAGRAPH = -1
NO_IMPORTED_QUERIES_REASON = "the imported file gives no usable queries"
# A document that changes between read and write is read again this often.
MAX_CONFLICT_ROUNDS = 3


def imported_model_name(path: str | Path) -> str:
    """Return the model name recorded on expansions imported from ``path``."""
    return f"{IMPORTED_MODEL_PREFIX}{Path(path).name}"


def load_token_counter(model: str) -> TokenCounter:
    """Load only the tokenizer of ``model`` and count tokens as the generator does.

    Raises:
        ModelLoadError: the tokenizer cannot be loaded.
    """
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model)
    except (OSError, ValueError) as error:
        raise ModelLoadError(
            f"could not load the tokenizer of {model!r}: {error}. Pass the model "
            f"the expansions are made with as a local folder with --model"
        ) from error

    def count_tokens(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=True)["input_ids"])

    return count_tokens


# --- reading the import file ------------------------------------------------------


@dataclass(frozen=True)
class ImportRecord:
    """One line of an import file."""

    line: int
    id: str
    queries: list[str]
    paragraphs: list[int] | None = None


def parse_import_line(line: str, number: int) -> ImportRecord:
    """Parse one import line; raise ValueError naming the problem.

    The optional ``"paragraphs"`` list gives each query's paragraph number,
    counted from 0 in the document's paragraphs.
    """
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"not JSON ({error.msg})") from error
    if not isinstance(row, dict):
        raise ValueError("not a JSON object")
    doc_id, queries = row.get("id"), row.get("queries")
    if (
        not isinstance(doc_id, (str, int))
        or isinstance(doc_id, bool)
        or str(doc_id) == ""
    ):
        raise ValueError('"id" is missing or not a string')
    if not isinstance(queries, list) or not all(isinstance(q, str) for q in queries):
        raise ValueError('"queries" is missing or not a list of strings')
    paragraphs = row.get("paragraphs")
    if paragraphs is not None and (
        not isinstance(paragraphs, list)
        or len(paragraphs) != len(queries)
        or not all(
            isinstance(p, int) and not isinstance(p, bool) and p >= 0
            for p in paragraphs
        )
    ):
        raise ValueError(
            '"paragraphs" must list one paragraph number (0 or more) per query'
        )
    return ImportRecord(number, str(doc_id), list(queries), paragraphs)


def read_import_file(path: str | Path) -> Iterator[ImportRecord | str]:
    """Yield each line's record, or a message for a line that is invalid.

    Raises:
        InputFileError: the file is missing or not UTF-8.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    yield parse_import_line(line, number)
                except ValueError as error:
                    yield f"line {number}: {error}"
    except FileNotFoundError as error:
        raise InputFileError(str(path), "file not found") from error
    except UnicodeDecodeError as error:
        raise InputFileError(str(path), f"not UTF-8 text: {error}") from error


# --- import -------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportConfig:
    """Plain values the import needs, taken from the settings."""

    index: str
    fields: Sequence[str]
    expansion_field: str
    model_name: str
    fingerprint: str
    max_terms: int = 256
    max_input_tokens: int = 320
    page_size: int = 64


@dataclass
class ImportSummary:
    """Counts of one import."""

    imported: int = 0
    skipped: int = 0
    not_found: int = 0
    invalid: int = 0
    conflicts: int = 0
    failed: int = 0
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"imported={self.imported} skipped={self.skipped} not_found={self.not_found} "
            f"invalid={self.invalid} conflicts={self.conflicts} failed={self.failed}"
        )


class QueryImporter:
    """Writes expansions from an import file, one page of documents at a time."""

    def __init__(
        self,
        engine: Engine,
        writer: BulkWriter,
        config: ImportConfig,
        count_tokens: TokenCounter,
    ) -> None:
        self.engine = engine
        self.writer = writer
        self.config = config
        self.count_tokens = count_tokens

    def run(self, path: str | Path) -> ImportSummary:
        """Import every line of ``path`` and refresh the index."""
        summary = ImportSummary()
        page: dict[str, ImportRecord] = {}
        for item in read_import_file(path):
            if isinstance(item, str):
                summary.invalid += 1
                summary.problems.append(item)
                logger.warning(
                    "index=%s %s: %s; skipped", self.config.index, path, item
                )
                continue
            if item.id in page:
                # Two lines for one document: their queries are merged.
                previous = page[item.id]
                item = _merge_records(previous, item)
            page[item.id] = item
            if len(page) >= self.config.page_size:
                self._import_page(list(page.values()), summary)
                page = {}
        if page:
            self._import_page(list(page.values()), summary)
        self.engine.refresh(self.config.index)
        return summary

    def _import_page(self, records: list[ImportRecord], summary: ImportSummary) -> None:
        pending = records
        for round_number in range(1, MAX_CONFLICT_ROUNDS + 1):
            documents = self._read_documents([record.id for record in pending])
            conflicted: list[ImportRecord] = []
            updates: list[Update] = []
            written: list[tuple[ImportRecord, Expansion]] = []
            for record in pending:
                document = documents.get(record.id)
                if document is None:
                    summary.not_found += 1
                    summary.problems.append(
                        f"line {record.line}: document {record.id!r} not found"
                    )
                    logger.warning(
                        "index=%s id=%s not found; its queries are skipped",
                        self.config.index,
                        record.id,
                    )
                    continue
                expansion = self.build_expansion(document, record)
                updates.append(
                    Update(
                        document.index,
                        document.id,
                        document.seq_no,
                        document.primary_term,
                        expansion.to_source(),
                    )
                )
                written.append((record, expansion))
            for (record, expansion), outcome in zip(
                written, self.writer.write(updates), strict=True
            ):
                if outcome.verdict == "done":
                    if expansion.status == "expanded":
                        summary.imported += 1
                    else:
                        summary.skipped += 1
                elif (
                    outcome.verdict == "conflict" and round_number < MAX_CONFLICT_ROUNDS
                ):
                    conflicted.append(record)
                elif outcome.verdict == "conflict":
                    summary.conflicts += 1
                else:
                    summary.failed += 1
                    summary.problems.append(
                        f"line {record.line}: update of {record.id!r} failed with status "
                        f"{outcome.status}: {outcome.reason}"
                    )
                    logger.error(
                        "index=%s id=%s update failed with status %d: %s",
                        outcome.index,
                        outcome.id,
                        outcome.status,
                        outcome.reason,
                    )
            if not conflicted:
                return
            logger.info(
                "index=%s %d documents changed while their queries were imported; reading them again",
                self.config.index,
                len(conflicted),
            )
            pending = conflicted

    def _read_documents(self, ids: list[str]) -> dict[str, SourceDocument]:
        field_name = self.config.expansion_field
        body = {
            "size": len(ids),
            "query": {"ids": {"values": ids}},
            "_source": [
                *self.config.fields,
                f"{field_name}.status",
                f"{field_name}.attempts",
            ],
            "seq_no_primary_term": True,
        }
        response = self.engine.search(self.config.index, body)
        documents: dict[str, SourceDocument] = {}
        for hit in response["hits"]["hits"]:
            documents[str(hit["_id"])] = SourceDocument(
                index=hit["_index"],
                id=str(hit["_id"]),
                seq_no=hit.get("_seq_no"),
                primary_term=hit.get("_primary_term"),
                source=hit.get("_source") or {},
            )
        return documents

    def build_expansion(
        self, document: SourceDocument, record: ImportRecord
    ) -> Expansion:
        """Build the expansion of ``document`` from the record's queries."""
        extracted = extract_text(document.source, self.config.fields)
        text = extracted.text
        paragraphs = (
            split_paragraphs(text, self.count_tokens, self.config.max_input_tokens)
            if text
            else []
        )
        queries, query_paragraph = _clean_with_paragraphs(record, len(paragraphs))
        common: dict[str, Any] = {
            "model": self.config.model_name,
            "fingerprint": self.config.fingerprint,
            "source_hash": source_hash(text) if text else None,
            "paragraphs": len(paragraphs),
        }
        if not queries:
            return Expansion(
                status="skipped", reason=NO_IMPORTED_QUERIES_REASON, **common
            )
        tokens = self.engine.analyze(
            document.index, f"{self.config.expansion_field}.queries", queries
        )
        terms = weigh_terms(group_tokens_by_query(tokens), self.config.max_terms)
        return Expansion(
            status="expanded",
            queries=queries,
            query_paragraph=query_paragraph,
            terms=terms,
            **common,
        )


def _merge_records(first: ImportRecord, second: ImportRecord) -> ImportRecord:
    paragraphs = None
    if first.paragraphs is not None and second.paragraphs is not None:
        paragraphs = first.paragraphs + second.paragraphs
    return ImportRecord(
        first.line, first.id, first.queries + second.queries, paragraphs
    )


def _clean_with_paragraphs(
    record: ImportRecord, paragraph_count: int
) -> tuple[list[str], list[int]]:
    """Normalise and deduplicate queries, keeping each one's paragraph number.

    Without paragraph numbers in the file, a one-paragraph document's queries
    get paragraph 0 and a longer document's get ``UNKNOWN_PARAGRAPH``. A number
    past the document's paragraphs also becomes ``UNKNOWN_PARAGRAPH``.
    """
    default = 0 if paragraph_count == 1 else UNKNOWN_PARAGRAPH
    numbers = record.paragraphs or [default] * len(record.queries)
    queries: list[str] = []
    query_paragraph: list[int] = []
    seen: set[str] = set()
    for raw, number in zip(record.queries, numbers, strict=True):
        query = normalise_query(raw)
        if query is None or query.casefold() in seen:
            continue
        seen.add(query.casefold())
        queries.append(query)
        query_paragraph.append(
            number if number < paragraph_count else UNKNOWN_PARAGRAPH
        )
    return queries, query_paragraph
