"""`mha trace` on the mistakes learners make that it used to blame on the wrong line, on
modules that raise or leave a layer uncalled, and on user code that exits or prints
(issue 15 item 3, issue 16 items 11 and 23). The modules are in tests/learner_modules/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_trace import learner, line_of, steps


def check_json(
    cli, module: str, *options: str, attribute: str = "MultiHeadAttention"
) -> tuple[object, dict, dict]:
    result = cli("trace", learner(module, attribute), "--check", "--format", "json", *options)
    document = json.loads(result.stdout)
    return result, document, document["check"]


def first_step(document: dict) -> dict:
    return next(s for s in steps(document) if s["index"] == document["check"]["divergence"])


@pytest.mark.parametrize(
    ("module", "name", "line", "words"),
    [
        (
            "no_permute_qkv",
            "reshape",
            "return X.reshape(-1, X.shape[1]",
            [
                "the heads are folded into the batch without the permute",
                "the heads axis was not moved next to the batch axis",
                "mixes positions",
                "X.permute(0, 2, 1, 3)",
            ],
        ),
        (
            "no_permute_output",
            "reshape",
            "return X.reshape(X.shape[0], X.shape[2]",
            [
                "the heads are joined without the permute",
                "(batch, heads, queries, head dim) straight into (batch, queries, hiddens)",
                "X.permute(0, 2, 1, 3)",
            ],
        ),
        (
            "softmax_dim1",
            "softmax",
            "dim=1)",
            [
                "the softmax normalised over axis 1 (queries)",
                "must sum to 1 over the keys, axis 2 (kv pairs)",
            ],
        ),
        (
            "sqrt_hiddens",
            "div",
            "math.sqrt(self.num_hiddens)",
            ["divided by sqrt(100) (num_hiddens) instead of sqrt(20)"],
        ),
        (
            "fold_in_one",
            "reshape",
            "X.shape[0] * self.num_heads",
            [
                "the heads are folded into the batch without the permute",
                "(batch, queries, hiddens) straight into ((batch heads), queries, head dim)",
            ],
        ),
        (
            "join_in_one",
            "reshape",
            "X.shape[2] * self.num_heads",
            ["the heads are joined without the permute", "X.permute(0, 2, 1, 3)"],
        ),
        (
            "queries_sqrt_hiddens",
            "div",
            "queries / math.sqrt(100)",
            ["these queries are divided by sqrt(100) (num_hiddens) instead of sqrt(20)"],
        ),
    ],
)
def test_the_wrong_line_is_blamed_and_said_why(cli, module, name, line, words):
    result, document, check = check_json(cli, module)
    assert result.exit_code == 1
    first = first_step(document)
    assert (first["name"], first["location"]) == (name, line_of(module, line))
    assert first["how"] == "first to differ" and first["reference"] is None
    reason = check["explanations"][0]
    for word in words:
        assert word in reason
    every = " ".join(check["explanations"])
    assert "matches none of the reference's stages" not in every
    assert "masks" not in every  # the masking is right in all four


def test_no_permute_fold_is_not_shown_as_matching_the_projection(cli):
    _, document, _ = check_json(cli, "no_permute_qkv")
    folds = [s for s in steps(document) if s["location"] == line_of("no_permute_qkv", "(-1, X")]
    assert len(folds) == 3  # queries, keys, values
    assert all(s["reference"] is None for s in folds)
    # Nothing computed from the folds passes as a projection reshaped or reordered.
    assert not [
        s for s in steps(document) if s["reference"] and s["how"] in ("reshaped", "axes reordered")
    ]


@pytest.mark.parametrize(("hiddens", "heads"), [("64", "4"), ("48", "3")])
def test_sqrt_hiddens_names_the_sizes_used(cli, hiddens, heads):
    width = int(hiddens) // int(heads)
    _, _, check = check_json(cli, "sqrt_hiddens", "--hiddens", hiddens, "--heads", heads)
    assert (
        f"divided by sqrt({hiddens}) (num_hiddens) instead of sqrt({width})"
        in (check["explanations"][0])
    )


def test_softmax_over_the_queries_is_named_with_causal_too(cli):
    _, _, check = check_json(cli, "softmax_dim1", "--queries", "5", "--kv", "5")
    assert check["explanations"][0].startswith("the softmax normalised over axis 1 (queries")


def test_a_correct_module_still_matches(cli):
    """The new rules must not fire on d2l's own code."""
    _, _, check = check_json(cli, "chapter")
    assert check["agrees"] and check["explanations"] == []


