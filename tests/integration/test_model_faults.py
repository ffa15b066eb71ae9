"""Out-of-memory and NaN scores in the model during a backfill: real server."""

from __future__ import annotations

from typing import Any

from tests.conftest import read_sample
from tests.reliability import (
    all_sources,
    check_expansion,
    hook_generator,
    make_pipeline,
    recorded_logs,
)
from tests.support import create_index
from worker.page import NO_QUERIES_REASON

POISON_WORD = "ENVENENADO"


def test_out_of_memory_halves_batches(engine, opensearch_url, tiny_model, index_name):
    documents = read_sample(8)
    create_index(engine, index_name, documents)
    pipeline = make_pipeline(
        engine, opensearch_url, index_name, tiny_model, batch_size=8
    )
    model = pipeline.generator.model
    real_generate = model.generate
    batch_sizes: list[int] = []

    def generate_or_run_out(*args: Any, **kwargs: Any) -> Any:
        rows = int(kwargs["input_ids"].shape[0])
        batch_sizes.append(rows)
        if rows > 2:
            raise RuntimeError(
                "CUDA out of memory. Tried to allocate 2.00 GiB (injected)"
            )
        return real_generate(*args, **kwargs)

    model.generate = generate_or_run_out
    with recorded_logs() as logs:
        summary = pipeline.backfill()

    assert summary.expanded == len(documents)
    assert max(batch_sizes) > 2
    assert logs.messages("out of memory")
    for doc_id, source in all_sources(engine, index_name).items():
        assert check_expansion(source) == [], doc_id


def test_nan_scores_never_stored(engine, opensearch_url, tiny_model, index_name):
    poisoned = {
        "_id": "poisoned",
        "title": "Veneno",
        "text": f"Un texto {POISON_WORD} para el modelo.",
    }
    create_index(engine, index_name, [*read_sample(3), poisoned])
    pipeline = make_pipeline(
        engine, opensearch_url, index_name, tiny_model, page_size=1
    )
    state = {"poison": False}

    def mark_poisoned(paragraphs: Any) -> None:
        state["poison"] = any(POISON_WORD in text for text in paragraphs)

    def nan_scores(module: Any, inputs: Any, output: Any) -> Any:
        if state["poison"]:
            output[:] = float("nan")
        return output

    hook_generator(pipeline, mark_poisoned)
    pipeline.generator.inner.model.lm_head.register_forward_hook(nan_scores)

    summary = pipeline.backfill()

    sources = all_sources(engine, index_name)
    assert summary.expanded == 3
    assert summary.skipped == 1
    assert sources["poisoned"]["doc2query"]["status"] == "skipped"
    assert sources["poisoned"]["doc2query"]["reason"] == NO_QUERIES_REASON
    for doc_id, source in sources.items():
        if doc_id != "poisoned":
            assert check_expansion(source) == [], doc_id
