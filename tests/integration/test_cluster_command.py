"""The ``d2q cluster`` command against the running test node."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from tests.conftest import OPENSEARCH_TEST_PORT
from tests.support import run_d2q


def test_second_start_downloads_nothing(opensearch_url, tmp_path, monkeypatch):
    # Without mvn on PATH, a start that needed to download would fail.
    python_dir = Path(sys.executable).parent
    java = shutil.which("java")
    assert java is not None
    monkeypatch.setenv("PATH", os.pathsep.join([str(python_dir), str(Path(java).parent)]))

    result = run_d2q(["cluster", "start", "--port", str(OPENSEARCH_TEST_PORT)])

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"http://127.0.0.1:{OPENSEARCH_TEST_PORT}"


def test_status_reports_running_node(opensearch_url):
    result = run_d2q(["cluster", "status", "--port", str(OPENSEARCH_TEST_PORT)])

    status = json.loads(result.stdout)
    assert result.returncode == 0
    assert status["answering"] is True
    assert status["version"].startswith("2.19")
