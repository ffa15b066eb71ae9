"""Search with the expansion: BM25 over the text and the queries, plus term weights.

The combined query has two clauses, each with a weight:

- a ``cross_fields`` ``multi_match`` over the document's text fields and
  ``<expansion>.queries``. It scores the fields as if they were one field, so
  the expansion works like queries appended to the document (as doc2query
  does), and a term found both in the text and in the queries counts once;
- one term-weight clause per analysed query term on ``<expansion>.terms``
  (``rank_feature`` on OpenSearch), so documents whose queries often use a
  term rank higher.

Without the expansion, the first clause covers the text fields only (plain
BM25). Every clause carries a ``_name``, so a search with named scores reports
each clause's score per hit. ``mappings/<engine>/search-template.json`` contains
the same query as a mustache search template.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from worker.cluster.engine import Engine
from worker.errors import SearchError
from worker.expansion.terms import feature_key
from worker.expansion.text import extract_text
from worker.settings import (
    DEFAULT_QUERIES_WEIGHT,
    DEFAULT_TERMS_WEIGHT,
    DEFAULT_TEXT_WEIGHT,
)

logger = logging.getLogger(__name__)

Part = Literal["text", "queries", "terms"]
ALL_PARTS: tuple[Part, ...] = ("text", "queries", "terms")

DEFAULT_SIZE = 10
# Names of the clauses; "fields" is the clause over the text fields and the
# queries together.
TERMS_NAME_PREFIX = "terms:"
FIELDS_CLAUSE = "fields"
SNIPPET_CHARS = 120

Query = dict[str, Any]
FeatureClause = Callable[..., Query]
"""``engine.feature_clause(field, key, boost=..., name=...)``: one term-weight clause."""


@dataclass(frozen=True)
class SearchWeights:
    """The weights of the combined query.

    ``text`` boosts the clause over the text fields (and the queries, when
    expanded). ``queries`` is the boost of the queries field inside that
    clause, relative to the text fields. ``terms`` boosts each term-weight
    clause.
    """

    text: float = DEFAULT_TEXT_WEIGHT
    queries: float = DEFAULT_QUERIES_WEIGHT
    terms: float = DEFAULT_TERMS_WEIGHT


@dataclass(frozen=True)
class QuerySpec:
    """Fields, weights and parts of the combined query, taken from the settings."""

    fields: tuple[str, ...]
    expansion_field: str
    weights: SearchWeights = SearchWeights()
    parts: tuple[Part, ...] = ALL_PARTS

    def with_parts(self, parts: Iterable[Part]) -> QuerySpec:
        """Return a copy that uses only ``parts``."""
        return QuerySpec(self.fields, self.expansion_field, self.weights, tuple(parts))

    @property
    def queries_field(self) -> str:
        return f"{self.expansion_field}.queries"

    @property
    def terms_field(self) -> str:
        return f"{self.expansion_field}.terms"


@dataclass
class Hit:
    """One ranked document, with each part's share of its score when requested."""

    rank: int
    id: str
    score: float
    snippet: str = ""
    parts: dict[str, float] = field(default_factory=dict)
    terms: dict[str, float] = field(default_factory=dict)


def validate_parts(parts: Collection[str]) -> tuple[Part, ...]:
    """Return ``parts`` in canonical order; raise SearchError on an unknown part."""
    unknown = sorted(set(parts) - set(ALL_PARTS))
    if unknown or not parts:
        raise SearchError(
            f"invalid query parts {sorted(parts)!r}; choose one or more of: "
            f"{', '.join(ALL_PARTS)}"
        )
    return tuple(part for part in ALL_PARTS if part in parts)


def feature_keys(tokens: Iterable[tuple[str, int]]) -> list[str]:
    """Turn analysed tokens into distinct term-weight keys, in query order."""
    keys: list[str] = []
    for term, _position in tokens:
        key = feature_key(term)
        if key and key not in keys:
            keys.append(key)
    return keys


