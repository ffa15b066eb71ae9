"""Split a text into paragraphs that each fit the model's input."""

from __future__ import annotations

import re
from collections.abc import Callable

TokenCounter = Callable[[str], int]

DEFAULT_MAX_TOKENS = 320
DEFAULT_MIN_TOKENS = 32

_BLANK_LINES = re.compile(r"\n\s*\n")
# A sentence ends at . ! ? or … (optionally followed by closing quotes or
# brackets) when white space follows.
_SENTENCE_END = re.compile(r"[.!?…][\"'»”)\]]*(?=\s)")


def split_sentences(text: str) -> list[str]:
    """Split ``text`` after sentence-ending punctuation followed by white space."""
    sentences: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        sentences.append(text[start : match.end()])
        start = match.end()
    sentences.append(text[start:])
    return [sentence.strip() for sentence in sentences if sentence.strip()]


def _split_words(text: str, count: TokenCounter, max_tokens: int) -> list[str]:
    chunks: list[str] = []
    current: list[str] = []
    for word in text.split():
        candidate = " ".join([*current, word])
        if current and count(candidate) > max_tokens:
            chunks.append(" ".join(current))
            current = [word]
        else:
            current.append(word)
    if current:
        chunks.append(" ".join(current))
    return chunks


def _pack_sentences(block: str, count: TokenCounter, max_tokens: int) -> list[str]:
    chunks: list[str] = []
    current = ""
    for sentence in split_sentences(block):
        if count(sentence) > max_tokens:
            if current:
                chunks.append(current)
                current = ""
            chunks.extend(_split_words(sentence, count, max_tokens))
            continue
        candidate = f"{current} {sentence}" if current else sentence
        if current and count(candidate) > max_tokens:
            chunks.append(current)
            current = sentence
        else:
            current = candidate
    if current:
        chunks.append(current)
    return chunks


def _merge_small(
    pieces: list[str], count: TokenCounter, min_tokens: int, max_tokens: int
) -> list[str]:
    merged: list[str] = []
    for piece in pieces:
        if merged:
            previous = merged[-1]
            is_small = count(previous) < min_tokens or count(piece) < min_tokens
            candidate = f"{previous}\n{piece}"
            if is_small and count(candidate) <= max_tokens:
                merged[-1] = candidate
                continue
        merged.append(piece)
    return merged


def split_paragraphs(
    text: str,
    count_tokens: TokenCounter,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    min_tokens: int = DEFAULT_MIN_TOKENS,
) -> list[str]:
    """Split ``text`` into paragraphs of at most ``max_tokens`` model tokens.

    Blank lines separate paragraphs first. A paragraph longer than the limit is
    cut at sentence boundaries, and a sentence longer than the limit at word
    boundaries. Pieces under ``min_tokens`` (a title, a one-line paragraph) are
    merged into a neighbour when the merged piece still fits.
    """
    pieces: list[str] = []
    for block in _BLANK_LINES.split(text):
        block = block.strip()
        if not block:
            continue
        if count_tokens(block) <= max_tokens:
            pieces.append(block)
        else:
            pieces.extend(_pack_sentences(block, count_tokens, max_tokens))
    return _merge_small(pieces, count_tokens, min_tokens, max_tokens)
