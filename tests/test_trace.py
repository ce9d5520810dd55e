"""`mha trace` through its command line: the traced table, `--check`, and the learners'
mistakes it must catch and name. The learners' modules are files in tests/learner_modules/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

TESTS = Path(__file__).parent
D2L = f"{TESTS / 'd2l_reference.py'}:MultiHeadAttention"
LEARNERS = TESTS / "learner_modules"
CHAPTER_LENS, CHAPTER_HEADS = [3, 2], 5  # the chapter's example, mha's defaults


def learner(name: str, attribute: str = "MultiHeadAttention") -> str:
    return f"{LEARNERS / name}.py:{attribute}"


def line_of(name: str, code: str) -> str:
    """`file.py:N` of the first line of tests/learner_modules/NAME.py that holds `code`."""
    lines = (LEARNERS / f"{name}.py").read_text().splitlines()
    return f"{name}.py:{next(i for i, line in enumerate(lines, 1) if code in line)}"


def trace_json(cli, *args: str) -> tuple[int, dict]:
    result = cli("trace", *args, "--format", "json")
    return result.exit_code, json.loads(result.stdout)


def steps(document: dict) -> list[dict]:
    return [row for row in document["rows"] if row["row"] == "step"]


def test_d2l_trace_has_every_stage_of_inspect_with_equal_shape_and_axes(cli):
    inspected = json.loads(cli("inspect", "--format", "json").stdout)["stages"]
    code, document = trace_json(cli, D2L)
    assert code == 0
    traced = {(tuple(s["shape"]), tuple(s["axes"])) for s in steps(document)}
    for stage in inspected:
        assert (tuple(stage["shape"]), tuple(stage["axes"])) in traced, stage["name"]
    # The folded heads, as transpose_qkv makes them, named from the sizes alone.
    fold = next(s for s in steps(document) if s["shape"] == [10, 4, 20])
    assert fold["axes"] == ["(batch heads)", "queries", "head dim"]
    assert fold["location"] == "d2l_reference.py:66" and "X.reshape(-1" in fold["code"]


def test_d2l_check_matches_every_inspect_stage_by_value(cli):
    inspected = json.loads(cli("inspect", "--format", "json").stdout)["stages"]
    code, document = trace_json(cli, D2L, "--check")
    assert code == 0
    check = document["check"]
    assert check["agrees"] and check["divergence"] is None
    assert check["attention_weights"]["shape"] == [2, 5, 4, 6]
    assert check["attention_weights"]["error"] <= check["attention_weights"]["bound"]
    matched = {s["reference"] for s in steps(document) if s["reference"]}
    assert {stage["name"] for stage in inspected} <= matched


def test_table_shows_source_lines_submodules_and_guesses(cli):
    result = cli("trace", D2L, "--queries", "6")  # queries and kv pairs now share the size 6
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "trace of MultiHeadAttention" in out
    assert "d2l_reference.py:58" in out and "torch.bmm(queries" in out
    assert "W_q" in out and "Linear, 10,000 parameters" in out
    assert "attention" in out and "DotProductAttention" in out
    assert "?" in out and "a name ending in ? is a guess" in out
    assert "\x1b[" not in out


def test_help_says_it_runs_the_users_code(cli):
    result = cli("trace", "--help")
    assert result.exit_code == 0
    assert "runs your code" in " ".join(result.stdout.split())


def test_markdown_is_a_pipe_table(cli):
    result = cli("trace", D2L, "--format", "markdown")
    assert result.exit_code == 0
    assert "| # | step | source | shape | axes |" in result.stdout
    assert "| `repeat_interleave` |" in result.stdout


def test_json_is_versioned_with_shapes_as_lists(cli):
    _, document = trace_json(cli, D2L)
    assert (document["schema"], document["version"]) == ("mha.trace", 1)
    first = steps(document)[0]
    assert first["kind"] == "input" and first["shape"] == [2, 4, 100]
    assert document["summary"]["output_shape"] == [2, 4, 100]
    assert (
        document["summary"]["total_flops"]
        == json.loads(cli("inspect", "--format", "json").stdout)["summary"]["total_flops"]
    )


def _tiled_heads() -> list[list[int]]:
    """(example, head) pairs that `valid_lens.repeat(h)` gives another example's length."""
    lens = torch.tensor(CHAPTER_LENS)
    tiled = lens.repeat(CHAPTER_HEADS).reshape(len(CHAPTER_LENS), CHAPTER_HEADS)
    return (tiled != lens[:, None]).nonzero().tolist()


