"""Keeping each paragraph's best queries, and the filter's settings."""

from __future__ import annotations

import math

import pytest

from worker.errors import SettingsError
from worker.expansion.filtering import keep_best, kept_count
from worker.settings import GENERATOR_SCORER, load_settings


@pytest.mark.parametrize(
    ("total", "fraction", "expected"),
    [
        (0, 0.5, 0),
        (1, 0.1, 1),
        (5, 0.4, 2),
        (5, 0.5, 3),
        (10, 0.7, 7),
        (20, 1.0, 20),
        (3, 0.34, 2),
    ],
)
def test_kept_count_rounds_up(total, fraction, expected):
    assert kept_count(total, fraction) == expected


def test_keep_best_keeps_original_order():
    queries = ["a", "b", "c", "d"]
    scores = [0.1, 0.9, 0.5, 0.7]

    assert keep_best(queries, scores, 0.5) == ["b", "d"]


def test_keep_best_ranks_nan_last():
    queries = ["a", "b", "c"]
    scores = [math.nan, -5.0, -1.0]

    assert keep_best(queries, scores, 0.6) == ["b", "c"]


def test_keep_best_breaks_ties_by_position():
    assert keep_best(["a", "b", "c"], [1.0, 1.0, 1.0], 0.34) == ["a", "b"]


def test_keep_best_rejects_length_mismatch():
    with pytest.raises(ValueError, match="2 queries but 1 scores"):
        keep_best(["a", "b"], [1.0], 0.5)


def test_fingerprint_unchanged_without_filter():
    fields = load_settings({}).generation_fingerprint_fields()

    assert "query_filter" not in fields


def test_fingerprint_names_fraction_and_scorer():
    default = load_settings({"keep_fraction": 0.7}).generation_fingerprint_fields()
    cross = load_settings(
        {"keep_fraction": 0.7, "filter_model": "some/cross-encoder"}
    ).generation_fingerprint_fields()

    assert default["query_filter"] == {"keep_fraction": 0.7, "scorer": GENERATOR_SCORER}
    assert cross["query_filter"] == {
        "keep_fraction": 0.7,
        "scorer": "some/cross-encoder",
    }


@pytest.mark.parametrize("fraction", [0.0, -0.5, 1.5])
def test_settings_reject_fraction_outside_range(fraction):
    with pytest.raises(SettingsError, match="keep_fraction"):
        load_settings({"keep_fraction": fraction})


def test_settings_reject_filter_model_without_fraction():
    with pytest.raises(
        SettingsError, match="filter_model: is set but keep_fraction is 1"
    ):
        load_settings({"filter_model": "some/cross-encoder"})
