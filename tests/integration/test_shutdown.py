"""Stop signals and SIGKILL at random moments: each document whole or untouched."""

from __future__ import annotations

import random
import signal
import time
from typing import Any

import pytest

from tests.conftest import read_sample
from tests.reliability import (
    all_sources,
    check_expansion,
    count_status,
    run_d2q_with,
    start_d2q,
    wait_until,
)
from tests.support import cli_arguments, create_index

KILL_ROUNDS = 20
# Fields of an expansion that do not depend on when it was written or on
# which other documents shared its batch.
STABLE_FIELDS = ("status", "fingerprint", "source_hash", "paragraphs", "model")


def _whole_or_untouched(
    sources: dict[str, dict[str, Any]], documents: list[dict]
) -> int:
    """Assert every document is fully expanded or has no expansion; count the latter."""
    untouched = 0
    for document in documents:
        source = sources[document["_id"]]
        assert {k: v for k, v in source.items() if k != "doc2query"} == {
            k: v for k, v in document.items() if k != "_id"
        }
        if "doc2query" not in source:
            untouched += 1
            continue
        assert check_expansion(source) == [], document["_id"]
    return untouched


def _start_and_freeze(engine: Any, index: str, arguments: list[str]) -> Any:
    """Start d2q and freeze it with SIGSTOP once it wrote its first expansion."""
    process = start_d2q(arguments)
    wait_until(
        lambda: (
            process.poll() is not None or count_status(engine, index, "expanded") > 0
        ),
        timeout=300,
        what="the first expansion",
    )
    process.send_signal(signal.SIGSTOP)
    return process


def test_first_signal_finishes_batch(engine, opensearch_url, tiny_model, index_name):
    documents = read_sample(40)
    create_index(engine, index_name, documents)
    arguments = ["backfill", "--no-progress", "--page-size", "4"]
    process = _start_and_freeze(
        engine,
        index_name,
        [*arguments, *cli_arguments(opensearch_url, index_name, tiny_model)],
    )

    process.send_signal(signal.SIGTERM)
    process.send_signal(signal.SIGCONT)
    output, errors = process.communicate(timeout=300)

    assert process.returncode == 0, errors[-2000:]
    assert "stopping after the batch in flight" in errors
    assert output.startswith("expanded=")
    untouched = _whole_or_untouched(all_sources(engine, index_name), documents)
    assert 0 < untouched < len(documents)


def test_second_signal_exits_at_once(engine, opensearch_url, tiny_model, index_name):
    documents = read_sample(40)
    create_index(engine, index_name, documents)
    arguments = ["backfill", "--no-progress", "--page-size", "4"]
    process = _start_and_freeze(
        engine,
        index_name,
        [*arguments, *cli_arguments(opensearch_url, index_name, tiny_model)],
    )

    process.send_signal(signal.SIGTERM)
    process.send_signal(signal.SIGCONT)
    time.sleep(0.5)  # the first signal is handled before the second arrives
    process.send_signal(signal.SIGTERM)
    _, errors = process.communicate(timeout=120)

    # When the batch in flight finished before the second signal, Python may
    # already be tearing down with default signal handling, so the signal
    # itself ends the process (-SIGTERM). Either way it exits at once.
    assert process.returncode in (128 + signal.SIGTERM, -signal.SIGTERM), errors[-2000:]
    _whole_or_untouched(all_sources(engine, index_name), documents)


@pytest.mark.slow
def test_sigkill_rounds_match_uninterrupted_run(
    engine, opensearch_url, tiny_model, index_name
):
    documents = read_sample(40)
    reference_index = f"{index_name}-reference"
    create_index(engine, index_name, documents)
    create_index(engine, reference_index, documents)
    flags = [
        "--no-progress",
        "--page-size",
        "3",
        "--decoding",
        "beam",
        "--batch-size",
        "1",
    ]
    try:
        reference = run_d2q_with(
            [
                "backfill",
                *cli_arguments(opensearch_url, reference_index, tiny_model, *flags),
            ]
        )
        assert reference.returncode == 0, reference.stderr[-2000:]
        arguments = [
            "backfill",
            *cli_arguments(opensearch_url, index_name, tiny_model, *flags),
        ]
        chooser = random.Random(KILL_ROUNDS)
        for _ in range(KILL_ROUNDS):
            process = start_d2q(arguments)
            time.sleep(chooser.uniform(1.0, 8.0))
            process.kill()
            process.communicate()
            _whole_or_untouched(all_sources(engine, index_name), documents)
        final = run_d2q_with(arguments)
        expected = all_sources(engine, reference_index)
    finally:
        engine.delete_index(reference_index)

    assert final.returncode == 0, final.stderr[-2000:]
    sources = all_sources(engine, index_name)
    assert _whole_or_untouched(sources, documents) == 0
    for document in documents:
        doc_id = document["_id"]
        got, want = sources[doc_id]["doc2query"], expected[doc_id]["doc2query"]
        for name in STABLE_FIELDS:
            assert got[name] == want[name], (doc_id, name)
        assert got["attempts"] == 1, doc_id
        # Beam search with one paragraph per batch makes the same queries.
        assert got["queries"] == want["queries"], doc_id
