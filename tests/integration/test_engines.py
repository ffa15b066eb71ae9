"""The engine layer against each real engine: detection, writes and queries."""

from __future__ import annotations

import json

import pytest

from tests.conftest import expected_version
from tests.support import create_index, fetch, index_settings, run_d2q
from worker.cluster.bulk import Update, read_bulk_items, update_lines
from worker.cluster.detect import check_supported, detect_server
from worker.cluster.engine import ConnectionConfig, connect
from worker.cluster.mapping import ensure_expansion_mapping

FIELD = "doc2query"


def _expected_version(engine_name: str) -> str:
    version = expected_version(engine_name)
    if version is None:
        pytest.skip("the test server is preset, so its version is not known here")
    return version


def test_detection_reports_engine(cluster_url, engine_name):
    server = detect_server(cluster_url)

    assert server.engine == engine_name
    check_supported(server)


def test_detection_reports_local_version(cluster_url, engine_name):
    expected = _expected_version(engine_name)

    assert detect_server(cluster_url).version == expected


def test_connect_picks_engine_class(engine, engine_name, cluster_url):
    assert engine.name == engine_name
    assert engine.version == detect_server(cluster_url).version


def test_engine_option_names_engine(cluster_url, engine_name):
    engine = connect(ConnectionConfig(url=cluster_url, engine=engine_name))

    assert engine.name == engine_name
    assert engine.count("*", {"match_all": {}}) >= 0


def test_write_method_follows_painless(engine, engine_name):
    # The OpenSearch test node has painless; the Elasticsearch one has none.
    expected = {"opensearch": "script", "elasticsearch": "document"}[engine_name]

    assert engine.write_method == expected


def _write(engine, updates: list[Update]) -> list[tuple[str, int]]:
    ndjson = "".join(
        f"{action}\n{body}\n"
        for action, body in (update_lines(u, FIELD) for u in updates)
    )
    outcomes = read_bulk_items(engine.bulk(ndjson), updates)
    return [(outcome.verdict, outcome.status) for outcome in outcomes]


def _versions(engine, index: str, doc_id: str) -> tuple[int, int]:
    response = engine.client.get(index=index, id=doc_id)
    return response["_seq_no"], response["_primary_term"]


@pytest.fixture(params=["script", "document"])
def write_engine(request, cluster_url, engine):
    """The test engine with each write method it can run."""
    if request.param == "script" and engine.write_method != "script":
        pytest.skip(f"{engine.name} test node runs no painless scripts")
    return connect(ConnectionConfig(url=cluster_url, write_method=request.param))


@pytest.fixture()
def expanded_index(write_engine, index_name):
    create_index(
        write_engine, index_name, [{"_id": "one", "text": "El río pasa por la ciudad."}]
    )
    ensure_expansion_mapping(write_engine, index_name, FIELD, "spanish")
    old = {
        "status": "expanded",
        "queries": ["río viejo"],
        "terms": {"viejo": 2.0, "rio": 1.0},
    }
    seq_no, primary_term = _versions(write_engine, index_name, "one")
    assert _write(
        write_engine, [Update(index_name, "one", seq_no, primary_term, old)]
    ) == [("done", 200)]
    return index_name


def test_write_replaces_whole_expansion(write_engine, expanded_index):
    seq_no, primary_term = _versions(write_engine, expanded_index, "one")
    new = {"status": "expanded", "queries": ["ciudad"], "terms": {"ciudad": 1.5}}

    verdicts = _write(
        write_engine, [Update(expanded_index, "one", seq_no, primary_term, new)]
    )

    stored = fetch(write_engine, expanded_index, "one")
    assert verdicts == [("done", 200)]
    assert stored[FIELD]["terms"] == {"ciudad": 1.5}
    assert stored[FIELD]["queries"] == ["ciudad"]
    assert stored["text"] == "El río pasa por la ciudad."


def test_write_to_changed_document_conflicts(write_engine, expanded_index):
    seq_no, primary_term = _versions(write_engine, expanded_index, "one")
    write_engine.index_document(
        expanded_index, "one", {"text": "Texto nuevo."}, refresh=True
    )
    new = {"status": "expanded", "terms": {"ciudad": 1.5}}

    verdicts = _write(
        write_engine, [Update(expanded_index, "one", seq_no, primary_term, new)]
    )

    assert verdicts == [("conflict", 409)]
    assert FIELD not in fetch(write_engine, expanded_index, "one")


def test_write_to_deleted_document_fails(write_engine, expanded_index):
    seq_no, primary_term = _versions(write_engine, expanded_index, "one")
    write_engine.client.delete(index=expanded_index, id="one", refresh=True)
    new = {"status": "expanded", "terms": {"ciudad": 1.5}}

    verdicts = _write(
        write_engine, [Update(expanded_index, "one", seq_no, primary_term, new)]
    )

    # Neither write method creates the document again: it is reported
    # missing (404) or its newer sequence number conflicts (409).
    assert verdicts[0][1] in (404, 409)
    assert not write_engine.client.exists(index=expanded_index, id="one")


def test_write_keeps_other_bulk_items(write_engine, expanded_index):
    seq_no, primary_term = _versions(write_engine, expanded_index, "one")
    update = Update(
        expanded_index,
        "one",
        seq_no,
        primary_term,
        {"status": "expanded", "terms": {"a": 1.0}},
    )
    action, body = update_lines(update, FIELD)
    other = json.dumps({"index": {"_index": expanded_index, "_id": "two"}})
    ndjson = f"{other}\n{json.dumps({'text': 'Otro.'})}\n{action}\n{body}\n"

    response = write_engine.bulk(ndjson)

    statuses = [next(iter(item.values()))["status"] for item in response["items"]]
    assert statuses == [201, 200]
    assert fetch(write_engine, expanded_index, "two") == {"text": "Otro."}


def test_feature_clause_ranks_by_weight(engine, index_name):
    create_index(
        engine, index_name, [{"_id": "low", "text": "a"}, {"_id": "high", "text": "b"}]
    )
    ensure_expansion_mapping(engine, index_name, FIELD, "spanish")
    for doc_id, weight in (("low", 0.5), ("high", 3.0)):
        seq_no, primary_term = _versions(engine, index_name, doc_id)
        expansion = {"status": "expanded", "terms": {"rio": weight}}
        assert _write(
            engine, [Update(index_name, doc_id, seq_no, primary_term, expansion)]
        ) == [("done", 200)]
    engine.refresh(index_name)

    clause = engine.feature_clause(FIELD + ".terms", "rio", boost=2.0, name="rio")
    response = engine.search(index_name, {"query": clause}, named_scores=True)

    hits = response["hits"]["hits"]
    assert [hit["_id"] for hit in hits] == ["high", "low"]
    assert hits[0]["_score"] > hits[1]["_score"] > 0
    assert "rio" in hits[0]["matched_queries"]


def test_missing_analyzer_gives_clear_error(engine, cluster_url, index_name):
    engine.create_index(index_name, settings=index_settings(engine))

    result = run_d2q(
        ["init", "--url", cluster_url, "--index", index_name, "--analyzer", "klingon"]
    )

    assert result.returncode == 2
    assert "klingon" in result.stderr
    assert "--analyzer" in result.stderr
    assert "Traceback" not in result.stderr
