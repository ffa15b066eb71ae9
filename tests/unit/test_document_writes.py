"""Script-free expansion writes: rewriting bulk updates as index requests."""

from __future__ import annotations

import json

from worker.cluster.bulk import Update, update_lines
from worker.cluster.document_writes import (
    parse_bulk,
    replaced_expansion,
    write_as_documents,
)

FIELD = "doc2query"


def _ndjson(*updates: Update) -> str:
    return "".join(
        f"{action}\n{body}\n"
        for action, body in (update_lines(u, FIELD) for u in updates)
    )


def _found(seq_no: int, source: dict, primary_term: int = 1) -> dict:
    return {
        "found": True,
        "_seq_no": seq_no,
        "_primary_term": primary_term,
        "_source": source,
    }


class FakeCluster:
    """Records the requests and returns status 200 for each sent item."""

    def __init__(self, documents: list[dict]) -> None:
        self.documents = documents
        self.fetched: list = []
        self.sent: list[str] = []

    def fetch(self, keys):
        self.fetched.append(list(keys))
        return self.documents

    def send(self, ndjson: str) -> dict:
        self.sent.append(ndjson)
        items = parse_bulk(ndjson)
        return {
            "errors": False,
            "items": [{item.operation: {"status": 200}} for item in items],
        }


def test_parse_bulk_reads_every_item():
    ndjson = (
        '{"index": {"_index": "a", "_id": "1"}}\n{"x": 1}\n'
        '{"delete": {"_index": "a", "_id": "2"}}\n'
        '{"update": {"_index": "a", "_id": "3"}}\n{"doc": {"y": 2}}\n'
    )

    items = parse_bulk(ndjson)

    assert [item.operation for item in items] == ["index", "delete", "update"]
    assert items[1].body is None
    assert items[2].body == {"doc": {"y": 2}}


def test_replaced_expansion_only_for_script_updates():
    (script_item,) = parse_bulk(_ndjson(Update("a", "1", 3, 1, {"terms": {"t": 1.0}})))
    (doc_item,) = parse_bulk(
        '{"update": {"_index": "a", "_id": "1"}}\n{"doc": {"y": 2}}\n'
    )

    assert replaced_expansion(script_item) == (FIELD, {"terms": {"t": 1.0}})
    assert replaced_expansion(doc_item) is None


def test_update_becomes_index_of_whole_document():
    cluster = FakeCluster([_found(3, {"text": "hola", FIELD: {"terms": {"old": 2.0}}})])
    update = Update("a", "1", 3, 1, {"terms": {"new": 1.0}})

    response = write_as_documents(_ndjson(update), cluster.fetch, cluster.send)

    (sent,) = cluster.sent
    action, body = sent.splitlines()
    assert json.loads(action) == {
        "index": {"_index": "a", "_id": "1", "if_seq_no": 3, "if_primary_term": 1}
    }
    assert json.loads(body) == {"text": "hola", FIELD: {"terms": {"new": 1.0}}}
    assert response["items"] == [{"index": {"status": 200}}]
    assert response["errors"] is False


def test_changed_document_conflicts_without_sending():
    cluster = FakeCluster([_found(9, {"text": "otro"})])

    response = write_as_documents(
        _ndjson(Update("a", "1", 3, 1, {"terms": {}})), cluster.fetch, cluster.send
    )

    (item,) = response["items"]
    assert cluster.sent == []
    assert item["update"]["status"] == 409
    assert item["update"]["error"]["type"] == "version_conflict_engine_exception"
    assert response["errors"] is True


def test_missing_document_fails_without_sending():
    cluster = FakeCluster([{"found": False}])

    response = write_as_documents(
        _ndjson(Update("a", "1", 3, 1, {"terms": {}})), cluster.fetch, cluster.send
    )

    assert cluster.sent == []
    assert response["items"][0]["update"]["status"] == 404


def test_results_keep_request_order():
    cluster = FakeCluster([_found(1, {}), _found(7, {}), _found(2, {})])
    updates = [
        Update("a", str(n), seq, 1, {"terms": {}})
        for n, seq in ((1, 1), (2, 2), (3, 2))
    ]

    response = write_as_documents(_ndjson(*updates), cluster.fetch, cluster.send)

    statuses = [next(iter(item.values()))["status"] for item in response["items"]]
    assert statuses == [200, 409, 200]
    assert len(parse_bulk(cluster.sent[0])) == 2


def test_update_without_version_uses_read_version():
    cluster = FakeCluster([_found(5, {"text": "hola"}, primary_term=2)])

    write_as_documents(
        _ndjson(Update("a", "1", None, None, {"terms": {}})),
        cluster.fetch,
        cluster.send,
    )

    action = json.loads(cluster.sent[0].splitlines()[0])
    assert action["index"]["if_seq_no"] == 5
    assert action["index"]["if_primary_term"] == 2


def test_routing_is_kept_for_read_and_write():
    cluster = FakeCluster([_found(1, {})])
    ndjson = _ndjson(Update("a", "1", 1, 1, {"terms": {}}))
    action, body = ndjson.splitlines()
    meta = json.loads(action)
    meta["update"]["routing"] = "user-7"
    ndjson = f"{json.dumps(meta)}\n{body}\n"

    write_as_documents(ndjson, cluster.fetch, cluster.send)

    assert cluster.fetched == [[("a", "1", "user-7")]]
    assert json.loads(cluster.sent[0].splitlines()[0])["index"]["routing"] == "user-7"


def test_other_items_pass_unchanged():
    cluster = FakeCluster([])
    ndjson = '{"update": {"_index": "a", "_id": "1"}}\n{"doc": {"y": 2}}\n'

    write_as_documents(ndjson, cluster.fetch, cluster.send)

    assert cluster.fetched == []
    assert parse_bulk(cluster.sent[0])[0].body == {"doc": {"y": 2}}
