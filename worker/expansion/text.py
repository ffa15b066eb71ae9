"""Extract clean text from a document's source fields."""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser

_TAG_HINT = re.compile(r"<[A-Za-z!/][^>]*>")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SKIPPED_ELEMENTS = {"script", "style", "head", "noscript", "template"}
_BLOCK_ELEMENTS = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6"}


@dataclass(frozen=True)
class SourceText:
    """The text to expand, or the reason the document has none."""

    text: str
    skip_reason: str | None = None


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_ELEMENTS:
            self._skip_depth += 1
        elif tag in _BLOCK_ELEMENTS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_ELEMENTS and self._skip_depth:
            self._skip_depth -= 1
        elif tag in _BLOCK_ELEMENTS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self._skip_depth:
            self.parts.append(data)


def strip_markup(text: str) -> str:
    """Return the text content of ``text`` if it contains HTML or XML tags."""
    if not _TAG_HINT.search(text):
        return html.unescape(text)
    extractor = _TextExtractor()
    extractor.feed(text)
    extractor.close()
    return "".join(extractor.parts)


def clean_text(text: str) -> str:
    """Replace invalid surrogates, drop control characters, normalise to NFC."""
    text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    text = _CONTROL.sub(" ", text)
    text = unicodedata.normalize("NFC", text)
    text = re.sub(r"[ \t\r\f\v]+", " ", text)
    return re.sub(r" *\n *", "\n", text).strip()


def _lookup(source: Mapping[str, object], path: str) -> tuple[bool, object]:
    value: object = source
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return False, None
        value = value[part]
    return True, value


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, (list, tuple)):
        return "list"
    return type(value).__name__


def extract_text(source: Mapping[str, object], fields: Sequence[str]) -> SourceText:
    """Join the text of ``fields`` (dotted paths allowed) into one cleaned text.

    A field may hold a string or a list of strings. Missing and null fields are
    passed over. When no field yields text, the result carries a skip reason
    that names the fields and what they held.
    """
    pieces: list[str] = []
    problems: list[str] = []
    for name in fields:
        found, value = _lookup(source, name)
        if not found or value is None:
            problems.append(f"field {name!r} is missing")
            continue
        values = value if isinstance(value, list) else [value]
        strings = [item for item in values if isinstance(item, str)]
        if len(strings) != len(values):
            kind = _type_name(value)
            article = "an" if kind[0] in "aeiou" else "a"
            problems.append(f"field {name!r} is {article} {kind}, not text")
            continue
        had_markup = any(_TAG_HINT.search(item) for item in strings)
        cleaned = [clean_text(strip_markup(item)) for item in strings]
        cleaned = [item for item in cleaned if item]
        if cleaned:
            pieces.extend(cleaned)
        elif had_markup:
            problems.append(f"field {name!r} contains only markup")
        else:
            problems.append(f"field {name!r} is empty")
    if pieces:
        return SourceText("\n\n".join(pieces))
    return SourceText("", "; ".join(problems) or "no text fields configured")
