"""A restricted output vocabulary: the pieces a language actually uses.

mT5's output layer scores 250,112 pieces at every decoding step, and most of
that work goes to pieces of other scripts and languages. Restricting the output
layer to the pieces seen in a corpus of the target language makes each step
cheaper. The file format is one piece per line, in UTF-8.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from worker.errors import ModelLoadError

TokenIds = list[int]


def special_token_ids(tokenizer: Any) -> set[int]:
    """Return the ids of padding, end of sequence and unknown."""
    ids = {tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id}
    return {token_id for token_id in ids if token_id is not None}


def collect_output_vocabulary(
    tokenizer: Any, texts: Iterable[str], batch_size: int = 256
) -> list[str]:
    """Return the pieces ``tokenizer`` uses on ``texts``, plus the special pieces.

    Pieces come back in id order, so a trimmed output layer keeps the special
    ids in place.
    """
    used = set(special_token_ids(tokenizer))
    batch: list[str] = []
    for text in texts:
        batch.append(text)
        if len(batch) == batch_size:
            used.update(_ids_in(tokenizer, batch))
            batch = []
    if batch:
        used.update(_ids_in(tokenizer, batch))
    return tokenizer.convert_ids_to_tokens(sorted(used))


def _ids_in(tokenizer: Any, texts: list[str]) -> set[int]:
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return {token_id for ids in encoded for token_id in ids}


def write_output_vocabulary(path: str | Path, pieces: Sequence[str]) -> None:
    """Write ``pieces`` one per line."""
    Path(path).write_text("".join(f"{piece}\n" for piece in pieces), encoding="utf-8")


def read_output_vocabulary(path: str | Path, tokenizer: Any) -> TokenIds:
    """Read an output vocabulary file and return its sorted token ids.

    The special ids (padding, end of sequence, unknown) are always included.

    Raises:
        ModelLoadError: when the file is missing or names pieces the tokenizer
            does not have.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise ModelLoadError(
            f"could not read output vocabulary {path!r}: {error}"
        ) from error
    pieces = [line for line in lines if line]
    vocabulary = tokenizer.get_vocab()
    unknown = [piece for piece in pieces if piece not in vocabulary]
    if unknown:
        raise ModelLoadError(
            f"output vocabulary {str(path)!r} lists {len(unknown)} pieces the "
            f"model's tokenizer does not have (first: {unknown[:5]!r}); build the "
            f"file with this model's tokenizer"
        )
    ids = {vocabulary[piece] for piece in pieces} | special_token_ids(tokenizer)
    return sorted(ids)


def write_vocabulary_map(path: str | Path, pieces: Sequence[str]) -> None:
    """Write a CTranslate2 vocabulary map that always allows ``pieces``.

    A line with an empty source n-gram lists target tokens that are candidates
    for every input, which is the whole restriction here.
    """
    Path(path).write_text("\t" + " ".join(pieces) + "\n", encoding="utf-8")


def trim_output_layer(model: Any, keep: TokenIds) -> torch.Tensor:
    """Restrict a seq2seq model's output layer and decoder input to ``keep``.

    After the call the model generates positions into ``keep``. Map them back
    with the returned tensor: ``full_ids = mapping[generated]``. ``keep`` must
    be sorted and hold the decoder start, padding and end-of-sequence ids among
    its first entries, so those ids keep their value.

    Raises:
        ModelLoadError: when a special id would move.
    """
    config = model.config
    for name in ("decoder_start_token_id", "pad_token_id", "eos_token_id"):
        token_id = getattr(config, name, None)
        if token_id is not None and (
            token_id >= len(keep) or keep[token_id] != token_id
        ):
            raise ModelLoadError(
                f"the output vocabulary must keep {name} {token_id} at its own "
                f"position; include ids 0-{token_id} in the vocabulary file"
            )
    mapping = torch.tensor(keep, dtype=torch.long)
    output = model.get_output_embeddings()
    trimmed = torch.nn.Linear(output.in_features, len(keep), bias=False)
    trimmed.weight = torch.nn.Parameter(output.weight.data[mapping].clone())
    model.set_output_embeddings(trimmed.to(output.weight.device))

    decoder = model.get_decoder()
    embeddings = decoder.get_input_embeddings()
    decoder.set_input_embeddings(
        torch.nn.Embedding.from_pretrained(embeddings.weight.data[mapping].clone())
    )
    _remap_suppressed_tokens(model, keep)
    return mapping.to(output.weight.device)


def _remap_suppressed_tokens(model: Any, keep: TokenIds) -> None:
    generation_config = getattr(model, "generation_config", None)
    suppressed = getattr(generation_config, "suppress_tokens", None)
    if generation_config is None or not suppressed:
        return
    blocked = set(suppressed)
    generation_config.suppress_tokens = [
        position for position, token_id in enumerate(keep) if token_id in blocked
    ]
