"""Query filtering with the tiny model: the scorers, the wrapper and a backfill."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from tests.conftest import read_sample
from tests.support import cli_arguments, create_index, fetch
from worker.cli import main
from worker.expansion.filtering import kept_count
from worker.expansion.queries import clean_queries
from worker.model import GenerationConfig, load_generator
from worker.model.filtering import FilteredGenerator, apply_query_filter
from worker.model.scoring import CrossEncoderScorer

PARAGRAPHS = [row["text"] for row in read_sample(2)]


@pytest.fixture(scope="module")
def generator(tiny_model):
    config = GenerationConfig(
        model=str(tiny_model),
        device="cpu",
        queries_per_paragraph=6,
        min_new_tokens=3,
        max_new_tokens=8,
        seed=7,
    )
    return load_generator(config)


@pytest.fixture(scope="module")
def tiny_cross_encoder(tiny_model, tmp_path_factory) -> Path:
    """A random one-label BERT classifier that reuses the tiny model's tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    target = tmp_path_factory.mktemp("tiny-cross-encoder")
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


def test_score_is_negative_mean_loss(generator):
    paragraph, query = PARAGRAPHS[0], "¿Quién ganó el partido?"

    (score,) = generator.score([(paragraph, query)])

    inputs = generator.tokenizer(
        [paragraph], return_tensors="pt", truncation=True, max_length=320
    )
    labels = generator.tokenizer([query], return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        loss = generator.model(**inputs, labels=labels).loss
    assert score == pytest.approx(-float(loss), rel=1e-4)


def test_score_batches_like_single_pairs(generator):
    pairs = [
        (PARAGRAPHS[0], "una pregunta corta"),
        (PARAGRAPHS[1], "otra pregunta mucho más larga"),
    ]

    together = generator.score(pairs)
    alone = [generator.score([pair])[0] for pair in pairs]

    assert together == pytest.approx(alone, rel=1e-4)


class _Recorder:
    """Wraps a generator and keeps what it returned."""

    def __init__(self, inner):
        self.inner = inner
        self.config = inner.config
        self.returned: list[list[str]] = []

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def generate(self, paragraphs):
        self.returned = self.inner.generate(paragraphs)
        return self.returned


def test_filter_keeps_best_scored_queries(generator):
    recorder = _Recorder(generator)
    filtered = FilteredGenerator(recorder, generator, 0.5)

    kept = filtered.generate(PARAGRAPHS)

    for paragraph, raw, chosen in zip(PARAGRAPHS, recorder.returned, kept, strict=True):
        candidates = clean_queries(raw)
        scores = generator.score([(paragraph, query) for query in candidates])
        ranked = sorted(zip(scores, candidates, strict=True), key=lambda item: -item[0])
        best = {query for _, query in ranked[: kept_count(len(candidates), 0.5)]}
        assert len(chosen) == kept_count(len(candidates), 0.5)
        assert set(chosen) == best


def test_cross_encoder_scores_pairs(tiny_cross_encoder):
    scorer = CrossEncoderScorer.load(
        str(tiny_cross_encoder), torch.device("cpu"), batch_size=2
    )
    pairs = [(PARAGRAPHS[0], "uno"), (PARAGRAPHS[0], "dos"), (PARAGRAPHS[1], "tres")]

    scores = scorer.score(pairs)

    assert len(scores) == 3
    assert all(math.isfinite(score) for score in scores)
    assert scores == pytest.approx(scorer.score(pairs), rel=1e-5)


def test_apply_filter_loads_cross_encoder(generator, tiny_cross_encoder):
    filtered = apply_query_filter(generator, 0.5, str(tiny_cross_encoder))

    assert isinstance(filtered, FilteredGenerator)
    assert isinstance(filtered.scorer, CrossEncoderScorer)
    assert apply_query_filter(generator, 1.0, None) is generator


def test_apply_filter_reports_missing_model(generator, tmp_path):
    from worker.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="could not load the cross-encoder"):
        apply_query_filter(generator, 0.5, str(tmp_path / "none"))


@pytest.fixture()
def sample_index(engine, index_name):
    create_index(engine, index_name, read_sample(6))
    return index_name


def test_backfill_keeps_fraction(engine, cluster_url, tiny_model, sample_index, capsys):
    arguments = cli_arguments(cluster_url, sample_index, tiny_model)
    filtered = [*arguments, "--keep-fraction", "0.4"]

    assert main(["backfill", *filtered, "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["status", *filtered]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert main(["status", *arguments]) == 0
    unfiltered = json.loads(capsys.readouterr().out)

    assert counts["expanded"] == 6
    assert unfiltered["stale"] == 6
    for row in read_sample(6):
        expansion = fetch(engine, sample_index, row["_id"])["doc2query"]
        # Five queries per paragraph, before clean-up: at most two are kept.
        assert 1 <= len(expansion["queries"]) <= kept_count(5, 0.4)


def test_backfill_with_cross_encoder(
    engine, cluster_url, tiny_model, tiny_cross_encoder, sample_index
):
    arguments = cli_arguments(cluster_url, sample_index, tiny_model, "--no-progress")
    filtered = [
        *arguments,
        "--keep-fraction",
        "0.5",
        "--filter-model",
        str(tiny_cross_encoder),
    ]

    assert main(["backfill", *filtered]) == 0

    expansion = fetch(engine, sample_index, read_sample(1)[0]["_id"])["doc2query"]
    assert expansion["status"] == "expanded"
    assert 1 <= len(expansion["queries"]) <= kept_count(5, 0.5)
