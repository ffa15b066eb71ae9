"""One settings object: flags over ``D2Q_*`` environment variables over a TOML file.

Settings are read and validated once, at start-up. Every invalid value is
reported at once, in one :class:`SettingsError`. Lower layers receive plain
values from the object and never read the environment themselves.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import sys
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_origin
from urllib.parse import urlsplit

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from worker.errors import SettingsError

DEFAULT_URL = "http://localhost:9200"
DEFAULT_MODEL = "doc2query/msmarco-spanish-mt5-base-v1"
ENV_PREFIX = "D2Q_"

Decoding = Literal["sampling", "beam"]
Device = Literal["auto", "cpu", "cuda"]
Engine = Literal["auto", "opensearch", "elasticsearch"]
Backend = Literal["torch", "ctranslate2"]
ComputeType = Literal[
    "auto",
    "int8",
    "int8_float32",
    "int8_float16",
    "int8_bfloat16",
    "float16",
    "bfloat16",
    "float32",
]
LogFormat = Literal["text", "json"]
# "es" signs requests for Amazon OpenSearch Service domains, "aoss" for
# OpenSearch Serverless collections.
AwsService = Literal["es", "aoss"]

QUERIES_PER_PARAGRAPH_RANGE = (1, 80)
# The default of index.max_slices_per_pit (OpenSearch) and
# index.max_slices_per_scroll (Elasticsearch).
MAX_SLICES = 1024
DEFAULT_CHANGE_PIPELINE = "d2q-mark-changed"
# Weights of the combined search query, tuned on squad-es-dev (see
# docs/EVALUATION.md). worker.search and the search template use the same.
DEFAULT_TEXT_WEIGHT = 1.0
DEFAULT_QUERIES_WEIGHT = 0.5
DEFAULT_TERMS_WEIGHT = 1.0
GENERATOR_SCORER = "generator-log-likelihood"


@dataclasses.dataclass
class Settings:
    """Every setting of d2q with its default. Field names are the option names."""

    # cluster
    url: str = DEFAULT_URL
    engine: Engine = "auto"
    username: str | None = None
    password: str | None = None
    api_key: str | None = None
    ca_certs: str | None = None
    insecure: bool = False
    request_timeout: float = 60.0

    # index and expansion
    index: str | None = None
    fields: list[str] = dataclasses.field(default_factory=lambda: ["title", "text"])
    expansion_field: str = "doc2query"
    analyzer: str = "spanish"
    max_terms: int = 256
    page_size: int = 64
    pit_keep_alive: str = "10m"
    bulk_max_bytes: int = 5_000_000

    # model and generation
    model: str = DEFAULT_MODEL
    backend: Backend = "torch"
    device: Device = "auto"
    batch_size: int = 8
    queries_per_paragraph: int = 20
    decoding: Decoding = "sampling"
    top_k: int = 10
    max_input_tokens: int = 320
    max_new_tokens: int = 64
    min_new_tokens: int = 0
    seed: int | None = None
    # Bounds paragraphs x queries x (longest input + max_new_tokens) per call.
    max_batch_tokens: int = 65_536
    compute_type: ComputeType = "auto"
    output_vocabulary: str | None = None

    # run
    limit: int | None = None
    poll_seconds: float = 30.0
    retry_failed: bool = False
    progress: bool = True
    log_level: str = "INFO"
    log_format: LogFormat = "text"

    # fleet: slices, change detection and observability
    slice: str | None = None
    change_pipeline: str = DEFAULT_CHANGE_PIPELINE
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    log_repeat_seconds: float = 60.0

    # reliability: outages, shutdown, large input, AWS request signing
    outage_budget_seconds: float = 600.0
    shutdown_grace_seconds: float = 30.0
    max_text_chars: int = 200_000
    aws_region: str | None = None
    aws_service: AwsService = "es"

    # search, evaluation and query filtering
    text_weight: float = DEFAULT_TEXT_WEIGHT
    queries_weight: float = DEFAULT_QUERIES_WEIGHT
    terms_weight: float = DEFAULT_TERMS_WEIGHT
    keep_fraction: float = 1.0
    filter_model: str | None = None

    @property
    def slice_id_max(self) -> tuple[int, int] | None:
        """Return the slice as (id, max), or None when the worker reads everything."""
        if self.slice is None:
            return None
        parsed = parse_slice(self.slice)
        if parsed is None:
            raise ValueError(f"invalid slice {self.slice!r}")
        return parsed

    def generation_fingerprint_fields(self) -> dict[str, Any]:
        """Return the settings that change what an expansion contains."""
        fields: dict[str, Any] = {
            "queries_per_paragraph": self.queries_per_paragraph,
            "decoding": self.decoding,
            "top_k": self.top_k if self.decoding == "sampling" else None,
            "max_input_tokens": self.max_input_tokens,
            "max_new_tokens": self.max_new_tokens,
            "min_new_tokens": self.min_new_tokens,
            "fields": list(self.fields),
            "analyzer": self.analyzer,
            "max_terms": self.max_terms,
            "max_text_chars": self.max_text_chars,
        }
        # Added only when set, so fingerprints without it stay as they were.
        if self.output_vocabulary is not None:
            fields["output_vocabulary"] = _file_digest(self.output_vocabulary)
        # Added only when filtering, so unfiltered fingerprints stay as they were.
        if self.keep_fraction < 1:
            fields["query_filter"] = {
                "keep_fraction": self.keep_fraction,
                "scorer": self.filter_model or GENERATOR_SCORER,
            }
        return fields

    def redacted(self) -> dict[str, Any]:
        """Return the settings as a dict with secrets replaced, safe to log."""
        values = dataclasses.asdict(self)
        for secret in ("password", "api_key"):
            if values[secret] is not None:
                values[secret] = "***"
        return values


_FIELD_TYPES: dict[str, Any] = typing.get_type_hints(Settings)


def parse_slice(text: str) -> tuple[int, int] | None:
    """Parse ``I/N`` into (I, N); return None unless 0 <= I < N.

    Slice I of N selects a fixed share of the documents by their ``_id``, so N
    workers with slices 0/N to N-1/N cover an index once, without overlap.
    """
    head, separator, tail = text.partition("/")
    if not separator or not head.strip().isdigit() or not tail.strip().isdigit():
        return None
    slice_id, slice_max = int(head), int(tail)
    if slice_max < 1 or slice_id >= slice_max:
        return None
    return slice_id, slice_max


def _strip_optional(annotation: Any) -> tuple[Any, bool]:
    if get_origin(annotation) in (typing.Union, types.UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(members) == 1:
            return members[0], True
    return annotation, False


def _convert(name: str, raw: Any, problems: list[str]) -> Any:
    """Convert a raw value (a string from the environment, or a TOML value)."""
    annotation, optional = _strip_optional(_FIELD_TYPES[name])
    if optional and (raw is None or raw == ""):
        return None
    origin = get_origin(annotation)
    try:
        if origin is Literal:
            allowed = get_args(annotation)
            value = str(raw)
            if value not in allowed:
                choices = ", ".join(allowed)
                problems.append(f"{name}: {value!r} is not one of: {choices}")
                return None
            return value
        if origin is list:
            if isinstance(raw, str):
                return [item.strip() for item in raw.split(",") if item.strip()]
            return [str(item) for item in raw]
        if annotation is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if annotation in (int, float):
            if isinstance(raw, bool):
                raise ValueError(raw)
            return annotation(raw)
        return str(raw)
    except (TypeError, ValueError):
        kind = getattr(annotation, "__name__", str(annotation))
        problems.append(f"{name}: {raw!r} is not a valid {kind}")
        return None


def _read_config_file(path: Path, problems: list[str]) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        problems.append(f"config: file {str(path)!r} not found")
        return {}
    except tomllib.TOMLDecodeError as error:
        problems.append(f"config: {str(path)!r} is not valid TOML: {error}")
        return {}
    # Accept both a flat file and one with a [d2q] table.
    section = data.get("d2q", data)
    return dict(section) if isinstance(section, Mapping) else {}


def load_settings(
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: str | Path | None = None,
) -> Settings:
    """Build settings from flags over ``D2Q_*`` variables over a TOML file.

    Args:
        flags: values from the command line; None values count as not given.
        environ: the environment; ``D2Q_PAGE_SIZE`` sets ``page_size``.
        config_file: a TOML file, flat or with a ``[d2q]`` table. When None,
            ``D2Q_CONFIG`` names it if set.

    Raises:
        SettingsError: listing every unknown key and invalid value.
    """
    environ = environ if environ is not None else {}
    flags = flags or {}
    problems: list[str] = []
    names = set(_FIELD_TYPES)
    layered: dict[str, Any] = {}

    config_file = config_file or environ.get(f"{ENV_PREFIX}CONFIG") or None
    if config_file:
        for key, raw in _read_config_file(Path(config_file), problems).items():
            key = key.replace("-", "_")
            if key not in names:
                problems.append(f"config: unknown setting {key!r}")
                continue
            layered[key] = _convert(key, raw, problems)

    for variable, raw in environ.items():
        if not variable.startswith(ENV_PREFIX) or variable == f"{ENV_PREFIX}CONFIG":
            continue
        key = variable[len(ENV_PREFIX) :].lower()
        if key in names:
            layered[key] = _convert(key, raw, problems)

    for key, value in flags.items():
        if value is None:
            continue
        if key not in names:
            problems.append(f"unknown setting {key!r}")
            continue
        layered[key] = (
            value if not isinstance(value, str) else _convert(key, value, problems)
        )

    settings = Settings(**{k: v for k, v in layered.items() if v is not None})
    problems.extend(validate(settings))
    if problems:
        raise SettingsError(problems)
    return settings


def _file_digest(path: str) -> str:
    """Return the SHA-256 of a file's bytes, or "missing" when it cannot be read."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return "missing"


