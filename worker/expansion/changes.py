"""Change detection: decide whether a document marked as changed needs new queries.

The change-marking ingest pipeline (``mappings/<engine>/change-pipeline.json``)
sets the expansion's ``status`` to ``changed`` and keeps the old status in
``changed_from`` whenever a document passes through it with its expansion
object. d2q's own writes are bulk updates, which do not run ingest pipelines,
so they stay unmarked. The pipeline cannot compute d2q's source hash, so it
marks every such write. The daemon then compares the hash of the current text
with the stored ``source_hash``: an equal hash restores the old status without
running the model, and a different one means a new expansion.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from worker.expansion.document import Expansion, source_hash

CHANGED_STATUS = "changed"
# A writer that keeps the text as it was (a copy into a new index, for
# example) may set this key on the expansion object. The change-marking
# pipeline removes it and leaves that write unmarked.
WRITE_MARK = "d2q_write"
RESTORABLE_STATUSES = ("expanded", "skipped")

_EXPANSION_FIELDS = {item.name for item in dataclasses.fields(Expansion)}


def is_marked_changed(previous: Any) -> bool:
    """Tell whether a stored expansion object was marked as changed."""
    return isinstance(previous, Mapping) and previous.get("status") == CHANGED_STATUS


def restore_unchanged(previous: Any, text: str, fingerprint: str) -> Expansion | None:
    """Return the stored expansion with its old status if its text did not change.

    Returns None, so the document is expanded again, when the expansion is not
    marked as changed, was made with another fingerprint, was not expanded or
    skipped before the mark, or was generated from another text.
    """
    if not is_marked_changed(previous):
        return None
    old_status = previous.get("changed_from")
    if old_status not in RESTORABLE_STATUSES:
        return None
    if previous.get("fingerprint") != fingerprint:
        return None
    stored_hash = previous.get("source_hash")
    if not stored_hash or stored_hash != source_hash(text):
        return None
    values = {key: value for key, value in previous.items() if key in _EXPANSION_FIELDS}
    values["status"] = old_status
    try:
        return Expansion(**values)
    except TypeError:
        # A stored object without model or fingerprint: expand it again.
        return None
