from __future__ import annotations

from worker.expansion.paragraphs import split_paragraphs, split_sentences


def count_words(text: str) -> int:
    return len(text.split())


def test_blank_lines_separate_paragraphs():
    first = " ".join(["uno"] * 40)
    second = " ".join(["dos"] * 40)

    assert split_paragraphs(f"{first}\n\n{second}", count_words, max_tokens=100) == [
        first,
        second,
    ]


def test_small_title_merges_into_next_paragraph():
    body = " ".join(["palabra"] * 40)

    pieces = split_paragraphs(f"Título\n\n{body}", count_words, max_tokens=100)

    assert pieces == [f"Título\n{body}"]


def test_long_paragraph_is_cut_at_sentences():
    sentence = " ".join(["palabra"] * 9) + "."
    text = " ".join([sentence] * 10)

    pieces = split_paragraphs(text, count_words, max_tokens=30, min_tokens=1)

    assert all(count_words(piece) <= 30 for piece in pieces)
    assert all(piece.endswith(".") for piece in pieces)
    assert " ".join(pieces) == text


def test_overlong_sentence_is_cut_at_words():
    text = " ".join(f"w{i}" for i in range(95))

    pieces = split_paragraphs(text, count_words, max_tokens=20, min_tokens=1)

    assert [count_words(piece) for piece in pieces] == [20, 20, 20, 20, 15]
    assert " ".join(pieces) == text


def test_every_piece_fits_the_limit():
    text = "\n\n".join(" ".join(["x"] * n) + "." for n in (3, 50, 7, 120, 1))

    pieces = split_paragraphs(text, count_words, max_tokens=40)

    assert pieces
    assert all(count_words(piece) <= 40 for piece in pieces)


def test_empty_text_has_no_paragraphs():
    assert split_paragraphs("  \n\n ", count_words) == []


def test_sentences_split_after_closing_quotes():
    assert split_sentences('Dijo "hola." Luego se fue. ¿Volvió? Sí.') == [
        'Dijo "hola."',
        "Luego se fue.",
        "¿Volvió?",
        "Sí.",
    ]