def analyse_query(
    engine: Engine, index: str, expansion_field: str, text: str
) -> list[str]:
    """Analyse ``text`` as the expansion's queries are analysed; return term keys.

    The ``_analyze`` request names the ``<expansion>.queries`` field, so the
    index's own analyzer for that field applies, the same one that produced
    the keys of ``<expansion>.terms``.
    """
    tokens = engine.analyze(index, f"{expansion_field}.queries", [text])
    return feature_keys(tokens)


def _fields_clause(text: str, spec: QuerySpec) -> Query | None:
    # A part with weight 0 adds no clause, so it matches no document either.
    with_text = "text" in spec.parts and spec.weights.text > 0
    with_queries = "queries" in spec.parts and spec.weights.queries > 0
    if with_queries and "text" not in spec.parts:
        match = {"query": text, "boost": spec.weights.queries, "_name": "queries"}
        return {"match": {spec.queries_field: match}}
    if not with_text:
        return None
    fields = list(spec.fields)
    if with_queries:
        fields.append(f"{spec.queries_field}^{spec.weights.queries:g}")
    clause = {
        "query": text,
        "fields": fields,
        "type": "cross_fields",
        "boost": spec.weights.text,
        "_name": FIELDS_CLAUSE if with_queries else "text",
    }
    return {"multi_match": clause}


def build_query(
    text: str, terms: Iterable[str], spec: QuerySpec, feature_clause: FeatureClause
) -> Query:
    """Build the combined ``bool`` query for ``text`` and its analysed ``terms``.

    Clauses are named ``text`` (text fields only), ``fields`` (text fields and
    queries), ``queries`` (queries only) and ``terms:<key>``. A spec whose
    parts yield no clause (only ``terms``, and no terms) matches nothing.
    """
    should: list[Query] = []
    if "terms" in spec.parts and spec.weights.terms > 0:
        for key in terms:
            should.append(
                feature_clause(
                    spec.terms_field,
                    key,
                    boost=spec.weights.terms,
                    name=f"{TERMS_NAME_PREFIX}{key}",
                )
            )
    fields_clause = _fields_clause(text, spec)
    if fields_clause is not None:
        should.append(fields_clause)
    if not should:
        return {"match_none": {}}
    return {"bool": {"should": should}}


ScoresByName = dict[str, float]


def split_named_scores(named: Mapping[str, float]) -> tuple[ScoresByName, ScoresByName]:
    """Sum named clause scores by clause kind; also return the score of each term."""
    parts: ScoresByName = {}
    terms: ScoresByName = {}
    for name, score in named.items():
        if name.startswith(TERMS_NAME_PREFIX):
            terms[name[len(TERMS_NAME_PREFIX) :]] = float(score)
            parts["terms"] = parts.get("terms", 0.0) + float(score)
        else:
            parts[name] = parts.get(name, 0.0) + float(score)
    return parts, terms


def field_scores(explanation: Mapping[str, Any]) -> ScoresByName:
    """Attribute a Lucene explanation's score to the fields whose terms produced it.

    Leaves read ``weight(<field>:<term> in <doc>)``. A ``max of`` node (one
    term of a ``cross_fields`` query) gives its score to its best child only.
    NOTE: a tie breaker above 0 would add the other children's share; the
    combined query uses none.
    """
    description = str(explanation.get("description", ""))
    value = float(explanation.get("value", 0.0))
    children = explanation.get("details") or []
    if description.startswith("weight(") and ":" in description:
        return {description[len("weight(") : description.index(":")]: value}
    if description.startswith("max of") and children:
        best = max(children, key=lambda child: float(child.get("value", 0.0)))
        return field_scores(best)
    scores: ScoresByName = {}
    for child in children:
        for name, share in field_scores(child).items():
            scores[name] = scores.get(name, 0.0) + share
    return scores


