"""The combined query, its named scores, and the search settings."""

from __future__ import annotations

import json

import pytest

from worker.errors import SearchError
from worker.search import (
    QuerySpec,
    SearchWeights,
    build_query,
    feature_keys,
    field_scores,
    split_fields_clause,
    split_named_scores,
    validate_parts,
)
from worker.settings import (
    DEFAULT_QUERIES_WEIGHT,
    DEFAULT_TERMS_WEIGHT,
    DEFAULT_TEXT_WEIGHT,
    load_settings,
)

SPEC = QuerySpec(("title", "text"), "doc2query", SearchWeights(1.0, 0.5, 2.0))


def feature_clause(field, key, boost=1.0, name=None):
    """The OpenSearch clause shape, without a connection."""
    return {"rank_feature": {"field": f"{field}.{key}", "boost": boost, "_name": name}}


def clause_names(query):
    return [next(iter(clause.values()))["_name"] for clause in query["bool"]["should"]]


def test_build_query_has_every_part():
    query = build_query("gato negro", ["gat", "negr"], SPEC, feature_clause)

    assert clause_names(query) == ["terms:gat", "terms:negr", "fields"]


def test_build_query_blends_text_and_queries():
    query = build_query("gato negro", [], SPEC, feature_clause)

    (clause,) = query["bool"]["should"]
    assert clause["multi_match"]["query"] == "gato negro"
    assert clause["multi_match"]["type"] == "cross_fields"
    assert clause["multi_match"]["fields"] == ["title", "text", "doc2query.queries^0.5"]
    assert clause["multi_match"]["boost"] == 1.0


def test_build_query_terms_clauses():
    query = build_query("gato", ["gat", "3_5"], SPEC, feature_clause)

    features = [
        c["rank_feature"] for c in query["bool"]["should"] if "rank_feature" in c
    ]
    assert [f["field"] for f in features] == [
        "doc2query.terms.gat",
        "doc2query.terms.3_5",
    ]
    assert all(f["boost"] == 2.0 for f in features)


def test_build_query_without_expansion():
    query = build_query("gato", ["gat"], SPEC.with_parts(["text"]), feature_clause)

    (clause,) = query["bool"]["should"]
    assert clause["multi_match"]["fields"] == ["title", "text"]
    assert clause["multi_match"]["_name"] == "text"


def test_build_query_queries_alone():
    query = build_query("gato", ["gat"], SPEC.with_parts(["queries"]), feature_clause)

    (clause,) = query["bool"]["should"]
    assert clause["match"]["doc2query.queries"]["query"] == "gato"
    assert clause["match"]["doc2query.queries"]["boost"] == 0.5


def test_build_query_terms_only_without_terms():
    spec = SPEC.with_parts(["terms"])

    assert build_query("el", [], spec, feature_clause) == {"match_none": {}}


def test_build_query_is_json():
    query = build_query('dijo "hola" \\ adiós', ["hol"], SPEC, feature_clause)

    assert json.loads(json.dumps(query)) == query


def test_feature_keys_replace_dots_and_dedupe():
    tokens = [("3.5", 0), ("gat", 1), ("gat", 3), ("", 4), ("u.s.a", 5)]

    assert feature_keys(tokens) == ["3_5", "gat", "u_s_a"]


def test_field_scores_take_best_of_max():
    explanation = {
        "value": 3.0,
        "description": "sum of:",
        "details": [
            {
                "value": 2.0,
                "description": "max of:",
                "details": [
                    {"value": 2.0, "description": "weight(text:gat in 0) [BM25]"},
                    {"value": 1.5, "description": "weight(doc2query.queries:gat in 0)"},
                ],
            },
            {"value": 1.0, "description": "weight(doc2query.queries:negr in 0)"},
        ],
    }

    assert field_scores(explanation) == {"text": 2.0, "doc2query.queries": 1.0}


def test_split_fields_clause_shares_score():
    explanation = {
        "value": 4.0,
        "description": "sum of:",
        "details": [
            {"value": 3.0, "description": "weight(title:gat in 0)"},
            {"value": 1.0, "description": "weight(doc2query.queries:negr in 0)"},
        ],
    }

    shares = split_fields_clause(8.0, explanation, SPEC)

    assert shares == {"text": 6.0, "queries": 2.0}


def test_split_named_scores_sums_terms():
    parts, terms = split_named_scores(
        {"text": 2.0, "queries": 1.0, "terms:gat": 0.25, "terms:negr": 0.5}
    )

    assert parts == {"text": 2.0, "queries": 1.0, "terms": 0.75}
    assert terms == {"gat": 0.25, "negr": 0.5}


def test_validate_parts_orders_parts():
    assert validate_parts({"terms", "text"}) == ("text", "terms")


def test_validate_parts_rejects_unknown_part():
    with pytest.raises(SearchError, match="invalid query parts"):
        validate_parts({"text", "vectors"})


def test_default_weights_match_settings():
    settings = load_settings({})

    assert SearchWeights() == SearchWeights(
        settings.text_weight, settings.queries_weight, settings.terms_weight
    )
    assert SearchWeights() == SearchWeights(
        DEFAULT_TEXT_WEIGHT, DEFAULT_QUERIES_WEIGHT, DEFAULT_TERMS_WEIGHT
    )


def test_settings_reject_negative_weight():
    with pytest.raises(Exception, match="text_weight: -1.0 must be a finite number"):
        load_settings({"text_weight": -1.0})


def test_settings_reject_all_zero_weights():
    flags = {"text_weight": 0.0, "queries_weight": 0.0, "terms_weight": 0.0}

    with pytest.raises(Exception, match="at least one must be above 0"):
        load_settings(flags)


def test_build_query_skips_zero_weight_parts():
    spec = QuerySpec(("title", "text"), "doc2query", SearchWeights(1.0, 0.0, 0.0))

    query = build_query("gato", ["gat"], spec, feature_clause)

    (clause,) = query["bool"]["should"]
    assert clause["multi_match"]["fields"] == ["title", "text"]
    assert clause["multi_match"]["_name"] == "text"
