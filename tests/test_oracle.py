"""The numbers are the product: mha's layer against d2l's code, torch.nn.MultiheadAttention
and an independent einsum computation, given the same weights and inputs."""

from __future__ import annotations

from dataclasses import replace

import d2l_reference as d2l
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from oracles import additive_attention, einsum_attention
from torch.utils.flop_counter import FlopCounterMode

from mha_cli.files.sources import resolve
from mha_cli.layer.run import Recorder, make_layer, run_attention
from mha_cli.spec.spec import AttentionSpec

ATOL = 1e-5


def run_layer(
    spec: AttentionSpec, inputs: tuple[torch.Tensor, ...], valid_lens: torch.Tensor | None
):
    torch.manual_seed(spec.seed)
    layer = make_layer(spec.final()).eval()
    with torch.no_grad():
        output, weights, _ = layer(
            *inputs, valid_lens, Recorder(keep_tensors=False, catalogue=layer.stages)
        )
    b, h, q, k = spec.batch, spec.heads, spec.queries, spec.kv
    return layer, output, weights.reshape(b, h, q, k)


def random_inputs(spec: AttentionSpec, seed: int = 1) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(spec.batch, spec.queries, spec.final().query_size, generator=g),
        torch.randn(spec.batch, spec.kv, spec.final().key_size, generator=g),
        torch.randn(spec.batch, spec.kv, spec.final().value_size, generator=g),
    )


def test_chapter_example_equals_d2l_code():
    spec = (
        AttentionSpec()
    )  # batch 2, 4 queries, 6 kv pairs, 100 hiddens, 5 heads, valid_lens [3, 2]
    inputs = random_inputs(spec)
    valid_lens = torch.tensor([3, 2])
    layer, output, weights = run_layer(spec, inputs, valid_lens)
    reference = d2l.MultiHeadAttention(100, 100, 100, 100, 5, 0.0).eval()
    reference.load_state_dict(layer.state_dict())
    with torch.no_grad():
        expected = reference(*inputs, valid_lens)
    assert output.shape == (2, 4, 100)
    torch.testing.assert_close(output, expected, atol=ATOL, rtol=0)
    torch.testing.assert_close(
        weights.reshape(10, 4, 6), reference.attention.attention_weights, atol=ATOL, rtol=0
    )


def test_distinct_query_key_value_sizes_equal_d2l_code():
    spec = AttentionSpec(query_size=7, key_size=11, value_size=13, hiddens=12, heads=3, bias=True)
    inputs = random_inputs(spec)
    valid_lens = torch.tensor([[1, 2, 3, 4], [6, 5, 4, 3]])  # 2-D: one length per query
    layer, output, _ = run_layer(
        replace(spec, valid_lens=((1, 2, 3, 4), (6, 5, 4, 3))), inputs, valid_lens
    )
    reference = d2l.MultiHeadAttention(11, 7, 13, 12, 3, 0.0, bias=True).eval()
    reference.load_state_dict(layer.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(output, reference(*inputs, valid_lens), atol=ATOL, rtol=0)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("sizes", [(None, None), (7, 9)])
def test_equals_torch_multihead_attention(bias: bool, sizes: tuple[int | None, int | None]):
    key_size, value_size = sizes
    spec = AttentionSpec(key_size=key_size, value_size=value_size, bias=bias)
    inputs = random_inputs(spec)
    valid_lens = torch.tensor([3, 2])
    layer, output, weights = run_layer(spec, inputs, valid_lens)
    state = layer.state_dict()
    torch_mha = torch.nn.MultiheadAttention(
        100,
        5,
        bias=bias,
        batch_first=True,
        kdim=spec.final().key_size,
        vdim=spec.final().value_size,
    ).eval()
    with torch.no_grad():
        if torch_mha._qkv_same_embed_dim:
            torch_mha.in_proj_weight.copy_(torch.cat([state[f"W_{n}.weight"] for n in "qkv"]))
        else:
            for n in "qkv":
                getattr(torch_mha, f"{n}_proj_weight").copy_(state[f"W_{n}.weight"])
        torch_mha.out_proj.weight.copy_(state["W_o.weight"])
        if bias:
            torch_mha.in_proj_bias.copy_(torch.cat([state[f"W_{n}.bias"] for n in "qkv"]))
            torch_mha.out_proj.bias.copy_(state["W_o.bias"])
        padding = torch.arange(6)[None, :] >= valid_lens[:, None]  # True: do not attend
        expected, expected_weights = torch_mha(
            *inputs, key_padding_mask=padding, need_weights=True, average_attn_weights=False
        )
    torch.testing.assert_close(output, expected, atol=ATOL, rtol=0)
    torch.testing.assert_close(weights, expected_weights, atol=ATOL, rtol=0)


def test_causal_equals_scaled_dot_product_attention_mask_convention():
    spec = AttentionSpec(queries=6, kv=6, valid_lens=None, causal=True)
    inputs = random_inputs(spec)
    _, _, weights = run_layer(spec, inputs, None)
    # Query i sees keys 0..i (top-left aligned, as is_causal=True): the future gets exactly 0.
    visible = torch.ones(6, 6, dtype=torch.bool).tril()
    assert torch.all(weights[..., ~visible] == 0)
    assert torch.all(weights[..., visible] > 0)


@st.composite
def specs(draw: st.DrawFn) -> AttentionSpec:
    heads = draw(st.integers(1, 4))
    kv_heads = draw(st.sampled_from([d for d in range(1, heads + 1) if heads % d == 0]))
    full = kv_heads == heads and draw(st.booleans())
    batch, queries, kv = draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 6))
    lens_kind = draw(st.sampled_from(["none", "1d", "2d"]))
    valid_lens = None
    if lens_kind == "1d":
        valid_lens = tuple(draw(st.lists(st.integers(0, kv), min_size=batch, max_size=batch)))
    elif lens_kind == "2d":
        row = st.lists(st.integers(0, kv), min_size=queries, max_size=queries).map(tuple)
        valid_lens = tuple(draw(st.lists(row, min_size=batch, max_size=batch)))
    return AttentionSpec(
        batch=batch,
        queries=queries,
        kv=kv,
        heads=heads,
        hiddens=heads * draw(st.integers(1, 5)),
        kv_heads=kv_heads,
        query_size=draw(st.integers(1, 7)),
        key_size=draw(st.integers(1, 7)),
        value_size=draw(st.integers(1, 7)),
        valid_lens=valid_lens,
        causal=draw(st.booleans()),
        bias=draw(st.booleans()),
        value_mode="full" if full else "split",
        seed=draw(st.integers(0, 1000)),
    )