def validate(settings: Settings) -> list[str]:
    """Return one message per invalid setting; empty when all are valid."""
    problems: list[str] = []
    low, high = QUERIES_PER_PARAGRAPH_RANGE
    if not low <= settings.queries_per_paragraph <= high:
        problems.append(
            f"queries_per_paragraph: {settings.queries_per_paragraph} is outside "
            f"the allowed range {low}-{high}"
        )
    for name, low_bound in (
        ("batch_size", 1),
        ("max_batch_tokens", 1),
        ("page_size", 1),
        ("top_k", 1),
        ("max_terms", 1),
        ("max_input_tokens", 8),
        ("max_new_tokens", 1),
        ("min_new_tokens", 0),
        ("bulk_max_bytes", 10_000),
    ):
        value = getattr(settings, name)
        if value < low_bound:
            problems.append(f"{name}: {value} is below the minimum {low_bound}")
    if settings.page_size > 10_000:
        problems.append(f"page_size: {settings.page_size} is above the maximum 10000")
    if settings.min_new_tokens > settings.max_new_tokens:
        problems.append(
            f"min_new_tokens: {settings.min_new_tokens} is above max_new_tokens "
            f"{settings.max_new_tokens}"
        )
    if (
        settings.output_vocabulary is not None
        and not Path(settings.output_vocabulary).is_file()
    ):
        problems.append(
            f"output_vocabulary: file {settings.output_vocabulary!r} not found"
        )
    if settings.poll_seconds <= 0:
        problems.append(f"poll_seconds: {settings.poll_seconds} must be above 0")
    if settings.limit is not None and settings.limit < 1:
        problems.append(f"limit: {settings.limit} must be 1 or more")
    if not settings.url.startswith(("http://", "https://")):
        problems.append(f"url: {settings.url!r} must start with http:// or https://")
    if not settings.fields:
        problems.append("fields: at least one source field is needed")
    if not settings.expansion_field or "." in settings.expansion_field:
        problems.append(
            f"expansion_field: {settings.expansion_field!r} must be a non-empty "
            f"name without dots"
        )
    problems.extend(_validate_fleet(settings))
    problems.extend(_validate_reliability(settings))
    problems.extend(_validate_search(settings))
    if settings.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        problems.append(
            f"log_level: {settings.log_level!r} is not one of: DEBUG, INFO, WARNING, ERROR"
        )
    return problems


