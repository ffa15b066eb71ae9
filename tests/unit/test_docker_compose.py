"""docker-compose.yml: one profile per engine, at the versions the tests run."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from worker.cluster import local

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


@pytest.fixture(scope="module")
def services() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"]


@pytest.mark.parametrize("engine", sorted(local.DISTRIBUTIONS))
def test_compose_has_engine_profile(services, engine):
    assert services[engine]["profiles"] == [engine]


@pytest.mark.parametrize("engine", sorted(local.DISTRIBUTIONS))
def test_compose_image_matches_tested_version(services, engine):
    image = services[engine]["image"]

    assert image.endswith(":" + local.DISTRIBUTIONS[engine].version)


def test_compose_ports_bind_loopback(services):
    ports = [port for service in services.values() for port in service["ports"]]

    assert ports
    assert all(port.startswith("127.0.0.1:") for port in ports)
