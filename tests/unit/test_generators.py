"""Both generator backends on the tiny model: format, vocabulary, back-off."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conftest import read_sample
from worker.errors import ModelLoadError
from worker.model import GenerationConfig, load_generator
from worker.model.vocabulary import (
    collect_output_vocabulary,
    read_output_vocabulary,
    write_output_vocabulary,
)

QUERIES = 4
PARAGRAPHS = [row["text"] for row in read_sample(5)]


def _config(
    model: Path, backend: str, cache: Path, **values: object
) -> GenerationConfig:
    settings: dict[str, object] = {
        "model": str(model),
        "backend": backend,
        "device": "cpu",
        "queries_per_paragraph": QUERIES,
        "min_new_tokens": 4,
        "max_new_tokens": 6,
        "seed": 3,
        "cache_dir": str(cache),
    }
    settings.update(values)
    return GenerationConfig(**settings)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def vocabulary_file(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Pieces the tiny tokenizer uses on two sample paragraphs."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    path = tmp_path_factory.mktemp("vocabulary") / "pieces.txt"
    write_output_vocabulary(path, collect_output_vocabulary(tokenizer, PARAGRAPHS[:2]))
    return path


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ctranslate2")


@pytest.mark.parametrize("backend", ["torch", "ctranslate2"])
def test_backend_returns_queries_per_paragraph(tiny_model, cache, backend):
    generator = load_generator(_config(tiny_model, backend, cache))

    results = generator.generate(PARAGRAPHS)

    assert len(results) == len(PARAGRAPHS)
    for queries in results:
        assert len(queries) == QUERIES
        for query in queries:
            assert isinstance(query, str)
            assert query == " ".join(query.split())
            assert "</s>" not in query
            assert "<pad>" not in query
            assert query


@pytest.mark.parametrize("backend", ["torch", "ctranslate2"])
def test_output_vocabulary_limits_pieces(tiny_model, cache, vocabulary_file, backend):
    config = _config(tiny_model, backend, cache, output_vocabulary=str(vocabulary_file))
    generator = load_generator(config)
    allowed = set(read_output_vocabulary(vocabulary_file, generator.tokenizer))

    results = generator.generate(PARAGRAPHS)

    used: set[int] = set()
    for queries in results:
        for query in queries:
            used.update(
                generator.tokenizer(query, add_special_tokens=False)["input_ids"]
            )
    assert used
    # Decoding and encoding again can split pieces differently, so compare
    # with the pieces the tokenizer produces for the allowed text itself.
    allowed_text = generator.tokenizer.convert_ids_to_tokens(sorted(allowed))
    encoded_allowed = set(
        generator.tokenizer(" ".join(allowed_text), add_special_tokens=False)[
            "input_ids"
        ]
    )
    assert used <= allowed | encoded_allowed


def test_trimmed_torch_model_emits_allowed_ids(tiny_model, cache, vocabulary_file):
    config = _config(tiny_model, "torch", cache, output_vocabulary=str(vocabulary_file))
    generator = load_generator(config)
    allowed = set(read_output_vocabulary(vocabulary_file, generator.tokenizer))
    inputs = generator.tokenizer(PARAGRAPHS[:2], return_tensors="pt", padding=True)

    with torch.inference_mode():
        positions = generator.model.generate(
            **inputs, do_sample=True, top_k=10, max_new_tokens=8, num_return_sequences=3
        )
    ids = generator.output_ids[positions]

    assert set(ids.flatten().tolist()) <= allowed


def test_ctranslate2_scores_match_torch(tiny_model, cache):
    from transformers import AutoModelForSeq2SeqLM

    generator = load_generator(
        _config(tiny_model, "ctranslate2", cache, compute_type="float32")
    )
    tokenizer = generator.tokenizer
    source = tokenizer(PARAGRAPHS[0])["input_ids"]
    target = tokenizer("¿cuándo fue el Super Bowl?")["input_ids"]

    # CTranslate2 appends the end-of-sequence token to the target itself.
    scored = generator.translator.score_batch(
        [tokenizer.convert_ids_to_tokens(source)],
        [tokenizer.convert_ids_to_tokens(target[:-1])],
    )[0].log_probs
    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_model)
    with torch.inference_mode():
        logits = model(
            input_ids=torch.tensor([source]), labels=torch.tensor([target])
        ).logits
    expected = torch.log_softmax(logits[0], dim=-1)[range(len(target)), target].tolist()

    assert scored == pytest.approx(expected, abs=1e-3)


def test_ctranslate2_conversion_is_cached(tiny_model, tmp_path):
    load_generator(_config(tiny_model, "ctranslate2", tmp_path))
    folders = sorted(path.name for path in tmp_path.iterdir())

    load_generator(_config(tiny_model, "ctranslate2", tmp_path))

    assert sorted(path.name for path in tmp_path.iterdir()) == folders
    assert len(folders) == 1


def test_torch_out_of_memory_halves_batch(tiny_model, cache, monkeypatch):
    generator = load_generator(_config(tiny_model, "torch", cache, batch_size=8))
    original = generator.model.generate
    tried: list[int] = []
    generated: list[int] = []

    def generate_or_fail(**arguments):
        rows = arguments["input_ids"].shape[0]
        tried.append(rows)
        if rows > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
        generated.append(rows)
        return original(**arguments)

    monkeypatch.setattr(generator.model, "generate", generate_or_fail)

    results = generator.generate(PARAGRAPHS)

    assert [len(queries) for queries in results] == [QUERIES] * len(PARAGRAPHS)
    assert tried[0] == len(PARAGRAPHS)
    assert tried[1] == len(PARAGRAPHS) // 2
    assert max(generated) <= 2
    assert sum(generated) == len(PARAGRAPHS)


def test_unknown_vocabulary_piece_is_rejected(tiny_model, cache, tmp_path):
    path = tmp_path / "pieces.txt"
    path.write_text("▁el\nno-such-piece-here\n", encoding="utf-8")

    with pytest.raises(ModelLoadError, match="does not have"):
        load_generator(_config(tiny_model, "torch", cache, output_vocabulary=str(path)))


def test_unsupported_compute_type_is_rejected(tiny_model, cache):
    config = _config(tiny_model, "ctranslate2", cache, compute_type="float16")

    with pytest.raises(ModelLoadError, match="not supported on cpu"):
        load_generator(config)
