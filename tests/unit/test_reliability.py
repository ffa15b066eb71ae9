"""Outage budget, stop signals, expired points in time, guards: no server needed."""

from __future__ import annotations

import signal
import threading

import pytest
import torch
from opensearchpy.exceptions import NotFoundError

from worker.cluster.reader import PointInTimeExpired, _check_shards, is_expired_pit
from worker.errors import OutageError, PartialResultsError
from worker.model.guards import NonFiniteScoresGuard
from worker.outage import OutageBudget
from worker.page import previous_attempts, truncate_text
from worker.settings import load_settings
from worker.shutdown import StopHandler


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _stopped_event() -> threading.Event:
    event = threading.Event()
    event.set()  # waits return at once
    return event


def test_outage_budget_raises_when_spent():
    clock = FakeClock()
    budget = OutageBudget("idx", 30.0, _stopped_event(), clock=clock)

    budget.wait(ConnectionError("refused"))
    clock.now += 29.0
    budget.wait(ConnectionError("refused"))
    clock.now += 1.0

    with pytest.raises(OutageError, match="past the outage budget of 30 s"):
        budget.wait(ConnectionError("refused"))


def test_outage_budget_restarts_after_recovery():
    clock = FakeClock()
    budget = OutageBudget("idx", 30.0, _stopped_event(), clock=clock)
    budget.wait(ConnectionError("refused"))
    clock.now += 29.0
    budget.recovered()
    clock.now += 29.0

    budget.wait(ConnectionError("refused"))

    assert budget.outages == 2
    assert budget.attempts == 1


def test_stop_handler_first_signal_requests_stop():
    stops: list[bool] = []
    exits: list[int] = []
    handler = StopHandler(lambda: stops.append(True), 60.0, exits.append)

    handler.handle(signal.SIGTERM)
    handler.cancel()

    assert stops == [True]
    assert exits == []


def test_stop_handler_second_signal_exits():
    exits: list[int] = []
    handler = StopHandler(lambda: None, 60.0, exits.append)

    handler.handle(signal.SIGTERM)
    handler.handle(signal.SIGINT)
    handler.cancel()

    assert exits == [128 + signal.SIGINT]


def test_stop_handler_exits_after_grace_period():
    exited = threading.Event()
    codes: list[int] = []

    def exit_now(code: int) -> None:
        codes.append(code)
        exited.set()

    handler = StopHandler(lambda: None, 0.01, exit_now)
    handler.handle(signal.SIGTERM)

    assert exited.wait(timeout=30)
    assert codes == [128 + signal.SIGTERM]


def test_expired_pit_recognised_from_404():
    body = {
        "error": {
            "root_cause": [
                {
                    "type": "search_context_missing_exception",
                    "reason": "No search context found for id [4]",
                }
            ],
            "type": "search_phase_execution_exception",
        },
        "status": 404,
    }

    assert is_expired_pit(NotFoundError(404, "search_phase_execution_exception", body))
    assert not is_expired_pit(NotFoundError(404, "index_not_found_exception", {}))


def test_failed_shards_raise_instead_of_partial_page():
    missing = {
        "_shards": {
            "failed": 1,
            "failures": [
                {
                    "reason": {
                        "type": "search_context_missing_exception",
                        "reason": "gone",
                    }
                }
            ],
        }
    }
    unavailable = {
        "_shards": {
            "failed": 2,
            "failures": [
                {
                    "reason": {
                        "type": "no_shard_available_action_exception",
                        "reason": "x",
                    }
                }
            ],
        }
    }

    with pytest.raises(PointInTimeExpired):
        _check_shards("idx", missing)
    with pytest.raises(PartialResultsError, match="failed on 2 shard"):
        _check_shards("idx", unavailable)
    _check_shards("idx", {"_shards": {"failed": 0}})


def test_truncate_text_cuts_at_space():
    assert truncate_text("uno dos tres cuatro", 12) == "uno dos"
    assert truncate_text("corto", 12) == "corto"
    assert len(truncate_text("x" * 50, 10)) == 10


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ({"doc2query": {"status": "failed", "attempts": 3}}, 3),
        ({"doc2query": {"status": "expanded", "attempts": 3}}, 0),
        ({"doc2query": {"status": "failed", "attempts": "muchos"}}, 0),
        ({"doc2query": {"status": "failed", "attempts": True}}, 0),
        ({"doc2query": {"status": "failed", "attempts": -2}}, 0),
        ({"doc2query": "no es un objeto"}, 0),
        ({"doc2query": [1, 2]}, 0),
        ({}, 0),
    ],
)
def test_previous_attempts_of_any_shape(source, expected):
    assert previous_attempts(source, "doc2query") == expected


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"url": "https://user:secret@host:9200"}, "url: must not contain credentials"),
        (
            {"ca_certs": "/no/such/file.pem"},
            "ca_certs: file '/no/such/file.pem' not found",
        ),
        (
            {"outage_budget_seconds": -1.0},
            "outage_budget_seconds: -1.0 must be 0 or more",
        ),
        (
            {"shutdown_grace_seconds": 0.0},
            "shutdown_grace_seconds: 0.0 must be above 0",
        ),
        ({"max_text_chars": 10}, "max_text_chars: 10 is below the minimum 1000"),
        (
            {"bulk_max_bytes": 200_000_000},
            "bulk_max_bytes: 200000000 is above 100000000",
        ),
        (
            {"aws_region": "eu-west-1", "username": "u"},
            "aws_region: AWS request signing",
        ),
    ],
)
def test_reliability_settings_validated(flags, message):
    with pytest.raises(Exception, match=message) as raised:
        load_settings({"index": "idx", **flags}, {})

    assert "secret" not in str(raised.value)


def test_guard_ends_rows_with_nan_scores():
    guard = NonFiniteScoresGuard(eos_token_id=1)
    scores = torch.zeros((4, 5))
    scores[1, 2] = float("nan")
    scores[2, 3] = float("inf")
    scores[3, :] = float("-inf")
    scores[0, 4] = float("-inf")  # a masked token is normal

    fixed = guard(torch.zeros((4, 1), dtype=torch.long), scores)

    assert guard.flagged_rows == {1, 2, 3}
    assert guard.flagged_inputs(rows_per_input=2) == {0, 1}
    assert torch.isfinite(fixed[1:, 1]).all()
    assert torch.isneginf(fixed[1:, [0, 2, 3, 4]]).all()
    assert torch.equal(fixed[0], scores[0])
