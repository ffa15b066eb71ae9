"""import-queries and export-pairs against a real server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import read_sample
from tests.support import cli_arguments, create_index, fetch
from worker.cli import main
from worker.cluster.writer import BulkWriter
from worker.expansion.document import source_hash
from worker.expansion.paragraphs import split_paragraphs
from worker.expansion.text import extract_text
from worker.files import (
    UNKNOWN_PARAGRAPH,
    ImportConfig,
    QueryImporter,
    load_token_counter,
)

TWO_PARAGRAPHS = {
    "_id": "two",
    "title": "Dos",
    "text": read_sample(2)[0]["text"] + "\n\n" + read_sample(2)[1]["text"],
}


def write_lines(path: Path, rows: list[object]) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            text = row if isinstance(row, str) else json.dumps(row, ensure_ascii=False)
            handle.write(text + "\n")
    return path


@pytest.fixture()
def small_index(engine, index_name):
    documents = [*read_sample(3), TWO_PARAGRAPHS]
    create_index(engine, index_name, documents)
    return index_name, documents


def import_arguments(url: str, index: str, model: Path, path: Path) -> list[str]:
    return [
        "import-queries",
        "--url",
        url,
        "--index",
        index,
        "--model",
        str(model),
        str(path),
    ]


def test_import_writes_expansion(
    engine, cluster_url, tiny_model, small_index, tmp_path, capsys
):
    index, documents = small_index
    first = documents[0]["_id"]
    path = write_lines(
        tmp_path / "predictions.jsonl",
        [
            {
                "id": first,
                "queries": [
                    "¿Qué equipo ganó el Super Bowl 50?",
                    "  ",
                    "super bowl 3.5",
                ],
            }
        ],
    )

    assert main(import_arguments(cluster_url, index, tiny_model, path)) == 0

    expansion = fetch(engine, index, first)["doc2query"]
    assert expansion["status"] == "expanded"
    assert expansion["model"] == "imported:predictions.jsonl"
    assert expansion["queries"] == [
        "¿Qué equipo ganó el Super Bowl 50?",
        "super bowl 3.5",
    ]
    assert expansion["query_paragraph"] == [0, 0]
    assert expansion["paragraphs"] == 1
    assert expansion["attempts"] == 1
    assert expansion["source_hash"] == source_hash(
        extract_text(documents[0], ["title", "text"]).text
    )
    assert expansion["fingerprint"]
    assert "imported=1 skipped=0 not_found=0 invalid=0" in capsys.readouterr().out


def test_import_weights_terms_like_pipeline(
    engine, cluster_url, tiny_model, small_index, tmp_path
):
    index, documents = small_index
    first = documents[0]["_id"]
    path = write_lines(
        tmp_path / "q.jsonl",
        [
            {
                "id": first,
                "queries": ["estadio de fútbol", "fútbol americano", "versión 3.5"],
            }
        ],
    )

    assert main(import_arguments(cluster_url, index, tiny_model, path)) == 0

    terms = fetch(engine, index, first)["doc2query"]["terms"]
    assert not any("." in key for key in terms)
    assert max(terms.values()) == 2.0
    assert "3_5" in terms


def test_import_matches_generated_format(
    engine, cluster_url, tiny_model, small_index, tmp_path
):
    index, documents = small_index
    generated_id, imported_id = documents[0]["_id"], documents[1]["_id"]
    arguments = cli_arguments(cluster_url, index, tiny_model, "--no-progress")
    assert main(["backfill", *arguments]) == 0
    path = write_lines(
        tmp_path / "q.jsonl", [{"id": imported_id, "queries": ["una pregunta"]}]
    )

    assert main(import_arguments(cluster_url, index, tiny_model, path)) == 0

    generated = fetch(engine, index, generated_id)["doc2query"]
    imported = fetch(engine, index, imported_id)["doc2query"]
    assert set(imported) == set(generated)
    assert imported["fingerprint"] != generated["fingerprint"]


def test_import_counts_bad_lines(
    engine, cluster_url, tiny_model, small_index, tmp_path, capsys
):
    index, documents = small_index
    path = write_lines(
        tmp_path / "bad.jsonl",
        [
            "not json",
            {"queries": ["sin id"]},
            {"id": documents[0]["_id"], "queries": "no es una lista"},
            {"id": documents[0]["_id"], "queries": ["a"], "paragraphs": [0, 1]},
            {"id": "missing-document", "queries": ["¿dónde está?"]},
            {"id": documents[1]["_id"], "queries": ["<extra_id_0>", "   "]},
            {"id": documents[2]["_id"], "queries": ["una pregunta válida"]},
        ],
    )

    assert main(import_arguments(cluster_url, index, tiny_model, path)) == 0

    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary == (
        "imported=1 skipped=1 not_found=1 invalid=4 conflicts=0 failed=0"
    )
    skipped = fetch(engine, index, documents[1]["_id"])["doc2query"]
    assert skipped["status"] == "skipped"
    assert skipped["queries"] == []


def test_import_reports_missing_file(
    cluster_url, tiny_model, small_index, tmp_path, capsys
):
    index, _ = small_index

    status = main(
        import_arguments(cluster_url, index, tiny_model, tmp_path / "none.jsonl")
    )

    assert status == 2
    assert "none.jsonl: file not found" in capsys.readouterr().err


def test_import_paragraph_numbers(
    engine, cluster_url, tiny_model, small_index, tmp_path
):
    index, _ = small_index
    path = write_lines(
        tmp_path / "q.jsonl",
        [
            {
                "id": "two",
                "queries": ["primera", "segunda", "lejana"],
                "paragraphs": [0, 1, 7],
            }
        ],
    )

    assert main(import_arguments(cluster_url, index, tiny_model, path)) == 0

    expansion = fetch(engine, index, "two")["doc2query"]
    assert expansion["paragraphs"] == 2
    assert expansion["query_paragraph"] == [0, 1, UNKNOWN_PARAGRAPH]


def test_import_unknown_paragraph_without_numbers(
    engine, cluster_url, tiny_model, small_index, tmp_path
):
    index, _ = small_index
    path = write_lines(
        tmp_path / "q.jsonl", [{"id": "two", "queries": ["una", "otra"]}]
    )

    assert main(import_arguments(cluster_url, index, tiny_model, path)) == 0

    expansion = fetch(engine, index, "two")["doc2query"]
    assert expansion["query_paragraph"] == [UNKNOWN_PARAGRAPH, UNKNOWN_PARAGRAPH]


class _ChangingImporter(QueryImporter):
    """Changes each document right after the first read, so its write conflicts."""

    changed = False

    def _read_documents(self, ids):
        documents = super()._read_documents(ids)
        if not self.changed:
            self.changed = True
            for document in documents.values():
                source = dict(
                    document.source, text=document.source["text"] + " Cambio."
                )
                self.engine.index_document(
                    document.index, document.id, source, refresh=True
                )
        return documents


def test_import_rereads_changed_document(
    engine, cluster_url, tiny_model, small_index, tmp_path
):
    index, documents = small_index
    first = documents[0]["_id"]
    path = write_lines(
        tmp_path / "q.jsonl", [{"id": first, "queries": ["una pregunta"]}]
    )
    config = ImportConfig(
        index, ("title", "text"), "doc2query", "imported:q.jsonl", "fp"
    )
    writer = BulkWriter(engine, "doc2query", 5_000_000)
    importer = _ChangingImporter(
        engine, writer, config, load_token_counter(str(tiny_model))
    )

    summary = importer.run(path)

    assert importer.changed
    assert summary.imported == 1
    assert summary.conflicts == 0
    stored = fetch(engine, index, first)
    assert stored["text"].endswith(" Cambio.")
    assert stored["doc2query"]["source_hash"] == source_hash(
        extract_text(stored, ["title", "text"]).text
    )


def read_pairs(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def test_export_pairs_generated_paragraphs(
    engine, cluster_url, tiny_model, small_index, tmp_path, capsys
):
    index, _ = small_index
    arguments = cli_arguments(cluster_url, index, tiny_model)
    assert main(["backfill", *arguments, "--no-progress"]) == 0
    out = tmp_path / "pairs.jsonl"

    assert main(["export-pairs", *arguments, str(out)]) == 0

    pairs = read_pairs(out)
    expansion = fetch(engine, index, "two")["doc2query"]
    count = load_token_counter(str(tiny_model))
    paragraphs = split_paragraphs(
        extract_text(TWO_PARAGRAPHS, ["title", "text"]).text, count, 320
    )
    two = [pair for pair in pairs if pair["id"] == "two"]
    assert [pair["query"] for pair in two] == expansion["queries"]
    for pair, number in zip(two, expansion["query_paragraph"], strict=True):
        assert pair["paragraph_index"] == number
        assert pair["paragraph"] == paragraphs[number]
    assert {pair["paragraph_index"] for pair in two} == {0, 1}
    assert f"pairs={len(pairs)} documents=4" in capsys.readouterr().out


def test_export_pairs_whole_text_for_unknown(
    engine, cluster_url, tiny_model, small_index, tmp_path
):
    index, _ = small_index
    path = write_lines(tmp_path / "q.jsonl", [{"id": "two", "queries": ["una"]}])
    assert main(import_arguments(cluster_url, index, tiny_model, path)) == 0
    out = tmp_path / "pairs.jsonl"

    status = main(
        [
            "export-pairs",
            "--url",
            cluster_url,
            "--index",
            index,
            "--model",
            str(tiny_model),
            str(out),
        ]
    )

    assert status == 0
    (pair,) = read_pairs(out)
    assert pair["paragraph"] == extract_text(TWO_PARAGRAPHS, ["title", "text"]).text
    assert pair["paragraph_index"] == UNKNOWN_PARAGRAPH


def test_export_pairs_leaves_out_changed(
    engine, cluster_url, tiny_model, small_index, tmp_path, capsys
):
    index, documents = small_index
    first = documents[0]["_id"]
    path = write_lines(tmp_path / "q.jsonl", [{"id": first, "queries": ["una"]}])
    assert main(import_arguments(cluster_url, index, tiny_model, path)) == 0
    stored = fetch(engine, index, first)
    engine.index_document(index, first, dict(stored, text="Otro texto."), refresh=True)
    out = tmp_path / "pairs.jsonl"

    status = main(
        [
            "export-pairs",
            "--url",
            cluster_url,
            "--index",
            index,
            "--model",
            str(tiny_model),
            str(out),
        ]
    )

    assert status == 0
    assert read_pairs(out) == []
    assert "pairs=0 documents=0 whole_text=0 changed=1" in capsys.readouterr().out