def _validate_fleet(settings: Settings) -> list[str]:
    """Check the slice, metrics and log settings."""
    problems: list[str] = []
    if settings.slice is not None:
        parsed = parse_slice(settings.slice)
        if parsed is None:
            problems.append(
                f"slice: {settings.slice!r} is not of the form I/N with 0 <= I < N, "
                f"for example 0/4"
            )
        elif parsed[1] > MAX_SLICES:
            problems.append(
                f"slice: {parsed[1]} slices is above the maximum {MAX_SLICES}; "
                f"run fewer workers or raise index.max_slices_per_pit"
            )
    if settings.metrics_port is not None and not 1 <= settings.metrics_port <= 65535:
        problems.append(f"metrics_port: {settings.metrics_port} is not a port 1-65535")
    if not settings.metrics_host.strip():
        problems.append("metrics_host: must be an address such as 127.0.0.1 or 0.0.0.0")
    if settings.log_repeat_seconds < 0:
        problems.append(
            f"log_repeat_seconds: {settings.log_repeat_seconds} must be 0 (no limit) "
            f"or more"
        )
    if not settings.index:
        return problems
    for name in settings.index.split(","):
        if not name.strip() or any(char in name for char in ' "\\/<>|?#'):
            problems.append(
                f"index: {name!r} is not a valid index name, pattern or alias; "
                f"separate several with commas"
            )
    return problems