def test_repeat_for_repeat_interleave_is_caught_and_named(cli):
    code, document = trace_json(cli, learner("repeat_lens"), "--check")
    assert code == 1
    check = document["check"]
    assert not check["agrees"]
    assert check["attention_weights"]["differing"] == _tiled_heads()
    first = next(s for s in steps(document) if s["index"] == check["divergence"])
    assert first["name"] == "repeat"
    assert first["location"] == line_of("repeat_lens", "valid_lens.repeat(self.num_heads)")
    assert check["explanations"][0].startswith(
        "valid_lens repeated as [3, 2, 3, 2, ...]: each head was given another example's "
        "padding; d2l uses repeat_interleave"
    )


def test_table_says_where_it_stops_matching_and_why(cli):
    result = cli("trace", learner("repeat_lens"), "--check")
    assert result.exit_code == 1
    out = " ".join(result.stdout.split())
    assert "check: your module DIFFERS from the reference" in out
    assert (
        "attention weights (2, 5, 4, 6) differ in example 0 (heads 1, 3), example 1 (heads 1, 3)"
        in out
    )
    assert "first step that stops matching: #16 repeat at repeat_lens.py" in out
    assert "✗ first to differ" in out and "why: valid_lens repeated as [3, 2, 3, 2, ...]" in out


def test_repeated_lens_axis_reads_heads_batch(cli):
    """Without --check the table already shows it: the tiled lengths are (heads batch)."""
    _, document = trace_json(cli, learner("repeat_lens"))
    repeat = next(s for s in steps(document) if s["name"] == "repeat")
    assert repeat["axes"] == ["(heads batch)"]


@pytest.mark.parametrize(
    ("module", "step", "location", "reason"),
    [
        (
            "output_permute",
            "reshape",
            ("output_permute", "return X.reshape"),
            "the heads are joined in the wrong order",
        ),
        ("mask_zero", "setitem", ("chapter", "X[~mask] = value"), "masked scores filled with 0"),
        (
            "no_sqrt",
            "softmax",
            ("chapter", "return nn.functional.softmax(X.reshape(shape)"),
            "the scores were not divided by sqrt(d) = sqrt(20)",
        ),
        (
            "wrong_end",
            "reshape",
            ("wrong_end", "return X.reshape(-1"),
            "the heads are split from the wrong end",
        ),
    ],
)
def test_learners_mistakes_are_caught_and_named(cli, module, step, location, reason):
    result = cli("trace", learner(module), "--check", "--format", "json")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"mha: --check: {learner(module)} differs from the reference")
    check = (document := json.loads(result.stdout))["check"]
    first = next(s for s in steps(document) if s["index"] == check["divergence"])
    assert (first["name"], first["location"]) == (step, line_of(*location))
    assert check["explanations"][0].startswith(reason)


def test_output_permute_keeps_the_weights_right(cli):
    _, document = trace_json(cli, learner("output_permute"), "--check")
    assert document["check"]["attention_weights"]["agrees"]
    assert not document["check"]["output"]["agrees"]


def test_wrong_end_names_the_split_line(cli):
    _, document = trace_json(cli, learner("wrong_end"), "--check")
    where = line_of("wrong_end", "-1, self.num_heads)")
    assert (
        f"{where} (X = X.reshape(X.shape[0], X.shape[1], -1, self.num_heads)"
        in (document["check"]["explanations"][0])
    )
    split = next(s for s in steps(document) if s["location"] == where)
    assert split["axes"] == ["batch", "queries", "head dim", "heads"]


def test_nanogpt_view_and_transpose(cli):
    module = learner("nanogpt", "CausalSelfAttention")
    code, document = trace_json(cli, module, "--check")
    assert code == 1
    assert any("add --causal" in reason for reason in document["check"]["explanations"])
    code, document = trace_json(cli, module, "--check", "--causal")
    assert code == 0 and document["check"]["agrees"]
    heads = [s for s in steps(document) if s["name"] == "transpose" and s["shape"] == [2, 5, 4, 20]]
    assert [s["axes"] for s in heads] == [["batch", "heads", "queries", "head dim"]] * 3
    assert document["spec"]["kv"] == 4  # one input: self-attention, kv pairs = queries


