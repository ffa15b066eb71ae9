from __future__ import annotations

import pytest

from worker.expansion.text import clean_text, extract_text, strip_markup


def test_extract_joins_fields_in_order():
    result = extract_text(
        {"title": "Título", "text": "Cuerpo del texto."}, ["title", "text"]
    )

    assert result.skip_reason is None
    assert result.text == "Título\n\nCuerpo del texto."


def test_extract_reads_dotted_paths():
    result = extract_text({"body": {"es": "Hola mundo."}}, ["body.es"])

    assert result.text == "Hola mundo."


def test_extract_accepts_list_of_strings():
    result = extract_text({"text": ["Uno.", "Dos."]}, ["text"])

    assert result.text == "Uno.\n\nDos."


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ({}, "field 'text' is missing"),
        ({"text": None}, "field 'text' is missing"),
        ({"text": 42}, "field 'text' is a number, not text"),
        ({"text": True}, "field 'text' is a boolean, not text"),
        ({"text": {"a": "b"}}, "field 'text' is an object, not text"),
        ({"text": ["a", 1]}, "field 'text' is a list, not text"),
        ({"text": ""}, "field 'text' is empty"),
        ({"text": " \n\t "}, "field 'text' is empty"),
        ({"text": "<p><br/></p>"}, "field 'text' contains only markup"),
    ],
)
def test_extract_skips_unusable_text(source, reason):
    result = extract_text(source, ["text"])

    assert result.text == ""
    assert result.skip_reason == reason


def test_strip_markup_drops_scripts_and_keeps_text():
    text = strip_markup("<p>Hola <b>mundo</b></p><script>var x = 1;</script>")

    assert "Hola" in text
    assert "mundo" in text
    assert "var x" not in text


def test_strip_markup_unescapes_entities_without_tags():
    assert strip_markup("caf&eacute; &amp; t&eacute;") == "café & té"


def test_clean_text_replaces_lone_surrogates():
    assert clean_text("a\ud800b") == "a\ufffdb"


def test_clean_text_drops_control_characters():
    assert clean_text("a\x00b\x07c") == "a b c"


def test_clean_text_keeps_emoji_and_rtl_text():
    text = "Hola 👋 مرحبا 你好"

    assert clean_text(text) == text
