"""The parts of `mha trace` one by one: axis names from sizes, the weight layouts `--check`
reads, and the Python API against torch's own `nn.MultiheadAttention` as the oracle."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import mha_cli
from mha_cli.errors import MhaError
from mha_cli.learner.module_weights import register, to_d2l_state
from mha_cli.spec.axis_guess import Axis, AxisSizes, by_size, name_shape, reshaped

CHAPTER = AxisSizes(batch=2, queries=4, kv=6, heads=5, head_dim=20, hiddens=100, kv_heads=5)
LEARNERS = Path(__file__).parent / "learner_modules"


def names(axes: list[Axis]) -> list[str]:
    return [a.label() for a in axes]


def test_sizes_name_axes_and_say_when_they_guess():
    assert names(name_shape((10, 4, 6), CHAPTER)) == ["(batch heads)", "queries", "kv pairs"]
    square = AxisSizes(2, 4, 4, 5, 20, 100, 5)  # self-attention: queries and kv pairs both 4
    assert names(name_shape((2, 4, 4), square)) == ["batch", "queries?", "kv pairs?"]
    assert by_size(300, CHAPTER).name == "(3 hiddens)"  # q, k and v projected at once
    assert by_size(40, CHAPTER).guessed  # (batch head dim) or (batch heads queries)
    assert by_size(7, CHAPTER).name == "7"


def test_reshape_follows_the_data():
    projected = [Axis("batch"), Axis("queries"), Axis("hiddens")]
    split = reshaped((2, 4, 100), projected, (2, 4, 5, 20), CHAPTER)
    assert names(split) == ["batch", "queries", "heads", "head dim"]
    permuted = [split[i] for i in (0, 2, 1, 3)]
    assert names(reshaped((2, 5, 4, 20), permuted, (10, 4, 20), CHAPTER)) == [
        "(batch heads)",
        "queries",
        "head dim",
    ]
    # Heads equal to head dim: sizes alone cannot tell them apart, the data flow can.
    even = AxisSizes(2, 4, 6, 8, 8, 64, 8)
    assert names(reshaped((2, 4, 64), projected, (2, 4, 8, 8), even)) == [
        "batch",
        "queries",
        "heads",
        "head dim",
    ]
    # Split from the wrong end: the atoms (heads, head dim) are cut the other way round.
    assert names(reshaped((2, 4, 100), projected, (2, 4, 20, 5), CHAPTER))[2:] == [
        "head dim",
        "heads",
    ]


def test_packed_layouts_split_by_rows_and_conv1d_is_transposed():
    gpt = nn.Linear(8, 24)  # nanoGPT's c_attn: rows q | k | v
    state = {"c_attn.weight": gpt.weight, "c_attn.bias": gpt.bias}
    state |= {"c_proj.weight": torch.randn(8, 8), "bias": torch.ones(1, 1, 4, 4)}
    d2l, layout = to_d2l_state(state, "GPT")
    assert layout == "nanoGPT (c_attn, c_proj)"
    assert torch.equal(d2l["W_k.weight"], gpt.weight[8:16])
    assert torch.equal(d2l["W_v.bias"], gpt.bias[16:])
    conv = {"attn.c_attn.weight": gpt.weight.T, "attn.c_proj.weight": torch.randn(8, 8)}
    d2l, layout = to_d2l_state(conv, "GPT2")
    assert "Conv1D" in layout
    assert torch.equal(d2l["W_q.weight"], gpt.weight[:8])
    assert torch.equal(d2l["W_o.weight"], conv["attn.c_proj.weight"].T)


def test_unknown_layout_says_what_it_found_and_more_layouts_can_register():
    state = {"mix.weight": torch.randn(3, 3)}
    with pytest.raises(MhaError, match=r"^--check cannot read Odd's weights as W_q.*mix.weight"):
        to_d2l_state(state, "Odd")

    @register
    def mix(found):  # a layout of one's own: every projection is `mix`
        if "mix.weight" not in found:
            return None
        return {f"W_{p}.weight": found["mix.weight"] for p in "qkvo"}, "mix"

    try:
        assert to_d2l_state(state, "Odd")[1] == "mix"
    finally:
        from mha_cli.learner.module_weights import CONVERTERS

        CONVERTERS.remove(mix)


def test_api_against_torchs_own_weights_sequence_first():
    """A function target: nn.MultiheadAttention as torch's tutorials call it, sequence first,
    with right padding; the traced softmax is what torch itself returns."""
    torch.manual_seed(1)
    layer = nn.MultiheadAttention(12, 3, bias=True).eval()
    query, key = torch.randn(5, 2, 12), torch.randn(7, 2, 12)  # (L, N, E), (S, N, E)
    padding = torch.arange(7)[None, :] >= torch.tensor([7, 4])[:, None]  # (N, S)
    kwargs = {"key_padding_mask": padding, "need_weights": True, "average_attn_weights": False}

    def make():
        return layer, (query, key, key), kwargs

    report = mha_cli.trace(make, check=True)
    output, weights = layer(query, key, key, **kwargs)
    torch.testing.assert_close(report.attention_weights, weights)  # (N, h, L, S)
    torch.testing.assert_close(report.output_tensor, output)
    assert report.spec.valid_lens == (7, 4) and report.spec.heads == 3
    assert report.check is not None and report.check.weights is not None
    assert report.check.weights.agrees  # and mha's reference agrees: d2l's layer, same weights


def test_api_takes_the_class_itself_and_seeds_its_weights():
    from d2l_reference import MultiHeadAttention

    first = mha_cli.trace(MultiHeadAttention, heads=4, hiddens=16, valid_lens="2,5", seed=3)
    again = mha_cli.trace(MultiHeadAttention, heads=4, hiddens=16, valid_lens="2,5", seed=3)
    assert first.attention_weights.shape == (2, 4, 4, 6)
    assert torch.equal(first.attention_weights, again.attention_weights)
    assert first.attention_weights[0, :, :, 2:].abs().max() == 0  # valid_len 2
    assert "trace of MultiHeadAttention" in first.to_text()


def test_heatmap_of_a_module_draws_its_own_zeros_as_masked():
    from mha_cli.heatmaps.api import save_heatmaps

    files = save_heatmaps(draw=False, module=f"{LEARNERS / 'repeat_lens.py'}:MultiHeadAttention")
    heads, lens = 5, torch.tensor([3, 2])
    tiled = lens.repeat(heads).reshape(2, heads)  # each head's padding as the module has it
    expected = torch.arange(6)[None, None, None, :] >= tiled[:, :, None, None]
    assert (files.data.masked == expected.expand(2, heads, 4, 6).numpy()).all()
    assert "attention weights of MultiHeadAttention" in files.data.title
