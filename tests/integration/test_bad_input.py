"""Bad input, each a valid expansion or a recorded skip, in one batch: real server."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from tests.conftest import read_sample
from tests.reliability import all_sources, check_expansion, make_pipeline
from tests.support import create_index, index_settings

# Text fields stay unmapped, so the index stores whatever a client sends, as
# indices with dynamic mapping turned off do.
UNMAPPED = {"dynamic": False, "properties": {}}
SAMPLE_TEXT = read_sample(1)[0]["text"]
TEN_MB_TEXT = (SAMPLE_TEXT + " ") * (10_000_000 // (len(SAMPLE_TEXT) + 1) + 1)

# id, source, expected status, text expected in the reason (or None).
BAD_INPUT: list[tuple[str, dict[str, Any], str, str | None]] = [
    ("null", {"title": None, "text": None}, "skipped", "field 'text' is missing"),
    ("number", {"title": 7, "text": 42}, "skipped", "field 'text' is a number"),
    (
        "list",
        {"text": ["Primera parte del texto.", "Segunda parte."]},
        "expanded",
        None,
    ),
    ("object", {"text": {"es": "hola"}}, "skipped", "field 'text' is an object"),
    ("empty", {"title": "", "text": ""}, "skipped", "field 'text' is empty"),
    ("blank", {"text": " \n\t  "}, "skipped", "field 'text' is empty"),
    (
        "markup-only",
        {"text": "<div><br/><span></span></div>"},
        "skipped",
        "only markup",
    ),
    (
        "markup",
        {"text": "<p>Madrid es la <b>capital</b> de España.</p>"},
        "expanded",
        None,
    ),
    ("ten-mb", {"text": TEN_MB_TEXT}, "expanded", "expanded the first"),
    (
        "surrogates",
        {"text": "Texto con \ud800 sustituto suelto y más."},
        "expanded",
        None,
    ),
    (
        "control",
        {"text": "Texto\x00 con\x07 caracteres\x1b de control."},
        "expanded",
        None,
    ),
    (
        "emoji-rtl-cjk",
        {"text": "🚀 Cohete. مرحبا بالعالم. 東京は日本の首都です。"},
        "expanded",
        None,
    ),
    ("one-word", {"text": "Madrid"}, "expanded", None),
    (
        "expansion-string",
        {"text": SAMPLE_TEXT, "doc2query": "no es un objeto"},
        "expanded",
        None,
    ),
    (
        "expansion-bad-fields",
        {
            "text": SAMPLE_TEXT,
            "doc2query": {"status": "failed", "attempts": "muchos", "terms": "x"},
        },
        "expanded",
        None,
    ),
    ("expansion-list", {"text": SAMPLE_TEXT, "doc2query": [1, 2]}, "expanded", None),
]


def _index_raw(
    engine: Any, index: str, rows: Sequence[tuple[str, dict[str, Any]]]
) -> None:
    """Index sources as ASCII JSON, so lone surrogates travel as \\u escapes."""
    engine.create_index(index, settings=index_settings(engine), mappings=UNMAPPED)
    # One request per document keeps the 10 MB one under the indexing
    # pressure limit of a small test node.
    for doc_id, source in rows:
        action = json.dumps({"index": {"_index": index, "_id": doc_id}})
        body = f"{action}\n{json.dumps(source)}\n"
        response = engine.client.bulk(body=body, params={"refresh": "true"})
        assert not response["errors"], (doc_id, str(response)[:500])


def test_bad_input_expanded_or_skipped(
    engine, engine_name, opensearch_url, tiny_model, index_name
):
    rows = [(doc_id, source) for doc_id, source, _, _ in BAD_INPUT]
    if engine_name == "elasticsearch":
        # NOTE: the Elasticsearch test node's indexing pressure limit (10% of
        # its 512 MB heap) rejects a 10 MB document, so it gets 4 MB.
        rows = [
            (
                doc_id,
                {"text": TEN_MB_TEXT[:4_000_000]} if doc_id == "ten-mb" else source,
            )
            for doc_id, source in rows
        ]
    _index_raw(engine, index_name, rows)
    pipeline = make_pipeline(
        engine, opensearch_url, index_name, tiny_model, page_size=100
    )

    summary = pipeline.backfill()

    sources = all_sources(engine, index_name)
    expected_skips = sum(1 for *_, status, _ in BAD_INPUT if status == "skipped")
    assert summary.skipped == expected_skips
    assert summary.expanded == len(BAD_INPUT) - expected_skips
    assert summary.failed == 0
    for doc_id, _, status, reason in BAD_INPUT:
        expansion = sources[doc_id]["doc2query"]
        assert expansion["status"] == status, doc_id
        assert expansion["attempts"] == 1, doc_id
        if reason is not None:
            assert reason in expansion["reason"], (doc_id, expansion["reason"])
        if status == "expanded":
            assert check_expansion(sources[doc_id]) == [], doc_id


class FixedGenerator:
    """Returns the same raw queries for every paragraph, like a model would."""

    def __init__(self, inner: Any, queries: list[str]) -> None:
        self.inner = inner
        self.config = inner.config
        self.queries = queries

    def count_tokens(self, text: str) -> int:
        return int(self.inner.count_tokens(text))

    def generate(self, paragraphs: Sequence[str]) -> list[list[str]]:
        return [list(self.queries) for _ in paragraphs]


@pytest.mark.parametrize(
    ("queries", "keys"),
    [
        (["precio de 3.5 euros", "3.5 u.s.", "u.s. y 3.5"], {"3_5", "u_s"}),
        (["de la", "el y la", "capital de españa"], {"capital"}),
    ],
    ids=["dotted-terms", "stopword-queries"],
)
def test_generated_terms_stored_valid(
    engine, opensearch_url, tiny_model, index_name, queries, keys
):
    create_index(engine, index_name, read_sample(2))
    pipeline = make_pipeline(engine, opensearch_url, index_name, tiny_model)
    fixed = FixedGenerator(pipeline.generator, queries)
    pipeline.generator = pipeline.expander.generator = fixed

    summary = pipeline.backfill()

    assert summary.expanded == 2
    for doc_id, source in all_sources(engine, index_name).items():
        assert check_expansion(source) == [], doc_id
        terms = source["doc2query"]["terms"]
        assert keys <= set(terms), terms
        assert not {"de", "la", "el", "y"} & set(terms), terms
