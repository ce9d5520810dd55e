"""`mha variants`: the numbers of each column against arithmetic done here, independently: torch's
own layers for parameter counts, torch's FLOP counter around an einsum oracle, and the bytes
of the tensors d2l's code allocates, counted by hand."""

from __future__ import annotations

import json

import pytest
import torch
from oracles import einsum_attention
from torch.utils.flop_counter import FlopCounterMode

D2L, WHOLE, MQA = "MHA, values split (d2l)", "MHA, values whole per head", "MQA, 1 kv head"


def linears(sizes: list[tuple[int, int]], bias: bool = False) -> dict[str, torch.Tensor]:
    """W_q, W_k, W_v, W_o as torch builds them, (in, out) each, in d2l's names."""
    state = {}
    for name, (fan_in, fan_out) in zip(("W_q", "W_k", "W_v", "W_o"), sizes, strict=True):
        layer = torch.nn.Linear(fan_in, fan_out, bias=bias)
        state |= {f"{name}.{key}": value for key, value in layer.state_dict().items()}
    return state


def oracle_flops(state: dict[str, torch.Tensor], heads: int, kv_heads: int, full: bool) -> int:
    """Matmul FLOPs of the einsum oracle on the chapter's inputs, as torch counts them."""
    queries, keys, values = torch.randn(2, 4, 100), torch.randn(2, 6, 100), torch.randn(2, 6, 100)
    with FlopCounterMode(display=False) as counter:
        einsum_attention(
            queries, keys, values, state, heads, kv_heads, torch.tensor([3, 2]), False, full
        )
    return counter.get_total_flops()


def run(cli, *options: str) -> dict:
    result = cli("variants", "--format", "json", *options)
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert (document["schema"], document["version"]) == ("mha.variants", 1)
    return document


def test_chapter_columns_match_independent_arithmetic(cli):
    document = run(cli)
    columns = {c["label"]: c for c in document["columns"]}
    assert list(columns) == [D2L, WHOLE, MQA]  # 5 heads: no kv-head count between 1 and 5
    assert document["reference"] == D2L
    summed, grouped = document["notes"]
    assert summed.startswith("the other reading, heads summed instead of concatenated")
    assert (
        grouped == "no grouped-query column: kv heads must divide the 5 heads, and only 1 and 5 do"
    )
    layers = {
        D2L: (linears([(100, 100)] * 4), 5, False),
        WHOLE: (linears([(100, 100)] * 3 + [(500, 100)]), 5, False),
        MQA: (linears([(100, 100), (100, 20), (100, 20), (100, 100)]), 1, False),
    }
    for label, (state, kv_heads, _) in layers.items():
        column = columns[label]
        assert column["parameters"] == sum(t.numel() for t in state.values())
        full = label == WHOLE
        assert column["flops"] == oracle_flops(state, 5, kv_heads, full)
        key_features, value_features = state["W_k.weight"].shape[0], state["W_v.weight"].shape[0]
        per_token = 4 * (key_features + value_features)  # float32: keys and values of a token
        assert column["kv_cache_bytes_per_token"] == per_token
        assert column["kv_cache_bytes"] == per_token * 6 * 2  # 6 key positions, batch 2
    # The tensors d2l's forward allocates (views allocate nothing): float32 elements, and the
    # int64 valid_lens (2,) and their repeat per head (10,).
    inputs = 2 * 4 * 100 + 2 * 6 * 100 * 2
    projections = 2 * 4 * 100 + 2 * 6 * 100 * 2
    folds = 10 * 4 * 20 + 10 * 6 * 20 * 2  # reshape after permute copies
    attention = 10 * 4 * 6 * 2 + 10 * 4 * 20  # scores, softmax, weighted sum
    after = 2 * 4 * 100 * 2  # the concatenation (a copy after permute) and W_o
    split = 4 * (inputs + projections + folds + attention + after) + 8 * (2 + 10)
    assert columns[D2L]["activation_bytes"] == split
    # values kept whole: the values' fold, the weighted sum and the concatenation are 100 wide
    wider = (10 * 6 * 100 - 10 * 6 * 20) + (10 * 4 * 100 - 10 * 4 * 20) + (2 * 4 * 500 - 800)
    assert columns[WHOLE]["activation_bytes"] == split + 4 * wider
    # one kv head: W_k and W_v give 20 features instead of 100; repeat_interleave copies them
    # to 5 heads, and the fold of that contiguous copy is a view
    assert columns[MQA]["activation_bytes"] == split - 4 * 2 * (2 * 6 * 100 - 2 * 6 * 20)


