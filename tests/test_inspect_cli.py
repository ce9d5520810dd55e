"""`mha inspect` through its command line: what a user and a CI script see."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# The chapter's example as DESIGN.md lists it: every stage of d2l's forward pass and its shape.
CHAPTER_STAGES = [
    ("queries", [2, 4, 100]),
    ("keys", [2, 6, 100]),
    ("values", [2, 6, 100]),
    ("valid_lens", [2]),
    ("W_q", [2, 4, 100]),
    ("W_k", [2, 6, 100]),
    ("W_v", [2, 6, 100]),
    ("queries.split", [2, 4, 5, 20]),
    ("queries.permute", [2, 5, 4, 20]),
    ("queries.fold", [10, 4, 20]),
    ("keys.split", [2, 6, 5, 20]),
    ("keys.permute", [2, 5, 6, 20]),
    ("keys.fold", [10, 6, 20]),
    ("values.split", [2, 6, 5, 20]),
    ("values.permute", [2, 5, 6, 20]),
    ("values.fold", [10, 6, 20]),
    ("valid_lens.repeat", [10]),
    ("scores", [10, 4, 6]),
    ("masked_softmax", [10, 4, 6]),
    ("weighted_sum", [10, 4, 20]),
    ("output.unfold", [2, 5, 4, 20]),
    ("output.permute", [2, 4, 5, 20]),
    ("output.concat", [2, 4, 100]),
    ("W_o", [2, 4, 100]),
]


def test_usage_line_prints_every_stage_of_the_chapter_example(cli, golden):
    result = cli("inspect", "--heads", "5", "--queries", "4", "--kv", "6")
    assert result.exit_code == 0, result.output
    for name, shape in CHAPTER_STAGES:
        assert f" {name} " in result.output
        assert str(tuple(shape)) in result.output
    assert "head dim: num_hiddens / num_heads = 100 / 5 = 20" in result.output
    assert "example 0: keys 3..5 masked: padding beyond valid_len 3" in result.output
    assert "example 1: keys 2..5 masked: padding beyond valid_len 2" in result.output
    assert "parameters: 40,000" in result.output
    assert "\x1b[" not in result.output  # no colour codes when not a terminal
    golden("inspect_chapter.txt", result.output)


def test_json_has_a_versioned_schema_and_every_stage(cli):
    result = cli("inspect", "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert (document["schema"], document["version"]) == ("mha.inspect", 2)
    assert [(s["name"], s["shape"]) for s in document["stages"]] == CHAPTER_STAGES
    wq = document["stages"][4]
    assert (wq["params"], wq["flops"], wq["bytes"]) == (
        100 * 100,
        2 * 2 * 4 * 100 * 100,
        2 * 4 * 100 * 4,
    )
    assert document["summary"]["head_dim"] == 20
    assert document["summary"]["total_params"] == 4 * 100 * 100
    assert document["summary"]["output_shape"] == [2, 4, 100]
    assert document["spec"]["valid_lens"] == [3, 2]


def test_json_golden_without_computed_values(cli, golden):
    document = json.loads(cli("inspect", "--format", "json").output)
    for stage in document["stages"]:
        stage.pop("value_range")  # floats: checked by the oracle tests, not pinned here
    for role in document["summary"]["head_roles"]:  # floats: checked in test_head_roles.py
        for figure in ("sink", "previous", "itself", "distance"):
            role.pop(figure)
    golden("inspect_chapter.json", json.dumps(document, indent=2) + "\n")


def test_markdown_is_a_pipe_table(cli):
    result = cli("inspect", "--format", "markdown")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].startswith("| # | stage | d2l code | shape |")
    assert (
        "| `queries.fold` | `X.reshape(-1, X.shape[2], X.shape[3])` | (10, 4, 20) |"
        in result.output
    )


def test_expect_passes_and_fails_with_exit_codes(cli):
    assert cli("inspect", "--expect", "output=2,4,100", "--expect", "scores=10,4,6").exit_code == 0
    result = cli("inspect", "--expect", "output=2,4,99")
    assert result.exit_code == 1
    assert "expectation failed: output expected (2, 4, 99), got (2, 4, 100)" in result.output
    assert (
        cli(
            "inspect", "--expect", "params=40000", "--expect", "attention_weights=2,5,4,6"
        ).exit_code
        == 0
    )


def test_heads_that_do_not_divide_hiddens_name_the_ones_that_do(cli):
    result = cli("inspect", "--heads", "7")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "mha: --heads 7: num_hiddens (100) is not divisible by heads (7); "
        "heads that divide it: 1, 2, 4, 5, 10, 20, 25, 50, 100"
    ]


def test_grouped_query_attention_has_a_share_row(cli):
    result = cli("inspect", "--heads", "4", "--kv-heads", "2", "--format", "json")
    stages = {s["name"]: s for s in json.loads(result.output)["stages"]}
    assert stages["W_k"]["shape"] == [2, 6, 50]  # 2 kv heads of 25
    assert stages["keys.permute"]["shape"] == [2, 2, 6, 25]
    assert stages["keys.share"]["shape"] == [2, 4, 6, 25]
    assert stages["keys.share"]["axes"] == ["batch", "heads", "kv pairs", "head dim"]
    assert stages["scores"]["shape"] == [8, 4, 6]


def test_full_values_keep_every_feature_per_head(cli):
    """Seed Q12: values not split; each head returns num_hiddens features, W_o is h times wider."""
    split = json.loads(cli("inspect", "--format", "json").output)
    full = json.loads(cli("inspect", "--value-mode", "full", "--format", "json").output)
    stages = {s["name"]: s for s in full["stages"]}
    assert stages["values.fold"]["shape"] == [10, 6, 100]
    assert stages["weighted_sum"]["shape"] == [10, 4, 100]
    assert stages["output.concat"]["shape"] == [2, 4, 500]
    assert stages["W_o"]["params"] == 500 * 100
    assert full["summary"]["total_params"] == split["summary"]["total_params"] + 400 * 100
    assert full["summary"]["params_depend_on_heads"] is True


def test_ones_inputs_explain_identical_heads(cli):
    """Seed Q3: with the book's all-ones inputs every head looks the same, and mha says why."""
    result = cli("inspect", "--inputs", "ones")
    assert "all 5 heads have the same attention weights" in result.output
    assert "all 5 heads have the same attention weights" not in cli("inspect").output


