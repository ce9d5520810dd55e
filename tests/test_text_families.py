"""`--text` on the families of issue 19: mha's attention weights of the text equal the model's
own `output_attentions` (transformers, eager, run here on the same padded batch), every layer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import mha_cli

pytest.importorskip("transformers")

from hf_families import ENCODER_DECODER, FAMILIES, VISION, build_families
from text_models import byte_bpe

TEXTS = ["the cat sat on the mat", "a dog ran"]
BOUND = 1e-5
TEXT_FAMILIES = [f for f in FAMILIES if f not in VISION and f not in ENCODER_DECODER]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory):
    models = build_families(tmp_path_factory.mktemp("text-families"))
    tokenizer = byte_bpe()
    for family in TEXT_FAMILIES:
        tokenizer.save_pretrained(models[family].folder)
    return models


def own_attention(model, folder: Path, layer: int) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """The model's own weights of `layer` on TEXTS, padded on the right by hand."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    rows = [tokenizer(text)["input_ids"] for text in TEXTS]
    longest = max(map(len, rows))
    ids = torch.tensor([row + [0] * (longest - len(row)) for row in rows])
    mask = torch.tensor([[1] * len(row) + [0] * (longest - len(row)) for row in rows])
    extra = {"use_cache": False} if "use_cache" in model.config.to_dict() else {}
    with torch.no_grad():
        out = model.model(input_ids=ids, attention_mask=mask, output_attentions=True, **extra)
    return out.attentions[layer], mask.sum(-1)


@pytest.mark.parametrize("family", TEXT_FAMILIES)
def test_text_weights_are_the_models_own(models, family: str) -> None:
    model = models[family]
    for layer in range(model.num_layers):
        report = mha_cli.inspect(weights=str(model.folder), layer=layer, text=TEXTS)
        expected, lens = own_attention(model, model.folder, layer)
        got = report.attention_weights
        assert got.shape == expected.shape, (family, layer)
        for example, length in enumerate(lens.tolist()):  # the texts' own rows
            difference = (got[example, :, :length] - expected[example, :, :length]).abs().max()
            assert float(difference) < BOUND, (family, layer, example)
        assert report.text is not None and [len(t) for t in report.text.tokens] == lens.tolist()
