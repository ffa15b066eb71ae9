"""Metrics, probes and the HTTP endpoint that serves them."""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass, field

import pytest
from prometheus_client.parser import text_string_to_metric_families

from worker.metrics import TimedGenerator, WorkerMetrics
from worker.service import HealthState, ServiceServer, observe_pipeline

SERVICE_PORT = 9310


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Outcome:
    status: int


@dataclass
class Summary:
    expanded: int = 0
    skipped: int = 0
    failed: int = 0
    conflicts: int = 0
    failures: list[Outcome] = field(default_factory=list)


@dataclass
class Expanded:
    batch_number: int
    started: float


class StubPipeline:
    """Stands in for the pipeline's stages; no cluster behind it."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def pending_count(self) -> int:
        return 12

    def expand_page(self, page):
        return Expanded(page[0], 0.0)

    def write_page(self, expanded):
        return Summary(expanded=3, skipped=1, failed=2, failures=[Outcome(400)])

    def run_pass(self):
        if self.fail:
            raise ConnectionError("cluster down")
        return self.write_page(self.expand_page((1, ["a", "b"])))


def sample(metrics: WorkerMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels or None)


def test_page_outcomes_counted():
    metrics, health = WorkerMetrics(), HealthState()
    pipeline = StubPipeline()
    observe_pipeline(pipeline, metrics, health)

    pipeline.run_pass()

    assert sample(metrics, "d2q_documents_total", outcome="expanded") == 3
    assert sample(metrics, "d2q_documents_total", outcome="skipped") == 1
    assert sample(metrics, "d2q_documents_total", outcome="failed") == 2
    assert sample(metrics, "d2q_failures_total", reason="http_400") == 1
    assert sample(metrics, "d2q_failures_total", reason="generation") == 1
    assert sample(metrics, "d2q_pending_documents") == 12
    assert sample(metrics, "d2q_batch_seconds_count") == 1
    assert health.readiness() == (True, "ok")


def test_failed_pass_marks_not_ready():
    metrics, health = WorkerMetrics(), HealthState()
    pipeline = StubPipeline(fail=True)
    observe_pipeline(pipeline, metrics, health)

    with pytest.raises(ConnectionError):
        pipeline.run_pass()

    ready, reason = health.readiness()
    assert not ready
    assert "cluster down" in reason
    assert sample(metrics, "d2q_failures_total", reason="ConnectionError") == 1


def test_stalled_loop_fails_liveness():
    clock = FakeClock()
    health = HealthState(stall_seconds=60, clock=clock)
    assert health.liveness()[0]

    clock.now += 61

    alive, reason = health.liveness()
    assert not alive
    assert reason == "no progress for 61 s"


def test_generator_wrapper_counts_queries():
    class Generator:
        config = "settings"

        def generate(self, paragraphs):
            return [["q1", "q2"] for _ in paragraphs]

    metrics = WorkerMetrics()
    generator = TimedGenerator(Generator(), metrics)

    generator.generate(["uno", "dos", "tres"])

    assert sample(metrics, "d2q_queries_total") == 6
    assert sample(metrics, "d2q_model_seconds_count") == 1
    assert generator.config == "settings"


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_server_serves_metrics_and_probes():
    metrics, health = WorkerMetrics(), HealthState()
    metrics.documents.labels("expanded").inc(5)
    server = ServiceServer("127.0.0.1", SERVICE_PORT, metrics, health).start()
    try:
        not_ready = fetch(f"{server.url}/readyz")
        health.set_ready(True, "ok")
        ready = fetch(f"{server.url}/readyz")
        alive = fetch(f"{server.url}/healthz")
        status, text = fetch(f"{server.url}/metrics")
        missing = fetch(f"{server.url}/other")
    finally:
        server.stop()

    assert not_ready == (503, "starting\n")
    assert ready == (200, "ok\n")
    assert alive == (200, "ok\n")
    assert status == 200
    families = {family.name: family for family in text_string_to_metric_families(text)}
    (expanded,) = [
        s for s in families["d2q_documents"].samples if s.name.endswith("_total")
    ]
    assert expanded.labels == {"outcome": "expanded"}
    assert expanded.value == 5
    assert missing[0] == 404
