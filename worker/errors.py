"""Exceptions raised by d2q. Each one carries the values a caller needs to act."""

from __future__ import annotations


class D2QError(Exception):
    """Base class of every error d2q raises on purpose."""


class SettingsError(D2QError):
    """One or more settings are invalid; ``problems`` lists every one of them."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"invalid settings ({len(self.problems)}):\n{lines}")


class LocalClusterError(D2QError):
    """The local development server could not be fetched, started or stopped."""


class ClusterError(D2QError):
    """The cluster rejected a request that d2q cannot retry or work around."""


class MappingConflictError(ClusterError):
    """The index already maps a field of the expansion object with another type."""

    def __init__(self, index: str, field: str, current: str, expected: str) -> None:
        self.index = index
        self.field = field
        self.current = current
        self.expected = expected
        super().__init__(
            f"index {index!r} maps {field!r} as {current!r}, but d2q needs "
            f"{expected!r}; reindex into a new index with the d2q mapping, or pick "
            f"another expansion field name with --expansion-field"
        )


class ModelLoadError(D2QError):
    """The model or its tokenizer could not be loaded."""


class SearchError(D2QError):
    """A search or an evaluation could not run, for example on a blank query."""


class InputFileError(D2QError):
    """An input file (queries, qrels, imported queries) is missing or unreadable."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class PartialResultsError(ClusterError):
    """A search responded with failed shards, so its page may lack documents.

    The reader raises it instead of yielding an incomplete page. It counts as
    a passing outage: the pass is retried within the outage budget.
    """

    def __init__(self, index: str, failed_shards: int, reason: str) -> None:
        self.index = index
        self.failed_shards = failed_shards
        self.reason = reason
        super().__init__(
            f"search on {index!r} failed on {failed_shards} shard(s): {reason}"
        )


class OutageError(ClusterError):
    """The cluster stayed unavailable for longer than the outage budget."""

    def __init__(self, index: str, seconds: float, budget: float, last: str) -> None:
        self.index = index
        self.seconds = seconds
        self.budget = budget
        self.last = last
        super().__init__(
            f"index {index!r}: the cluster was unavailable for {seconds:.0f} s, "
            f"past the outage budget of {budget:.0f} s (last error: {last}); "
            f"run the backfill again once the cluster responds, or raise "
            f"--outage-budget-seconds"
        )
