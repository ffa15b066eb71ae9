"""Settings of the fleet: slices, metrics, log limits, and all problems at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.errors import SettingsError
from worker.settings import MAX_SLICES, load_settings, parse_slice


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0/1", (0, 1)),
        ("0/3", (0, 3)),
        ("2/3", (2, 3)),
        (" 1 / 4 ", (1, 4)),
        ("3/3", None),
        ("-1/3", None),
        ("1/0", None),
        ("1", None),
        ("a/b", None),
        ("1/2/3", None),
        ("", None),
    ],
)
def test_parse_slice_cases(text, expected):
    assert parse_slice(text) == expected


def test_slice_setting_gives_id_and_max():
    settings = load_settings({"index": "docs", "slice": "1/3"})

    assert settings.slice_id_max == (1, 3)


def test_no_slice_reads_everything():
    assert load_settings({"index": "docs"}).slice_id_max is None


def test_too_many_slices_rejected():
    with pytest.raises(SettingsError, match=f"above the maximum {MAX_SLICES}"):
        load_settings({"index": "docs", "slice": f"0/{MAX_SLICES + 1}"})


def test_index_list_and_pattern_accepted():
    settings = load_settings({"index": "news-2024,news-2025,archive-*"})

    assert settings.index == "news-2024,news-2025,archive-*"


def test_flags_over_environment_over_file(tmp_path: Path):
    config = tmp_path / "d2q.toml"
    config.write_text(
        '[d2q]\nindex = "from-file"\nslice = "0/2"\nmetrics_port = 9310\n'
        "page_size = 10\n"
    )
    environment = {"D2Q_SLICE": "1/2", "D2Q_PAGE_SIZE": "20"}

    settings = load_settings({"page_size": 30}, environment, config)

    assert settings.index == "from-file"
    assert settings.metrics_port == 9310
    assert settings.slice == "1/2"
    assert settings.page_size == 30


def test_invalid_configuration_lists_every_problem(tmp_path: Path):
    config = tmp_path / "d2q.toml"
    config.write_text(
        'index = "docs"\nslice = "4/4"\nmetrics_port = 70000\nbatch_size = 0\n'
        'colour = "blue"\n'
    )
    environment = {"D2Q_LOG_REPEAT_SECONDS": "-5", "D2Q_TOP_K": "many"}
    flags = {"decoding": "greedy", "url": "localhost:9200"}

    with pytest.raises(SettingsError) as caught:
        load_settings(flags, environment, config)

    message = str(caught.value)
    assert "invalid settings (8)" in message
    assert "slice: '4/4'" in message
    assert "metrics_port: 70000" in message
    assert "batch_size: 0" in message
    assert "unknown setting 'colour'" in message
    assert "log_repeat_seconds: -5.0" in message
    assert "top_k: 'many'" in message
    assert "decoding: 'greedy'" in message
    assert "url: 'localhost:9200'" in message