def test_config_preset_and_override(cli):
    result = cli(
        "inspect", "--config", "bert-base", "--queries", "8", "--kv", "8", "--format", "json"
    )
    spec = json.loads(result.output)["spec"]
    assert (spec["hiddens"], spec["heads"], spec["queries"], spec["bias"]) == (768, 12, 8, True)


def test_config_file_with_unknown_key_suggests_the_known_one(cli, tmp_path):
    config = tmp_path / "my.toml"
    config.write_text("heds = 4\n")
    result = cli("inspect", "--config", str(config))
    assert result.exit_code == 2
    assert "unknown key 'heds'; did you mean 'heads'?" in result.output


def test_presets_lists_the_shipped_configs(cli):
    result = cli("presets")
    assert result.exit_code == 0
    for name in ("chapter", "transformer-base", "bert-base", "gpt2-small", "gqa-long", "additive"):
        assert name in result.output


def test_meta_device_long_context_counts_without_allocating(cli):
    result = cli("inspect", "--config", "gqa-long", "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    t, hidden, kv_hidden, heads, d = 131072, 8192, 1024, 64, 128
    expected_flops = (
        2 * 2 * t * hidden * hidden + 2 * 2 * t * hidden * kv_hidden + 2 * 2 * heads * t * t * d
    )
    assert document["summary"]["total_flops"] == expected_flops
    assert document["summary"]["total_params"] == 2 * hidden * hidden + 2 * hidden * kv_hidden
    assert document["summary"]["output_shape"] == [1, t, hidden]
    scores = next(s for s in document["stages"] if s["name"] == "scores")
    assert scores["bytes"] == heads * t * t * 2  # bfloat16
    assert scores["value_range"] is None
    assert "not computed" in cli("inspect", "--config", "gqa-long").output


@pytest.mark.parametrize(
    "options", [[], ["--kv-heads", "1", "--causal", "--bias"], ["--value-mode", "full"]]
)
def test_meta_and_cpu_agree_on_every_shape_and_count(cli, options):
    runs = [
        json.loads(cli("inspect", "--format", "json", "--device", d, *options).output)
        for d in ("cpu", "meta")
    ]
    keys = ("name", "shape", "axes", "params", "flops", "bytes")
    cpu, meta = ([{k: s[k] for k in keys} for s in run["stages"]] for run in runs)
    assert cpu == meta


def test_help_and_presets_do_not_import_torch():
    code = (
        "import sys; from mha_cli.cli import app; from typer.testing import CliRunner; "
        "CliRunner().invoke(app, ['--help']); CliRunner().invoke(app, ['presets']); "
        "print(sorted(m for m in ('torch', 'matplotlib', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_installed_entry_point_runs():
    mha = Path(sys.executable).parent / "mha"  # the script pip installed beside this Python
    out = subprocess.run([str(mha), "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("mha ")


def test_score_additive_alone_reproduces_the_chapter_example(cli):
    """d2l's additive example: queries (2, 1, 20), keys (2, 10, 2), values (2, 10, 4),
    valid_lens [2, 6], attention weights (2, 1, 10)."""
    document = json.loads(cli("inspect", "--score", "additive", "--format", "json").output)
    shapes = {s["name"]: s["shape"] for s in document["stages"]}
    assert shapes["queries"] == [2, 1, 20]
    assert shapes["keys"] == [2, 10, 2]
    assert shapes["values"] == [2, 10, 4]
    assert shapes["masked_softmax"] == [2, 1, 10]
    assert shapes["weighted_sum"] == [2, 1, 4]
    assert document["spec"]["valid_lens"] == [2, 6]
    assert cli("inspect", "--score", "additive", "--kv", "12", "--valid-lens", "3,4").exit_code == 0


@pytest.mark.parametrize(("dtype", "size"), [("float64", 8), ("float16", 2), ("bfloat16", 2)])
def test_dtype_sets_every_stage_and_its_bytes(cli, dtype, size):
    document = json.loads(cli("inspect", "--dtype", dtype, "--format", "json").output)
    scores = next(s for s in document["stages"] if s["name"] == "scores")
    assert scores["dtype"] == dtype
    assert scores["bytes"] == 10 * 4 * 6 * size
    weights = next(s for s in document["stages"] if s["name"] == "masked_softmax")
    assert weights["value_range"][0] == 0.0  # masked keys get exactly 0 in every dtype


def test_dropout_is_explained_and_only_applied_with_train(cli):
    eval_run = json.loads(cli("inspect", "--dropout", "0.5", "--format", "json").output)
    assert "dropout" not in [s["name"] for s in eval_run["stages"]]
    assert any("inactive" in note for note in eval_run["summary"]["notes"])
    train_run = json.loads(cli("inspect", "--dropout", "0.5", "--train", "--format", "json").output)
    dropout = next(s for s in train_run["stages"] if s["name"] == "dropout")
    assert dropout["value_range"][1] > 1.0  # kept weights are scaled by 1 / (1 - 0.5)


def test_per_query_valid_lens_for_a_batch_of_one(cli):
    """A trailing ';' makes valid_lens 2-D, so one example can mask per query."""
    document = json.loads(
        cli("inspect", "--batch", "1", "--valid-lens", "1,2,3,4;", "--format", "json").output
    )
    assert document["spec"]["valid_lens"] == [[1, 2, 3, 4]]
    masked = document["summary"]["masked_keys"][0]
    assert masked["valid_len"] == [1, 2, 3, 4]
