"""Keep each paragraph's best queries by a score (Doc2Query--)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def kept_count(total: int, keep_fraction: float) -> int:
    """Return how many of ``total`` queries a fraction keeps: at least one, rounded up."""
    if total <= 0:
        return 0
    # The tolerance keeps float error from rounding up: 10 * 0.7 is 7.000000000000001.
    return min(total, max(1, math.ceil(total * keep_fraction - 1e-9)))


def keep_best(
    queries: Sequence[str], scores: Sequence[float], keep_fraction: float
) -> list[str]:
    """Keep the best-scoring ``keep_fraction`` of ``queries``, in their original order.

    A NaN score ranks below every number. Ties keep the earlier query.

    Raises:
        ValueError: ``queries`` and ``scores`` differ in length, or the
            fraction is outside (0, 1].
    """
    if len(queries) != len(scores):
        raise ValueError(f"{len(queries)} queries but {len(scores)} scores")
    if not 0 < keep_fraction <= 1:
        raise ValueError(f"keep_fraction {keep_fraction} is outside (0, 1]")
    ranked = sorted(
        range(len(queries)),
        key=lambda i: (-scores[i] if not math.isnan(scores[i]) else math.inf, i),
    )
    chosen = set(ranked[: kept_count(len(queries), keep_fraction)])
    return [query for i, query in enumerate(queries) if i in chosen]
