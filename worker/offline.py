"""``d2q expand-file``: the generator without a cluster, for JSONL corpora.

Reads BEIR JSONL (``{"_id", "title", "text"}``) or Pyserini JSONL
(``{"id", "contents"}``) and writes every document again with a ``queries``
list and a ``contents`` field that has the queries appended, which Pyserini's
JsonCollection indexes as is. The output is appended to, page by page, so an
interrupted run resumes: ids already in the output file are skipped.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from worker.errors import D2QError
from worker.expansion.paragraphs import split_paragraphs
from worker.expansion.queries import clean_queries
from worker.expansion.text import extract_text
from worker.model.base import QueryGenerator
from worker.settings import Settings

logger = logging.getLogger(__name__)

FileFormat = Literal["beir", "pyserini"]
ID_KEYS: dict[FileFormat, str] = {"beir": "_id", "pyserini": "id"}
TEXT_FIELDS: dict[FileFormat, list[str]] = {
    "beir": ["title", "text"],
    "pyserini": ["contents"],
}
# Arguments of the command that are not settings.
ARGUMENTS = {"corpus", "output", "file_format"}


class CorpusFileError(D2QError):
    """The corpus or output file cannot be read or written."""


@dataclass
class OfflineSummary:
    """Counts of one ``expand-file`` run."""

    expanded: int = 0
    skipped: int = 0
    invalid: int = 0
    already_done: int = 0
    seconds: float = 0.0
    invalid_lines: list[int] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"expanded={self.expanded} skipped={self.skipped} invalid={self.invalid} "
            f"already_done={self.already_done} seconds={self.seconds:.1f}"
        )


def detect_format(row: dict[str, Any]) -> FileFormat | None:
    """Return the format a JSONL row is in, or None when it is neither."""
    if "_id" in row:
        return "beir"
    if "id" in row and "contents" in row:
        return "pyserini"
    return None


def read_done_ids(output: Path) -> set[str]:
    """Return the ids already written to ``output``, repairing a cut last line.

    A run killed while writing can leave a last line without its newline. That
    line is cut off, so its document is expanded again.
    """
    if not output.exists():
        return set()
    done: set[str] = set()
    good_bytes = 0
    with output.open("rb") as handle:
        for raw in handle:
            if not raw.endswith(b"\n"):
                break
            try:
                row = json.loads(raw)
            except ValueError:
                break
            row_format = detect_format(row) if isinstance(row, dict) else None
            if row_format is None:
                break
            done.add(str(row[ID_KEYS[row_format]]))
            good_bytes += len(raw)
    if good_bytes < output.stat().st_size:
        logger.warning(
            "output %s ends with an incomplete line; cutting it at byte %d and "
            "expanding that document again",
            output,
            good_bytes,
        )
        with output.open("r+b") as handle:
            handle.truncate(good_bytes)
    return done


@dataclass(frozen=True)
class _Row:
    number: int
    row: dict[str, Any]
    row_format: FileFormat
    doc_id: str


def _read_rows(
    corpus: Path, file_format: FileFormat | None, summary: OfflineSummary
) -> Iterator[_Row]:
    with corpus.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as error:
                _invalid(summary, number, f"not valid JSON ({error})")
                continue
            row_format = detect_format(row) if isinstance(row, dict) else None
            if row_format is None or (file_format and row_format != file_format):
                expected = file_format or "BEIR or Pyserini"
                _invalid(summary, number, f"not a {expected} JSONL row")
                continue
            yield _Row(number, row, row_format, str(row[ID_KEYS[row_format]]))


def _invalid(summary: OfflineSummary, number: int, reason: str) -> None:
    summary.invalid += 1
    summary.invalid_lines.append(number)
    logger.warning("line %d of the corpus skipped: %s", number, reason)


def collect_queries(generated: list[list[str]]) -> list[str]:
    """Clean each paragraph's queries and drop duplicates across paragraphs."""
    queries: list[str] = []
    seen: set[str] = set()
    for raw in generated:
        for query in clean_queries(raw):
            if query.casefold() not in seen:
                seen.add(query.casefold())
                queries.append(query)
    return queries


def _expanded_row(item: _Row, text: str, queries: list[str]) -> dict[str, Any]:
    row = dict(item.row)
    row["queries"] = queries
    body = row["contents"] if item.row_format == "pyserini" else text
    row["contents"] = "\n".join([body, *queries])
    return row


