from __future__ import annotations

import pytest

from worker.errors import SettingsError
from worker.settings import Settings, load_settings


def test_defaults_match_the_model_card():
    settings = load_settings({}, {})

    assert settings.model == "doc2query/msmarco-spanish-mt5-base-v1"
    assert settings.queries_per_paragraph == 20
    assert settings.max_input_tokens == 320
    assert settings.max_new_tokens == 64
    assert settings.top_k == 10


def test_flags_override_environment_over_file(tmp_path):
    config = tmp_path / "d2q.toml"
    config.write_text('page_size = 10\nbatch_size = 3\nurl = "http://file:9200"\n')

    settings = load_settings(
        {"page_size": 30}, {"D2Q_PAGE_SIZE": "20", "D2Q_BATCH_SIZE": "4"}, config
    )

    assert settings.page_size == 30
    assert settings.batch_size == 4
    assert settings.url == "http://file:9200"


def test_environment_lists_split_on_commas():
    assert load_settings({}, {"D2Q_FIELDS": "title, body"}).fields == ["title", "body"]


def test_all_problems_reported_at_once():
    with pytest.raises(SettingsError) as caught:
        load_settings(
            {"queries_per_paragraph": 81, "decoding": "greedy"},
            {"D2Q_BATCH_SIZE": "many", "D2Q_DEVICE": "tpu"},
        )

    message = str(caught.value)
    assert "queries_per_paragraph: 81 is outside the allowed range 1-80" in message
    assert "decoding: 'greedy' is not one of: sampling, beam" in message
    assert "batch_size: 'many' is not a valid int" in message
    assert "device: 'tpu' is not one of: auto, cpu, cuda" in message
    assert len(caught.value.problems) == 4


def test_unknown_config_key_is_reported(tmp_path):
    config = tmp_path / "d2q.toml"
    config.write_text("[d2q]\npage_sise = 5\n")

    with pytest.raises(SettingsError, match="unknown setting 'page_sise'"):
        load_settings({}, {}, config)


def test_fingerprint_fields_ignore_device_and_batch_size():
    first = Settings(device="cpu", batch_size=1).generation_fingerprint_fields()
    second = Settings(device="cuda", batch_size=64).generation_fingerprint_fields()

    assert first == second


def test_redacted_settings_hide_secrets():
    values = Settings(password="hunter2", api_key="k").redacted()

    assert values["password"] == "***"
    assert values["api_key"] == "***"
