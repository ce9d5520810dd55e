"""The readers' questions (the chapter's discussion) answered by the tool's own output, through the
CLI, in plain words: no reference to an internal numbering a user cannot look up."""

from __future__ import annotations

import re

import pytest
import torch

COMMANDS = ["inspect", "heatmap", "reshape", "compare", "trace", "diagram", "variants"]
COMMANDS += ["weights", "heads", "presets"]
INTERNAL = re.compile(r"\bseed Q\d|\(Q\d+\)|\bQ\d{1,2}\b")


def flat(text: str) -> str:
    """One line, whatever the console wrapped."""
    return " ".join(text.split())


def test_inspect_states_the_books_notation(cli):
    """Is it h heads or p? h = heads, and each head is p_q = p_k = p_v = p_o / h wide."""
    out = flat(cli("inspect").stdout)
    assert "in the book's notation: h = 5 heads, p_q = p_k = p_v = p_o / h = 100 / 5 = 20" in out
    out = flat(cli("inspect", "--heads", "4").stdout)
    assert "h = 4 heads, p_q = p_k = p_v = p_o / h = 100 / 4 = 25" in out
    out = flat(cli("inspect", "--value-mode", "full").stdout)
    assert "p_q = p_k = p_o / h = 100 / 5 = 20, but p_v = p_o = 100: values kept whole" in out


def test_axes_say_what_they_count(cli):
    """number_of_QKV is a sequence length (num_steps), length_of_QKV a feature width."""
    out = flat(cli("inspect").stdout)
    assert "queries and kv pairs count positions in a sequence (a length, such as num_steps)" in out
    assert "hiddens and head dim count features (a width, such as num_hiddens)" in out
    assert "batch counts examples" in out


def test_different_lengths_are_named_cross_attention(cli):
    out = flat(cli("inspect", "--queries", "4", "--kv", "6").stdout)
    assert "4 queries and 6 key-value pairs: cross-attention" in out
    assert "the queries come from one sequence and the keys and values from another" in out
    assert "self-attention has one sequence, so as many queries as key-value pairs" in out
    assert "cross-attention" not in cli("inspect", "--queries", "6", "--kv", "6").stdout
    causal = flat(cli("inspect", "--causal", "--valid-lens", "none").stdout)
    assert "the 4 queries are the last positions of that one sequence (decoding with a cache)" in (
        causal
    )


def test_diagram_says_the_books_figure_was_drawn_by_hand(cli, tmp_path):
    from svg_text import flat as joined
    from svg_text import svg_texts

    result = cli("diagram", "--out", str(tmp_path / "d.svg"))
    assert result.exit_code == 0, result.output
    words = joined(" ".join(svg_texts(tmp_path / "d.svg")))
    assert "d2l's figure of this layer was drawn by hand (in OmniGraffle)" in words
    assert "this diagram is generated from a run of the layer" in words
    terminal = flat(cli("diagram", "--terminal").stdout)
    assert "drawn by hand (in OmniGraffle)" in terminal and "generated from a run" in terminal
    assert "OmniGraffle" in flat(cli("diagram", "--help").stdout)


def test_variants_answer_values_whole_on_the_chapters_layer_and_the_summed_reading(cli):
    result = cli("variants")
    assert result.exit_code == 0, result.output
    out = flat(result.stdout)
    assert "MHA, values whole per head" in out
    row = next(line for line in result.stdout.splitlines() if line.startswith("│ parameters"))
    assert "40,000" in row and "80,000" in row  # the chapter's layer: split, then whole
    assert "the other reading, heads summed instead of concatenated" in out
    assert "W_o stays 100 x 100 and the parameters stay d2l's" in out
    assert "(A_1 + ... + A_5) V, one averaged attention pattern" in out


@pytest.fixture
def constant_layer(tmp_path):
    layer = torch.nn.MultiheadAttention(100, 5)
    for parameter in layer.parameters():
        torch.nn.init.constant_(parameter, 0.05)
    torch.save(layer.state_dict(), tmp_path / "constant.pt")
    return str(tmp_path / "constant.pt")


def test_identical_heads_blame_constant_weights_not_ones_inputs(cli, constant_layer):
    out = flat(cli("inspect", "--weights", constant_layer, "--heads", "5").stdout)
    assert "all 5 heads have the same attention weights" in out
    assert "(every weight holds one value: a constant initialisation)" in out
    assert "use random (--seed) or trained weights" in out
    assert "--inputs randn" not in out  # the inputs already are random: not the cause
    assert "each valid key gets the same score" not in out
    ones = flat(cli("inspect", "--inputs", "ones").stdout)
    assert "with --inputs ones every query and every key is the same vector" in ones
    assert "constant initialisation" not in ones
    both = flat(
        cli("inspect", "--inputs", "ones", "--weights", constant_layer, "--heads", "5").stdout
    )
    assert "constant initialisation" in both and "--inputs ones" in both


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_holds_no_internal_references(cli, command):
    result = cli(*([command] if command else []), "--help")
    assert result.exit_code == 0, result.output
    assert not INTERNAL.search(result.stdout), INTERNAL.search(result.stdout)


@pytest.mark.parametrize(
    "args",
    [
        ["inspect"],
        ["inspect", "--inputs", "ones"],
        ["inspect", "--value-mode", "full"],
        ["variants"],
        ["variants", "--format", "markdown"],
        ["diagram", "--terminal", "--value-mode", "full"],
        ["heatmap", "--terminal", "--inputs", "ones"],
        ["reshape", "--shape", "2,1,10", "--to", "1,1,2,10"],
    ],
    ids=" ".join,
)
def test_output_holds_no_internal_references(cli, args):
    result = cli(*args)
    assert result.exit_code == 0, result.output
    text = result.stdout + result.stderr
    assert not INTERNAL.search(text), INTERNAL.search(text)