def _validate_reliability(settings: Settings) -> list[str]:
    """Check the connection security, outage, shutdown and input size settings."""
    problems: list[str] = []
    if "@" in urlsplit(settings.url).netloc:
        # The URL shows up in errors and logs, so it must not carry the secret.
        problems.append(
            "url: must not contain credentials; set D2Q_USERNAME and D2Q_PASSWORD "
            "(or username and password in the config file) instead"
        )
    if settings.ca_certs is not None and not Path(settings.ca_certs).is_file():
        problems.append(f"ca_certs: file {settings.ca_certs!r} not found")
    if settings.password is not None and settings.username is None:
        problems.append("password: is set but username is not; set D2Q_USERNAME too")
    if settings.api_key is not None and settings.username is not None:
        problems.append(
            "api_key: set either api_key or username and password, not both"
        )
    if settings.aws_region is not None and (settings.username or settings.api_key):
        problems.append(
            "aws_region: AWS request signing replaces basic auth and API keys; "
            "unset username, password and api_key"
        )
    if settings.outage_budget_seconds < 0:
        problems.append(
            f"outage_budget_seconds: {settings.outage_budget_seconds} must be 0 or more"
        )
    if settings.shutdown_grace_seconds <= 0:
        problems.append(
            f"shutdown_grace_seconds: {settings.shutdown_grace_seconds} must be above 0"
        )
    if settings.max_text_chars < 1000:
        problems.append(
            f"max_text_chars: {settings.max_text_chars} is below the minimum 1000"
        )
    if settings.bulk_max_bytes > 100_000_000:
        problems.append(
            f"bulk_max_bytes: {settings.bulk_max_bytes} is above 100000000, the "
            f"default http.max_content_length of both engines"
        )
    return problems


def _validate_search(settings: Settings) -> list[str]:
    """Check the search weights and the query filter."""
    problems: list[str] = []
    weights = ("text_weight", "queries_weight", "terms_weight")
    for name in weights:
        value = getattr(settings, name)
        if not math.isfinite(value) or value < 0:
            problems.append(f"{name}: {value} must be a finite number, 0 or more")
    if all(getattr(settings, name) == 0 for name in weights):
        problems.append(
            "text_weight, queries_weight, terms_weight: at least one must be above 0"
        )
    if not 0 < settings.keep_fraction <= 1:
        problems.append(
            f"keep_fraction: {settings.keep_fraction} is outside (0, 1]; 0.7 keeps "
            f"each paragraph's best 70% of queries"
        )
    if settings.filter_model is not None and settings.keep_fraction >= 1:
        problems.append(
            "filter_model: is set but keep_fraction is 1, so nothing is filtered; "
            "set keep_fraction below 1 too"
        )
    return problems