def split_fields_clause(
    clause_score: float, explanation: Mapping[str, Any], spec: QuerySpec
) -> ScoresByName:
    """Split the ``fields`` clause's score into its text and queries shares."""
    by_field = field_scores(explanation)
    queries = by_field.get(spec.queries_field, 0.0)
    text = sum(by_field.get(name, 0.0) for name in spec.fields)
    total = text + queries
    if total <= 0:
        return {"text": clause_score, "queries": 0.0}
    return {
        "text": clause_score * text / total,
        "queries": clause_score * queries / total,
    }


def _snippet(source: Mapping[str, Any], fields: Iterable[str]) -> str:
    text = " ".join(extract_text(source, list(fields)).text.split())
    if len(text) <= SNIPPET_CHARS:
        return text
    return text[: SNIPPET_CHARS - 1].rstrip() + "…"


def search(
    engine: Engine,
    index: str,
    text: str,
    spec: QuerySpec,
    size: int = DEFAULT_SIZE,
    explain: bool = False,
) -> list[Hit]:
    """Run the combined query for ``text`` and return the ranked hits.

    Args:
        engine: the connected cluster.
        index: index (or alias, or pattern) to search.
        text: the user's query.
        spec: fields, expansion field, weights and parts to use.
        size: number of hits to return.
        explain: also return each part's and each term's score per hit.

    Raises:
        SearchError: the query is blank or the cluster rejected the search.
    """
    if not text.strip():
        raise SearchError("the query is empty; pass the text to search for")
    terms: list[str] = []
    if "terms" in spec.parts and spec.weights.terms > 0:
        terms = analyse_query(engine, index, spec.expansion_field, text)
    body: dict[str, Any] = {
        "size": size,
        "query": build_query(text, terms, spec, engine.feature_clause),
        "_source": list(spec.fields),
    }
    if explain:
        body["explain"] = True
    try:
        response = engine.search(index, body, named_scores=explain)
    except Exception as error:  # noqa: BLE001 - either client's error, reworded
        raise SearchError(f"search on index {index!r} failed: {error}") from error
    hits: list[Hit] = []
    for rank, raw in enumerate(response["hits"]["hits"], start=1):
        hit = Hit(
            rank=rank,
            id=str(raw["_id"]),
            score=float(raw.get("_score") or 0.0),
            snippet=_snippet(raw.get("_source") or {}, spec.fields),
        )
        if explain:
            hit.parts, hit.terms = _explain_hit(raw, spec)
        hits.append(hit)
    logger.debug("index=%s query=%r hits=%d terms=%s", index, text, len(hits), terms)
    return hits


def _explain_hit(
    raw: Mapping[str, Any], spec: QuerySpec
) -> tuple[ScoresByName, ScoresByName]:
    named = raw.get("matched_queries")
    if not isinstance(named, Mapping):
        return {}, {}
    parts, terms = split_named_scores(named)
    if FIELDS_CLAUSE in parts:
        blended = parts.pop(FIELDS_CLAUSE)
        for part, share in split_fields_clause(
            blended, raw.get("_explanation") or {}, spec
        ).items():
            parts[part] = parts.get(part, 0.0) + share
    return parts, terms


def format_hits(hits: list[Hit], explain: bool = False) -> str:
    """Render hits as text lines: rank, score, id and snippet, then the parts."""
    if not hits:
        return "no hits"
    lines: list[str] = []
    for hit in hits:
        lines.append(f"{hit.rank:>3}  {hit.score:9.4f}  {hit.id}  {hit.snippet}")
        if not explain:
            continue
        shares = "  ".join(
            f"{part}={hit.parts.get(part, 0.0):.4f}" for part in ALL_PARTS
        )
        lines.append(f"{'':>16}{shares}")
        if hit.terms:
            ranked = sorted(hit.terms.items(), key=lambda item: -item[1])
            detail = " ".join(f"{term}={score:.4f}" for term, score in ranked)
            lines.append(f"{'':>16}terms: {detail}")
    return "\n".join(lines)
