"""Several workers on one index: slices, and lists and patterns of indices."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import read_sample
from tests.support import cli_arguments, create_index, fetch, run_d2q
from worker.cli import main

SLICES = ("0/3", "1/3", "2/3")


def _versions(engine, index: str) -> dict[str, int]:
    response = engine.client.search(
        index=index,
        body={
            "size": 1000,
            "version": True,
            "_source": False,
            "query": {"match_all": {}},
        },
    )
    return {hit["_id"]: hit["_version"] for hit in response["hits"]["hits"]}


def _summary(output: str) -> dict[str, int]:
    """Read ``expanded=3 skipped=0 ...`` from the last line of a backfill."""
    fields = output.strip().splitlines()[-1].split()
    return {
        key: int(value)
        for key, value in (field.split("=") for field in fields)
        if value.isdigit()
    }


def test_three_slices_expand_each_document_once(
    engine, cluster_url, tiny_model, index_name
):
    documents = read_sample(40)
    create_index(engine, index_name, documents)
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "worker",
                "backfill",
                *cli_arguments(cluster_url, index_name, tiny_model),
                "--no-progress",
                "--page-size",
                "8",
                "--slice",
                slice_text,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for slice_text in SLICES
    ]
    results = [worker.communicate(timeout=600) for worker in workers]

    for worker, (_, errors) in zip(workers, results, strict=True):
        assert worker.returncode == 0, errors
    expanded = [_summary(output)["expanded"] for output, _ in results]
    # Every slice contains some of the 40 documents, and no document twice.
    assert all(count > 0 for count in expanded), expanded
    assert sum(expanded) == len(documents)
    # Each document was indexed once (version 1) and updated exactly once.
    versions = _versions(engine, index_name)
    assert len(versions) == len(documents)
    assert set(versions.values()) == {2}, versions
    for document in documents:
        assert (
            fetch(engine, index_name, document["_id"])["doc2query"]["status"]
            == "expanded"
        )


def test_one_slice_expands_only_its_share(
    engine, cluster_url, tiny_model, index_name, capsys
):
    documents = read_sample(30)
    create_index(engine, index_name, documents)
    arguments = cli_arguments(cluster_url, index_name, tiny_model)

    assert main(["backfill", *arguments, "--no-progress", "--slice", "1/3"]) == 0
    expanded = _summary(capsys.readouterr().out)["expanded"]
    assert main(["status", *arguments]) == 0
    counts = json.loads(capsys.readouterr().out)

    assert 0 < expanded < len(documents)
    assert counts["expanded"] == expanded
    assert counts["pending"] == len(documents) - expanded
    # A second run of the same slice finds nothing left in its share.
    assert main(["backfill", *arguments, "--no-progress", "--slice", "1/3"]) == 0
    assert _summary(capsys.readouterr().out)["expanded"] == 0


def test_index_list_and_pattern_expanded(
    engine, cluster_url, tiny_model, index_name, capsys
):
    first, second = f"{index_name}-a", f"{index_name}-b"
    create_index(engine, first, read_sample(4))
    create_index(engine, second, read_sample(8)[4:])
    try:
        assert (
            main(
                [
                    "backfill",
                    *cli_arguments(cluster_url, f"{first},{second}", tiny_model),
                    "--no-progress",
                ]
            )
            == 0
        )
        assert _summary(capsys.readouterr().out)["expanded"] == 8

        assert (
            main(["status", *cli_arguments(cluster_url, f"{index_name}-*", tiny_model)])
            == 0
        )
        counts = json.loads(capsys.readouterr().out)
    finally:
        engine.client.indices.delete(index=f"{first},{second}", ignore_unavailable=True)

    assert counts["total"] == 8
    assert counts["expanded"] == 8


def test_invalid_slice_rejected_before_work(cluster_url, index_name):
    result = run_d2q(
        [
            "backfill",
            "--url",
            cluster_url,
            "--index",
            index_name,
            "--slice",
            "3/3",
            "--page-size",
            "0",
        ]
    )

    assert result.returncode == 2
    assert "invalid settings (2)" in result.stderr
    assert "slice: '3/3'" in result.stderr
    assert "page_size: 0" in result.stderr
