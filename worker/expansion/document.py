"""The expansion object written beside a document's own fields."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

# Bump when the shape or meaning of the expansion object changes, so that every
# document expanded by an older d2q counts as stale.
EXPANSION_FORMAT_VERSION = 1
DEFAULT_EXPANSION_FIELD = "doc2query"
MAX_REASON_CHARS = 1000

Status = Literal["expanded", "skipped", "failed"]


def fingerprint(model: str, generation: Mapping[str, Any]) -> str:
    """Hash the model name, generation settings and format version.

    Two runs with equal fingerprints produce expansions of the same kind, so a
    document whose fingerprint matches needs no new expansion.
    """
    payload = json.dumps(
        {"format": EXPANSION_FORMAT_VERSION, "model": model, "generation": generation},
        sort_keys=True,
        ensure_ascii=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def source_hash(text: str) -> str:
    """Hash the text an expansion was generated from."""
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:20]


@dataclass
class Expansion:
    """The expansion of one document, as stored under the expansion field."""

    model: str
    fingerprint: str
    status: Status
    source_hash: str | None = None
    queries: list[str] = field(default_factory=list)
    query_paragraph: list[int] = field(default_factory=list)
    terms: dict[str, float] = field(default_factory=dict)
    paragraphs: int = 0
    reason: str | None = None
    attempts: int = 1
    expanded_at: str = field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds")
    )

    def to_source(self) -> dict[str, Any]:
        """Return the JSON object written to the index."""
        source: dict[str, Any] = {
            "model": self.model,
            "fingerprint": self.fingerprint,
            "status": self.status,
            "source_hash": self.source_hash,
            "queries": self.queries,
            "query_paragraph": self.query_paragraph,
            "terms": self.terms,
            "paragraphs": self.paragraphs,
            "attempts": self.attempts,
            "expanded_at": self.expanded_at,
        }
        if self.reason is not None:
            source["reason"] = self.reason[:MAX_REASON_CHARS]
        return source
