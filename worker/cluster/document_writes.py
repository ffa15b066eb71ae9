"""Write expansions without scripts, by indexing whole documents again.

A cluster without painless, or with inline scripts disabled, cannot run the
update script that replaces the expansion object. A partial ``doc`` update is
no substitute, because it merges the new ``terms`` map into the old one and
stale terms survive. Instead, each such bulk update becomes an index request
of the current document with the new expansion in place.

A multi-get reads the documents first. The read must show the sequence number
and primary term that the expansion was generated from, and the index request
carries those of the read. So a document that changed before or during the
write gets a version conflict (409), as the script update would. Bulk items of
other kinds are sent unchanged.

The functions here are pure. The engine module sends the requests.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from worker.cluster.bulk import REPLACE_EXPANSION_SCRIPT

DocumentKey = tuple[str, str, str | None]  # index, id, routing


@dataclass(frozen=True)
class BulkItem:
    """One action of a bulk request and its body (None for delete)."""

    operation: str
    meta: dict[str, Any]
    body: dict[str, Any] | None

    @property
    def key(self) -> DocumentKey:
        routing = self.meta.get("routing")
        return str(self.meta.get("_index")), str(self.meta.get("_id")), routing

    def lines(self) -> list[str]:
        action = json.dumps({self.operation: self.meta}, ensure_ascii=False)
        if self.body is None:
            return [action]
        return [action, json.dumps(self.body, ensure_ascii=False, allow_nan=False)]


def parse_bulk(ndjson: str) -> list[BulkItem]:
    """Split a bulk request body into its items."""
    lines = [line for line in ndjson.splitlines() if line.strip()]
    items: list[BulkItem] = []
    position = 0
    while position < len(lines):
        ((operation, meta),) = json.loads(lines[position]).items()
        position += 1
        body = None
        if operation != "delete":
            body = json.loads(lines[position])
            position += 1
        items.append(BulkItem(operation, dict(meta), body))
    return items


def replaced_expansion(item: BulkItem) -> tuple[str, dict[str, Any]] | None:
    """Return (field, expansion) of an update that runs the replacing script."""
    if item.operation != "update" or item.body is None:
        return None
    script = item.body.get("script")
    if (
        not isinstance(script, Mapping)
        or script.get("source") != REPLACE_EXPANSION_SCRIPT
    ):
        return None
    params = script.get("params") or {}
    return str(params["field"]), dict(params["expansion"])


def _error_item(item: BulkItem, status: int, kind: str, reason: str) -> dict[str, Any]:
    index, doc_id, _ = item.key
    error = {"type": kind, "reason": reason, "index": index}
    return {
        item.operation: {
            "_index": index,
            "_id": doc_id,
            "status": status,
            "error": error,
        }
    }


def _as_index_item(
    item: BulkItem,
    replaced: tuple[str, dict[str, Any]],
    document: Mapping[str, Any] | None,
) -> BulkItem | dict[str, Any]:
    """Return the index request that replaces the expansion, or an error result."""
    field, expansion = replaced
    if document is None or not document.get("found"):
        return _error_item(item, 404, "document_missing_exception", "document missing")
    expected = (item.meta.get("if_seq_no"), item.meta.get("if_primary_term"))
    current = (document.get("_seq_no"), document.get("_primary_term"))
    if expected[0] is not None and expected != current:
        return _error_item(
            item,
            409,
            "version_conflict_engine_exception",
            f"document changed since it was read: required seqNo [{expected[0]}], "
            f"primary term [{expected[1]}], current seqNo [{current[0]}], "
            f"primary term [{current[1]}]",
        )
    meta = {
        key: value for key, value in item.meta.items() if key != "retry_on_conflict"
    }
    meta["if_seq_no"], meta["if_primary_term"] = current
    source = dict(document.get("_source") or {})
    source[field] = expansion
    return BulkItem("index", meta, source)


BulkSender = Callable[[str], dict[str, Any]]
DocumentFetcher = Callable[[Sequence[DocumentKey]], list[dict[str, Any]]]


def write_as_documents(
    ndjson: str, fetch_documents: DocumentFetcher, send_bulk: BulkSender
) -> dict[str, Any]:
    """Send a bulk request whose expansion updates become index requests.

    Returns a bulk response with one item per item of ``ndjson``, in order:
    the server's result for each item sent, and a 404 or 409 error result for
    each update whose document is gone or changed, which is not sent.
    """
    items = parse_bulk(ndjson)
    keys = [item.key for item in items if replaced_expansion(item) is not None]
    documents = dict(zip(keys, fetch_documents(keys), strict=True)) if keys else {}
    results: list[dict[str, Any] | None] = []
    outgoing: list[BulkItem] = []
    for item in items:
        replaced = replaced_expansion(item)
        if replaced is None:
            outgoing.append(item)
            results.append(None)
            continue
        rewritten = _as_index_item(item, replaced, documents.get(item.key))
        if isinstance(rewritten, BulkItem):
            outgoing.append(rewritten)
            results.append(None)
        else:
            results.append(rewritten)
    response: dict[str, Any] = {"errors": False, "items": []}
    if outgoing:
        body = "\n".join(line for item in outgoing for line in item.lines()) + "\n"
        response = dict(send_bulk(body))
    sent = iter(response.get("items", []))
    merged = [result if result is not None else next(sent) for result in results]
    errors = bool(response.get("errors")) or any(
        result is not None for result in results
    )
    return dict(response, items=merged, errors=errors)
