"""Add the expansion object to an index's mapping, refusing conflicting mappings."""

from __future__ import annotations

import copy
from typing import Any

from worker.cluster.engine import Engine
from worker.errors import ClusterError, MappingConflictError


def expansion_mapping(engine: Engine, analyzer: str) -> dict[str, Any]:
    """Return the mapping of the expansion object, with ``analyzer`` on its queries."""
    mapping = copy.deepcopy(engine.mapping_template())
    mapping["properties"]["queries"]["analyzer"] = analyzer
    return mapping


def _describe(mapping: dict[str, Any]) -> str:
    kind = str(mapping.get("type", "object"))
    if kind == "text" and "analyzer" in mapping:
        return f"text with analyzer {mapping['analyzer']}"
    return kind


def find_conflict(
    existing: dict[str, Any] | None, wanted: dict[str, Any], field: str
) -> tuple[str, str, str] | None:
    """Return (field path, current type, wanted type) of the first conflict, if any."""
    if existing is None:
        return None
    if existing.get("type", "object") != "object":
        return field, _describe(existing), "object"
    current_properties = existing.get("properties", {})
    for name, spec in wanted["properties"].items():
        current = current_properties.get(name)
        if current is None:
            continue
        path = f"{field}.{name}"
        if current.get("type", "object") != spec["type"]:
            return path, _describe(current), _describe(spec)
        if spec["type"] == "text" and current.get("analyzer", "standard") != spec.get(
            "analyzer"
        ):
            return path, _describe(current), _describe(spec)
    return None


def ensure_expansion_mapping(
    engine: Engine, index: str, field: str, analyzer: str
) -> dict[str, Any]:
    """Add the expansion object under ``field`` to the mapping of ``index``.

    Raises:
        ClusterError: the index does not exist.
        MappingConflictError: the index maps ``field`` or one of its sub-fields
            with another type; a dynamically mapped ``terms`` object, for
            example, would otherwise grow one field per term.
    """
    if not engine.index_exists(index):
        raise ClusterError(
            f"index {index!r} not found; create it before running d2q init"
        )
    wanted = expansion_mapping(engine, analyzer)
    # A list, pattern or alias may name several indices: check each one.
    for name in _concrete_indices(engine, index):
        existing = engine.get_mapping(name).get("properties", {}).get(field)
        conflict = find_conflict(existing, wanted, field)
        if conflict is not None:
            raise MappingConflictError(name, *conflict)
    engine.put_mapping(index, {field: wanted})
    return wanted


def _concrete_indices(engine: Engine, index: str) -> list[str]:
    """Return the indices behind a name, comma-separated list, pattern or alias."""
    response = engine.client.indices.get_mapping(index=index)
    return sorted(dict(response))
