"""Build bulk update requests and read bulk responses. Pure functions, no I/O."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Verdict = Literal["done", "conflict", "missing", "retry", "failed"]

# Statuses that a later attempt of the same item can get past.
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})

# Replaces the whole expansion object. A partial "doc" update would merge the
# new terms map into the old one, so stale terms would survive.
REPLACE_EXPANSION_SCRIPT = "ctx._source[params.field] = params.expansion"


@dataclass(frozen=True)
class Update:
    """One document's new expansion, tied to the version it was generated from."""

    index: str
    id: str
    seq_no: int | None
    primary_term: int | None
    expansion: Mapping[str, Any]


@dataclass(frozen=True)
class ItemOutcome:
    """The outcome of one bulk item."""

    index: str
    id: str
    verdict: Verdict
    status: int
    reason: str | None = None


def update_lines(update: Update, field: str) -> tuple[str, str]:
    """Return the action line and the body line of one bulk update."""
    action: dict[str, Any] = {"_index": update.index, "_id": update.id}
    if update.seq_no is not None and update.primary_term is not None:
        action["if_seq_no"] = update.seq_no
        action["if_primary_term"] = update.primary_term
    body = {
        "script": {
            "source": REPLACE_EXPANSION_SCRIPT,
            "lang": "painless",
            "params": {"field": field, "expansion": dict(update.expansion)},
        }
    }
    return (
        json.dumps({"update": action}, ensure_ascii=False),
        json.dumps(body, ensure_ascii=False, allow_nan=False),
    )


def chunk_updates(
    lines: Sequence[tuple[Update, str]], max_bytes: int, max_count: int
) -> Iterator[list[tuple[Update, str]]]:
    """Group (update, ndjson) pairs into requests of at most ``max_bytes`` and ``max_count``.

    A single item larger than ``max_bytes`` goes alone into its own chunk; the
    caller decides what to do with it.
    """
    chunk: list[tuple[Update, str]] = []
    size = 0
    for update, text in lines:
        item_size = len(text.encode("utf-8"))
        if chunk and (size + item_size > max_bytes or len(chunk) >= max_count):
            yield chunk
            chunk, size = [], 0
        chunk.append((update, text))
        size += item_size
    if chunk:
        yield chunk


def _error_reason(error: Any) -> str:
    if isinstance(error, Mapping):
        kind = error.get("type", "error")
        reason = error.get("reason", "")
        caused_by = error.get("caused_by")
        text = f"{kind}: {reason}"
        if isinstance(caused_by, Mapping):
            text += f" (caused by {caused_by.get('type')}: {caused_by.get('reason')})"
        return text
    return str(error)


def read_bulk_items(
    response: Mapping[str, Any], updates: Sequence[Update]
) -> list[ItemOutcome]:
    """Return one outcome per update, in order.

    A bulk request returns 200 even when items fail, so each item's status is
    read: 409 is a version conflict (the document changed since it was read),
    404 means the document was deleted since it was read, 429 and 502-504 can
    be retried, any other error is permanent.
    """
    items = response.get("items", [])
    if len(items) != len(updates):
        raise ValueError(
            f"bulk response has {len(items)} items for {len(updates)} updates"
        )
    outcomes: list[ItemOutcome] = []
    for update, item in zip(updates, items, strict=True):
        (result,) = item.values()
        status = int(result.get("status", 0))
        error = result.get("error")
        if error is None and 200 <= status < 300:
            verdict: Verdict = "done"
        elif status == 409:
            verdict = "conflict"
        elif status == 404:
            verdict = "missing"
        elif status in RETRYABLE_STATUSES:
            verdict = "retry"
        else:
            verdict = "failed"
        reason = None if error is None else _error_reason(error)
        outcomes.append(ItemOutcome(update.index, update.id, verdict, status, reason))
    return outcomes
