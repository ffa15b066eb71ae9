"""Concurrent writers, retried and rejected bulk items, size bounds: real server."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import read_sample
from tests.faultproxy import Fault, FaultProxy
from tests.reliability import (
    PROXY_PORT,
    all_sources,
    check_expansion,
    hook_generator,
    make_pipeline,
    recorded_logs,
    start_d2q,
)
from tests.support import cli_arguments, create_index, fetch
from worker.cli import main
from worker.cluster.engine import ConnectionConfig, connect

EDITED_TEXT = "Texto nuevo escrito por una persona mientras el modelo trabajaba."


def _bulk_ids(body: bytes) -> list[str]:
    lines = [json.loads(line) for line in body.splitlines() if line.strip()]
    actions = [line.get("update") or line.get("index") for line in lines[::2]]
    return [action["_id"] for action in actions]


def _written_expansions(body: bytes) -> list[dict[str, Any]]:
    """Return the expansion objects of a bulk body, by script or whole document."""
    sources = [json.loads(line) for line in body.splitlines()[1::2]]
    return [
        source["script"]["params"]["expansion"]
        if "script" in source
        else source["doc2query"]
        for source in sources
    ]


@pytest.fixture()
def proxy(opensearch_url: str):
    with FaultProxy(opensearch_url, PROXY_PORT) as running:
        yield running


@pytest.fixture()
def proxied_engine(proxy: FaultProxy) -> Any:
    return connect(ConnectionConfig(url=proxy.url, request_timeout=10))


def test_user_edit_during_generation_is_kept(
    engine, opensearch_url, tiny_model, index_name
):
    documents = read_sample(6)
    create_index(engine, index_name, documents)
    pipeline = make_pipeline(engine, opensearch_url, index_name, tiny_model)
    edited_id = documents[2]["_id"]

    def edit_once(paragraphs: Any) -> None:
        if hooked.calls == 1:
            engine.client.update(
                index=index_name,
                id=edited_id,
                body={"doc": {"text": EDITED_TEXT}},
                params={"refresh": "true"},
            )

    hooked = hook_generator(pipeline, edit_once)

    summary = pipeline.backfill()

    stored = fetch(engine, index_name, edited_id)
    assert stored["text"] == EDITED_TEXT
    assert check_expansion(stored, pipeline.config.fingerprint) == []
    assert summary.conflicts == 1
    assert summary.expanded == len(documents)
    for doc_id, source in all_sources(engine, index_name).items():
        assert check_expansion(source) == [], doc_id


def test_second_writer_wins_without_overwrite(
    engine, opensearch_url, tiny_model, index_name
):
    documents = read_sample(5)
    create_index(engine, index_name, documents)
    first = make_pipeline(engine, opensearch_url, index_name, tiny_model)
    second = make_pipeline(engine, opensearch_url, index_name, tiny_model, seed=99)
    written_by_second: dict[str, Any] = {}

    def second_writes_first(paragraphs: Any) -> None:
        if not written_by_second:
            second.backfill()
            written_by_second.update(all_sources(engine, index_name))

    hook_generator(first, second_writes_first)

    summary = first.backfill()

    assert summary.conflicts == len(documents)
    assert summary.expanded == 0
    assert all_sources(engine, index_name) == written_by_second


def test_two_worker_processes_share_index(
    engine, opensearch_url, tiny_model, index_name
):
    documents = read_sample(16)
    create_index(engine, index_name, documents)
    arguments = [
        "backfill",
        *cli_arguments(opensearch_url, index_name, tiny_model),
        "--no-progress",
        "--page-size",
        "4",
    ]
    workers = [start_d2q(arguments) for _ in range(2)]
    results = [worker.communicate(timeout=600) for worker in workers]

    assert [worker.returncode for worker in workers] == [0, 0], results
    sources = all_sources(engine, index_name)
    assert len(sources) == len(documents)
    for document in documents:
        source = sources[document["_id"]]
        assert check_expansion(source) == [], document["_id"]
        assert source["text"] == document["text"]


def test_rejected_items_are_sent_alone(
    proxy, proxied_engine, tiny_model, index_name, engine
):
    documents = read_sample(6)
    create_index(engine, index_name, documents)
    pipeline = make_pipeline(proxied_engine, proxy.url, index_name, tiny_model)
    proxy.add(Fault("reject_items", path="_bulk", items=2))

    summary = pipeline.backfill()

    bulks = proxy.seen("_bulk")
    assert summary.expanded == len(documents)
    assert len(bulks) == 2
    assert _bulk_ids(bulks[1].body) == _bulk_ids(bulks[0].body)[:2]
    for doc_id, source in all_sources(engine, index_name).items():
        assert check_expansion(source) == [], doc_id


@pytest.mark.parametrize(
    "fault",
    [
        Fault("status", path="_bulk", status=429),
        Fault("status", path="_bulk", status=503, times=4),
        Fault("reset", path="_bulk"),
        Fault("reset", path="_search"),
        Fault("status", path="_analyze", status=429),
    ],
    ids=["bulk-429", "bulk-503", "bulk-reset", "search-reset", "analyze-429"],
)
def test_whole_request_faults_are_retried(
    proxy, proxied_engine, tiny_model, index_name, engine, fault
):
    documents = read_sample(6)
    create_index(engine, index_name, documents)
    pipeline = make_pipeline(proxied_engine, proxy.url, index_name, tiny_model)
    proxy.add(fault)

    summary = pipeline.backfill()

    assert fault.times == 0
    assert summary.expanded == len(documents)
    assert summary.failed == 0
    for doc_id, source in all_sources(engine, index_name).items():
        assert check_expansion(source) == [], doc_id


def test_timeout_after_applied_bulk_writes_once(proxy, tiny_model, index_name, engine):
    documents = read_sample(4)
    create_index(engine, index_name, documents)
    impatient = connect(ConnectionConfig(url=proxy.url, request_timeout=1))
    pipeline = make_pipeline(impatient, proxy.url, index_name, tiny_model)
    proxy.add(Fault("delay", path="_bulk", seconds=3))

    with recorded_logs() as logs:
        summary = pipeline.backfill()

    first = proxy.seen("_bulk")[0]
    assert first.fault == "delay"
    assert logs.messages("bulk request failed (attempt 1)")
    # The resent updates (or, with the document write method, the check made
    # before resending) find every document changed by the first write.
    assert summary.conflicts == len(documents)
    assert summary.expanded == 0
    written = dict(
        zip(_bulk_ids(first.body), _written_expansions(first.body), strict=True)
    )
    for document in documents:
        stored = fetch(engine, index_name, document["_id"])
        assert stored["doc2query"] == written[document["_id"]]
        assert check_expansion(stored) == []


def test_unwritable_document_is_logged_once(
    engine, opensearch_url, tiny_model, index_name
):
    mapping = {
        "dynamic": False,
        "properties": {"title": {"type": "text"}, "text": {"type": "text"}},
    }
    documents = [
        *read_sample(3),
        {"_id": "bad", "text": "Un texto normal.", "count": "muchos"},
    ]
    create_index(engine, index_name, documents, mapping=mapping)
    # The value was stored unmapped; from now on every write of it fails.
    engine.client.indices.put_mapping(
        index=index_name, body={"properties": {"count": {"type": "integer"}}}
    )
    pipeline = make_pipeline(engine, opensearch_url, index_name, tiny_model)

    with recorded_logs() as logs:
        first = pipeline.run_pass()
        second = pipeline.run_pass()

    assert first.failed == 1
    assert first.expanded == 3
    assert second.processed == 0
    assert len(logs.messages("id=bad update failed with status 400")) == 1
    assert "doc2query" not in fetch(engine, index_name, "bad")


def _long_document() -> dict[str, Any]:
    text = "\n\n".join(row["text"] for row in read_sample(43))
    return {"_id": "long", "title": "Largo", "text": text}


def test_oversized_update_recorded_then_retried(
    engine, opensearch_url, tiny_model, index_name, capsys
):
    create_index(engine, index_name, [*read_sample(3), _long_document()])
    arguments = cli_arguments(opensearch_url, index_name, tiny_model, "--no-progress")

    assert main(["backfill", *arguments, "--bulk-max-bytes", "10000"]) == 1
    failed = fetch(engine, index_name, "long")["doc2query"]
    assert failed["status"] == "failed"
    assert "exceeds the bulk limit of 10000 bytes" in failed["reason"]
    assert failed["attempts"] == 1
    capsys.readouterr()

    assert main(["backfill", *arguments]) == 0
    assert capsys.readouterr().out.startswith("expanded=0 skipped=0 failed=0")
    assert main(["backfill", *arguments, "--retry-failed"]) == 0

    retried = fetch(engine, index_name, "long")
    assert check_expansion(retried) == []
    assert retried["doc2query"]["attempts"] == 2


def test_bulk_requests_stay_under_byte_limit(
    proxy, proxied_engine, tiny_model, index_name, engine
):
    documents = read_sample(20)
    create_index(engine, index_name, documents)
    pipeline = make_pipeline(
        proxied_engine, proxy.url, index_name, tiny_model, bulk_max_bytes=10_000
    )

    if proxied_engine.write_method == "document":
        # NOTE: the document write method turns each update into an index
        # request of the whole document after the writer sized the request,
        # so bulk_max_bytes bounds only the update lines.
        pytest.skip("the byte bound is not applied to whole-document writes")

    summary = pipeline.backfill()

    sizes = [len(request.body) for request in proxy.seen("_bulk")]
    assert summary.expanded == len(documents)
    assert len(sizes) > 1
    assert max(sizes) <= 10_000


def test_server_size_limit_halves_requests(
    proxy, proxied_engine, tiny_model, index_name, engine
):
    documents = read_sample(20)
    create_index(engine, index_name, documents)
    proxy.state.max_body_bytes = 8_000
    pipeline = make_pipeline(proxied_engine, proxy.url, index_name, tiny_model)

    summary = pipeline.backfill()

    statuses = [request.body and len(request.body) for request in proxy.seen("_bulk")]
    assert summary.expanded == len(documents)
    assert max(statuses) > 8_000
    for doc_id, source in all_sources(engine, index_name).items():
        assert check_expansion(source) == [], doc_id
