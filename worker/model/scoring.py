"""Score (paragraph, query) pairs, so that query filtering can keep the best queries.

Two scorers exist. The generator's own length-normalised log-likelihood of
the query given the paragraph needs no extra model. A Hugging Face
cross-encoder (a sequence classification model over the query and the
paragraph) is the alternative that Doc2Query-- (Gospodinov, MacAvaney and
Macdonald, ECIR 2023) used to filter hallucinated queries.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import torch

from worker.errors import ModelLoadError

logger = logging.getLogger(__name__)

Pair = tuple[str, str]
"""A (paragraph, query) pair."""

# Query tokens that a trimmed output layer cannot produce get this
# log-probability, far below any token it can produce.
MISSING_TOKEN_LOG_PROB = -30.0
MAX_QUERY_TOKENS = 64
CROSS_ENCODER_MAX_TOKENS = 512


class QueryScorer(Protocol):
    """Scores pairs; a higher score means a better query for the paragraph."""

    def score(self, pairs: Sequence[Pair]) -> list[float]:
        """Return one score per (paragraph, query) pair, in order."""
        ...


def _label_positions(labels: torch.Tensor, output_ids: torch.Tensor) -> torch.Tensor:
    """Map token ids to positions in a trimmed output layer; -1 where absent."""
    positions = torch.searchsorted(output_ids, labels)
    positions = positions.clamp(max=len(output_ids) - 1)
    return torch.where(
        output_ids[positions] == labels, positions, torch.full_like(labels, -1)
    )


def mean_log_likelihood(
    model: Any,
    tokenizer: Any,
    device: torch.device,
    pairs: Sequence[Pair],
    max_input_tokens: int,
    batch_size: int,
    output_ids: torch.Tensor | None = None,
) -> list[float]:
    """Return the mean log-probability per query token given the paragraph.

    The end-of-sequence token counts as a query token, as generation emits it.
    Dividing by the query's length keeps short queries from winning only
    because they have fewer tokens to pay for.

    Args:
        model: a seq2seq model (T5 family) in evaluation mode.
        tokenizer: its tokenizer.
        device: where the model runs.
        pairs: (paragraph, query) pairs.
        max_input_tokens: paragraphs are cut to this many tokens, as in generation.
        batch_size: pairs per forward pass.
        output_ids: the token ids of a trimmed output layer, sorted, or None.
    """
    scores: list[float] = []
    for start in range(0, len(pairs), batch_size):
        batch = pairs[start : start + batch_size]
        inputs = tokenizer(
            [paragraph for paragraph, _ in batch],
            truncation=True,
            max_length=max_input_tokens,
            padding=True,
            return_tensors="pt",
        ).to(device)
        targets = tokenizer(
            [query for _, query in batch],
            truncation=True,
            max_length=MAX_QUERY_TOKENS,
            padding=True,
            return_tensors="pt",
        ).to(device)
        labels = targets["input_ids"]
        with torch.inference_mode():
            decoder_input_ids = model.prepare_decoder_input_ids_from_labels(
                labels=labels
            )
            logits = model(**inputs, decoder_input_ids=decoder_input_ids).logits
            log_probs = torch.log_softmax(logits.float(), dim=-1)
            positions = (
                labels if output_ids is None else _label_positions(labels, output_ids)
            )
            token_log_probs = log_probs.gather(-1, positions.clamp(min=0).unsqueeze(-1))
            token_log_probs = token_log_probs.squeeze(-1)
            missing = positions < 0
            token_log_probs = token_log_probs.masked_fill(
                missing, MISSING_TOKEN_LOG_PROB
            )
            mask = targets["attention_mask"].to(token_log_probs.dtype)
            means = (token_log_probs * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
        scores.extend(float(value) for value in means.cpu())
    return scores


class CrossEncoderScorer:
    """Scores pairs with a Hugging Face cross-encoder (sequence classification)."""

    def __init__(
        self,
        name: str,
        model: Any,
        tokenizer: Any,
        device: torch.device,
        batch_size: int,
    ) -> None:
        self.name = name
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.batch_size = batch_size

    @classmethod
    def load(
        cls, name: str, device: torch.device, batch_size: int = 32
    ) -> CrossEncoderScorer:
        """Load the cross-encoder ``name`` from the hub or a local folder.

        Raises:
            ModelLoadError: the model or its tokenizer cannot be loaded.
        """
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        source = "local folder" if Path(name).is_dir() else "model hub"
        try:
            tokenizer = AutoTokenizer.from_pretrained(name)
            model = AutoModelForSequenceClassification.from_pretrained(name)
        except (OSError, ValueError) as error:
            raise ModelLoadError(
                f"could not load the cross-encoder {name!r} from the {source}: {error}. "
                f"Pass a local folder with --filter-model"
            ) from error
        model.to(device)
        model.eval()
        logger.info("loaded cross-encoder %s on %s", name, device)
        return cls(name, model, tokenizer, device, batch_size)

    def score(self, pairs: Sequence[Pair]) -> list[float]:
        """Return the relevance logit of each (paragraph, query) pair.

        A model with one output gives its logit. A model with several gives
        the log-probability of its last label, which is "relevant" in the
        two-label cross-encoders trained on MS MARCO.
        """
        scores: list[float] = []
        for start in range(0, len(pairs), self.batch_size):
            batch = pairs[start : start + self.batch_size]
            encoded = self.tokenizer(
                [query for _, query in batch],
                [paragraph for paragraph, _ in batch],
                truncation="only_second",
                max_length=CROSS_ENCODER_MAX_TOKENS,
                padding=True,
                return_tensors="pt",
            ).to(self.device)
            with torch.inference_mode():
                logits = self.model(**encoded).logits.float()
            if logits.shape[-1] == 1:
                values = logits[:, 0]
            else:
                values = torch.log_softmax(logits, dim=-1)[:, -1]
            scores.extend(float(value) for value in values.cpu())
        return scores