@settings(max_examples=150, deadline=None)
@given(spec=specs())
def test_any_spec_equals_independent_einsum(spec: AttentionSpec):
    inputs = random_inputs(spec, seed=spec.seed + 1)
    valid_lens = None if spec.valid_lens is None else torch.tensor(spec.valid_lens)
    layer, output, weights = run_layer(spec, inputs, valid_lens)
    expected, expected_weights = einsum_attention(
        *inputs,
        layer.state_dict(),
        spec.heads,
        spec.final().kv_heads,
        valid_lens,
        spec.causal,
        full_values=spec.value_mode == "full",
    )
    torch.testing.assert_close(weights, expected_weights, atol=ATOL, rtol=0)
    torch.testing.assert_close(output, expected, atol=ATOL, rtol=0)


def test_valid_lens_mask_by_position_not_by_score():
    """Seed Q5: a padded key with the highest score still gets weight 0."""
    spec = AttentionSpec(batch=1, queries=1, kv=4, hiddens=4, heads=1, valid_lens=(2,))
    torch.manual_seed(0)
    layer = make_layer(spec.final()).eval()
    with torch.no_grad():
        for name in ("W_q", "W_k", "W_v", "W_o"):
            getattr(layer, name).weight.copy_(torch.eye(4))
        keys = torch.tensor(
            [[[0.0, 0, 0, 0], [1, 0, 0, 0], [9, 0, 0, 0], [9, 0, 0, 0]]]
        )  # keys 2, 3 score highest
        _, weights, _ = layer(
            torch.tensor([[[1.0, 0, 0, 0]]]), keys, keys, torch.tensor([2]), Recorder(False)
        )
    assert weights[0, 0, 2:].tolist() == [0.0, 0.0]
    assert weights[0, 0, :2].sum().item() == pytest.approx(1.0)


def test_row_with_no_valid_key_is_uniform_as_in_d2l():
    trace = run_attention(resolve(AttentionSpec(valid_lens=(0, 2))))
    assert torch.allclose(trace.attention_weights[0], torch.full((5, 4, 6), 1 / 6))
    assert any("NaN" in note for note in trace.summary.notes)


def test_additive_attention_equals_d2l_code_and_loops():
    spec = AttentionSpec(
        score="additive",
        heads=1,
        batch=2,
        queries=1,
        kv=10,
        query_size=20,
        key_size=2,
        value_size=4,
        hiddens=8,
        valid_lens=(2, 6),
    )
    inputs = random_inputs(spec)
    valid_lens = torch.tensor([2, 6])
    layer, output, weights = run_layer(spec, inputs, valid_lens)
    reference = d2l.AdditiveAttention(2, 20, 8, 0.1).eval()
    reference.load_state_dict(layer.state_dict())
    with torch.no_grad():
        expected = reference(*inputs, valid_lens)
    looped, looped_weights = additive_attention(*inputs, layer.state_dict(), valid_lens)
    assert weights.shape == (2, 1, 1, 10)
    torch.testing.assert_close(output, expected, atol=ATOL, rtol=0)
    torch.testing.assert_close(output, looped, atol=ATOL, rtol=0)
    torch.testing.assert_close(weights.reshape(2, 1, 10), looped_weights, atol=ATOL, rtol=0)


@pytest.mark.parametrize(
    "spec",
    [
        AttentionSpec(),
        AttentionSpec(heads=4, kv_heads=2, bias=True, causal=True, valid_lens=None),
        AttentionSpec(value_mode="full", query_size=30, key_size=20),
        AttentionSpec(score="additive", heads=1, hiddens=8, valid_lens=(2, 6)),
    ],
)
def test_flop_count_equals_torch_flop_counter(spec: AttentionSpec):
    with FlopCounterMode(display=False) as counter:
        trace = run_attention(resolve(spec))
    assert trace.summary.total_flops == counter.get_total_flops()