class FileExpander:
    """Expands the documents of a JSONL corpus into an output JSONL file."""

    def __init__(
        self, generator: QueryGenerator, max_input_tokens: int, page_size: int
    ) -> None:
        self.generator = generator
        self.max_input_tokens = max_input_tokens
        self.page_size = page_size

    def run(
        self,
        corpus: Path,
        output: Path,
        file_format: FileFormat | None = None,
        limit: int | None = None,
    ) -> OfflineSummary:
        """Expand every document of ``corpus`` that ``output`` lacks.

        Raises:
            CorpusFileError: when the corpus is missing or a file cannot be
                read or written.
        """
        if not corpus.is_file():
            raise CorpusFileError(f"corpus file {str(corpus)!r} not found")
        started = time.monotonic()
        summary = OfflineSummary()
        try:
            done = read_done_ids(output)
            page: list[_Row] = []
            with output.open("a", encoding="utf-8") as sink:
                for item in _read_rows(corpus, file_format, summary):
                    if item.doc_id in done:
                        summary.already_done += 1
                        continue
                    done.add(item.doc_id)
                    page.append(item)
                    if (
                        limit is not None
                        and summary.expanded + summary.skipped + len(page) >= limit
                    ):
                        break
                    if len(page) == self.page_size:
                        self._write_page(page, sink, summary)
                        page = []
                if page:
                    self._write_page(page, sink, summary)
        except OSError as error:
            raise CorpusFileError(
                f"could not expand {corpus} into {output}: {error}"
            ) from error
        summary.seconds = time.monotonic() - started
        return summary

    def _write_page(self, page: list[_Row], sink: Any, summary: OfflineSummary) -> None:
        texts: list[str] = []
        paragraphs: list[list[str]] = []
        for item in page:
            extracted = extract_text(item.row, TEXT_FIELDS[item.row_format])
            texts.append(extracted.text if extracted.skip_reason is None else "")
            paragraphs.append(
                split_paragraphs(
                    extracted.text, self.generator.count_tokens, self.max_input_tokens
                )
                if extracted.skip_reason is None
                else []
            )
        flat = [text for per_document in paragraphs for text in per_document]
        generated = self.generator.generate(flat) if flat else []
        offset = 0
        for item, text, per_document in zip(page, texts, paragraphs, strict=True):
            queries = collect_queries(generated[offset : offset + len(per_document)])
            offset += len(per_document)
            row = _expanded_row(item, text, queries)
            if queries:
                summary.expanded += 1
            else:
                summary.skipped += 1
                row["skip_reason"] = (
                    extract_text(item.row, TEXT_FIELDS[item.row_format]).skip_reason
                    or "the model produced no usable queries"
                )
                logger.info("id=%s skipped: %s", item.doc_id, row["skip_reason"])
            sink.write(json.dumps(row, ensure_ascii=False) + "\n")
        sink.flush()
        logger.info(
            "wrote %d documents (%d expanded so far)", len(page), summary.expanded
        )


# --- command line ----------------------------------------------------------------


def add_command(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add the ``expand-file`` subcommand to ``commands``."""
    command = commands.add_parser(
        "expand-file",
        parents=parents,
        help="expand a BEIR or Pyserini JSONL corpus into a JSONL file, without a cluster",
    )
    command.add_argument(
        "corpus", help="input JSONL: BEIR {_id,title,text} or Pyserini {id,contents}"
    )
    command.add_argument(
        "output", help="output JSONL; appended to, ids already in it are skipped"
    )
    command.add_argument(
        "--format",
        dest="file_format",
        choices=["auto", "beir", "pyserini"],
        default="auto",
        help="input format (default auto: from each row's keys)",
    )
    command.add_argument("--limit", type=int, help="stop after this many new documents")
    command.add_argument("--config", help="TOML settings file (env D2Q_CONFIG)")
    command.add_argument(
        "--log-level", help="DEBUG, INFO, WARNING or ERROR (default INFO)"
    )
    command.add_argument(
        "--log-format", choices=["text", "json"], help="log line format"
    )


def command_expand_file(settings: Settings, args: argparse.Namespace) -> int:
    """Run ``d2q expand-file``; return 0, or 1 when some lines were invalid."""
    from worker.assembly import generation_config
    from worker.model import load_generator

    generator = load_generator(generation_config(settings))
    expander = FileExpander(generator, settings.max_input_tokens, settings.page_size)
    file_format = None if args.file_format == "auto" else args.file_format
    summary = expander.run(
        Path(args.corpus), Path(args.output), file_format, settings.limit
    )
    print(summary.line())
    return 0 if summary.invalid == 0 else 1
