"""`mha compare` as a user and a CI script see it: verdicts and exit codes, a wrong mapping named
by stage and head, the fully masked row, what cannot be mapped, the formats, the Python API."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import mha_cli
from mha_cli.comparison import sdpa_runs, torch_mapping


def swap_heads_1_and_3_of_w_q(state, spec):
    """A wrong mapping: W_q's rows of heads 1 and 3 trade places inside in_proj_weight."""
    d = spec.hiddens // spec.heads
    order = [0, 3, 2, 1, 4]
    w_q = state["W_q.weight"].reshape(spec.heads, d, -1)[order].reshape(spec.hiddens, -1)
    return {
        "in_proj_weight": torch.cat([w_q, state["W_k.weight"], state["W_v.weight"]]),
        "out_proj.weight": state["W_o.weight"],
    }


def test_chapter_example_agrees_and_says_so(cli):
    result = cli("compare")
    assert result.exit_code == 0, result.output
    out = result.stdout
    for name in ("W_q", "W_k", "W_v", "masked_softmax", "weighted_sum", "W_o"):
        assert f"│ {name} " in out
    assert "✓ nn.MultiheadAttention agrees" in out
    assert "✓ SDPA math agrees" in out
    assert "5 x the reference's own float32 error against float64" in out
    assert "torch.testing defaults rtol 1.3e-06, atol 1e-05" in out
    assert "\x1b[" not in out  # no colour codes when not a terminal
    assert result.stderr == ""


def test_wrong_head_order_exits_1_naming_the_stage_and_the_heads(cli, monkeypatch):
    monkeypatch.setattr(torch_mapping, "torch_mha_state", swap_heads_1_and_3_of_w_q)
    result = cli("compare")
    assert result.exit_code == 1, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("mha: nn.MultiheadAttention disagrees at W_q, heads 1, 3: ")
    assert "> allowed 1.0e-05" in line
    heads = result.stdout.split("d2l| per head")[1].split("verdict")[0]
    rows = {int(r.split("│")[1]): r for r in heads.splitlines() if r.startswith("│")}
    assert [h for h, row in rows.items() if "✗" in row] == [1, 3]
    assert "✓ SDPA math agrees" in result.stdout  # SDPA does not use the mapping


def test_wrong_mapping_through_the_api_names_every_failing_stage(cli):
    comparison = mha_cli.compare(mapping=swap_heads_1_and_3_of_w_q)
    assert not comparison.agrees
    mha = comparison.implementation("torch_mha")
    failing = {s.stage: s.heads_beyond for s in mha.stages if not s.agrees}
    assert failing == {"W_q": (1, 3), "masked_softmax": (1, 3), "W_o": ()}
    assert comparison.implementation("sdpa_math").agrees
    assert [h.head for h in mha.heads if not h.agrees] == [1, 3]


def torch_on_an_empty_row() -> tuple[str, str]:
    """What torch itself returns, in this version, for a query that sees no key: the weights of
    nn.MultiheadAttention (need_weights=True) and SDPA's output."""
    module = nn.MultiheadAttention(4, 2, batch_first=True).eval()
    x = torch.randn(1, 1, 4)
    with torch.no_grad():
        _, weights = module(
            x, x, x, key_padding_mask=torch.ones(1, 1, dtype=torch.bool), average_attn_weights=False
        )
        mixed = F.scaled_dot_product_attention(
            x[:, None], x[:, None], x[:, None], attn_mask=torch.zeros(1, 1, 1, 1, dtype=torch.bool)
        )

    def text(t: torch.Tensor) -> str:
        return "NaN" if bool(t.isnan().all()) else f"{float(t.flatten()[0]):.4g}"

    return text(weights), text(mixed)


