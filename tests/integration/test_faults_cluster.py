"""Point in time expiry and a cluster outage, on a node the tests stop and start."""

from __future__ import annotations

import signal
import time
from typing import Any

from tests.conftest import read_sample
from tests.reliability import (
    all_sources,
    check_expansion,
    count_status,
    hook_generator,
    make_pipeline,
    restartable_node,
    run_d2q_with,
    start_d2q,
    wait_until,
)
from tests.support import cli_arguments, create_index
from worker.cluster import local

OUTAGE_SECONDS = 30


def test_expired_point_in_time_is_reopened(
    restartable_engine, restartable_url, restartable_index, tiny_model
):
    documents = read_sample(16)
    create_index(restartable_engine, restartable_index, documents)
    pipeline = make_pipeline(
        restartable_engine,
        restartable_url,
        restartable_index,
        tiny_model,
        page_size=2,
        pit_keep_alive="1s",
    )
    # Slower than the keep-alive, so the point in time expires between pages.
    hook_generator(pipeline, lambda paragraphs: time.sleep(1.5))

    summary = pipeline.backfill()

    assert summary.reopened >= 1
    assert summary.expanded == len(documents)
    assert summary.processed == len(documents)
    sources = all_sources(restartable_engine, restartable_index)
    for document in documents:
        assert check_expansion(sources[document["_id"]]) == [], document["_id"]


def _stop_when_started(engine: Any, index: str, process: Any) -> int:
    """Freeze ``process`` once it wrote its first expansion; return those written."""
    wait_until(
        lambda: (
            process.poll() is not None or count_status(engine, index, "expanded") > 0
        ),
        timeout=300,
        what=f"the first expansion in {index}",
    )
    process.send_signal(signal.SIGSTOP)
    return count_status(engine, index, "expanded")


def test_outage_waited_out_or_reported(
    restartable_engine, restartable_url, restartable_index, tiny_model, request
):
    engine, url = restartable_engine, restartable_url
    daemon_index, resumed_index, budget_index = (
        f"{restartable_index}-{name}" for name in ("daemon", "resumed", "budget")
    )
    documents = read_sample(30)
    for index in (daemon_index, resumed_index, budget_index):
        create_index(engine, index, documents)
        request.addfinalizer(lambda index=index: engine.delete_index(index))
    common = ["--page-size", "2"]
    daemon = start_d2q(
        [
            "run",
            *cli_arguments(
                url, daemon_index, tiny_model, *common, "--poll-seconds", "1"
            ),
        ]
    )
    backfill = ["backfill", "--no-progress", *common]
    resumed = start_d2q(
        [
            *backfill,
            *cli_arguments(
                url, resumed_index, tiny_model, "--outage-budget-seconds", "600"
            ),
        ]
    )
    budgeted = start_d2q(
        [
            *backfill,
            *cli_arguments(
                url, budget_index, tiny_model, "--outage-budget-seconds", "3"
            ),
        ]
    )
    processes = (daemon, resumed, budgeted)
    node = restartable_node()
    try:
        written = [
            _stop_when_started(engine, index, process)
            for index, process in zip(
                (daemon_index, resumed_index, budget_index), processes, strict=True
            )
        ]
        local.stop(node)
        stopped_at = time.monotonic()
        for process in processes:
            process.send_signal(signal.SIGCONT)
        _, budget_errors = budgeted.communicate(timeout=300)
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped_at)))
        local.start(node, heap="384m")
        _, resumed_errors = resumed.communicate(timeout=600)
        wait_until(
            lambda: count_status(engine, daemon_index, "expanded") == len(documents),
            timeout=600,
            what="the daemon to expand every document",
        )
        engine.index_document(
            daemon_index,
            "late",
            {"title": "Tarde", "text": "Llega tras el corte."},
            refresh=True,
        )
        wait_until(
            lambda: (
                count_status(engine, daemon_index, "expanded") == len(documents) + 1
            ),
            timeout=300,
            what="the daemon to expand a document added after the outage",
        )
        daemon.send_signal(signal.SIGTERM)
        _, daemon_errors = daemon.communicate(timeout=120)
    finally:
        local.start(node, heap="384m")
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.kill()
                process.communicate()

    # Every process was stopped before it had written everything.
    assert all(count < len(documents) for count in written), written
    assert daemon.returncode == 0, daemon_errors[-2000:]
    assert "cluster unavailable" in daemon_errors
    assert "cluster responds again" in daemon_errors
    assert resumed.returncode == 0, resumed_errors[-2000:]
    assert "cluster responds again" in resumed_errors
    assert budgeted.returncode == 2, budget_errors[-2000:]
    assert "past the outage budget of 3 s" in budget_errors
    assert budget_errors.strip().splitlines()[-1].startswith("d2q: error: index")

    again = run_d2q_with(
        ["backfill", "--no-progress", *cli_arguments(url, budget_index, tiny_model)]
    )
    assert again.returncode == 0, again.stderr[-2000:]
    for index in (daemon_index, resumed_index, budget_index):
        for doc_id, source in all_sources(engine, index).items():
            assert check_expansion(source) == [], (index, doc_id)
