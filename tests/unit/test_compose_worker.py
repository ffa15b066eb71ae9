"""docker-compose.yml: the worker daemon, Dashboards, and the Compose loader's verdict."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from worker.settings import load_settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
CHECKER = REPO / "tools" / "compose-check"


@pytest.fixture(scope="module")
def services() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"]


def _with_defaults(value: str) -> str:
    """Replace ``${NAME:-default}`` with its default, as Compose does when NAME is unset."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", value)


def test_worker_reserves_one_gpu(services):
    (device,) = services["worker"]["deploy"]["resources"]["reservations"]["devices"]

    assert device["driver"] == "nvidia"
    assert device["count"] == 1
    assert device["capabilities"] == ["gpu"]


def test_worker_configured_by_environment_only(services):
    worker = services["worker"]
    environment = {
        key: _with_defaults(str(value)) for key, value in worker["environment"].items()
    }

    settings = load_settings({}, environment)

    assert worker["command"] == ["d2q", "run"]
    assert settings.index == "documents"
    assert settings.device == "cuda"
    assert settings.metrics_host == "0.0.0.0"
    assert settings.metrics_port == 9310
    assert settings.log_format == "json"
    assert settings.slice is None


def test_worker_healthcheck_uses_liveness_probe(services):
    worker = services["worker"]
    port = load_settings(
        {}, {"D2Q_METRICS_PORT": worker["environment"]["D2Q_METRICS_PORT"]}
    ).metrics_port

    assert f"127.0.0.1:{port}/healthz" in " ".join(worker["healthcheck"]["test"])
    assert f"127.0.0.1:{port}:{port}" in worker["ports"]


def test_dashboards_wait_for_opensearch(services):
    dashboards = services["dashboards"]

    assert dashboards["depends_on"]["opensearch"]["condition"] == "service_healthy"
    assert dashboards["profiles"] == services["opensearch"]["profiles"]
    assert dashboards["image"].endswith(
        services["opensearch"]["image"].rsplit(":", 1)[1]
    )


@pytest.fixture(scope="module")
def compose_check(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The compose-check command, built once from tools/compose-check with Go."""
    go = shutil.which("go")
    if go is None:
        pytest.skip("go not found; the Compose loader check needs Go")
    target = tmp_path_factory.mktemp("compose-check") / "compose-check"
    subprocess.run(
        [go, "build", "-o", str(target), "."], cwd=CHECKER, check=True, timeout=600
    )
    return target


def test_compose_loader_accepts_file(compose_check):
    profiles = [
        "-profile",
        "opensearch",
        "-profile",
        "elasticsearch",
        "-profile",
        "worker",
    ]

    result = subprocess.run(
        [str(compose_check), *profiles, str(COMPOSE_FILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert set(resolved["services"]) == {
        "opensearch",
        "elasticsearch",
        "dashboards",
        "worker",
    }


def test_compose_loader_rejects_unknown_key(compose_check, tmp_path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(
        "services:\n  worker:\n    image: busybox\n    healthcheck:\n      tset: [CMD]\n"
    )

    result = subprocess.run(
        [str(compose_check), str(broken)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1
    assert "'tset' not allowed" in result.stderr
