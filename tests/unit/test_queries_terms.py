from __future__ import annotations

import math

import pytest

from worker.expansion.queries import clean_queries, normalise_query
from worker.expansion.terms import feature_key, group_tokens_by_query, weigh_terms


@pytest.mark.parametrize(
    "query",
    ["", "   ", "?!", "qué es <extra_id_0>", "dónde ⁇ está", "un <unk> aquí"],
)
def test_unusable_queries_are_dropped(query):
    assert normalise_query(query) is None


def test_query_whitespace_is_collapsed():
    assert normalise_query("  ¿qué   es\testo? ") == "¿qué es esto?"


def test_duplicates_dropped_in_first_seen_order():
    queries = ["Qué es", "dónde", "qué es", "Dónde ", "cuándo"]

    assert clean_queries(queries) == ["Qué es", "dónde", "cuándo"]


def test_feature_key_replaces_dots():
    assert feature_key("3.5") == "3_5"
    assert feature_key("u.s.") == "u_s_"


def test_tokens_grouped_by_position_gap():
    tokens = [("a", 0), ("b", 2), ("c", 103), ("a", 205), ("d", 206)]

    assert group_tokens_by_query(tokens) == [{"a", "b"}, {"c"}, {"a", "d"}]


def test_weight_counts_queries_containing_term():
    weights = weigh_terms([{"rio", "madrid"}, {"rio"}, {"rio", "agua"}])

    assert weights == {"rio": 3.0, "agua": 1.0, "madrid": 1.0}


def test_weights_bounded_to_heaviest_terms():
    groups = [{"a", "b", "c"}, {"a", "b"}, {"a"}]

    assert weigh_terms(groups, max_terms=2) == {"a": 3.0, "b": 2.0}


def test_weights_are_finite_and_positive():
    weights = weigh_terms([{"x.y", "", "z"}, {"x_y"}])

    assert weights == {"x_y": 2.0, "z": 1.0}
    assert all(math.isfinite(w) and w > 0 for w in weights.values())
