"""Build a tiny mT5-architecture model with random weights.

Tests and the demo use it where the real model cannot be fetched. It is saved
with ``save_pretrained`` and loaded through the same code as a hub model.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path
from typing import cast

import sentencepiece
import torch
from transformers import MT5Config, MT5ForConditionalGeneration, T5Tokenizer
from transformers.utils import logging as transformers_logging

transformers_logging.disable_progress_bar()

TINY_VOCAB_SIZE = 1000
TINY_EXTRA_IDS = 10


def train_vocabulary(
    texts: Iterable[str], vocab_size: int, hard_vocab_limit: bool = True
) -> list[tuple[str, float]]:
    """Train a unigram SentencePiece vocabulary; return its (piece, score) pairs.

    The special ids follow mT5: 0 is padding, 1 end of sequence, 2 unknown.
    """
    model_proto = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(list(texts)),
        model_writer=model_proto,
        vocab_size=vocab_size,
        hard_vocab_limit=hard_vocab_limit,
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        character_coverage=1.0,
        minloglevel=2,
    )
    processor = sentencepiece.SentencePieceProcessor(model_proto=model_proto.getvalue())
    return [
        (processor.id_to_piece(i), processor.get_score(i))
        for i in range(processor.get_piece_size())
    ]


def build_tiny_model(
    target: str | Path,
    texts: Iterable[str],
    seed: int = 0,
    vocab_size: int = TINY_VOCAB_SIZE,
) -> Path:
    """Train a SentencePiece vocabulary on ``texts`` and save a random tiny mT5.

    The special ids follow mT5: 0 is padding, 1 end of sequence, 2 unknown.
    """
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    vocab = train_vocabulary(texts, vocab_size)
    tokenizer = T5Tokenizer(vocab=vocab, extra_ids=TINY_EXTRA_IDS)

    config = MT5Config(
        vocab_size=len(tokenizer),
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
        tie_word_embeddings=False,
        # Small initial weights flatten the output distribution, so top-k
        # sampling writes varied queries instead of one repeated word.
        initializer_factor=0.05,
    )
    torch.manual_seed(seed)
    model = MT5ForConditionalGeneration(config)
    # Random weights would often emit padding, unknown and sentinel tokens,
    # which real doc2query models learned not to. Suppressing them makes
    # every generated query contain words.
    sentinels = [f"<extra_id_{i}>" for i in range(TINY_EXTRA_IDS)]
    # A list of tokens converts to a list of ids.
    sentinel_ids = cast(list[int], tokenizer.convert_tokens_to_ids(sentinels))
    model.generation_config.suppress_tokens = [0, 2, *sentinel_ids]
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target
