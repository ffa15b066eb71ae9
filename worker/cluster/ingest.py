"""Install the change-marking ingest pipeline and attach it to indices.

The pipeline (``mappings/<engine>/change-pipeline.json``) marks the expansion
object of each document that passes through it as ``changed``.
``worker.expansion.changes`` describes what the daemon does with such
documents. What passes through an index's pipelines, checked against
OpenSearch 2.19.6: index requests, single and bulk, and the single-document
``_update`` API. Bulk ``update`` actions, d2q's own writes among them, do not.
"""

from __future__ import annotations

import copy
import json
import logging
from typing import Any

from worker.cluster.engine import MAPPINGS_DIR, Engine
from worker.errors import ClusterError
from worker.expansion.changes import WRITE_MARK

logger = logging.getLogger(__name__)

PIPELINE_FILE = "change-pipeline.json"
PIPELINE_SETTINGS = ("final_pipeline", "default_pipeline")


def change_pipeline_body(engine: Engine, field: str) -> dict[str, Any]:
    """Return the change-marking pipeline with ``field`` as the expansion field."""
    path = MAPPINGS_DIR / engine.name / PIPELINE_FILE
    if not path.is_file():
        path = MAPPINGS_DIR / "opensearch" / PIPELINE_FILE
    body: dict[str, Any] = copy.deepcopy(json.loads(path.read_text()))
    for processor in body["processors"]:
        script = processor.get("script")
        if script is not None:
            script["params"] = {"field": field, "mark": WRITE_MARK}
    return body


def index_settings(engine: Engine, index: str) -> dict[str, dict[str, Any]]:
    """Return the ``index`` settings of each concrete index behind ``index``.

    ``index`` may be a name, a comma-separated list, a pattern or an alias.
    """
    response = engine.client.indices.get_settings(index=index)
    return {
        name: entry.get("settings", {}).get("index", {})
        for name, entry in dict(response).items()
    }


def _calls_pipeline(engine: Engine, name: str, pipeline: str) -> bool:
    """Tell whether pipeline ``name`` is ``pipeline`` or runs it as a processor."""
    if name == pipeline:
        return True
    if name in ("", "_none"):
        return False
    try:
        response = engine.client.ingest.get_pipeline(id=name)
    except Exception as error:
        if _status_of(error) == 404:
            return False
        raise
    definition = dict(response).get(name) or {}
    return any(
        processor.get("pipeline", {}).get("name") == pipeline
        for processor in definition.get("processors", [])
    )


def _status_of(error: BaseException) -> int | None:
    """Return the HTTP status of an error from either client library."""
    status = getattr(error, "status_code", None)
    if status is None:
        status = getattr(getattr(error, "meta", None), "status", None)
    return status if isinstance(status, int) else None


def attached_indices(engine: Engine, index: str, pipeline: str) -> list[str]:
    """Return the concrete indices whose writes pass through ``pipeline``.

    An index qualifies when its default or final pipeline is ``pipeline`` or
    calls it with a top-level ``pipeline`` processor.
    """
    return sorted(
        name
        for name, settings in index_settings(engine, index).items()
        if any(
            _calls_pipeline(engine, str(settings.get(key, "")), pipeline)
            for key in PIPELINE_SETTINGS
        )
    )


def install_change_pipeline(
    engine: Engine, index: str, field: str, pipeline: str
) -> list[str]:
    """Store the change-marking pipeline and make it the final pipeline of ``index``.

    Returns the concrete indices it is attached to.

    Raises:
        ClusterError: the cluster runs no painless inline scripts, which the
            pipeline's script processor needs, or an index already has another
            final pipeline. Its owner can call ours from it with a
            ``pipeline`` processor.
    """
    if getattr(engine, "write_method", "script") != "script":
        raise ClusterError(
            "the change pipeline needs painless inline scripts, which this cluster "
            "does not run; enable them (script.allowed_types: inline) or leave the "
            "pipeline out"
        )
    engine.client.ingest.put_pipeline(
        id=pipeline, body=change_pipeline_body(engine, field)
    )
    settings = index_settings(engine, index)
    other_pipelines = {
        name: values["final_pipeline"]
        for name, values in settings.items()
        if values.get("final_pipeline") not in (None, "_none", pipeline)
    }
    if other_pipelines:
        listed = ", ".join(
            f"{name} ({value})" for name, value in sorted(other_pipelines.items())
        )
        raise ClusterError(
            f"these indices already have another final pipeline: {listed}; add "
            f'{{"pipeline": {{"name": "{pipeline}"}}}} as the last processor of '
            f"that pipeline instead"
        )
    names = sorted(settings)
    for name in names:
        engine.client.indices.put_settings(
            index=name, body={"index": {"final_pipeline": pipeline}}
        )
        logger.info("index=%s final pipeline set to %s", name, pipeline)
    return names
