"""The overlapped backfill against a real cluster: order kept, nothing lost."""

from __future__ import annotations

from tests.conftest import read_sample
from tests.support import create_index
from worker.assembly import build_pipeline
from worker.cluster.engine import ConnectionConfig, connect
from worker.cluster.mapping import ensure_expansion_mapping
from worker.settings import load_settings


def _pipeline(url: str, index: str, model, **flags):
    values = {
        "url": url,
        "index": index,
        "model": str(model),
        "queries_per_paragraph": 3,
        "min_new_tokens": 3,
        "max_new_tokens": 6,
        "seed": 5,
        "page_size": 4,
        **flags,
    }
    settings = load_settings(values, environ={})
    engine = connect(ConnectionConfig(url=url))
    ensure_expansion_mapping(engine, index, settings.expansion_field, settings.analyzer)
    return build_pipeline(settings, engine)


def test_overlapped_backfill_keeps_page_order(
    engine, opensearch_url, tiny_model, index_name
):
    documents = read_sample(30)
    create_index(engine, index_name, documents)
    pipeline = _pipeline(opensearch_url, index_name, tiny_model)
    written: list[tuple[int, list[str]]] = []
    write_page = pipeline.write_page

    def record(expanded):
        written.append((expanded.batch_number, [doc.id for doc in expanded.documents]))
        return write_page(expanded)

    pipeline.write_page = record

    summary = pipeline.backfill()

    numbers = [number for number, _ in written]
    assert numbers == sorted(numbers)
    assert len(set(numbers)) == len(numbers)
    written_ids = [doc_id for _, ids in written for doc_id in ids]
    assert sorted(written_ids) == sorted(document["_id"] for document in documents)
    assert summary.expanded == len(documents)


def test_overlapped_backfill_loses_no_document(
    engine, opensearch_url, tiny_model, index_name
):
    documents = read_sample(30)
    create_index(engine, index_name, documents)
    pipeline = _pipeline(opensearch_url, index_name, tiny_model, backend="ctranslate2")

    summary = pipeline.backfill()

    engine.client.indices.refresh(index=index_name)
    response = engine.client.search(
        index=index_name,
        body={"size": 100, "query": {"term": {"doc2query.status": "expanded"}}},
    )
    expanded_ids = {hit["_id"] for hit in response["hits"]["hits"]}
    assert expanded_ids == {document["_id"] for document in documents}
    assert summary.failed == 0


def test_backfill_limit_counts_documents_read(
    engine, opensearch_url, tiny_model, index_name
):
    create_index(engine, index_name, read_sample(20))
    pipeline = _pipeline(opensearch_url, index_name, tiny_model)

    summary = pipeline.backfill(limit=7)

    assert summary.processed == 7
    assert pipeline.pending_count() == 13
