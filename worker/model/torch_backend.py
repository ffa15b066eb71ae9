"""The transformers + PyTorch generator: the default backend."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, LogitsProcessorList
from transformers.utils import logging as transformers_logging

from worker.errors import ModelLoadError
from worker.model.base import GenerationConfig
from worker.model.batching import BatchShape, TokenBudget
from worker.model.guards import NonFiniteScoresGuard
from worker.model.vocabulary import read_output_vocabulary, trim_output_layer

logger = logging.getLogger(__name__)
# Progress bars of weight loading would interleave with the worker's logs.
transformers_logging.disable_progress_bar()


def resolve_device(device: str) -> torch.device:
    """Map ``auto`` to CUDA when a GPU is visible, else to the CPU."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(
            "device 'cuda' requested but no CUDA GPU is visible; use --device cpu"
        )
    return torch.device(device)


def load_model_and_tokenizer(model: str, device: torch.device) -> tuple[Any, Any]:
    """Load a seq2seq model and its tokenizer from a hub name or a local folder.

    mT5 overflows to NaN in fp16, so the model runs in bf16 on a GPU and in
    fp32 on the CPU.
    """
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    source = "local folder" if Path(model).is_dir() else "model hub"
    try:
        tokenizer = AutoTokenizer.from_pretrained(model)
        network = AutoModelForSeq2SeqLM.from_pretrained(model, dtype=dtype)
    except (OSError, ValueError) as error:
        raise ModelLoadError(
            f"could not load model {model!r} from the {source}: {error}. Pass a "
            f"local folder with --model, or make the model hub reachable"
        ) from error
    network.to(device)
    network.eval()
    return network, tokenizer


class TorchGenerator:
    """Generates queries with ``model.generate``, many paragraphs per call.

    Paragraphs are tokenized together once, then grouped into generate calls by
    :class:`TokenBudget`. With an output vocabulary the output layer is trimmed
    to those pieces, and generated positions are mapped back to token ids.
    """

    def __init__(
        self,
        config: GenerationConfig,
        model: Any,
        tokenizer: Any,
        device: torch.device,
        output_ids: torch.Tensor | None = None,
    ) -> None:
        self.config = config
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.output_ids = output_ids
        self._strip_tokens = [
            token for token in (tokenizer.pad_token, tokenizer.eos_token) if token
        ]
        shape = BatchShape(
            config.queries_per_paragraph, config.max_new_tokens, config.batch_size
        )
        self.budget = TokenBudget(shape, config.max_batch_tokens, self._release_memory)

    @classmethod
    def load(cls, config: GenerationConfig) -> TorchGenerator:
        device = resolve_device(config.device)
        if config.seed is not None:
            torch.manual_seed(config.seed)
        model, tokenizer = load_model_and_tokenizer(config.model, device)
        output_ids = None
        if config.output_vocabulary:
            keep = read_output_vocabulary(config.output_vocabulary, tokenizer)
            output_ids = trim_output_layer(model, keep)
            logger.info(
                "output layer trimmed to %d of %d pieces", len(keep), len(tokenizer)
            )
        logger.info("loaded %s on %s (%s)", config.model, device, model.dtype)
        return cls(config, model, tokenizer, device, output_ids)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=True)["input_ids"])

    def generate(self, paragraphs: Sequence[str]) -> list[list[str]]:
        """Generate queries for each paragraph, batched by the token budget.

        An out-of-memory error halves the batch and retries it. At one
        paragraph per batch the error is raised.
        """
        if not paragraphs:
            return []
        token_ids = self.tokenizer(
            list(paragraphs),
            truncation=True,
            max_length=self.config.max_input_tokens,
        )["input_ids"]
        return self.budget.run(token_ids, self._generate_batch)

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Return the length-normalised log-likelihood of each (paragraph, query) pair."""
        from worker.model.scoring import mean_log_likelihood

        return mean_log_likelihood(
            self.model,
            self.tokenizer,
            self.device,
            pairs,
            self.config.max_input_tokens,
            self.config.batch_size,
            self.output_ids,
        )

    def _release_memory(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _generation_arguments(self) -> dict[str, Any]:
        config = self.config
        arguments: dict[str, Any] = {
            "max_new_tokens": config.max_new_tokens,
            "min_new_tokens": config.min_new_tokens,
            "num_return_sequences": config.queries_per_paragraph,
        }
        if config.decoding == "beam":
            arguments.update(do_sample=False, num_beams=config.queries_per_paragraph)
        else:
            arguments.update(do_sample=True, top_k=config.top_k)
        return arguments

    def _pad(self, token_ids: list[list[int]]) -> dict[str, torch.Tensor]:
        """Right-pad a batch and build its attention mask."""
        longest = max(len(ids) for ids in token_ids)
        pad_id = self.tokenizer.pad_token_id or 0
        input_ids = torch.full((len(token_ids), longest), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(token_ids), longest), dtype=torch.long)
        for row, ids in enumerate(token_ids):
            input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, : len(ids)] = 1
        return {
            "input_ids": input_ids.to(self.device),
            "attention_mask": attention_mask.to(self.device),
        }

    def _generate_batch(self, token_ids: list[list[int]]) -> list[list[str]]:
        guard = NonFiniteScoresGuard(self.tokenizer.eos_token_id)
        with torch.inference_mode():
            output = self.model.generate(
                **self._pad(token_ids),
                **self._generation_arguments(),
                logits_processor=LogitsProcessorList([guard]),
            )
            if self.output_ids is not None:
                output = self.output_ids[output]
        decoded = self.tokenizer.batch_decode(output.cpu(), skip_special_tokens=False)
        per_text = self.config.queries_per_paragraph
        queries = [self._strip_special(text) for text in decoded]
        broken = guard.flagged_inputs(per_text)
        if broken:
            logger.warning(
                "the model produced NaN or infinite scores for %d of %d paragraphs; "
                "their queries are dropped",
                len(broken),
                len(token_ids),
            )
        return [
            [] if i in broken else queries[i * per_text : (i + 1) * per_text]
            for i in range(len(token_ids))
        ]

    def _strip_special(self, text: str) -> str:
        # Sentinels stay in the text so query clean-up can drop those queries.
        for token in self._strip_tokens:
            text = text.replace(token, " ")
        return " ".join(text.split())
