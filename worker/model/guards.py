"""Keep NaN and infinite scores of a broken model out of the generated queries."""

from __future__ import annotations

import torch


class NonFiniteScoresGuard:
    """A logits processor that ends every sequence whose scores are not finite.

    A row with a NaN or +inf score, or with every score at -inf, would make
    sampling raise or emit garbage tokens. The guard records the row, and
    leaves only the end-of-sequence token possible in it, so generation
    finishes for the rest of the batch. ``-inf`` alone is a normal mask
    (top-k, suppressed tokens) and is left as it is.
    """

    def __init__(self, eos_token_id: int) -> None:
        self.eos_token_id = eos_token_id
        self.flagged_rows: set[int] = set()

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        invalid = torch.isnan(scores).any(dim=-1) | torch.isposinf(scores).any(dim=-1)
        invalid |= torch.isneginf(scores).all(dim=-1)
        if not bool(invalid.any()):
            return scores
        rows = invalid.nonzero().flatten().tolist()
        self.flagged_rows.update(rows)
        fixed = scores.clone()
        fixed[rows] = float("-inf")
        fixed[rows, self.eos_token_id] = 0.0
        return fixed

    def flagged_inputs(self, rows_per_input: int) -> set[int]:
        """Return the inputs of the batch that had a flagged row.

        Sampling with ``num_return_sequences`` and beam search with
        ``num_beams`` both lay out ``rows_per_input`` consecutive rows per
        input.
        """
        return {row // rows_per_input for row in self.flagged_rows}
