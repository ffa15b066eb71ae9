"""``d2q expand-file`` on BEIR and Pyserini JSONL with the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import read_sample
from tests.support import FAST_GENERATION
from worker.cli import main
from worker.offline import detect_format, read_done_ids


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return path


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _expand(tiny_model: Path, corpus: Path, output: Path, *extra: str) -> int:
    arguments = ["expand-file", str(corpus), str(output), "--model", str(tiny_model)]
    return main([*arguments, *FAST_GENERATION, "--log-level", "WARNING", *extra])


def test_beir_corpus_gets_queries(tiny_model, tmp_path):
    rows = read_sample(4)
    corpus = _write_jsonl(tmp_path / "corpus.jsonl", rows)
    output = tmp_path / "out.jsonl"

    assert _expand(tiny_model, corpus, output) == 0

    written = _read_jsonl(output)
    assert [row["_id"] for row in written] == [row["_id"] for row in rows]
    for source, row in zip(rows, written, strict=True):
        assert row["text"] == source["text"]
        assert row["title"] == source["title"]
        assert row["queries"]
        assert row["contents"].endswith("\n".join(row["queries"]))
        assert source["text"] in row["contents"]


def test_pyserini_corpus_appends_to_contents(tiny_model, tmp_path):
    rows = [{"id": row["_id"], "contents": row["text"]} for row in read_sample(3)]
    corpus = _write_jsonl(tmp_path / "corpus.jsonl", rows)
    output = tmp_path / "out.jsonl"

    assert _expand(tiny_model, corpus, output, "--backend", "ctranslate2") == 0

    for source, row in zip(rows, _read_jsonl(output), strict=True):
        assert row["id"] == source["id"]
        assert row["contents"].startswith(source["contents"] + "\n")
        assert row["contents"].endswith("\n".join(row["queries"]))


def test_expand_file_resumes(tiny_model, tmp_path):
    rows = read_sample(6)
    corpus = _write_jsonl(tmp_path / "corpus.jsonl", rows)
    output = tmp_path / "out.jsonl"
    assert _expand(tiny_model, corpus, output, "--limit", "2") == 0
    first_lines = output.read_text().splitlines()

    assert _expand(tiny_model, corpus, output) == 0

    lines = output.read_text().splitlines()
    assert len(first_lines) == 2
    assert lines[:2] == first_lines
    assert [json.loads(line)["_id"] for line in lines] == [row["_id"] for row in rows]


def test_cut_last_line_is_expanded_again(tiny_model, tmp_path):
    rows = read_sample(3)
    corpus = _write_jsonl(tmp_path / "corpus.jsonl", rows)
    output = tmp_path / "out.jsonl"
    assert _expand(tiny_model, corpus, output) == 0
    text = output.read_text()
    output.write_text(text[: len(text) - 20])

    assert _expand(tiny_model, corpus, output) == 0

    assert [row["_id"] for row in _read_jsonl(output)] == [row["_id"] for row in rows]


def test_invalid_lines_are_skipped_and_counted(tiny_model, tmp_path, capsys):
    corpus = tmp_path / "corpus.jsonl"
    good = json.dumps(read_sample(1)[0], ensure_ascii=False)
    corpus.write_text(
        f'{good}\n{{"_id": "cut"\n{{"no_id": 1}}\n{{"_id": "empty", "text": ""}}\n'
    )
    output = tmp_path / "out.jsonl"

    assert _expand(tiny_model, corpus, output) == 1

    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert "expanded=1" in summary
    assert "skipped=1" in summary
    assert "invalid=2" in summary
    empty = _read_jsonl(output)[1]
    assert empty["queries"] == []
    assert "missing" in empty["skip_reason"] or "empty" in empty["skip_reason"]


def test_missing_corpus_is_an_error(tiny_model, tmp_path, capsys):
    assert _expand(tiny_model, tmp_path / "none.jsonl", tmp_path / "out.jsonl") == 2

    assert "not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"_id": "a", "text": "x"}, "beir"),
        ({"id": "a", "contents": "x"}, "pyserini"),
        ({"id": "a", "text": "x"}, None),
    ],
)
def test_detect_format(row, expected):
    assert detect_format(row) == expected


def test_done_ids_of_missing_output(tmp_path):
    assert read_done_ids(tmp_path / "none.jsonl") == set()
