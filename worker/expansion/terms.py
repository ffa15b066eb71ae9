"""Weight the analysed terms of a document's queries for a ``rank_features`` field."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence

DEFAULT_MAX_TERMS = 256
# The queries field is mapped with this position_increment_gap, so tokens of
# two consecutive queries are at least this far apart in one _analyze response.
QUERY_POSITION_GAP = 100

AnalysedToken = tuple[str, int]
"""One token of an ``_analyze`` response: the term and its position."""


def feature_key(term: str) -> str:
    """Return the ``rank_features`` key for an analysed term.

    Elasticsearch 8.7 and later reject dots in feature names, and OpenSearch
    reads a dot as an object path, so dots become underscores. Searches must
    apply the same function to their analysed terms.
    """
    return term.replace(".", "_").strip()


def group_tokens_by_query(
    tokens: Sequence[AnalysedToken], gap: int = QUERY_POSITION_GAP
) -> list[set[str]]:
    """Group the tokens of one ``_analyze`` call over many queries, one set per query.

    A query is at most 64 tokens long, so a jump in position of ``gap`` or more
    can only come from the gap the mapping puts between array values.
    """
    groups: list[set[str]] = []
    previous: int | None = None
    for term, position in tokens:
        if previous is None or position - previous >= gap:
            groups.append(set())
        groups[-1].add(term)
        previous = position
    return groups


def weigh_terms(
    query_terms: Iterable[set[str]], max_terms: int = DEFAULT_MAX_TERMS
) -> dict[str, float]:
    """Map each term to the number of queries that contain it.

    Keys go through :func:`feature_key`; keys that end up empty are dropped.
    When there are more than ``max_terms`` terms, the heaviest are kept (ties
    broken alphabetically, so the result is deterministic). Every weight is a
    finite number greater than zero.
    """
    counts: Counter[str] = Counter()
    for terms in query_terms:
        counts.update({key for term in terms if (key := feature_key(term))})
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    weights = {key: float(count) for key, count in ranked[:max_terms]}
    return {key: w for key, w in weights.items() if math.isfinite(w) and w > 0}