def test_einops_version(cli):
    module = learner("einops_attention", "EinopsAttention")
    code, document = trace_json(cli, module, "--check")
    assert code == 0 and document["check"]["agrees"]
    assert document["check"]["layout"] == "to_q, to_k, to_v, to_out"
    where = line_of("einops_attention", "q = rearrange(")
    rearranged = [s for s in steps(document) if s["location"] == where]
    assert [s["name"] for s in rearranged] == ["linear", "reshape", "permute"]
    assert rearranged[-1]["axes"] == ["batch", "heads", "queries", "head dim"]


def test_english_edition_with_lazy_layers(cli):
    module = learner("english")
    code, document = trace_json(cli, module, "--check", "--query-size", "30", "--bias")
    assert code == 0 and document["check"]["agrees"]
    assert steps(document)[0]["shape"] == [2, 4, 30]
    assert not any(s["name"] in ("empty", "kaiming_uniform_") for s in steps(document))


def test_torch_multihead_attention_itself(cli):
    code, document = trace_json(cli, "torch.nn:MultiheadAttention", "--check")
    assert code == 0 and document["check"]["agrees"]
    assert document["check"]["layout"] == "torch.nn.MultiheadAttention (packed in_proj)"
    names = [s["name"] for s in steps(document)]
    assert {"baddbmm", "softmax", "bmm", "linear"} <= set(names)  # inside, not one row
    softmax = next(s for s in steps(document) if s["name"] == "softmax")
    assert softmax["location"].startswith("torch/nn/functional.py:")


def test_meta_device_any_size(cli):
    code, document = trace_json(
        cli, D2L, "--device", "meta", "--hiddens", "8192", "--heads", "64",
        "--queries", "131072", "--kv", "131072", "--valid-lens", "none",
    )  # fmt: skip
    assert code == 0
    scores = next(s for s in steps(document) if s["name"] == "bmm")
    assert scores["shape"] == [128, 131072, 131072]
    assert scores["value_range"] is None and not document["summary"]["computed"]


def test_check_on_meta_is_refused(cli):
    result = cli("trace", D2L, "--check", "--device", "meta")
    assert result.exit_code == 2
    assert "--check compares values, and the meta device computes none" in result.stderr


@pytest.mark.parametrize(
    ("target", "fragment"),
    [
        ("missing.py:X", "missing.py: no such file"),
        (f"{TESTS / 'd2l_reference.py'}:MultiHeadAtention", "did you mean 'MultiHeadAttention'"),
        ("no_such_package.attention:X", "no module named 'no_such_package'"),
        ("attention.py", "expected FILE.py:NAME or package.module:NAME"),
        (f"{LEARNERS / 'chapter.py'}:math", "names a module"),
    ],
)
def test_targets_that_name_nothing(cli, target, fragment):
    result = cli("trace", target)
    assert result.exit_code == 2
    assert fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_users_exception_is_one_line_naming_their_line(cli, tmp_path):
    source = tmp_path / "broken.py"
    source.write_text(
        "import torch\nfrom torch import nn\n\n\nclass Broken(nn.Module):\n"
        "    def __init__(self, num_hiddens, num_heads, dropout):\n        super().__init__()\n\n"
        "    def forward(self, queries, keys, values, valid_lens):\n"
        "        return torch.bmm(queries, keys)  # (2, 4, 100) @ (2, 6, 100)\n"
    )
    result = cli("trace", f"{source}:Broken")
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1
    assert "your code raised RuntimeError at" in line and "broken.py:10" in line
    assert "(return torch.bmm(queries, keys)" in line and "MHA_DEBUG=1" in line


def test_mha_debug_keeps_the_whole_traceback(runner, tmp_path):
    from mha_cli.cli import app

    source = tmp_path / "boom.py"
    source.write_text("def helper():\n    raise ValueError('broken at import')\n\n\nhelper()\n")
    result = runner.invoke(app, ["trace", f"{source}:X"], env={"MHA_DEBUG": "1"})
    assert result.exit_code != 0
    cause = result.exception.__cause__  # the user's own exception, with its traceback
    assert isinstance(cause, ValueError) and str(cause) == "broken at import"
    assert "boom.py:2 (raise ValueError('broken at import'))" in str(result.exception)


def test_weights_option_is_refused(cli):
    result = cli("trace", D2L, "--weights", "x.pt")
    assert result.exit_code == 2
    assert "mha trace runs your module with its own weights" in result.stderr


def test_heatmap_of_a_learners_module(cli, tmp_path):
    out = tmp_path / "mine.png"
    result = cli("heatmap", "--module", learner("repeat_lens"), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {out}" in result.stderr