def test_a_fully_masked_row_is_shown_with_what_each_implementation_returns(cli):
    result = cli("compare", "--valid-lens", "0,2")
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())  # one line per entry, whatever the wrapping
    assert "rows with no valid key (example 0, queries 0..3, valid_len 0)" in out
    assert f"d2l returns masked_softmax {1 / 6:.4g}," in out
    assert "filled with -1e+06, finite and equal across the row" in out
    mha_weights, sdpa_output = torch_on_an_empty_row()
    assert f"nn.MultiheadAttention returns masked_softmax {mha_weights}," in out
    assert f"SDPA math returns weighted_sum {sdpa_output}," in out
    if mha_weights == "NaN":
        assert "softmax of a row that is -inf everywhere is 0/0" in out
    document = json.loads(cli("compare", "--valid-lens", "0,2", "--format", "json").stdout)
    assert document["fully_masked"]["rows"] == [{"example": 0, "query": q} for q in range(4)]
    mha = next(i for i in document["implementations"] if i["key"] == "torch_mha")
    output = next(s for s in mha["stages"] if s["stage"] == "W_o")
    assert output["difference"] < 1e-6  # the empty rows are left out, so no NaN here
    # where the largest rounding difference falls is noise, but never in the empty example 0
    assert output["where"] is None or output["where"]["example"] == 1


def test_float16_masks_with_the_lowest_half_value(cli):
    result = cli("compare", "--valid-lens", "0,2", "--dtype", "float16")
    assert result.exit_code == 0, result.output
    assert "filled with -65504" in result.stdout


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (
            ["--query-size", "7", "--hiddens", "12", "--heads", "3"],
            "query_size 7 != num_hiddens 12: torch has no qdim",
        ),
        (["--value-mode", "full"], "values kept whole (--value-mode full)"),
        (["--rope", "half"], "rotary embedding"),
        (["--qk-norm"], "qk-norm"),
        (["--head-dim", "8"], "head dim 8 x 5 heads != num_hiddens 100"),
    ],
)
def test_what_cannot_be_mapped_is_said_and_sdpa_still_compares(cli, args, reason):
    result = cli("compare", *args)
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    assert f"- nn.MultiheadAttention: not run: {reason}" in out
    assert "compared instead: scaled_dot_product_attention on d2l's own projected" in out
    assert "✓ SDPA math agrees" in out
    if "--rope" in args:
        assert "(queries.rope, keys.rope, values.permute)" in out


def test_additive_scoring_has_nothing_in_torch_to_compare_with(cli):
    result = cli("compare", "--score", "additive")
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    assert "nothing in torch computes this layer" in out
    assert "additive scoring: nn.MultiheadAttention only computes scaled dot products" in out


def test_sdpa_backends_that_cannot_run_say_why(cli):
    result = cli("compare", "--value-mode", "full")
    out = " ".join(result.stdout.split())
    assert "- SDPA flash: not run: Flash attention requires q,k,v to have the same last" in out
    if not torch.cuda.is_available():
        assert "- SDPA efficient: not run: a CUDA kernel; this run is on the cpu" in out


def test_grouped_query_without_enable_gqa_repeats_the_key_value_heads(cli, monkeypatch):
    monkeypatch.setattr(sdpa_runs, "has_enable_gqa", lambda: False)
    result = cli("compare", "--heads", "4", "--kv-heads", "2", "--hiddens", "64")
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    assert "key-value heads repeated; then d2l's" in out
    assert "repeated (enable_gqa needs torch >= 2.5)" in out
    assert "✓ SDPA math agrees" in out


def test_torch_without_nn_attention_selects_backends_with_the_legacy_flags(monkeypatch):
    """torch 2.2 has no torch.nn.attention: each backend alone through sdp_kernel's flags."""
    flags = []

    @contextmanager
    def sdp_kernel(**given):
        flags.append(given)
        yield

    monkeypatch.setitem(sys.modules, "torch.nn.attention", None)  # `from ... import` fails
    monkeypatch.setattr(torch.backends.cuda, "sdp_kernel", sdp_kernel)
    q = torch.randn(1, 2, 3, 4)
    runs = {r.backend: r for r in sdpa_runs.run_backends(q, q, q, None)}
    assert flags[0] == {"enable_math": True, "enable_flash": False, "enable_mem_efficient": False}
    assert flags[1] == {"enable_math": False, "enable_flash": True, "enable_mem_efficient": False}
    assert runs["math"].output is not None
    assert runs["cudnn"].output is None and "has no cudnn backend" in str(runs["cudnn"].reason)


