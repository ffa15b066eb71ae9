"""Build a random model with the shape of mT5-base, and its output vocabulary.

The real doc2query Spanish model cannot be fetched here, so the benchmark runs a
model of the same shape with random weights: 12 + 12 layers, d_model 768, d_ff
2048, 12 heads, gated-gelu and an untied 250,112-word output layer, as in the
mT5-base configuration. The tokenizer is a SentencePiece vocabulary trained on
the Spanish corpus and padded with placeholder pieces to the size of mT5's
(250,000 pieces and 100 sentinels), so the output layer and the decoded text
have mT5's sizes.

The output vocabulary file lists the pieces the tokenizer uses on the Spanish
corpus: the vocabulary that ``--output-vocabulary`` restricts generation to.

Usage::

    python benchmarks/build_model.py --target ~/.cache/d2q/bench/mt5-base-random \\
        --corpus /work/shared/data/squad-es-dev/corpus.jsonl
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch
from transformers import MT5Config, MT5ForConditionalGeneration, T5Tokenizer

from worker.model.tiny import train_vocabulary
from worker.model.vocabulary import collect_output_vocabulary, write_output_vocabulary

logger = logging.getLogger(__name__)

MT5_PIECES = 250_000
MT5_EXTRA_IDS = 100
MT5_BASE_VOCAB_SIZE = 250_112
TRAINED_PIECES = 32_000
# Placeholder pieces start with a private-use character, so Spanish text never
# encodes to them, and their score is far below every trained piece.
PLACEHOLDER_PREFIX = "\u2581\ue000"
PLACEHOLDER_SCORE = -1000.0


def read_texts(corpus: Path) -> list[str]:
    """Return the title and text of every JSONL row, as one string each."""
    texts = []
    with corpus.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                texts.append(f"{row.get('title', '')} {row.get('text', '')}".strip())
    return texts


def build_tokenizer(texts: list[str]) -> T5Tokenizer:
    """Train a Spanish SentencePiece vocabulary and pad it to mT5's size."""
    vocab = train_vocabulary(texts, TRAINED_PIECES, hard_vocab_limit=False)
    trained = len(vocab)
    vocab.extend(
        (f"{PLACEHOLDER_PREFIX}{number}", PLACEHOLDER_SCORE)
        for number in range(MT5_PIECES - trained)
    )
    logger.info("trained %d pieces, padded to %d", trained, len(vocab))
    return T5Tokenizer(vocab=vocab, extra_ids=MT5_EXTRA_IDS)


def build_model(seed: int) -> MT5ForConditionalGeneration:
    """Return an mT5-base-shaped model with random weights."""
    config = MT5Config(
        vocab_size=MT5_BASE_VOCAB_SIZE,
        d_model=768,
        d_kv=64,
        d_ff=2048,
        num_layers=12,
        num_decoder_layers=12,
        num_heads=12,
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
    )
    # transformers 5 sets tie_word_embeddings to True in MT5Config whatever
    # the argument passed. mT5-base has a separate output layer, so untie it here.
    config.tie_word_embeddings = False
    torch.manual_seed(seed)
    model = MT5ForConditionalGeneration(config)
    # Like mT5-base: the encoder and decoder share one input embedding, and
    # only the output layer is separate.
    model.encoder.embed_tokens.weight = model.shared.weight
    model.decoder.embed_tokens.weight = model.shared.weight
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--corpus",
        type=Path,
        required=True,
        help="Spanish JSONL corpus that trains the vocabulary",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights")
    args = parser.parse_args()
    logging.basicConfig(level="INFO", format="%(asctime)s %(message)s")

    started = time.monotonic()
    texts = read_texts(args.corpus)
    tokenizer = build_tokenizer(texts)
    model = build_model(args.seed)
    args.target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.target)
    tokenizer.save_pretrained(args.target)

    pieces = collect_output_vocabulary(tokenizer, texts)
    write_output_vocabulary(args.target / "output-vocabulary.txt", pieces)
    logger.info(
        "saved %s (%d parameters, output vocabulary %d pieces) in %.0f s",
        args.target,
        model.num_parameters(),
        len(pieces),
        time.monotonic() - started,
    )


if __name__ == "__main__":
    main()
