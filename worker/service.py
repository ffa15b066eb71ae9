"""The worker as a service: health state, the HTTP endpoint, and the pipeline hooks.

One small HTTP server serves ``/metrics`` (Prometheus text format),
``/healthz`` (liveness: the process responds and its loop is not stuck) and
``/readyz`` (readiness: the model is loaded and the last pass reached the
cluster). The hooks wrap a pipeline's ``run_pass``, ``expand_page`` and
``write_page`` on the instance, so the pipeline itself does not depend on metrics.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from worker.errors import SettingsError
from worker.logs import batch_context
from worker.metrics import WorkerMetrics

logger = logging.getLogger(__name__)

# A loop that has not started a page or a pass for this long counts as stuck.
# A page of 64 documents takes minutes at most on a CPU, and the daemon starts
# a pass every poll interval.
DEFAULT_STALL_SECONDS = 900.0


class HealthState:
    """The state behind the probes: readiness, its reason, and the loop's last beat."""

    def __init__(
        self,
        stall_seconds: float = DEFAULT_STALL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stall_seconds = stall_seconds
        self.clock = clock
        self.ready = False
        self.reason = "starting"
        self.last_beat = clock()
        self._lock = threading.Lock()

    def beat(self) -> None:
        """Record that the loop made progress."""
        with self._lock:
            self.last_beat = self.clock()

    def set_ready(self, ready: bool, reason: str) -> None:
        with self._lock:
            if ready != self.ready:
                logger.info("readiness %s: %s", "up" if ready else "down", reason)
            self.ready = ready
            self.reason = reason

    def liveness(self) -> tuple[bool, str]:
        """Return whether the loop is alive, and why not."""
        with self._lock:
            idle = self.clock() - self.last_beat
        if idle > self.stall_seconds:
            return False, f"no progress for {idle:.0f} s"
        return True, "ok"

    def readiness(self) -> tuple[bool, str]:
        with self._lock:
            return self.ready, self.reason


def _handler(
    metrics: WorkerMetrics, health: HealthState
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - name fixed by http.server
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                self._send_probe(*health.liveness())
            elif path == "/readyz":
                self._send_probe(*health.readiness())
            else:
                self._send(404, b"not found: use /metrics, /healthz or /readyz\n")

        def _send_probe(self, ok: bool, reason: str) -> None:
            self._send(200 if ok else 503, f"{reason}\n".encode())

        def _send(self, status: int, body: bytes, kind: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("http %s", format % args)

    return Handler


class ServiceServer:
    """The HTTP server of ``/metrics``, ``/healthz`` and ``/readyz``, in a thread."""

    def __init__(
        self, host: str, port: int, metrics: WorkerMetrics, health: HealthState
    ) -> None:
        try:
            self.server = ThreadingHTTPServer((host, port), _handler(metrics, health))
        except OSError as error:
            raise SettingsError(
                [
                    f"metrics_port: cannot listen on {host}:{port} ({error}); pick a free port"
                ]
            ) from error
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="d2q-metrics", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else host
        return f"http://{name}:{port}"

    def start(self) -> ServiceServer:
        self.thread.start()
        logger.info("serving /metrics, /healthz and /readyz at %s", self.url)
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def observe_pipeline(
    pipeline: Any, metrics: WorkerMetrics, health: HealthState
) -> None:
    """Record metrics, health and batch log ids around the pipeline's passes and pages.

    The pending count is taken at the start of each pass. A pass that raises
    marks the worker not ready until a later pass succeeds. The pipeline
    expands a page (``expand_page``) and writes it (``write_page``) on
    separate threads, so each stage sets the batch id of its own log lines.
    """
    run_pass = pipeline.run_pass
    expand_page = pipeline.expand_page
    write_page = pipeline.write_page
    passes = {"number": 0}

    def batch_id(batch_number: int) -> str:
        return f"{passes['number']}.{batch_number}"

    @functools.wraps(run_pass)
    def observed_pass(*args: Any, **kwargs: Any) -> Any:
        passes["number"] += 1
        health.beat()
        try:
            metrics.pending.set(pipeline.pending_count())
            result = run_pass(*args, **kwargs)
        except Exception as error:
            metrics.failures.labels(type(error).__name__).inc()
            health.set_ready(False, f"last pass failed: {error}")
            raise
        health.set_ready(True, "ok")
        return result

    @functools.wraps(expand_page)
    def observed_expand(page: Any) -> Any:
        health.beat()
        with batch_context(batch_id(page[0])):
            return expand_page(page)

    @functools.wraps(write_page)
    def observed_write(expanded: Any) -> Any:
        health.beat()
        with batch_context(batch_id(expanded.batch_number)):
            summary = write_page(expanded)
        # The page's time from the start of its expansion to its written outcome.
        metrics.record_page(summary, time.monotonic() - expanded.started)
        return summary

    pipeline.run_pass = observed_pass
    pipeline.expand_page = observed_expand
    pipeline.write_page = observed_write