def test_notes_explain_masks_dropout_bias_and_the_fast_path(cli):
    out = " ".join(cli("compare", "--bias", "--no-out-bias", "--heads", "4").stdout.split())
    assert "nn.MultiheadAttention: True = ignore; here key_padding_mask (b, k)" in out
    assert "scaled_dot_product_attention: True = attend, the opposite" in out
    assert "d2l records the attention weights before dropout" in out
    assert "mapped with bias=True, the biases d2l's layer lacks as zeros" in out
    assert "fast path" in out and "three tensors, not one" in out
    assert "odd" not in out  # 4 heads: not a blocker
    assert "in_proj_bias = cat(b_q, b_k, b_v)" in out


def test_per_query_valid_lens_use_a_3d_attn_mask(cli):
    out = " ".join(cli("compare", "--valid-lens", "1,2,3,4;6,5,4,3").stdout.split())
    assert "attn_mask (b*h, q, k) = (10, 4, 6), per-query valid_lens repeated per head" in out


def test_json_has_a_versioned_schema_and_every_figure(cli):
    result = cli("compare", "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert (document["schema"], document["version"]) == ("mha.compare", 1)
    assert [s["name"] for s in document["stages"]] == [
        "W_q",
        "W_k",
        "W_v",
        "masked_softmax",
        "weighted_sum",
        "W_o",
    ]
    mha = next(i for i in document["implementations"] if i["key"] == "torch_mha")
    assert {"stage", "difference", "where", "error", "bound", "agrees"} <= set(mha["stages"][0])
    # torch's projection is the same F.linear on the same rows: rounding at most (exact here,
    # but another kernel may round otherwise), and a location only where there is a difference
    w_q = mha["stages"][0]
    assert w_q["stage"] == "W_q" and 0 <= w_q["difference"] < 1e-6
    assert (w_q["where"] is None) == (w_q["difference"] == 0)
    assert len(mha["heads"]) == 5
    assert document["notes"]["masks"]
    assert document["agrees"] is True


def test_markdown_is_a_table_with_the_verdicts(cli):
    result = cli("compare", "--format", "markdown")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("| stage |"))
    assert "| `nn.MultiheadAttention` |" in header
    assert "- ✓ nn.MultiheadAttention agrees" in result.stdout


def test_python_api_returns_a_comparison_that_prints_as_the_tables():
    comparison = mha_cli.compare(valid_lens="0,2", heads=4)
    assert comparison.agrees
    assert comparison.fully_masked is not None
    text = str(comparison)
    assert "stage (compared as)" in text and "rows with no valid key" in text
    assert json.loads(comparison.to_json())["schema"] == "mha.compare"


@pytest.mark.parametrize(
    "args",
    [
        ["--no-bias", "--out-bias", "--heads", "4", "--kv-heads", "2"],
        ["--bias", "--no-out-bias", "--kv-heads", "1"],
        ["--bias", "--no-key-bias", "--heads", "4"],  # Whisper's: none on W_k alone
        ["--bias", "--key-size", "7", "--kv-heads", "1", "--causal", "--window", "2"],
    ],
    ids=" ".join,
)
def test_partial_biases_and_grouped_heads_map_exactly(cli, args):
    result = cli("compare", *args, "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    mha = next(i for i in document["implementations"] if i["key"] == "torch_mha")
    assert mha["compared"] and mha["agrees"]
    assert all(s["difference"] < 1e-6 for s in mha["stages"])