def test_only_stages_whose_shapes_differ_are_listed(cli):
    document = run(cli)
    assert document["differing_stages"] == [
        "W_k",
        "W_v",
        "keys.split",
        "keys.permute",
        "values.split",
        "values.permute",
        "values.fold",
        "weighted_sum",
        "output.unfold",
        "output.permute",
        "output.concat",
        "values.expand",
        "keys.share",
        "values.share",
    ]
    whole = next(c for c in document["columns"] if c["label"] == WHOLE)
    assert whole["stages"]["output.concat"] == [2, 4, 500] and "values.split" not in whole["stages"]


def test_one_sentence_per_difference_with_its_factor(cli):
    sentences = run(cli)["differences"]
    assert len(sentences) == 3 + 4  # whole: params, FLOPs, memory; MQA: the same and the cache
    assert sentences[0].startswith(
        f"{WHOLE}: the parameters grow {80_000 / 40_000:.2f}× (40,000 → 80,000) because each "
        "of the 5 heads weighs all 100 value features instead of its 20, so the heads "
        "concatenate to 500 features instead of 100; in W_o 10,000 → 50,000"
    )
    assert (
        f"{MQA}: the kv cache per token shrinks {800 / 160:.2f}× (800 B → 160 B) because decoding "
        "keeps the keys and values of 1 kv head instead of 5; in W_k (2, 6, 100) → (2, 6, 20) "
        "and W_v (2, 6, 100) → (2, 6, 20)."
    ) in sentences


def test_bert_base_has_a_grouped_query_column(cli):
    columns = {c["label"]: c for c in run(cli, "--config", "bert-base")["columns"]}
    assert list(columns) == [D2L, WHOLE, "GQA, 3 kv heads", MQA]
    gqa = columns["GQA, 3 kv heads"]
    state = linears([(768, 768), (768, 192), (768, 192), (768, 768)], bias=True)
    assert gqa["parameters"] == sum(t.numel() for t in state.values())
    assert gqa["kv_cache_bytes_per_token"] == 4 * (3 * 64 + 3 * 64)
    assert gqa["kv_cache_bytes"] == 4 * (3 * 64 + 3 * 64) * 512


def test_the_preset_as_given_comes_first_when_it_is_none_of_the_variants(cli):
    document = run(cli, "--config", "gqa-long")
    first = document["columns"][0]
    assert (first["label"], first["kv_heads"]) == ("as given", 8)
    assert first["kv_cache_bytes_per_token"] == 2 * 8 * 128 * 2  # keys and values, bfloat16
    assert first["kv_cache_bytes"] == 2 * 8 * 128 * 2 * 131_072
    assert [c["kv_heads"] for c in document["columns"]] == [8, 64, 64, 16, 1]


def test_table_and_markdown_show_the_same_columns_and_sentences(cli):
    table = cli("variants")
    markdown = cli("variants", "--format", "markdown")
    assert table.exit_code == markdown.exit_code == 0
    for label in (D2L, WHOLE, MQA):
        assert label in table.stdout and label in markdown.stdout
    assert f"| | {D2L} (reference) | {WHOLE} | {MQA} |".replace("| |", "|  |") in markdown.stdout
    assert "| kv cache per token | 800 B | 800 B | 160 B |" in markdown.stdout
    assert "| kv cache, 6 tokens × batch 2 | 9.4 KiB | 9.4 KiB | 1.9 KiB |" in markdown.stdout
    for sentence in run(cli)["differences"]:
        assert f"- {sentence}" in markdown.stdout
        assert sentence.split(" because ")[0] in " ".join(table.stdout.split())


def test_own_variants_are_compared_with_the_layer_as_given(cli):
    document = run(cli, "--variant", "kv-heads=1", "--variant", "value-mode=full head-dim=10")
    labels = [c["label"] for c in document["columns"]]
    assert labels == ["as given", "kv-heads=1", "value-mode=full head-dim=10"]
    assert document["reference"] == "as given"
    last = document["columns"][2]
    assert last["settings"] == {"value_mode": "full", "head_dim": 10}
    assert last["stages"]["W_q"] == [2, 4, 50]  # 5 heads of 10
    assert any("with head-dim 20 → 10" in s for s in document["differences"])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--variant", "heads"), "'heads' is not NAME=VALUE"),
        (("--variant", "kv-head=1"), "did you mean 'kv-heads'?"),
        (("--variant", "device=cuda"), "'device' is not a setting a variant can change"),
        (("--variant", "causal=maybe"), "causal is true or false"),
        (("--variant", "kv-heads=3"), "heads (5) is not a multiple of kv heads (3)"),
        (("--score", "additive"), "additive attention has one head"),
    ],
)
def test_mistakes_are_one_line(cli, options, message):
    result = cli("variants", *options)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr


def test_python_api_returns_the_comparison():
    import mha_cli

    comparison = mha_cli.variants(heads=8, hiddens=64)
    assert [c.label for c in comparison.columns] == [D2L, WHOLE, "GQA, 2 kv heads", MQA]
    assert [c.record.summary.num_kv_heads for c in comparison.columns] == [8, 8, 2, 1]
