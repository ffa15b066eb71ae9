from __future__ import annotations

import socket

import pytest

from worker.cluster import local
from worker.errors import LocalClusterError


def test_missing_mvn_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    artifact = local.Artifact("org.example:missing:1.0:zip")

    with pytest.raises(LocalClusterError, match="mvn not found on PATH"):
        local.fetch_artifact(artifact, tmp_path)


def test_cached_artifact_needs_no_mvn(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    artifact = local.Artifact("org.example:cached:1.0:zip")
    cached = tmp_path / "m2" / artifact.repository_path
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"zip")

    assert local.fetch_artifact(artifact, tmp_path) == cached


def test_missing_java_is_reported(monkeypatch):
    monkeypatch.delenv("JAVA_HOME", raising=False)

    with pytest.raises(LocalClusterError, match="no Java 99 or newer found"):
        local.find_java(99)


def test_java_version_read_from_release_file(tmp_path):
    (tmp_path / "release").write_text('IMPLEMENTOR="x"\nJAVA_VERSION="17.0.15"\n')

    assert local._java_major(tmp_path) == 17


def test_taken_port_is_reported(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        node = local.get_node("opensearch", port, cache_dir=tmp_path)

        with pytest.raises(
            LocalClusterError, match=f"port {port} on 127.0.0.1 is taken"
        ):
            local.start(node)


def test_unknown_engine_is_rejected():
    with pytest.raises(LocalClusterError, match="unknown engine 'solr'"):
        local.get_node("solr", 9200)


def test_artifact_paths_follow_maven_layout():
    artifact = local.Artifact("org.opensearch.plugin:analysis-common:2.19.6")

    assert artifact.file_name == "analysis-common-2.19.6.jar"
    assert artifact.repository_path == (
        "org/opensearch/plugin/analysis-common/2.19.6/analysis-common-2.19.6.jar"
    )
