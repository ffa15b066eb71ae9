"""Settings and flags of the generator backends."""

from __future__ import annotations

import pytest

from worker.assembly import generation_config
from worker.cli import build_parser, settings_from_args
from worker.errors import SettingsError
from worker.settings import load_settings


def test_backend_and_budget_flags_reach_generation_config(tmp_path):
    vocabulary = tmp_path / "pieces.txt"
    vocabulary.write_text("▁el\n")
    args = build_parser().parse_args(
        [
            "expand-file", "in.jsonl", "out.jsonl",
            "--backend", "ctranslate2",
            "--max-batch-tokens", "4096",
            "--compute-type", "int8_float32",
            "--output-vocabulary", str(vocabulary),
        ]
    )  # fmt: skip

    config = generation_config(settings_from_args(args))

    assert config.backend == "ctranslate2"
    assert config.max_batch_tokens == 4096
    assert config.compute_type == "int8_float32"
    assert config.output_vocabulary == str(vocabulary)


def test_backend_from_environment():
    settings = load_settings(
        {}, {"D2Q_BACKEND": "ctranslate2", "D2Q_MAX_BATCH_TOKENS": "9"}
    )

    assert settings.backend == "ctranslate2"
    assert settings.max_batch_tokens == 9


def test_zero_batch_tokens_is_rejected():
    with pytest.raises(
        SettingsError, match="max_batch_tokens: 0 is below the minimum 1"
    ):
        load_settings({"max_batch_tokens": 0}, {})


def test_unknown_compute_type_is_rejected():
    with pytest.raises(SettingsError, match="compute_type: 'int4' is not one of"):
        load_settings({}, {"D2Q_COMPUTE_TYPE": "int4"})


def test_missing_vocabulary_file_is_rejected(tmp_path):
    missing = str(tmp_path / "none.txt")

    with pytest.raises(SettingsError, match="output_vocabulary: file .* not found"):
        load_settings({"output_vocabulary": missing}, {})


def test_vocabulary_changes_fingerprint(tmp_path):
    vocabulary = tmp_path / "pieces.txt"
    vocabulary.write_text("▁el\n")
    plain = load_settings({}, {}).generation_fingerprint_fields()

    restricted = load_settings({"output_vocabulary": str(vocabulary)}, {})

    assert "output_vocabulary" not in plain
    assert restricted.generation_fingerprint_fields()["output_vocabulary"] != "missing"
