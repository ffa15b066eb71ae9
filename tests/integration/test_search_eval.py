"""search and eval against a real server, on a hand-made set of four documents.

Documents, queries and relevance are chosen so every rank is known:

- ``manzana`` matches only d1's text, and d1 is relevant: rank 1 everywhere.
- ``pera`` matches d2's text, but d3 is relevant; only d3's imported queries
  contain "pera". Plain BM25 misses d3. With the expansion weighted high, d3
  ranks first.
- ``fruta`` matches d4's text twice and d3's text once, and d3 is relevant:
  rank 2 in every variant that reads the text, since no expansion has "fruta".
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.support import index_settings
from worker.cli import main
from worker.search import QuerySpec, SearchWeights, build_query

DOCUMENTS = {
    "d1": "manzana roja del huerto",
    "d2": "pera verde",
    "d3": "fruta tropical de la isla caliente",
    "d4": "fruta fruta",
}
QUERIES = {"q1": "manzana", "q2": "pera", "q3": "fruta"}
QRELS = {"q1": "d1", "q2": "d3", "q3": "d3"}
EXPANSION = {"id": "d3", "queries": ["¿dónde crece la pera?", "pera de la isla"]}
# Heavy expansion weights make d3 outrank d2 for "pera".
HEAVY = ["--queries-weight", "10", "--terms-weight", "10"]


@pytest.fixture()
def fruit_index(engine, index_name, cluster_url, tiny_model, tmp_path):
    settings = dict(index_settings(engine), number_of_shards=1)
    mapping = {"properties": {"title": {"type": "text"}, "text": {"type": "text"}}}
    engine.create_index(index_name, settings=settings, mappings=mapping)
    for doc_id, text in DOCUMENTS.items():
        engine.index_document(index_name, doc_id, {"title": "", "text": text})
    engine.refresh(index_name)
    imports = tmp_path / "imports.jsonl"
    imports.write_text(
        json.dumps(EXPANSION, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    arguments = [
        "--url",
        cluster_url,
        "--index",
        index_name,
        "--model",
        str(tiny_model),
    ]
    assert main(["import-queries", *arguments, str(imports)]) == 0
    return index_name


@pytest.fixture()
def judged_files(tmp_path):
    queries = tmp_path / "queries.jsonl"
    queries.write_text(
        "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in QUERIES.items()),
        encoding="utf-8",
    )
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text(
        "query-id\tcorpus-id\tscore\n"
        + "".join(f"{q}\t{d}\t1\n" for q, d in QRELS.items()),
        encoding="utf-8",
    )
    return queries, qrels


def search_ids(capsys, url: str, index: str, *extra: str) -> list[str]:
    capsys.readouterr()
    assert main(["search", "--url", url, "--index", index, "--json", *extra]) == 0
    return [hit["id"] for hit in json.loads(capsys.readouterr().out)]


def test_search_plain_bm25_misses_expansion(cluster_url, fruit_index, capsys):
    ids = search_ids(capsys, cluster_url, fruit_index, "--no-expansion", "pera")

    assert ids == ["d2"]


def test_search_expansion_ranks_first(cluster_url, fruit_index, capsys):
    ids = search_ids(capsys, cluster_url, fruit_index, *HEAVY, "pera")

    assert ids == ["d3", "d2"]


def test_search_explain_splits_score(cluster_url, fruit_index, capsys):
    capsys.readouterr()
    arguments = ["--url", cluster_url, "--index", fruit_index, "--json", "--explain"]
    assert main(["search", *arguments, *HEAVY, "pera"]) == 0

    hits = {hit["id"]: hit for hit in json.loads(capsys.readouterr().out)}
    d3, d2 = hits["d3"], hits["d2"]
    assert d3["parts"]["queries"] > 0
    assert d3["parts"]["terms"] > 0
    assert d3["parts"]["text"] == pytest.approx(0.0, abs=1e-6)
    assert list(d3["terms"]) == ["per"] or list(d3["terms"]) == ["pera"]
    assert sum(d3["parts"].values()) == pytest.approx(d3["score"], rel=1e-4)
    assert d2["parts"]["text"] == pytest.approx(d2["score"], rel=1e-4)
    assert d2["parts"].get("queries", 0.0) == pytest.approx(0.0, abs=1e-6)


def test_search_text_output_lists_hits(cluster_url, fruit_index, capsys):
    capsys.readouterr()
    arguments = ["--url", cluster_url, "--index", fruit_index, "--explain", "pera"]
    assert main(["search", *arguments]) == 0

    output = capsys.readouterr().out
    assert "d2" in output
    assert "text=" in output
    assert "terms=" in output


def test_search_rejects_blank_query(cluster_url, fruit_index, capsys):
    status = main(["search", "--url", cluster_url, "--index", fruit_index, "  "])

    assert status == 2
    assert "the query is empty" in capsys.readouterr().err


def test_eval_metrics_worked_by_hand(cluster_url, fruit_index, judged_files, capsys):
    queries, qrels = judged_files
    capsys.readouterr()
    arguments = ["--url", cluster_url, "--index", fruit_index, *HEAVY]
    files = ["--queries", str(queries), "--qrels", str(qrels), "--json"]
    assert main(["eval", *arguments, *files]) == 0

    report = json.loads(capsys.readouterr().out)
    second = 1 / math.log2(3)
    # bm25: q1 at rank 1, q2 not found, q3 at rank 2.
    assert report["bm25"]["nDCG@10"] == pytest.approx((1 + 0 + second) / 3, abs=1e-4)
    assert report["bm25"]["RR@10"] == pytest.approx((1 + 0 + 0.5) / 3, abs=1e-4)
    assert report["bm25"]["R@100"] == pytest.approx(2 / 3, abs=1e-4)
    # expanded: q2's d3 moves to rank 1.
    assert report["expanded"]["nDCG@10"] == pytest.approx(
        (1 + 1 + second) / 3, abs=1e-4
    )
    assert report["expanded"]["RR@10"] == pytest.approx((1 + 1 + 0.5) / 3, abs=1e-4)
    assert report["expanded"]["R@100"] == pytest.approx(1.0, abs=1e-4)
    # queries alone and terms alone find only d3 for "pera".
    for variant in ("queries", "terms"):
        assert report[variant]["nDCG@10"] == pytest.approx(1 / 3, abs=1e-4)
        assert report[variant]["RR@10"] == pytest.approx(1 / 3, abs=1e-4)
        assert report[variant]["R@100"] == pytest.approx(1 / 3, abs=1e-4)
    assert 0.0 <= report["expanded"]["p_vs_bm25"]["RR@10"] <= 1.0
    assert "p_vs_bm25" not in report["bm25"]


def test_eval_table_and_plot(cluster_url, fruit_index, judged_files, capsys, tmp_path):
    queries, qrels = judged_files
    plot = tmp_path / "metrics.png"
    capsys.readouterr()
    arguments = ["--url", cluster_url, "--index", fruit_index, "--no-expansion"]
    files = ["--queries", str(queries), "--qrels", str(qrels), "--plot", str(plot)]
    assert main(["eval", *arguments, *files]) == 0

    output = capsys.readouterr().out
    assert output.splitlines()[0].split() == ["variant", "nDCG@10", "RR@10", "R@100"]
    assert "expanded" not in output
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_rejects_unjudged_queries(cluster_url, fruit_index, tmp_path, capsys):
    queries = tmp_path / "queries.jsonl"
    queries.write_text('{"_id": "x", "text": "pera"}\n', encoding="utf-8")
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("y\td1\t1\n", encoding="utf-8")
    arguments = ["--url", cluster_url, "--index", fruit_index]

    status = main(
        ["eval", *arguments, "--queries", str(queries), "--qrels", str(qrels)]
    )

    assert status == 2
    assert "no query has a relevant document" in capsys.readouterr().err


def test_eval_needs_expansion_mapping(
    engine, cluster_url, index_name, judged_files, capsys
):
    engine.create_index(index_name, settings=index_settings(engine))
    queries, qrels = judged_files
    arguments = ["--url", cluster_url, "--index", index_name]

    status = main(
        ["eval", *arguments, "--queries", str(queries), "--qrels", str(qrels)]
    )

    assert status == 2
    assert "has no expansion object 'doc2query'" in capsys.readouterr().err


TEMPLATE_NAME = "search-template.json"


def has_mustache(engine) -> bool:
    try:
        engine.client.transport.perform_request(
            "POST", "/_render/template", body={"source": "{}", "params": {}}
        )
    except Exception:  # noqa: BLE001 - either client's error for a missing module
        return False
    return True


def test_template_renders_code_query(engine, fruit_index):
    if not has_mustache(engine):
        pytest.skip("the test node has no lang-mustache module; restart it to load one")
    from worker.cluster.engine import MAPPINGS_DIR

    template = json.loads((MAPPINGS_DIR / engine.name / TEMPLATE_NAME).read_text())
    spec = QuerySpec(("title", "text"), "doc2query", SearchWeights(1.5, 0.5, 2.0))
    params = {
        "query": 'pera "verde" \\ fruta',
        "terms": ["per", "verd", "frut"],
        "fields": ["title", "text"],
        "text_weight": 1.5,
        "queries_weight": 0.5,
        "terms_weight": 2.0,
        "size": 7,
    }

    response = engine.client.transport.perform_request(
        "POST",
        "/_render/template",
        body={"source": template["script"]["source"], "params": params},
    )

    rendered = dict(response)["template_output"]
    expected = build_query(
        params["query"], params["terms"], spec, engine.feature_clause
    )
    assert rendered["query"] == expected
    assert rendered["size"] == 7


def test_template_defaults_match_settings(engine):
    from worker.cluster.engine import MAPPINGS_DIR
    from worker.settings import load_settings

    settings = load_settings({})
    source = json.loads((MAPPINGS_DIR / engine.name / TEMPLATE_NAME).read_text())
    text = source["script"]["source"]

    assert f"{{{{^text_weight}}}}{settings.text_weight:g}{{{{/text_weight}}}}" in text
    assert (
        f"{{{{^queries_weight}}}}{settings.queries_weight:g}{{{{/queries_weight}}}}"
        in text
    )
    assert (
        f"{{{{^terms_weight}}}}{settings.terms_weight:g}{{{{/terms_weight}}}}" in text
    )


def test_sample_template_files_exist():
    from worker.cluster.engine import MAPPINGS_DIR

    for engine_name in ("opensearch", "elasticsearch"):
        assert Path(MAPPINGS_DIR / engine_name / TEMPLATE_NAME).is_file()
