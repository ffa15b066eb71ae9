from __future__ import annotations

import json

import pytest

from worker.cluster.bulk import Update, chunk_updates, read_bulk_items, update_lines


def make_update(doc_id: str = "1", seq_no: int | None = 3) -> Update:
    return Update(
        "idx",
        doc_id,
        seq_no,
        1 if seq_no is not None else None,
        {"queries": ["q"], "terms": {"a": 1.0}},
    )


def test_update_carries_sequence_number():
    action, body = update_lines(make_update(), "doc2query")

    assert json.loads(action) == {
        "update": {"_index": "idx", "_id": "1", "if_seq_no": 3, "if_primary_term": 1}
    }
    script = json.loads(body)["script"]
    assert script["params"]["field"] == "doc2query"
    assert script["params"]["expansion"]["terms"] == {"a": 1.0}


def test_update_without_version_has_no_condition():
    action, _ = update_lines(make_update(seq_no=None), "doc2query")

    assert "if_seq_no" not in json.loads(action)["update"]


def test_update_rejects_nan_weights():
    update = Update("idx", "1", 1, 1, {"terms": {"a": float("nan")}})

    with pytest.raises(ValueError, match="Out of range float"):
        update_lines(update, "doc2query")


def test_chunks_bounded_by_bytes_and_count():
    items = [(make_update(str(i)), "x" * 100) for i in range(10)]

    by_bytes = [
        len(chunk) for chunk in chunk_updates(items, max_bytes=350, max_count=100)
    ]
    by_count = [
        len(chunk) for chunk in chunk_updates(items, max_bytes=10_000, max_count=4)
    ]

    assert by_bytes == [3, 3, 3, 1]
    assert by_count == [4, 4, 2]


def test_oversized_item_gets_own_chunk():
    items = [
        (make_update("a"), "x" * 10),
        (make_update("b"), "x" * 500),
        (make_update("c"), "x" * 10),
    ]

    assert [
        len(chunk) for chunk in chunk_updates(items, max_bytes=100, max_count=10)
    ] == [1, 1, 1]


def test_bulk_items_read_per_status():
    updates = [make_update(str(i)) for i in range(4)]
    response = {
        "errors": True,
        "items": [
            {"update": {"_id": "0", "status": 200, "result": "updated"}},
            {
                "update": {
                    "_id": "1",
                    "status": 409,
                    "error": {
                        "type": "version_conflict_engine_exception",
                        "reason": "conflict",
                    },
                }
            },
            {
                "update": {
                    "_id": "2",
                    "status": 429,
                    "error": {
                        "type": "es_rejected_execution_exception",
                        "reason": "queue full",
                    },
                }
            },
            {
                "update": {
                    "_id": "3",
                    "status": 400,
                    "error": {
                        "type": "mapper_parsing_exception",
                        "reason": "bad",
                        "caused_by": {"type": "x", "reason": "y"},
                    },
                }
            },
        ],
    }

    outcomes = read_bulk_items(response, updates)

    assert [o.verdict for o in outcomes] == ["done", "conflict", "retry", "failed"]
    assert outcomes[3].reason == "mapper_parsing_exception: bad (caused by x: y)"
    assert outcomes[0].reason is None


def test_bulk_item_count_mismatch_raises():
    with pytest.raises(ValueError, match="1 items for 2 updates"):
        read_bulk_items(
            {"items": [{"update": {"status": 200}}]},
            [make_update("a"), make_update("b")],
        )