# A module that raises: the table up to the failing operation, one line naming it.

RAISES = "lens_not_repeated"


@pytest.mark.parametrize(("options", "code"), [((), 2), (("--check",), 1)])
def test_a_module_that_raises_shows_its_steps_then_one_line(cli, options, code):
    result = cli("trace", learner(RAISES), *options)
    assert result.exit_code == code
    assert "Traceback" not in result.output
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1
    where = line_of("chapter", "X[~mask] = value")
    for word in (f"{where} (X[~mask] = value)", "IndexError", "setitem of (40, 6) float32"):
        assert word in line
    assert "(8, 6) bool" in line
    out = " ".join(result.stdout.split())
    assert "trace of MultiHeadAttention" in out and "stopped: " in out
    assert "(batch heads queries), kv pairs" in out  # the steps before the failing one


def test_a_module_that_raises_in_json(cli):
    result = cli("trace", learner(RAISES), "--check", "--format", "json")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert "IndexError" in document["failure"] and document["check"] is None
    shapes = [s["shape"] for s in steps(document)]
    assert [40, 6] in shapes and not any(s["name"] == "softmax" for s in steps(document))


def test_the_api_raises_with_the_partial_report():
    from mha_cli import trace
    from mha_cli.learner.user_code import ModuleFailed

    with pytest.raises(ModuleFailed) as raised:
        trace(learner(RAISES))
    assert raised.value.exit_code == 2
    assert raised.value.report.failure == str(raised.value)
    assert any(s.stage.shape == (40, 6) for s in raised.value.report.steps)


# A lazy layer the forward never calls (16.11).

FORGOT = "forgot_wo"


def test_forgotten_w_o_without_check_is_traced_and_named(cli):
    result = cli("trace", learner(FORGOT))
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    assert "note: W_o (LazyLinear) was never called in forward" in out
    assert "parameters 30,000" in out  # W_q, W_k, W_v: 3 x 100 x 100


def test_forgotten_w_o_with_check_fails_naming_it(cli):
    result = cli("trace", learner(FORGOT), "--check")
    assert result.exit_code == 1
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and "Attempted to use" not in result.output
    assert "W_o (LazyLinear) was never called in forward" in line


def test_heatmap_of_a_module_that_forgot_w_o(cli, tmp_path):
    out = tmp_path / "w.png"
    result = cli("heatmap", "--module", learner(FORGOT), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:4] == b"\x89PNG"


# User code that exits or prints (16.23).

HEADER = "import sys\nimport torch\nfrom torch import nn\n\n"
MODULE = (
    "class A(nn.Module):\n"
    "    def __init__(self, num_hiddens, num_heads, dropout):\n"
    "        super().__init__()\n"
    "        self.W = nn.Linear(num_hiddens, num_hiddens)\n\n"
    "    def forward(self, queries, keys, values, valid_lens):\n"
    "{body}"
    "        return self.W(queries)\n"
)


def _write(tmp_path: Path, top: str = "", body: str = "") -> str:
    source = tmp_path / "mine.py"
    source.write_text(HEADER + top + MODULE.format(body=body))
    return f"{source}:A"


@pytest.mark.parametrize(
    ("top", "body", "shown"),
    [
        ("sys.exit(0)\n", "", "SystemExit(0)"),
        ("", "        sys.exit(3)\n", "SystemExit(3)"),
        ("", "        raise SystemExit('msg')\n", "SystemExit('msg')"),
        ("sys.exit()\n", "", "SystemExit()"),
    ],
)
@pytest.mark.parametrize("check", [(), ("--check",)])
def test_a_target_that_exits_is_an_error(cli, tmp_path, top, body, shown, check):
    result = cli("trace", _write(tmp_path, top, body), *check)
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in result.output
    assert f"your code ends the program ({shown}) at" in line and "mine.py:" in line


