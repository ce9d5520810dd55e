"""Tiny tokenizers for the tiny models of hf_models.py, trained in memory (no hub is reachable)
with the `tokenizers` library and saved beside each model as save_pretrained writes them.

A byte-level BPE (GPT-2's kind: tokens such as `Ġcat`) for decoders, and a WordPiece with
[CLS] ... [SEP] around every text (BERT's kind) for encoders. Their vocabularies fit the tiny
models' 64 token ids.
"""

from __future__ import annotations

import shutil
from pathlib import Path

SENTENCES = [
    "the cat sat on the mat",
    "a dog ran to the park",
    "the quick brown fox jumps over the lazy dog",
    "attention is all you need",
]
ENCODERS = ("bert", "roberta")


def byte_bpe(vocab: int = 64):  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    alphabet = sorted({c for s in SENTENCES for c in s.replace(" ", "Ġ")})
    trainer = trainers.BpeTrainer(
        vocab_size=vocab, special_tokens=["<|endoftext|>"], initial_alphabet=alphabet
    )
    tok.train_from_iterator(SENTENCES, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")


def wordpiece(vocab: int = 64):  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(
        SENTENCES, trainers.WordPieceTrainer(vocab_size=vocab, special_tokens=specials)
    )
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
    )


def with_tokenizer(folder: Path, family: str, into: Path) -> Path:
    """A copy of the model folder with its tokenizer saved in it."""
    target = into / folder.name
    shutil.copytree(folder, target)
    tokenizer = wordpiece() if family in ENCODERS else byte_bpe()
    tokenizer.save_pretrained(target)
    return target
