"""Turn one page of documents into expansions: text, paragraphs, queries, terms.

The page expander joins the model side (query generation) with the one request
it needs from the cluster side: the analysed tokens of the generated queries.
It writes nothing, because the pipeline sends its expansions to the writer.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from worker.cluster.engine import Engine
from worker.cluster.reader import SourceDocument
from worker.expansion.changes import restore_unchanged
from worker.expansion.document import Expansion, source_hash
from worker.expansion.paragraphs import split_paragraphs
from worker.expansion.queries import clean_queries
from worker.expansion.terms import group_tokens_by_query, weigh_terms
from worker.expansion.text import extract_text
from worker.model.base import QueryGenerator

logger = logging.getLogger(__name__)

NO_QUERIES_REASON = "the model produced no usable queries"
# Model time grows with the text, and the expansion of a longer text may not
# fit one bulk request. So only the first part of a longer text is expanded,
# and the expansion's reason records the cut.
DEFAULT_MAX_TEXT_CHARS = 200_000


@dataclass(frozen=True)
class PageSettings:
    """Plain values the page expander needs, taken from the settings."""

    fields: Sequence[str]
    expansion_field: str
    model_name: str
    fingerprint: str
    max_terms: int = 256
    max_input_tokens: int = 320
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS


def truncate_text(text: str, max_chars: int) -> str:
    """Cut ``text`` to at most ``max_chars``, at the last white space if there is one."""
    if len(text) <= max_chars:
        return text
    head = text[:max_chars]
    cut = max(head.rfind(" "), head.rfind("\n"))
    return head[:cut] if cut > max_chars // 2 else head


def previous_attempts(source: dict[str, Any], field: str) -> int:
    """Return the attempt count of a failed expansion in ``source``, else 0.

    An expansion object of any other shape (a string, a list, an attempt count
    that is not a whole number) counts as no earlier attempt.
    """
    previous = source.get(field)
    if isinstance(previous, dict) and previous.get("status") == "failed":
        attempts = previous.get("attempts")
        if isinstance(attempts, int) and not isinstance(attempts, bool):
            return max(0, attempts)
    return 0


class PageExpander:
    """Builds the expansion of every document of a page, one per document."""

    def __init__(
        self, engine: Engine, generator: QueryGenerator, settings: PageSettings
    ) -> None:
        self.engine = engine
        self.generator = generator
        self.settings = settings

    def new_expansion(self, document: SourceDocument, **values: Any) -> Expansion:
        """Return an expansion of the current fingerprint, counting this attempt."""
        attempts = previous_attempts(document.source, self.settings.expansion_field)
        return Expansion(
            model=self.settings.model_name,
            fingerprint=self.settings.fingerprint,
            attempts=attempts + 1,
            **values,
        )

    def expand(self, documents: list[SourceDocument]) -> list[Expansion]:
        """Return one expansion per document, in order; skips carry a reason."""
        expansions: list[Expansion | None] = [None] * len(documents)
        paragraphs: list[list[str]] = [[] for _ in documents]
        texts: list[str] = [""] * len(documents)
        notes: list[str | None] = [None] * len(documents)
        limit = self.settings.max_text_chars
        for position, document in enumerate(documents):
            extracted = extract_text(document.source, self.settings.fields)
            if extracted.skip_reason is not None:
                expansions[position] = self.new_expansion(
                    document, status="skipped", reason=extracted.skip_reason
                )
                continue
            restored = restore_unchanged(
                document.source.get(self.settings.expansion_field),
                extracted.text,
                self.settings.fingerprint,
            )
            if restored is not None:
                # Marked as changed, but the text is the same: no new queries.
                expansions[position] = restored
                continue
            text = truncate_text(extracted.text, limit)
            if len(text) < len(extracted.text):
                notes[position] = (
                    f"expanded the first {len(text)} of {len(extracted.text)} "
                    f"characters"
                )
                logger.info(
                    "index=%s id=%s text of %d characters cut to %d",
                    document.index,
                    document.id,
                    len(extracted.text),
                    len(text),
                )
            texts[position] = extracted.text
            paragraphs[position] = split_paragraphs(
                text, self.generator.count_tokens, self.settings.max_input_tokens
            )

        generated = self._generate(documents, paragraphs, expansions)
        for position, document in enumerate(documents):
            if expansions[position] is not None:
                continue
            expansions[position] = self._build_expansion(
                document,
                texts[position],
                paragraphs[position],
                generated[position],
                notes[position],
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
            logger.warning(
                "index=%s generation failed for a page (%s); retrying one "
                "document at a time",
                documents[0].index if documents else "",
                error,
            )
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
                logger.error(
                    "index=%s id=%s generation failed: %s",
                    document.index,
                    document.id,
                    error,
                )
                expansions[position] = self.new_expansion(
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
        note: str | None,
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
            return self.new_expansion(
                document,
                status="skipped",
                reason=NO_QUERIES_REASON,
                source_hash=source_hash(text),
                paragraphs=len(paragraphs),
            )
        tokens = self.engine.analyze(
            document.index, f"{self.settings.expansion_field}.queries", queries
        )
        terms = weigh_terms(group_tokens_by_query(tokens), self.settings.max_terms)
        return self.new_expansion(
            document,
            status="expanded",
            source_hash=source_hash(text),
            queries=queries,
            query_paragraph=query_paragraph,
            terms=terms,
            paragraphs=len(paragraphs),
            reason=note,
        )
