"""Group paragraphs into generate calls by a token budget, and back off on OOM.

One generate call decodes ``paragraphs x queries_per_paragraph`` sequences.
Each sequence attends over its paragraph's padded input and its own output, so
a call costs about::

    paragraphs * queries_per_paragraph * (longest_input + max_new_tokens)

token positions. That product, not the paragraph count, is what the budget
bounds. Paragraphs are sorted by length first, so a call contains paragraphs of
similar length and little padding.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

logger = logging.getLogger(__name__)

DEFAULT_MAX_BATCH_TOKENS = 65_536

Batch = list[int]
BatchGenerator = Callable[[list[list[int]]], list[list[str]]]


@dataclass(frozen=True)
class BatchShape:
    """The generation sizes that decide what a batch costs."""

    queries_per_paragraph: int
    max_new_tokens: int
    max_batch_size: int


def batch_cost(longest_input: int, paragraphs: int, shape: BatchShape) -> int:
    """Return the token positions one generate call of this size decodes over."""
    per_sequence = longest_input + shape.max_new_tokens
    return paragraphs * shape.queries_per_paragraph * per_sequence


def plan_batches(
    lengths: Sequence[int], shape: BatchShape, max_batch_tokens: int
) -> list[Batch]:
    """Split paragraph positions into batches, longest paragraphs first.

    Every batch stays within ``max_batch_tokens`` and ``shape.max_batch_size``
    paragraphs, except a single paragraph that alone exceeds the budget: it
    gets a batch of its own.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[Batch] = []
    current: Batch = []
    for position in order:
        if current:
            # The first paragraph of a batch is its longest, because of the sort.
            longest = lengths[current[0]]
            cost = batch_cost(longest, len(current) + 1, shape)
            if cost > max_batch_tokens or len(current) >= shape.max_batch_size:
                batches.append(current)
                current = []
        current.append(position)
    if current:
        batches.append(current)
    return batches


def is_out_of_memory(error: BaseException) -> bool:
    """Return True for the out-of-memory errors of PyTorch and CTranslate2."""
    if type(error).__name__ == "OutOfMemoryError":
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


class TokenBudget:
    """Runs generate calls within a token budget that halves on out-of-memory.

    The halved budget stays in force for later calls, so a backend that ran out
    of memory once does not run out again on every batch.
    """

    def __init__(
        self,
        shape: BatchShape,
        max_batch_tokens: int,
        after_out_of_memory: Callable[[], None] | None = None,
    ) -> None:
        self.shape = shape
        self.max_batch_tokens = max_batch_tokens
        self.after_out_of_memory = after_out_of_memory

    def run(
        self, token_ids: Sequence[list[int]], generate_batch: BatchGenerator
    ) -> list[list[str]]:
        """Generate for every paragraph, in batches; return results in input order.

        Raises:
            RuntimeError: an out-of-memory error on a batch of one paragraph,
                or any other error of ``generate_batch``.
        """
        lengths = [len(ids) for ids in token_ids]
        results: list[list[str] | None] = [None] * len(token_ids)
        queue = plan_batches(lengths, self.shape, self.max_batch_tokens)
        while queue:
            batch = queue.pop(0)
            try:
                generated = generate_batch([token_ids[i] for i in batch])
            except (RuntimeError, MemoryError) as error:
                if not is_out_of_memory(error) or len(batch) == 1:
                    raise
                queue = self._halve(batch, queue, lengths)
                continue
            for position, queries in zip(batch, generated, strict=True):
                results[position] = queries
        return [queries if queries is not None else [] for queries in results]

    def _halve(
        self, failed: Batch, queue: list[Batch], lengths: list[int]
    ) -> list[Batch]:
        longest = lengths[failed[0]]
        cost = batch_cost(longest, len(failed), self.shape)
        self.max_batch_tokens = max(1, min(self.max_batch_tokens, cost) // 2)
        logger.warning(
            "out of memory on a batch of %d paragraphs; halving it and the token "
            "budget to %d",
            len(failed),
            self.max_batch_tokens,
        )
        if self.after_out_of_memory is not None:
            self.after_out_of_memory()
        middle = len(failed) // 2
        remaining = [position for batch in queue for position in batch]
        replanned = plan_batches(
            [lengths[i] for i in remaining], self.shape, self.max_batch_tokens
        )
        return [failed[:middle], failed[middle:]] + [
            [remaining[i] for i in batch] for batch in replanned
        ]
