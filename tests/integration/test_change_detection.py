"""Change detection: edited documents and other generation settings make documents stale."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import OPENSEARCH_TEST_PORT, TEST_ENGINES, read_sample
from tests.support import cli_arguments, create_index, fetch
from worker.cli import main

# A second OpenSearch node for the ingest pipeline tests, started only when the
# shared test node runs without the ingest-common module (a node started by an
# older d2q).
INGEST_TEST_PORT = int(os.environ.get("D2Q_TEST_INGEST_PORT", "9305"))
EDITED_TEXT = (
    "Texto nuevo: la biblioteca de la ciudad abre un archivo de mapas antiguos."
)


def _has_script_processor(url: str) -> bool:
    from worker.cluster.engine import ConnectionConfig, connect

    nodes = connect(ConnectionConfig(url=url)).client.nodes.info(metric="ingest")
    return all(
        any(item["type"] == "script" for item in node["ingest"]["processors"])
        for node in nodes["nodes"].values()
    )


@pytest.fixture(scope="session")
def ingest_url() -> Iterator[str]:
    """URL of an OpenSearch node that runs ingest pipelines with script processors.

    The pipeline tests run on OpenSearch only: the local Elasticsearch node
    has no ingest processors.
    """
    if "opensearch" not in TEST_ENGINES:
        pytest.skip("the change pipeline tests need OpenSearch (D2Q_TEST_ENGINES)")
    from worker.cluster import local

    preset = os.environ.get("D2Q_TEST_OPENSEARCH_URL")
    if preset and _has_script_processor(preset):
        yield preset
        return
    started: list[local.LocalNode] = []
    url = ""
    for port in (OPENSEARCH_TEST_PORT, INGEST_TEST_PORT):
        node = local.get_node("opensearch", port)
        if not local.status(node)["answering"]:
            started.append(node)
        url = local.start(node)
        if _has_script_processor(url):
            break
    else:
        pytest.fail(f"no OpenSearch node with ingest processors; last tried {url}")
    yield url
    if os.environ.get("D2Q_TEST_KEEP_SERVERS") != "1":
        for node in started:
            local.stop(node)


@pytest.fixture()
def ingest_engine(ingest_url: str):
    from worker.cluster.engine import ConnectionConfig, connect

    return connect(ConnectionConfig(url=ingest_url))


@pytest.fixture()
def watched_index(ingest_engine, ingest_url, tiny_model) -> Iterator[str]:
    """An expanded index with the change pipeline attached as its final pipeline."""
    name = f"d2q-test-{uuid.uuid4().hex[:10]}"
    create_index(ingest_engine, name, read_sample(12))
    arguments = cli_arguments(ingest_url, name, tiny_model)
    assert (
        main(["init", "--url", ingest_url, "--index", name, "--attach-change-pipeline"])
        == 0
    )
    assert main(["backfill", *arguments, "--no-progress"]) == 0
    yield name
    ingest_engine.client.indices.delete(index=name, ignore_unavailable=True)


def _version(engine, index: str, doc_id: str) -> int:
    return int(engine.client.get(index=index, id=doc_id)["_version"])


def _status(url: str, index: str, model, capsys, *extra: str) -> dict[str, int]:
    capsys.readouterr()
    assert main(["status", *cli_arguments(url, index, model, *extra)]) == 0
    return json.loads(capsys.readouterr().out)


def test_edited_document_expanded_again(
    ingest_engine, ingest_url, tiny_model, watched_index, capsys
):
    edited, untouched = read_sample(2)
    before = fetch(ingest_engine, watched_index, edited["_id"])
    untouched_version = _version(ingest_engine, watched_index, untouched["_id"])

    # The application reads the document and writes it back with a new text,
    # carrying the expansion object along.
    ingest_engine.client.index(
        index=watched_index,
        id=edited["_id"],
        body={**before, "text": EDITED_TEXT},
        params={"refresh": "true"},
    )
    marked = fetch(ingest_engine, watched_index, edited["_id"])["doc2query"]
    counts = _status(ingest_url, watched_index, tiny_model, capsys)
    assert (
        main(
            [
                "backfill",
                *cli_arguments(ingest_url, watched_index, tiny_model),
                "--no-progress",
            ]
        )
        == 0
    )
    after = fetch(ingest_engine, watched_index, edited["_id"])["doc2query"]

    assert marked["status"] == "changed"
    assert marked["changed_from"] == "expanded"
    assert counts["changed"] == 1
    assert counts["stale"] == 1
    assert counts["pending"] == 1
    assert after["status"] == "expanded"
    assert after["source_hash"] != before["doc2query"]["source_hash"]
    assert "changed_from" not in after
    assert "d2q_write" not in after
    assert _version(ingest_engine, watched_index, untouched["_id"]) == untouched_version
    assert _status(ingest_url, watched_index, tiny_model, capsys)["pending"] == 0


def test_rewrite_with_same_text_keeps_queries(
    ingest_engine, ingest_url, tiny_model, watched_index, capsys
):
    document = read_sample(3)[2]
    before = fetch(ingest_engine, watched_index, document["_id"])
    ingest_engine.client.index(
        index=watched_index, id=document["_id"], body=before, params={"refresh": "true"}
    )
    assert (
        fetch(ingest_engine, watched_index, document["_id"])["doc2query"]["status"]
        == "changed"
    )

    assert (
        main(
            [
                "backfill",
                *cli_arguments(ingest_url, watched_index, tiny_model),
                "--no-progress",
            ]
        )
        == 0
    )
    after = fetch(ingest_engine, watched_index, document["_id"])["doc2query"]

    assert after["status"] == "expanded"
    assert after["queries"] == before["doc2query"]["queries"]
    assert after["expanded_at"] == before["doc2query"]["expanded_at"]
    assert _status(ingest_url, watched_index, tiny_model, capsys)["changed"] == 0


def test_partial_update_of_text_marks_document(ingest_engine, watched_index):
    document = read_sample(4)[3]

    ingest_engine.client.update(
        index=watched_index,
        id=document["_id"],
        body={"doc": {"text": EDITED_TEXT}},
        params={"refresh": "true"},
    )

    assert (
        fetch(ingest_engine, watched_index, document["_id"])["doc2query"]["status"]
        == "changed"
    )


def test_bulk_partial_update_not_seen(ingest_engine, watched_index):
    # OpenSearch 2.19 runs no ingest pipeline on bulk update actions: d2q's own
    # writes rely on this, and such edits by others stay invisible.
    document = read_sample(6)[5]
    action = {"update": {"_index": watched_index, "_id": document["_id"]}}
    body = "\n".join(
        json.dumps(line) for line in (action, {"doc": {"text": EDITED_TEXT}})
    )

    ingest_engine.client.bulk(body=body + "\n", params={"refresh": "true"})

    assert (
        fetch(ingest_engine, watched_index, document["_id"])["doc2query"]["status"]
        == "expanded"
    )


def test_pipeline_none_still_marks(ingest_engine, watched_index):
    # ?pipeline=_none skips an index's default pipeline but not its final one.
    document = read_sample(7)[6]
    stored = fetch(ingest_engine, watched_index, document["_id"])

    ingest_engine.client.index(
        index=watched_index,
        id=document["_id"],
        body=stored,
        params={"refresh": "true", "pipeline": "_none"},
    )

    assert (
        fetch(ingest_engine, watched_index, document["_id"])["doc2query"]["status"]
        == "changed"
    )


def test_attach_rejects_other_final_pipeline(ingest_engine, ingest_url, capsys):
    name = f"d2q-test-{uuid.uuid4().hex[:10]}"
    ingest_engine.client.ingest.put_pipeline(id=f"{name}-own", body={"processors": []})
    create_index(ingest_engine, name, [])
    ingest_engine.client.indices.put_settings(
        index=name, body={"index": {"final_pipeline": f"{name}-own"}}
    )
    try:
        code = main(
            ["init", "--url", ingest_url, "--index", name, "--attach-change-pipeline"]
        )
    finally:
        ingest_engine.client.indices.delete(index=name, ignore_unavailable=True)
        ingest_engine.client.ingest.delete_pipeline(id=f"{name}-own")

    assert code == 2
    assert f"{name} ({name}-own)" in capsys.readouterr().err


def test_d2q_writes_not_marked(
    ingest_engine, ingest_url, tiny_model, watched_index, capsys
):
    counts = _status(ingest_url, watched_index, tiny_model, capsys)

    assert counts["changed"] == 0
    assert counts["expanded"] == 12
    for document in read_sample(12):
        stored = fetch(ingest_engine, watched_index, document["_id"])["doc2query"]
        assert "d2q_write" not in stored


def test_daemon_expands_edited_document(
    ingest_engine, ingest_url, tiny_model, watched_index
):
    document = read_sample(5)[4]
    before = fetch(ingest_engine, watched_index, document["_id"])
    daemon = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "worker",
            "run",
            *cli_arguments(
                ingest_url, watched_index, tiny_model, "--poll-seconds", "1"
            ),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ingest_engine.client.index(
            index=watched_index,
            id=document["_id"],
            body={**before, "text": EDITED_TEXT},
            params={"refresh": "true"},
        )
        after = _wait_for_new_hash(
            ingest_engine, watched_index, document["_id"], before
        )
    finally:
        daemon.terminate()
        _, errors = daemon.communicate(timeout=120)

    assert daemon.returncode == 0, errors
    assert after["status"] == "expanded"


def _wait_for_new_hash(
    engine, index: str, doc_id: str, before: dict, timeout: float = 180
) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        expansion = fetch(engine, index, doc_id)["doc2query"]
        if (
            expansion["status"] == "expanded"
            and expansion["source_hash"] != before["doc2query"]["source_hash"]
        ):
            return expansion
        time.sleep(0.5)
    pytest.fail(f"document {doc_id} was not expanded again within {timeout} s")


def test_generation_setting_change_makes_all_stale(
    engine, cluster_url, tiny_model, index_name, capsys
):
    documents = read_sample(10)
    create_index(engine, index_name, documents)
    arguments = cli_arguments(cluster_url, index_name, tiny_model)
    assert main(["backfill", *arguments, "--no-progress"]) == 0

    stale = _status(
        cluster_url, index_name, tiny_model, capsys, "--max-new-tokens", "9"
    )
    assert main(["backfill", *arguments, "--max-new-tokens", "9", "--no-progress"]) == 0
    after = _status(
        cluster_url, index_name, tiny_model, capsys, "--max-new-tokens", "9"
    )

    assert stale["stale"] == len(documents)
    assert stale["pending"] == len(documents)
    assert stale["changed"] == 0
    assert after["stale"] == 0
    assert after["expanded"] == len(documents)


def _bulk_edit(engine, index: str, doc_id: str, text: str) -> None:
    action = {"update": {"_index": index, "_id": doc_id}}
    body = "\n".join(json.dumps(line) for line in (action, {"doc": {"text": text}}))
    response = engine.client.bulk(body=body + "\n", params={"refresh": "true"})
    assert not response["errors"], response


def test_verify_finds_unseen_edit(engine, cluster_url, tiny_model, index_name, capsys):
    documents = read_sample(8)
    create_index(engine, index_name, documents)
    arguments = cli_arguments(cluster_url, index_name, tiny_model)
    assert main(["backfill", *arguments, "--no-progress"]) == 0
    edited, untouched = documents[0]["_id"], documents[1]["_id"]
    _bulk_edit(engine, index_name, edited, EDITED_TEXT)
    untouched_version = _version(engine, index_name, untouched)
    capsys.readouterr()

    assert main(["verify", *arguments]) == 0
    verified = json.loads(capsys.readouterr().out)
    marked = fetch(engine, index_name, edited)["doc2query"]
    assert main(["backfill", *arguments, "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["verify", *arguments]) == 0
    second = json.loads(capsys.readouterr().out)

    assert verified["checked"] == len(documents)
    assert verified["marked"] == 1
    assert marked["status"] == "changed"
    assert marked["changed_from"] == "expanded"
    assert fetch(engine, index_name, edited)["doc2query"]["status"] == "expanded"
    assert _version(engine, index_name, untouched) == untouched_version
    assert second["marked"] == 0
