"""Every specification option has a visible effect through the command line.

Each test would fail if its option were ignored or mixed up with another (a mutation probe
let `--seed` ignored and `--key-size`/`--value-size` swapped survive the older suite).
Expected figures are worked out here from the sizes, never read from mha's own output.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch


def run_json(cli, *args: str) -> dict[str, Any]:
    result = cli("inspect", "--format", "json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def stages(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {stage["name"]: stage for stage in document["stages"]}


def exported(cli, tmp_path: Path, *args: str) -> dict[str, torch.Tensor]:
    path = tmp_path / f"run{len(list(tmp_path.iterdir()))}.pt"
    result = cli("inspect", "--export", str(path), *args)
    assert result.exit_code == 0, result.output
    return torch.load(path)


@pytest.mark.parametrize(
    ("args", "stage", "shape"),
    [
        (["--batch", "3", "--valid-lens", "none"], "queries", [3, 4, 100]),
        (["--queries", "7"], "W_o", [2, 7, 100]),
        (["--kv", "9"], "keys", [2, 9, 100]),
        (["--hiddens", "60"], "queries.split", [2, 4, 5, 12]),
        (["--heads", "4"], "queries.split", [2, 4, 4, 25]),
        (["--kv-heads", "1"], "keys.split", [2, 6, 1, 20]),
        (["--head-dim", "8"], "output.concat", [2, 4, 40]),
        (["--query-size", "30"], "queries", [2, 4, 30]),
        (["--key-size", "20"], "keys", [2, 6, 20]),
        (["--value-size", "40"], "values", [2, 6, 40]),
        (["--value-mode", "full"], "output.concat", [2, 4, 500]),
    ],
)
def test_sizes_shape_the_stages(cli, args, stage, shape):
    assert stages(run_json(cli, *args))[stage]["shape"] == shape


def test_key_and_value_sizes_go_to_their_own_projections(cli):
    table = stages(run_json(cli, "--key-size", "20", "--value-size", "40"))
    assert (table["W_k"]["params"], table["W_v"]["params"]) == (20 * 100, 40 * 100)
    assert (table["keys"]["shape"], table["values"]["shape"]) == ([2, 6, 20], [2, 6, 40])


def test_bias_and_out_bias(cli):
    both = stages(run_json(cli, "--bias"))
    assert [both[n]["params"] for n in ("W_q", "W_o")] == [100 * 100 + 100, 100 * 100 + 100]
    qwen2 = stages(run_json(cli, "--bias", "--no-out-bias"))
    assert [qwen2[n]["params"] for n in ("W_q", "W_o")] == [100 * 100 + 100, 100 * 100]
    only_out = stages(run_json(cli, "--out-bias"))
    assert [only_out[n]["params"] for n in ("W_q", "W_o")] == [100 * 100, 100 * 100 + 100]
    whisper = run_json(cli, "--bias", "--no-key-bias")
    names = ("W_q", "W_k", "W_v", "W_o")
    assert [stages(whisper)[n]["params"] for n in names] == [10100, 10000, 10100, 10100]
    assert whisper["summary"]["total_params"] == 4 * 100 * 100 + 3 * 100
    only_key = stages(run_json(cli, "--key-bias"))
    assert [only_key[n]["params"] for n in names] == [10000, 10100, 10000, 10000]


def test_seed_changes_weights_and_inputs_and_repeats_them(cli, tmp_path):
    first = exported(cli, tmp_path, "--seed", "1")
    again = exported(cli, tmp_path, "--seed", "1")
    other = exported(cli, tmp_path, "--seed", "2")
    assert torch.equal(first["output"], again["output"])
    assert not torch.equal(first["queries"], other["queries"])  # inputs follow the seed
    assert not torch.equal(first["W_q"], other["W_q"])


def test_inputs_ones_are_the_books(cli, tmp_path):
    tensors = exported(cli, tmp_path, "--inputs", "ones")
    assert torch.equal(tensors["queries"], torch.ones(2, 4, 100))


def masked_fraction(weights: torch.Tensor, mask: torch.Tensor) -> float:
    return float(weights[mask].abs().sum())


def test_valid_lens_mask_those_positions(cli, tmp_path):
    weights = exported(cli, tmp_path, "--valid-lens", "1,6")["attention_weights"]  # (b, h, q, k)
    assert float(weights[0, :, :, 1:].abs().sum()) == 0.0
    assert torch.allclose(weights[0, :, :, 0], torch.ones(5, 4))
    assert float(weights[1].min()) > 0  # example 1 sees all 6 keys
    per_query = exported(cli, tmp_path, "--valid-lens", "1,2,3,4;6,5,4,3")["attention_weights"]
    for query, length in enumerate((1, 2, 3, 4)):
        assert float(per_query[0, :, query, length:].abs().sum()) == 0.0


@pytest.mark.parametrize("window", [None, 2])
def test_causal_and_window_hide_the_future_and_the_far_past(cli, tmp_path, window):
    args = ["--causal", "--valid-lens", "none", "--queries", "4", "--kv", "6"]
    if window:
        args += ["--window", str(window)]
    weights = exported(cli, tmp_path, *args)["attention_weights"]
    query_pos = torch.arange(4) + 2  # 4 queries are the last 4 of 6 positions
    key_pos = torch.arange(6)
    hidden = key_pos[None, :] > query_pos[:, None]
    if window:
        hidden |= key_pos[None, :] <= query_pos[:, None] - window
    assert float(weights[:, :, hidden].abs().sum()) == 0.0
    assert float(weights[:, :, ~hidden].min()) > 0.0


def test_score_additive_runs_the_additive_layer(cli):
    table = stages(run_json(cli, "--score", "additive"))
    assert {"features", "w_v"} <= set(table)
    assert table["scores"]["code"] == "self.w_v(features).squeeze(-1)"


def test_dropout_acts_only_in_training(cli, tmp_path):
    evaluated = exported(cli, tmp_path, "--dropout", "0.5")
    trained = exported(cli, tmp_path, "--dropout", "0.5", "--train")
    assert "dropout" not in evaluated and "dropout" in trained
    kept = trained["dropout"][trained["masked_softmax"] > 0]
    zeroed = float((kept == 0).float().mean())
    assert 0.3 < zeroed < 0.7  # about half of the weights dropped...
    survivors = kept[kept != 0]
    original = trained["masked_softmax"][trained["masked_softmax"] > 0][kept != 0]
    assert torch.allclose(survivors, original * 2)  # ...and the rest scaled by 1 / (1 - p)


def rope_reference(x: torch.Tensor, positions: torch.Tensor, rd: int, theta: float, pairing: str):
    """Rotary embedding written from its definition, pair by pair."""
    out = x.clone()
    for j in range(rd // 2):
        angle = positions.double() * theta ** (-2 * j / rd)
        cos, sin = angle.cos().float(), angle.sin().float()
        a, b = (j, j + rd // 2) if pairing == "half" else (2 * j, 2 * j + 1)
        xa, xb = x[..., a], x[..., b]
        out[..., a] = xa * cos - xb * sin
        out[..., b] = xb * cos + xa * sin
    return out


@pytest.mark.parametrize(
    ("args", "rd", "theta", "pairing"),
    [
        (["--rope", "half"], 20, 10000.0, "half"),
        (["--rope", "interleaved"], 20, 10000.0, "interleaved"),
        (["--rope", "half", "--rope-theta", "500"], 20, 500.0, "half"),
        (["--rope", "interleaved", "--rotary-dim", "8"], 8, 10000.0, "interleaved"),
    ],
)
def test_rope_options_rotate_queries_and_keys(cli, tmp_path, args, rd, theta, pairing):
    tensors = exported(cli, tmp_path, *args)
    query_pos, key_pos = torch.arange(4) + 2, torch.arange(6)
    for role, positions in (("queries", query_pos), ("keys", key_pos)):
        before = tensors[f"{role}.permute"]  # (b, h, n, d)
        expected = rope_reference(before, positions, rd, theta, pairing)
        torch.testing.assert_close(tensors[f"{role}.rope"], expected, atol=2e-6, rtol=1e-5)
    assert "values.rope" not in tensors


def test_qk_norm_and_its_epsilon(cli, tmp_path):
    tensors = exported(cli, tmp_path, "--qk-norm")
    rms = tensors["queries.norm"].pow(2).mean(-1).sqrt()
    assert torch.allclose(rms, torch.ones_like(rms), atol=1e-3)  # weights start at one
    loose = exported(cli, tmp_path, "--qk-norm", "--norm-eps", "10")
    before = loose["queries.permute"]
    expected = before / torch.sqrt(before.pow(2).mean(-1, keepdim=True) + 10)
    torch.testing.assert_close(loose["queries.norm"], expected)


@pytest.mark.parametrize(("dtype", "size"), [("float64", 8), ("bfloat16", 2)])
def test_dtype(cli, dtype, size):
    table = stages(run_json(cli, "--dtype", dtype))
    assert table["W_q"]["dtype"] == dtype
    assert table["W_q"]["bytes"] == 2 * 4 * 100 * size


def test_device_meta_computes_no_values(cli):
    document = run_json(cli, "--device", "meta")
    assert all(stage["value_range"] is None for stage in document["stages"])
    assert document["summary"]["computed"] is False


def test_config_preset_then_option(cli):
    document = run_json(cli, "--config", "bert-base", "--queries", "8", "--kv", "8")
    assert (document["spec"]["hiddens"], document["spec"]["heads"]) == (768, 12)
    assert stages(document)["queries.split"]["shape"] == [1, 8, 12, 64]


def test_layer_picks_nothing_but_layer_zero_of_a_one_layer_file(cli, tmp_path):
    torch.save(torch.nn.MultiheadAttention(100, 5).state_dict(), tmp_path / "one.pt")
    assert cli("inspect", "--weights", str(tmp_path / "one.pt"), "--layer", "0").exit_code == 0
    wrong = cli("inspect", "--weights", str(tmp_path / "one.pt"), "--layer", "3")
    assert wrong.exit_code == 2
    assert "--layer 3" in wrong.stderr and "1 attention layer" in wrong.stderr


def test_scale_is_one_over_sqrt_head_dim(cli, tmp_path):
    """Cross-check of the scores stage with the head dim the options give."""
    tensors = exported(cli, tmp_path, "--head-dim", "8")
    q, k = tensors["queries.fold"], tensors["keys.fold"]
    torch.testing.assert_close(tensors["scores"], q @ k.transpose(1, 2) / math.sqrt(8))


def test_stages_show_only_the_rows_asked_for(cli):
    result = cli("inspect", "--stages", "W_,scores")
    assert result.exit_code == 0, result.output
    rows = [
        line.split("│")[2].strip() for line in result.stdout.splitlines() if line.count("│") > 5
    ]
    shown = [name for name in rows if name and name not in ("stage", "total")]
    assert shown == ["W_q", "W_k", "W_v", "scores", "W_o"]
    assert "showing 5 of 24 stages" in result.stdout
    markdown = cli("inspect", "--stages", "queries.", "--format", "markdown").stdout
    assert "`queries.split`" in markdown and "`keys.split`" not in markdown
    wrong = cli("inspect", "--stages", "quries")
    assert wrong.exit_code == 2 and "did you mean 'queries'?" in wrong.stderr
