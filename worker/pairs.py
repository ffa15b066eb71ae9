"""Export (query, paragraph) pairs for training dense retrievers.

``export-pairs`` writes one pair per line. The paragraph is rebuilt from the
document's text with the generator's tokenizer, so it must be the tokenizer the
expansion was made with.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from worker.cluster.engine import Engine
from worker.cluster.reader import SourceDocument, iter_pages
from worker.expansion.document import source_hash
from worker.expansion.paragraphs import TokenCounter, split_paragraphs
from worker.expansion.text import extract_text
from worker.files import UNKNOWN_PARAGRAPH

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportConfig:
    """Plain values the export needs, taken from the settings."""

    index: str
    fields: Sequence[str]
    expansion_field: str
    max_input_tokens: int = 320
    page_size: int = 64
    keep_alive: str = "10m"


@dataclass
class ExportSummary:
    """Counts of one export."""

    pairs: int = 0
    documents: int = 0
    whole_text: int = 0
    changed: int = 0
    mismatched: int = 0

    def line(self) -> str:
        return (
            f"pairs={self.pairs} documents={self.documents} whole_text={self.whole_text} "
            f"changed={self.changed} mismatched={self.mismatched}"
        )


def export_pairs(
    engine: Engine, config: ExportConfig, count_tokens: TokenCounter, output: TextIO
) -> ExportSummary:
    """Write one ``{"query", "paragraph", "id", "paragraph_index"}`` line per query.

    Documents whose text changed since they were expanded are left out, and
    so are documents whose text splits into another number of paragraphs than
    recorded (another tokenizer or ``max_input_tokens``). A query without a
    known paragraph is paired with the whole text.
    """
    summary = ExportSummary()
    field_name = config.expansion_field
    source_fields = [
        *config.fields,
        f"{field_name}.queries",
        f"{field_name}.query_paragraph",
        f"{field_name}.source_hash",
        f"{field_name}.paragraphs",
    ]
    query = {"term": {f"{field_name}.status": "expanded"}}
    pages = iter_pages(
        engine, config.index, query, source_fields, config.page_size, config.keep_alive
    )
    try:
        for page in pages:
            for document in page:
                summary.pairs += _export_document(
                    document, config, count_tokens, output, summary
                )
    finally:
        pages.close()
    return summary


def _export_document(
    document: SourceDocument,
    config: ExportConfig,
    count_tokens: TokenCounter,
    output: TextIO,
    summary: ExportSummary,
) -> int:
    expansion = document.source.get(config.expansion_field) or {}
    text = extract_text(document.source, config.fields).text
    if not text or expansion.get("source_hash") != source_hash(text):
        summary.changed += 1
        logger.info(
            "index=%s id=%s changed since it was expanded; left out",
            document.index,
            document.id,
        )
        return 0
    paragraphs = split_paragraphs(text, count_tokens, config.max_input_tokens)
    if len(paragraphs) != expansion.get("paragraphs"):
        summary.mismatched += 1
        logger.warning(
            "index=%s id=%s splits into %d paragraphs, not the %s recorded; is --model the "
            "generator's tokenizer? left out",
            document.index,
            document.id,
            len(paragraphs),
            expansion.get("paragraphs"),
        )
        return 0
    queries = expansion.get("queries") or []
    numbers = expansion.get("query_paragraph") or []
    summary.documents += 1
    for position, query in enumerate(queries):
        number = numbers[position] if position < len(numbers) else UNKNOWN_PARAGRAPH
        if 0 <= number < len(paragraphs):
            paragraph = paragraphs[number]
        else:
            paragraph, number = text, UNKNOWN_PARAGRAPH
            summary.whole_text += 1
        pair = {
            "query": query,
            "paragraph": paragraph,
            "id": document.id,
            "paragraph_index": number,
        }
        output.write(json.dumps(pair, ensure_ascii=False) + "\n")
    return len(queries)