def test_users_prints_stay_off_stdout(cli, tmp_path):
    target = _write(tmp_path, "print('hello at import')\n", "        print('hello from forward')\n")
    result = cli("trace", target, "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)  # nothing but the JSON
    assert document["schema"] == "mha.trace"
    assert "hello at import" in result.stderr and "hello from forward" in result.stderr


def test_forgotten_w_o_linear_is_named(cli):
    """With an nn.Linear W_o every step matches and only the output differs: say which stage
    forward returned, and that W_o never ran."""
    result, _, check = check_json(cli, "forgot_wo_linear")
    assert result.exit_code == 1 and check["attention_weights"]["agrees"]
    assert check["explanations"][0].startswith(
        "your forward returns d2l's output.concat, a stage before the layer's output; "
        "W_o (Linear) was never called in forward"
    )


def test_a_stage_of_the_same_shape_does_not_steal_the_blame(cli):
    """nanoGPT's (B, nh, T, T) scores have the shape of d2l's (b, h, q, d) heads when T = d:
    only a reshape holding the same numbers as that stage is blamed for a missing permute."""
    result, document, check = check_json(
        cli, "nanogpt", "--queries", "20", attribute="CausalSelfAttention"
    )
    assert result.exit_code == 1
    assert first_step(document)["name"] == "masked_fill"
    assert not any("without the permute" in reason for reason in check["explanations"])
    assert any("add --causal" in reason for reason in check["explanations"])


def test_a_lazy_module_that_raises_does_not_blame_the_layers_it_never_reached(cli):
    result = cli("trace", learner("english_raises"), "--check")
    assert result.exit_code == 1
    assert "IndexError" in result.stderr and "setitem of (40, 6) float32" in result.stderr
    assert "never called" not in result.output


@pytest.mark.parametrize(
    ("module", "words"),
    [
        ("softmax_dim1", "the softmax normalised over axis 1 (queries)"),
        ("sqrt_hiddens", "divided by sqrt(100) (num_hiddens) instead of sqrt(20)"),
        ("no_permute_qkv", "the heads are folded into the batch without the permute"),
    ],
)
def test_mistakes_named_in_float16_too(cli, module, words):
    """float16 overflows d2l's -1e6 fill to -inf: a masked column over the queries is NaN."""
    result, _, check = check_json(cli, module, "--dtype", "float16")
    assert result.exit_code == 1
    assert words in check["explanations"][0]


def test_heatmap_of_a_module_that_raises_is_one_line(cli, tmp_path):
    out = tmp_path / "w.png"
    result = cli("heatmap", "--module", learner(RAISES), "--out", str(out))
    assert result.exit_code == 2 and not out.exists()
    assert len(result.stderr.strip().splitlines()) == 1 and "setitem of (40, 6)" in result.stderr


def test_heatmap_module_that_exits(cli, tmp_path):
    result = cli("heatmap", "--module", _write(tmp_path, "sys.exit(0)\n"), "--terminal")
    assert result.exit_code == 2 and "your code ends the program (SystemExit(0))" in result.stderr


def test_identical_heads_of_a_constant_initialisation_blame_the_weights_not_the_inputs(cli):
    """Random inputs and a constant initialisation: the note names the weights; telling the
    learner to use --inputs randn (which they already do) would be wrong."""
    from pathlib import Path

    target = f"{Path(__file__).parent / 'learner_modules' / 'constant_init.py'}:MultiHeadAttention"
    out = " ".join(cli("trace", target).output.split())
    assert "all 5 heads have the same weights" in out
    assert "constant or repeated initialisation" in out
    assert "use --inputs randn" not in out
    ones = " ".join(cli("trace", target, "--inputs", "ones").output.split())
    assert "with --inputs ones every query and every key is the same vector" in ones
