"""The ``d2q cluster`` command against the running test node of each engine."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from tests.conftest import TEST_PORTS, expected_version
from tests.support import run_d2q


def test_second_start_downloads_nothing(
    cluster_url, engine_name, tmp_path, monkeypatch
):
    # Without mvn on PATH, a start that needed to download would fail.
    python_dir = Path(sys.executable).parent
    java = shutil.which("java")
    assert java is not None
    monkeypatch.setenv(
        "PATH", os.pathsep.join([str(python_dir), str(Path(java).parent)])
    )
    port = str(TEST_PORTS[engine_name])

    result = run_d2q(["cluster", "start", "--engine", engine_name, "--port", port])

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"http://127.0.0.1:{port}"


def test_status_reports_running_node(cluster_url, engine_name):
    port = str(TEST_PORTS[engine_name])

    result = run_d2q(["cluster", "status", "--engine", engine_name, "--port", port])

    status = json.loads(result.stdout)
    assert result.returncode == 0
    assert status["answering"] is True
    if expected_version(engine_name) is not None:
        assert status["version"] == expected_version(engine_name)
