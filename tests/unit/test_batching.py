"""Token-budget batching and the out-of-memory back-off, without a model."""

from __future__ import annotations

import pytest

from worker.model.batching import BatchShape, TokenBudget, batch_cost, plan_batches

SHAPE = BatchShape(queries_per_paragraph=2, max_new_tokens=10, max_batch_size=100)


def test_batches_group_similar_lengths():
    lengths = [5, 100, 6, 98, 7, 99]

    batches = plan_batches(lengths, SHAPE, max_batch_tokens=batch_cost(100, 3, SHAPE))

    assert [sorted(lengths[i] for i in batch) for batch in batches] == [
        [98, 99, 100],
        [5, 6, 7],
    ]


def test_batches_stay_within_budget():
    lengths = [30, 10, 50, 20, 40, 60, 25, 35]
    budget = 500

    batches = plan_batches(lengths, SHAPE, budget)

    for batch in batches:
        longest = max(lengths[i] for i in batch)
        assert batch_cost(longest, len(batch), SHAPE) <= budget
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))


def test_oversized_paragraph_gets_own_batch():
    lengths = [1000, 5, 5]

    batches = plan_batches(lengths, SHAPE, max_batch_tokens=100)

    assert batches[0] == [0]
    assert all(0 not in batch for batch in batches[1:])


def test_batch_size_caps_paragraphs():
    shape = BatchShape(queries_per_paragraph=1, max_new_tokens=1, max_batch_size=3)

    batches = plan_batches([5] * 7, shape, max_batch_tokens=10**9)

    assert [len(batch) for batch in batches] == [3, 3, 1]


def _echo(batch: list[list[int]]) -> list[list[str]]:
    return [[f"q{ids[0]}"] for ids in batch]


def test_out_of_memory_halves_batch():
    sizes: list[int] = []

    def generate(batch: list[list[int]]) -> list[list[str]]:
        sizes.append(len(batch))
        if len(batch) > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return _echo(batch)

    budget = TokenBudget(SHAPE, max_batch_tokens=10**9)
    token_ids = [[number] * (10 + number) for number in range(8)]

    results = budget.run(token_ids, generate)

    assert results == [[f"q{number}"] for number in range(8)]
    assert sizes[0] == 8
    assert sizes[1] == 4
    assert max(sizes[2:]) <= 2
    assert budget.max_batch_tokens < 10**9


def test_out_of_memory_at_one_paragraph_raises():
    def generate(batch: list[list[int]]) -> list[list[str]]:
        raise RuntimeError("out of memory")

    budget = TokenBudget(SHAPE, max_batch_tokens=10**9)

    with pytest.raises(RuntimeError, match="out of memory"):
        budget.run([[1, 2, 3]], generate)


def test_other_errors_are_not_retried():
    calls: list[int] = []

    def generate(batch: list[list[int]]) -> list[list[str]]:
        calls.append(len(batch))
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        TokenBudget(SHAPE, max_batch_tokens=10**9).run([[1], [2], [3]], generate)
    assert calls == [3]


def test_empty_input_gives_empty_results():
    assert TokenBudget(SHAPE, 100).run([], _echo) == []
