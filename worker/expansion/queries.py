"""Clean up generated queries."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

# Sentinel tokens of T5-family models, and the glyph and token SentencePiece
# decodes unknown pieces to.
_SENTINEL = re.compile(r"<extra_id_\d+>")
_UNKNOWN_MARKERS = ("⁇", "<unk>")


def normalise_query(query: str) -> str | None:
    """Return ``query`` with collapsed white space, or None when it is unusable.

    Unusable: blank, without any letter or digit, or containing a sentinel or
    an unknown-token marker.
    """
    if _SENTINEL.search(query) or any(mark in query for mark in _UNKNOWN_MARKERS):
        return None
    text = unicodedata.normalize("NFC", " ".join(query.split()))
    if not any(char.isalnum() for char in text):
        return None
    return text


def clean_queries(queries: Iterable[str]) -> list[str]:
    """Normalise queries and drop duplicates (ignoring case), keeping first-seen order."""
    seen: set[str] = set()
    kept: list[str] = []
    for query in queries:
        normalised = normalise_query(query)
        if normalised is None:
            continue
        key = normalised.casefold()
        if key not in seen:
            seen.add(key)
            kept.append(normalised)
    return kept
