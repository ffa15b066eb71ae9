"""Backfill, status and daemon against each real engine with the tiny model."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import read_sample
from tests.support import FAST_GENERATION, cli_arguments, create_index, fetch, run_d2q
from worker.cli import main

SPECIAL_DOCUMENTS = [
    {
        "_id": "two-paragraphs",
        "title": "Dos",
        "text": read_sample(2)[0]["text"] + "\n\n" + read_sample(2)[1]["text"],
    },
    {"_id": "empty", "title": "", "text": ""},
    {"_id": "blank", "text": "   \n\t  "},
    {"_id": "missing-field", "other": "no text here"},
    {"_id": "number", "text": 42},
    {
        "_id": "list",
        "text": [
            "Primera parte del texto sobre la ciudad.",
            "Segunda parte sobre el río.",
        ],
    },
    {"_id": "markup-only", "text": "<div><br/><span></span></div>"},
]
SKIPPED_IDS = {"empty", "blank", "missing-field", "number", "markup-only"}


@pytest.fixture()
def sample_index(engine, index_name):
    documents = [*read_sample(43), *SPECIAL_DOCUMENTS]
    create_index(engine, index_name, documents)
    return index_name, documents


def test_backfill_expands_eligible_documents(
    engine, cluster_url, tiny_model, sample_index
):
    index, documents = sample_index
    arguments = cli_arguments(cluster_url, index, tiny_model, "--no-progress")

    assert main(["backfill", *arguments]) == 0

    for document in documents:
        stored = fetch(engine, index, document["_id"])
        expansion = stored["doc2query"]
        if document["_id"] in SKIPPED_IDS:
            assert expansion["status"] == "skipped", document["_id"]
            assert expansion["reason"], document["_id"]
            assert expansion["queries"] == []
        else:
            assert expansion["status"] == "expanded", document["_id"]
            assert expansion["queries"], document["_id"]
            assert expansion["terms"], (document["_id"], expansion["queries"])
            assert all(weight > 0 for weight in expansion["terms"].values())
            assert not any("." in key for key in expansion["terms"])
        # The document's own fields are unchanged.
        assert {k: v for k, v in stored.items() if k != "doc2query"} == {
            k: v for k, v in document.items() if k != "_id"
        }


def test_two_paragraph_document_has_two_paragraphs(
    engine, cluster_url, tiny_model, sample_index
):
    index, _ = sample_index
    assert (
        main(
            [
                "backfill",
                *cli_arguments(cluster_url, index, tiny_model, "--no-progress"),
            ]
        )
        == 0
    )

    expansion = fetch(engine, index, "two-paragraphs")["doc2query"]

    assert expansion["paragraphs"] == 2
    assert set(expansion["query_paragraph"]) == {0, 1}


def test_term_weight_query_finds_expanded_document(
    engine, cluster_url, tiny_model, sample_index
):
    index, _ = sample_index
    assert (
        main(
            [
                "backfill",
                *cli_arguments(cluster_url, index, tiny_model, "--no-progress"),
            ]
        )
        == 0
    )
    doc_id = read_sample(1)[0]["_id"]
    terms = fetch(engine, index, doc_id)["doc2query"]["terms"]
    term = max(terms, key=terms.get)

    response = engine.search(
        index, {"query": engine.feature_clause("doc2query.terms", term), "size": 100}
    )

    assert doc_id in {hit["_id"] for hit in response["hits"]["hits"]}


def test_second_backfill_expands_nothing(cluster_url, tiny_model, sample_index, capsys):
    index, _ = sample_index
    arguments = cli_arguments(cluster_url, index, tiny_model, "--no-progress")
    assert main(["backfill", *arguments]) == 0
    capsys.readouterr()

    assert main(["backfill", *arguments]) == 0

    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("expanded=0 skipped=0 failed=0")


def test_status_counts_by_state(cluster_url, tiny_model, sample_index, capsys):
    index, documents = sample_index
    arguments = cli_arguments(cluster_url, index, tiny_model)
    assert main(["backfill", *arguments, "--no-progress", "--limit", "10"]) == 0
    capsys.readouterr()

    assert main(["status", *arguments]) == 0
    counts = json.loads(capsys.readouterr().out)

    assert counts["total"] == len(documents)
    assert counts["expanded"] + counts["skipped"] == 10
    assert counts["pending"] == len(documents) - 10
    assert counts["stale"] == 0
    assert counts["failed"] == 0


def test_other_settings_make_documents_stale(
    cluster_url, tiny_model, sample_index, capsys
):
    index, documents = sample_index
    arguments = cli_arguments(cluster_url, index, tiny_model)
    assert main(["backfill", *arguments, "--no-progress"]) == 0
    capsys.readouterr()

    assert main(["status", *arguments, "--queries-per-paragraph", "6"]) == 0
    counts = json.loads(capsys.readouterr().out)

    assert counts["stale"] == len(documents)
    assert counts["pending"] == len(documents)


def test_daemon_expands_document_added_later(
    engine, cluster_url, tiny_model, index_name
):
    create_index(engine, index_name, read_sample(3))
    arguments = [
        "run",
        *cli_arguments(cluster_url, index_name, tiny_model, "--poll-seconds", "1"),
    ]
    daemon = subprocess.Popen(
        [sys.executable, "-m", "worker", *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_status(engine, index_name, "sqes-00000", "expanded")
        engine.index_document(
            index_name,
            "late",
            {
                "title": "Tarde",
                "text": "Un documento que llega cuando el servicio ya funciona.",
            },
            refresh=True,
        )

        _wait_for_status(engine, index_name, "late", "expanded")
    finally:
        daemon.send_signal(signal.SIGTERM)
        output, errors = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, errors


def _wait_for_status(
    engine, index: str, doc_id: str, status: str, timeout: float = 120
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        source = engine.get_source(index, doc_id)
        if source.get("doc2query", {}).get("status") == status:
            return
        time.sleep(0.5)
    pytest.fail(f"document {doc_id} did not reach status {status} within {timeout} s")


def test_init_rejects_conflicting_mapping(engine, cluster_url, index_name):
    mapping = {
        "properties": {
            "text": {"type": "text"},
            "doc2query": {"properties": {"terms": {"type": "object"}}},
        }
    }
    create_index(engine, index_name, [], mapping=mapping)

    result = run_d2q(["init", "--url", cluster_url, "--index", index_name])

    assert result.returncode == 2
    assert "doc2query.terms" in result.stderr
    assert "'object'" in result.stderr


def test_invalid_setting_names_allowed_values(cluster_url, index_name):
    result = run_d2q(
        [
            "backfill",
            "--url",
            cluster_url,
            "--index",
            index_name,
            "--decoding",
            "greedy",
        ]
    )

    assert result.returncode == 2
    assert "decoding" in result.stderr
    assert "sampling, beam" in result.stderr


def test_fast_generation_flags_are_valid():
    assert FAST_GENERATION.count("--seed") == 1
