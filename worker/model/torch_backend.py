"""The transformers + PyTorch generator: the default backend."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from worker.errors import ModelLoadError
from worker.model.base import GenerationConfig

logger = logging.getLogger(__name__)


def resolve_device(device: str) -> torch.device:
    """Map ``auto`` to CUDA when a GPU is visible, else to the CPU."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("device 'cuda' requested but no CUDA GPU is visible; use --device cpu")
    return torch.device(device)


def _is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


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
    """Generates queries with ``model.generate``, many paragraphs per call."""

    def __init__(self, config: GenerationConfig, model: Any, tokenizer: Any, device: torch.device) -> None:
        self.config = config
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self._strip_tokens = [
            token for token in (tokenizer.pad_token, tokenizer.eos_token) if token
        ]

    @classmethod
    def load(cls, config: GenerationConfig) -> TorchGenerator:
        device = resolve_device(config.device)
        if config.seed is not None:
            torch.manual_seed(config.seed)
        model, tokenizer = load_model_and_tokenizer(config.model, device)
        logger.info("loaded %s on %s (%s)", config.model, device, model.dtype)
        return cls(config, model, tokenizer, device)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=True)["input_ids"])

    def generate(self, paragraphs: Sequence[str]) -> list[list[str]]:
        """Generate queries for each paragraph, longest paragraphs batched together.

        An out-of-memory error halves the batch and retries it; at batch size 1
        the error is raised.
        """
        lengths = [len(text) for text in paragraphs]
        order = sorted(range(len(paragraphs)), key=lambda i: -lengths[i])
        results: list[list[str]] = [[] for _ in paragraphs]
        batch_size = self.config.batch_size
        start = 0
        while start < len(order):
            indices = order[start : start + batch_size]
            try:
                batch = self._generate_batch([paragraphs[i] for i in indices])
            except (RuntimeError, torch.cuda.OutOfMemoryError) as error:
                if not _is_out_of_memory(error) or batch_size == 1:
                    raise
                batch_size = max(1, batch_size // 2)
                logger.warning("out of memory; retrying with batch size %d", batch_size)
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            for index, queries in zip(indices, batch):
                results[index] = queries
            start += len(indices)
        return results

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

    def _generate_batch(self, texts: list[str]) -> list[list[str]]:
        encoded = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.config.max_input_tokens,
            return_tensors="pt",
        ).to(self.device)
        with torch.inference_mode():
            output = self.model.generate(**encoded, **self._generation_arguments())
        decoded = self.tokenizer.batch_decode(output.cpu(), skip_special_tokens=False)
        per_text = self.config.queries_per_paragraph
        queries = [self._strip_special(text) for text in decoded]
        return [queries[i * per_text : (i + 1) * per_text] for i in range(len(texts))]

    def _strip_special(self, text: str) -> str:
        # Sentinels stay in the text so query clean-up can drop those queries.
        for token in self._strip_tokens:
            text = text.replace(token, " ")
        return " ".join(text.split())
