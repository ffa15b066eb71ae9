"""The local Elasticsearch distribution and where a root caller runs it."""

from __future__ import annotations

import os

import pytest

from worker.cluster import local, server_user
from worker.errors import LocalClusterError


def test_elasticsearch_distribution_is_registered():
    node = local.get_node("elasticsearch", 9251)

    assert node.distribution.version == local.ELASTICSEARCH_VERSION
    assert node.distribution.min_java >= 21
    assert node.distribution.extra_settings["xpack.security.enabled"] == "false"


def test_root_runs_elasticsearch_as_server_user(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    node = local.get_node("elasticsearch", 9251, cache_dir=tmp_path)

    assert local.runs_as_other_user(node.distribution)
    assert node.home.is_relative_to(local.SERVER_FILES_DIR)
    assert node.node_dir.is_relative_to(local.SERVER_FILES_DIR)


def test_root_runs_opensearch_itself(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    node = local.get_node("opensearch", 9250, cache_dir=tmp_path)

    assert not local.runs_as_other_user(node.distribution)
    assert node.home.is_relative_to(tmp_path)


def test_other_users_keep_their_cache(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    node = local.get_node("elasticsearch", 9251, cache_dir=tmp_path)

    assert not local.runs_as_other_user(node.distribution)
    assert node.node_dir.is_relative_to(tmp_path)


def test_popen_options_switch_user():
    assert server_user.popen_options(None) == {}
    assert server_user.popen_options((998, 997)) == {
        "user": 998,
        "group": 997,
        "extra_groups": [],
    }


def test_open_tree_lets_others_read(tmp_path):
    folder = tmp_path / "home" / "lib"
    folder.mkdir(parents=True)
    jar = folder / "server.jar"
    jar.write_text("x")
    jar.chmod(0o600)
    folder.chmod(0o700)

    server_user.open_tree_to_others(tmp_path / "home")

    assert jar.stat().st_mode & 0o004
    assert folder.stat().st_mode & 0o005 == 0o005


def test_other_elasticsearch_version_changes_archive():
    node = local.get_node("elasticsearch", 9271, version="8.19.9")

    assert node.distribution.version == "8.19.9"
    assert node.distribution.archive.coordinates == (
        "org.elasticsearch.distribution.integ-test-zip:elasticsearch:8.19.9:zip"
    )
    assert node.home.name == "elasticsearch-8.19.9"


def test_other_opensearch_version_is_rejected():
    with pytest.raises(LocalClusterError, match="runs only version 2.19.6"):
        local.get_node("opensearch", 9272, version="2.18.0")
