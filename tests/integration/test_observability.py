"""Metrics, probes and JSON logs of a worker running against the real server."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import read_sample
from tests.support import cli_arguments, create_index
from worker.cli import main

METRICS_PORT = 9311


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _wait_for_expanded(url: str, count: int, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    samples: dict = {}
    while time.monotonic() < deadline:
        try:
            samples = _samples(_get(url)[1])
        except OSError:
            samples = {}
        expanded = samples.get(("d2q_documents_total", (("outcome", "expanded"),)))
        # The pending gauge is counted when a pass starts, so it reads 0 only
        # once the pass after the expanding one has started.
        if expanded == count and samples.get(("d2q_pending_documents", ())) == 0:
            return samples
        time.sleep(0.5)
    pytest.fail(f"the metrics never showed {count} expanded documents: {samples}")


def test_metrics_endpoint_serves_run_counters(
    engine, cluster_url, tiny_model, index_name
):
    documents = read_sample(9)
    create_index(engine, index_name, documents)
    arguments = cli_arguments(
        cluster_url,
        index_name,
        tiny_model,
        "--poll-seconds",
        "1",
        "--page-size",
        "4",
        "--slice",
        "0/1",
        "--metrics-port",
        str(METRICS_PORT),
        "--log-format",
        "json",
    )
    daemon = subprocess.Popen(
        [sys.executable, "-m", "worker", "run", *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{METRICS_PORT}"
    try:
        samples = _wait_for_expanded(f"{base}/metrics", len(documents))
        healthz = _get(f"{base}/healthz")
        readyz = _get(f"{base}/readyz")
    finally:
        daemon.terminate()
        _, errors = daemon.communicate(timeout=120)

    assert daemon.returncode == 0, errors
    assert healthz == (200, "ok\n")
    assert readyz[0] == 200
    assert samples[("d2q_batches_total", ())] == 3
    assert samples[("d2q_batch_seconds_count", ())] == 3
    assert samples[("d2q_queries_total", ())] > 0
    assert samples[("d2q_model_seconds_count", ())] > 0
    assert samples[("d2q_cluster_seconds_count", (("operation", "bulk"),))] > 0
    assert samples[("d2q_cluster_seconds_count", (("operation", "search_pit"),))] > 0
    assert samples[("d2q_pending_documents", ())] == 0
    info = [key for key in samples if key[0] == "d2q_worker_info"]
    assert dict(info[0][1])["index"] == index_name
    assert dict(info[0][1])["slice"] == "0/1"

    lines = [json.loads(line) for line in errors.splitlines() if line.startswith("{")]
    assert lines, errors
    assert len(lines) == len(errors.splitlines())
    assert all(line["index"] == index_name for line in lines)
    assert all(line["slice"] == "0/1" for line in lines)
    page_lines = [
        line
        for line in lines
        if line["message"].startswith(f"index={index_name} batch=")
    ]
    assert page_lines
    assert all(line["batch"] for line in page_lines)


def test_metrics_port_taken_reports_error(cluster_url, tiny_model, index_name, engine):
    import socket

    create_index(engine, index_name, read_sample(1))
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", METRICS_PORT + 1))
        holder.listen()
        code = main(
            [
                "backfill",
                *cli_arguments(cluster_url, index_name, tiny_model),
                "--no-progress",
                "--metrics-port",
                str(METRICS_PORT + 1),
            ]
        )

    assert code == 2
