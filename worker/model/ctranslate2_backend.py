"""The CTranslate2 generator: int8 on the CPU, bf16 or int8 on a GPU.

The Hugging Face model is converted once into a cached folder, keyed by the
model files, the quantization and the output vocabulary. Sampling settings and
the output format are those of the torch backend.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from worker.errors import ModelLoadError
from worker.model.base import GenerationConfig
from worker.model.batching import BatchShape, TokenBudget
from worker.model.vocabulary import read_output_vocabulary, write_vocabulary_map

logger = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "d2q" / "ctranslate2"
COMPUTE_TYPES = (
    "auto",
    "int8",
    "int8_float32",
    "int8_float16",
    "int8_bfloat16",
    "float16",
    "bfloat16",
    "float32",
)


def _import_ctranslate2() -> Any:
    try:
        import ctranslate2
    except ImportError as error:
        raise ModelLoadError(
            "the ctranslate2 backend needs the ctranslate2 package; install it "
            "with: pip install 'd2q[ctranslate2]'"
        ) from error
    return ctranslate2


def resolve_device_and_compute_type(device: str, compute_type: str) -> tuple[str, str]:
    """Map ``auto`` to a device and to int8 on the CPU or bf16 on a GPU."""
    ctranslate2 = _import_ctranslate2()
    if device == "auto":
        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    if device == "cuda" and ctranslate2.get_cuda_device_count() == 0:
        raise ModelLoadError(
            "device 'cuda' requested but CTranslate2 sees no CUDA GPU; use --device cpu"
        )
    if compute_type == "auto":
        compute_type = "bfloat16" if device == "cuda" else "int8"
    supported = ctranslate2.get_supported_compute_types(device)
    if compute_type not in supported:
        choices = ", ".join(sorted(supported))
        raise ModelLoadError(
            f"compute type {compute_type!r} is not supported on {device}; choose "
            f"one of: {choices}"
        )
    return device, compute_type


def _model_key(model: str, quantization: str, vocabulary: str | None) -> str:
    digest = hashlib.sha256()
    digest.update(f"{model}\0{quantization}\0".encode())
    ctranslate2 = _import_ctranslate2()
    digest.update(ctranslate2.__version__.encode())
    folder = Path(model)
    if folder.is_dir():
        digest.update(str(folder.resolve()).encode())
        for path in sorted(folder.iterdir()):
            if path.is_file():
                stat = path.stat()
                digest.update(
                    f"{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()
                )
    if vocabulary is not None:
        digest.update(Path(vocabulary).read_bytes())
    slug = "".join(char if char.isalnum() else "-" for char in folder.name or model)
    return f"{slug}-{quantization}-{digest.hexdigest()[:12]}"


def convert_model(
    model: str,
    quantization: str,
    cache_dir: str | Path | None = None,
    output_pieces: Sequence[str] | None = None,
    vocabulary_file: str | None = None,
) -> Path:
    """Convert a Hugging Face model for CTranslate2 once; return the cached folder.

    The conversion writes into a temporary folder and renames it, so an
    interrupted conversion leaves no half-written model in the cache.
    """
    root = Path(cache_dir) if cache_dir else DEFAULT_CACHE_DIR
    target = root / _model_key(model, quantization, vocabulary_file)
    if (target / "model.bin").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    logger.info(
        "converting %s for CTranslate2 (%s) into %s", model, quantization, target
    )
    work = Path(tempfile.mkdtemp(prefix="convert-", dir=root))
    try:
        vmap = None
        if output_pieces is not None:
            vmap = str(work / "vmap.txt")
            write_vocabulary_map(vmap, output_pieces)
        converter = _converter(model)
        converter.convert(str(work / "model"), vmap=vmap, quantization=quantization)
        try:
            os.rename(work / "model", target)
        except OSError:
            if not (target / "model.bin").is_file():
                raise
            logger.info("another process converted %s first; using its folder", model)
    except (OSError, ValueError) as error:
        raise ModelLoadError(
            f"could not convert model {model!r} for CTranslate2: {error}"
        ) from error
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _converter(model: str) -> Any:
    """Return a converter that keeps the output layer's scale as transformers has it.

    transformers 5 reports ``tie_word_embeddings=True`` for every (m)T5 model,
    and CTranslate2 4.8 scales the decoder output by ``d_model ** -0.5`` when it
    reads True. transformers scales only T5 models whose ``scale_decoder_outputs``
    is set, and never mT5, so the flag is set from that before conversion.
    """
    _import_ctranslate2()
    from ctranslate2.converters import TransformersConverter

    class Converter(TransformersConverter):
        def load_model(
            self, model_class: Any, model_name_or_path: str, **kwargs: Any
        ) -> Any:
            loaded = super().load_model(model_class, model_name_or_path, **kwargs)
            scale = bool(getattr(loaded.config, "scale_decoder_outputs", False))
            loaded.config.tie_word_embeddings = scale
            return loaded

    return Converter(model)


def _cpu_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1


class CTranslate2Generator:
    """Generates queries with a CTranslate2 translator, batched by token budget."""

    def __init__(
        self, config: GenerationConfig, translator: Any, tokenizer: Any, use_vmap: bool
    ) -> None:
        self.config = config
        self.translator = translator
        self.tokenizer = tokenizer
        self.use_vmap = use_vmap
        self._strip_tokens = [
            token for token in (tokenizer.pad_token, tokenizer.eos_token) if token
        ]
        self._suppressed = self._suppressed_sequences(config.model)
        shape = BatchShape(
            config.queries_per_paragraph, config.max_new_tokens, config.batch_size
        )
        self.budget = TokenBudget(shape, config.max_batch_tokens)

    @classmethod
    def load(cls, config: GenerationConfig) -> CTranslate2Generator:
        from transformers import AutoTokenizer

        ctranslate2 = _import_ctranslate2()
        device, compute_type = resolve_device_and_compute_type(
            config.device, config.compute_type
        )
        try:
            tokenizer = AutoTokenizer.from_pretrained(config.model)
        except (OSError, ValueError) as error:
            raise ModelLoadError(
                f"could not load the tokenizer of {config.model!r}: {error}"
            ) from error
        pieces = None
        if config.output_vocabulary:
            ids = read_output_vocabulary(config.output_vocabulary, tokenizer)
            pieces = tokenizer.convert_ids_to_tokens(ids)
        folder = convert_model(
            config.model,
            compute_type,
            config.cache_dir,
            pieces,
            config.output_vocabulary,
        )
        if config.seed is not None:
            ctranslate2.set_random_seed(config.seed)
        threads = _cpu_threads() if device == "cpu" else 0
        translator = ctranslate2.Translator(
            str(folder), device=device, compute_type=compute_type, intra_threads=threads
        )
        logger.info(
            "loaded %s with CTranslate2 on %s (%s)", config.model, device, compute_type
        )
        return cls(config, translator, tokenizer, use_vmap=pieces is not None)

    def _suppressed_sequences(self, model: str) -> list[list[str]]:
        """Return the model's suppressed tokens as CTranslate2 token sequences."""
        from transformers import GenerationConfig as HFGenerationConfig

        try:
            suppressed = HFGenerationConfig.from_pretrained(model).suppress_tokens or []
        except OSError:
            suppressed = []
        return [[piece] for piece in self.tokenizer.convert_ids_to_tokens(suppressed)]

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=True)["input_ids"])

    def generate(self, paragraphs: Sequence[str]) -> list[list[str]]:
        """Generate queries for each paragraph, batched by the token budget."""
        if not paragraphs:
            return []
        token_ids = self.tokenizer(
            list(paragraphs), truncation=True, max_length=self.config.max_input_tokens
        )["input_ids"]
        return self.budget.run(token_ids, self._generate_batch)

    def _decoding_options(self) -> dict[str, Any]:
        config = self.config
        options: dict[str, Any] = {
            "num_hypotheses": config.queries_per_paragraph,
            "max_decoding_length": config.max_new_tokens,
            "min_decoding_length": config.min_new_tokens,
            "max_input_length": 0,
            "disable_unk": True,
            "use_vmap": self.use_vmap,
        }
        if self._suppressed:
            options["suppress_sequences"] = self._suppressed
        if config.decoding == "beam":
            options.update(beam_size=config.queries_per_paragraph)
        else:
            options.update(beam_size=1, sampling_topk=config.top_k)
        return options

    def _generate_batch(self, token_ids: list[list[int]]) -> list[list[str]]:
        source = [self.tokenizer.convert_ids_to_tokens(ids) for ids in token_ids]
        results = self.translator.translate_batch(source, **self._decoding_options())
        queries: list[list[str]] = []
        for result in results:
            ids = [
                self.tokenizer.convert_tokens_to_ids(tokens)
                for tokens in result.hypotheses
            ]
            decoded = self.tokenizer.batch_decode(ids, skip_special_tokens=False)
            queries.append([self._strip_special(text) for text in decoded])
        return queries

    def _strip_special(self, text: str) -> str:
        # Sentinels stay in the text so query clean-up can drop those queries.
        for token in self._strip_tokens:
            text = text.replace(token, " ")
        return " ".join(text.split())
