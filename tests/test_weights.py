"""`mha weights`: every figure against a computation written here, from weights sliced by hand
and the dense SVD of each head's full circuit; flags; formats, images and options."""

from __future__ import annotations

import json
import math
from pathlib import Path

import d2l_reference as d2l
import matplotlib.image
import pytest
import torch
from safetensors.torch import save_file


def save(state: dict[str, torch.Tensor], path: Path) -> Path:
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, path)
    else:
        torch.save(state, path)
    return path


def d2l_layer(heads: int = 4, hiddens: int = 24, bias: bool = False, seed: int = 0) -> dict:
    """d2l's own MultiHeadAttention (query, key and value sizes 6, 7, 8), weights drawn anew so
    every slice differs (biases too)."""
    torch.manual_seed(seed)
    layer = d2l.MultiHeadAttention(7, 6, 8, hiddens, heads, 0.0, bias=bias)
    return {k: v.detach().clone() for k, v in layer.state_dict().items()}


def gqa_layer(heads: int = 6, kv_heads: int = 2, d: int = 4, size: int = 10) -> dict:
    """A grouped-query layer: W_k and W_v have kv_heads * d rows."""
    g = torch.Generator().manual_seed(5)
    return {
        "W_q.weight": torch.randn(heads * d, size, generator=g),
        "W_k.weight": torch.randn(kv_heads * d, size, generator=g),
        "W_v.weight": torch.randn(kv_heads * d, size, generator=g),
        "W_o.weight": torch.randn(heads * d, heads * d, generator=g),
    }


def weights_json(cli, *args: str) -> dict:
    result = cli("weights", *args, "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["schema"] == "mha.weights" and document["version"] == 2
    return document


def expected_heads(state: dict, heads: int, kv_heads: int, full: bool = False) -> list[dict]:
    """Each head's figures from its hand-cut slices and the dense SVD of its full circuits."""
    w = {k: v.double() for k, v in state.items()}
    d = w["W_q.weight"].shape[0] // heads
    width = w["W_o.weight"].shape[1] // heads
    group = heads // kv_heads
    result = []
    for i in range(heads):
        j = i // group
        q = w["W_q.weight"][i * d : (i + 1) * d]
        k = w["W_k.weight"][j * d : (j + 1) * d]
        v = w["W_v.weight"] if full else w["W_v.weight"][j * d : (j + 1) * d]
        o = w["W_o.weight"][:, i * width : (i + 1) * width]
        norms = {"W_q": q.norm(), "W_k": k.norm(), "W_v": v.norm(), "W_o": o.norm()}
        if "W_q.bias" in w:
            norms["b_q"] = w["W_q.bias"][i * d : (i + 1) * d].norm()
            norms["b_k"] = w["W_k.bias"][j * d : (j + 1) * d].norm()
            norms["b_v"] = w["W_v.bias"][j * d : (j + 1) * d].norm()
        circuits = {"qk": q.T @ k, "ov": o @ v}  # the full (D x D') products
        result.append({"norms": norms, "matrices": circuits, "kv_head": j})
    return result


def dense_figures(matrix: torch.Tensor) -> dict[str, object]:
    sigma = torch.linalg.svdvals(matrix)  # all min(D, D') of them
    p = sigma / sigma.sum()
    p = p[p > 0]
    return {
        "sigma": sigma,
        "frobenius": float(torch.linalg.matrix_norm(matrix)),
        "stable_rank": float(torch.linalg.matrix_norm(matrix) ** 2 / sigma[0] ** 2),
        "effective_rank": float(torch.exp(-(p * p.log()).sum())),
    }


def assert_head_figures(document: dict, expected: list[dict], rtol: float) -> None:
    layer = document["layers"][0]
    for head, want in zip(layer["heads"], expected, strict=True):
        assert head["kv_head"] == want["kv_head"]
        assert set(head["norms"]) == set(want["norms"])
        for name, value in want["norms"].items():
            assert head["norms"][name] == pytest.approx(float(value), rel=rtol)
        for circuit in ("qk", "ov"):
            dense = dense_figures(want["matrices"][circuit])
            ours = head[circuit]
            sigma = dense["sigma"]
            rank = len(ours["singular_values"])
            got = torch.tensor(ours["singular_values"], dtype=torch.float64)
            assert float((got - sigma[:rank]).abs().max()) <= rtol * float(sigma[0])
            tail = sigma[rank:]  # a product through a head dim of `rank` has no more
            assert tail.numel() == 0 or float(tail.max()) <= 1e-9 * float(sigma[0])
            for figure in ("frobenius", "stable_rank", "effective_rank"):
                assert ours[figure] == pytest.approx(dense[figure], rel=rtol), (circuit, figure)
    matrices = {c: [want["matrices"][c].flatten() for want in expected] for c in ("qk", "ov")}
    for circuit, flat in matrices.items():
        for i, a in enumerate(flat):
            for j, b in enumerate(flat):
                cosine = float(a @ b / (a.norm() * b.norm()))
                assert layer["similarity"][circuit][i][j] == pytest.approx(cosine, abs=rtol)


# ---------------------------------------------------------------------------------------------
# Every figure, checked independently


@pytest.mark.parametrize("bias", [False, True])
def test_d2l_checkpoint_every_figure_matches_dense_svd(cli, tmp_path, bias):
    state = d2l_layer(bias=bias)
    path = save(state, tmp_path / "d2l.pt")
    document = weights_json(cli, "--weights", str(path), "--heads", "4")
    assert_head_figures(document, expected_heads(state, 4, 4), rtol=1e-4)  # float32 weights
    assert document["source"]["layout"] == "d2l MultiHeadAttention"


def test_float64_weights_agree_to_1e5(cli, tmp_path):
    state = {k: v.double() for k, v in d2l_layer(heads=3, hiddens=12).items()}
    path = save(state, tmp_path / "d2l64.safetensors")
    document = weights_json(cli, "--weights", str(path), "--heads", "3", "--dtype", "float64")
    assert document["dtype"] == "float64"
    assert_head_figures(document, expected_heads(state, 3, 3), rtol=1e-5)


def test_torch_multihead_attention_checkpoint_with_biases(cli, tmp_path):
    torch.manual_seed(1)
    mha = torch.nn.MultiheadAttention(20, 5, bias=True)
    with torch.no_grad():
        mha.in_proj_bias.normal_()  # torch starts biases at zero; make every slice count
        mha.out_proj.bias.normal_()
    path = save(mha.state_dict(), tmp_path / "torch.pt")
    document = weights_json(cli, "--weights", str(path), "--heads", "5")
    w = mha.state_dict()
    state = {
        "W_q.weight": w["in_proj_weight"][:20],
        "W_k.weight": w["in_proj_weight"][20:40],
        "W_v.weight": w["in_proj_weight"][40:],
        "W_o.weight": w["out_proj.weight"],
        "W_q.bias": w["in_proj_bias"][:20],
        "W_k.bias": w["in_proj_bias"][20:40],
        "W_v.bias": w["in_proj_bias"][40:],
    }
    assert_head_figures(document, expected_heads(state, 5, 5), rtol=1e-4)
    shared = document["layers"][0]["shared_norms"]["b_o"]
    assert shared == pytest.approx(float(w["out_proj.bias"].double().norm()), rel=1e-6)


def test_grouped_query_heads_read_their_groups_key_value_head(cli, tmp_path):
    state = gqa_layer()
    path = save(state, tmp_path / "gqa.pt")
    document = weights_json(cli, "--weights", str(path), "--heads", "6")
    assert [h["kv_head"] for h in document["layers"][0]["heads"]] == [0, 0, 0, 1, 1, 1]
    assert_head_figures(document, expected_heads(state, 6, 2), rtol=1e-4)
    table = cli("weights", "--weights", str(path), "--heads", "6").stdout
    assert "kv head" in table and "grouped-query attention: 2 key-value heads" in table


def test_full_values_circuits_have_rank_up_to_num_hiddens(cli):
    document = weights_json(cli, "--value-mode", "full", "--hiddens", "8", "--heads", "2")
    head = document["layers"][0]["heads"][0]
    assert len(head["qk"]["singular_values"]) == 4  # head dim
    assert len(head["ov"]["singular_values"]) == 8  # num_hiddens: values kept whole
    norms = [h["norms"]["W_v"] for h in document["layers"][0]["heads"]]
    assert norms[0] == norms[1]  # every head reads all of W_v
    assert any("values kept whole" in note for note in document["layers"][0]["notes"])


def test_seeded_layer_is_the_layer_inspect_runs(cli):
    import mha_cli

    report = mha_cli.inspect(heads=4, hiddens=16)  # its parameters: the seeded draw
    state = {k: v.clone() for k, v in report.parameters.items()}
    document = weights_json(cli, "--heads", "4", "--hiddens", "16")
    assert_head_figures(document, expected_heads(state, 4, 4), rtol=1e-4)


def test_half_precision_weights_are_analysed_in_float64(cli, tmp_path):
    state = {k: v.half() for k, v in d2l_layer(heads=2, hiddens=8).items()}
    path = save(state, tmp_path / "half.pt")
    document = weights_json(cli, "--weights", str(path), "--heads", "2", "--dtype", "float16")
    assert document["dtype"] == "float16" and document["computed_in"] == "float64"
    exact = {k: v.double() for k, v in state.items()}  # float16 values, exactly
    assert_head_figures(document, expected_heads(exact, 2, 2), rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# Flags


def test_a_head_with_zero_weights_is_dead(cli, tmp_path):
    state = d2l_layer(heads=4, hiddens=24)
    d = 6
    for name in ("W_q", "W_k", "W_v"):
        state[f"{name}.weight"][2 * d : 3 * d] = 0
    state["W_o.weight"][:, 2 * d : 3 * d] = 0
    path = save(state, tmp_path / "dead.pt")
    document = weights_json(cli, "--weights", str(path), "--heads", "4")
    heads = document["layers"][0]["heads"]
    assert [h["dead"] for h in heads] == [False, False, True, False]
    assert heads[2]["zero_slices"] == ["W_q", "W_k", "W_v", "W_o"]
    assert heads[2]["ov"]["frobenius"] == 0 and heads[2]["qk"]["singular_values"][0] == 0
    assert document["layers"][0]["similarity"]["ov"][2][0] is None  # no cosine with zero
    table = cli("weights", "--weights", str(path), "--heads", "4").stdout
    assert "dead: writes nothing" in table


def test_identical_heads_and_a_constant_layer_are_flagged(cli, tmp_path):
    state = d2l_layer(heads=4, hiddens=24)
    d = 6
    for name in ("W_q", "W_k", "W_v"):
        state[f"{name}.weight"][3 * d :] = state[f"{name}.weight"][d : 2 * d]
    state["W_o.weight"][:, 3 * d :] = state["W_o.weight"][:, d : 2 * d]
    path = save(state, tmp_path / "twin.pt")
    document = weights_json(cli, "--weights", str(path), "--heads", "4")
    heads = document["layers"][0]["heads"]
    assert [h["identical_to"] for h in heads] == [None, None, None, 1]
    assert document["layers"][0]["similarity"]["qk"][3][1] == pytest.approx(1.0)
    assert document["layers"][0]["all_equal"] is False

    constant = {k: torch.full_like(v, 0.05) for k, v in state.items()}
    path = save(constant, tmp_path / "constant.pt")
    document = weights_json(cli, "--weights", str(path), "--heads", "4")
    layer = document["layers"][0]
    assert layer["all_equal"] is True
    assert [h["identical_to"] for h in layer["heads"]] == [None, 0, 0, 0]
    assert "every weight holds one value" in layer["flags"][0]


def test_non_finite_values_are_shown_per_head_not_refused(cli, tmp_path):
    state = d2l_layer(heads=4, hiddens=24)
    state["W_q.weight"][7, 0] = math.nan  # row 7: head 1 (head dim 6)
    state["W_o.weight"][0, 20] = math.inf  # column 20: head 3
    path = save(state, tmp_path / "nan.pt")
    document = weights_json(cli, "--weights", str(path), "--heads", "4")
    heads = document["layers"][0]["heads"]
    assert [h["non_finite"] for h in heads] == [0, 1, 0, 1]
    assert heads[1]["qk"]["frobenius"] is None  # NaN is written as null
    clean = expected_heads(state, 4, 4)
    assert heads[0]["qk"]["frobenius"] == pytest.approx(
        float(torch.linalg.matrix_norm(clean[0]["matrices"]["qk"])), rel=1e-4
    )
    assert "non-finite values in the slices of heads 1, 3" in document["layers"][0]["flags"][0]
    # The commands that run the layer still refuse such a file.
    assert cli("inspect", "--weights", str(path), "--heads", "4").exit_code == 2


def test_random_heads_are_different_but_alike(cli):
    """Q8: random initialisation already makes heads different (cosine near 0) with the same
    statistics (norms within a few per cent)."""
    layer = weights_json(cli)["layers"][0]
    for circuit in ("qk", "ov"):
        matrix = layer["similarity"][circuit]
        off = [abs(matrix[i][j]) for i in range(5) for j in range(5) if i != j]
        assert max(off) < 0.1
    norms = [h["norms"]["W_q"] for h in layer["heads"]]
    assert max(norms) / min(norms) < 1.1


# ---------------------------------------------------------------------------------------------
# What a user sees


def test_table_shows_every_head_its_circuits_and_the_similarity(cli):
    result = cli("weights")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "5 heads, head dim 20, 100 hiddens (seeded random weights, float32" in out
    for word in ("‖W_q‖", "‖W_o‖", "W_QK", "W_OV", "stable", "eff.", "flags"):
        assert word in out
    assert "cosine similarity of W_QK between heads" in out
    assert "W_OV cosine between different heads: mean |cos|" in out
    assert "the largest 3 of 20" in out


def test_markdown_holds_the_same_tables(cli):
    text = cli("weights", "--format", "markdown").stdout
    assert "| head | ‖W_q‖ | ‖W_k‖ | ‖W_v‖ | ‖W_o‖ | W_QK σ₁ σ₂ σ₃ |" in text
    assert text.count("| --- |") >= 1 and "- W_QK cosine between different heads" in text


def test_no_similarity_leaves_it_out_and_large_layers_skip_it_by_default(cli, monkeypatch):
    document = weights_json(cli, "--no-similarity")
    assert document["layers"][0]["similarity"] is None
    assert "cosine similarity" not in cli("weights", "--no-similarity").stdout
    from mha_cli.circuits import head_weights

    monkeypatch.setattr(head_weights, "SIMILARITY_BUDGET", 1000)
    layer = weights_json(cli)["layers"][0]
    assert layer["similarity"] is None
    assert any("add --similarity" in note for note in layer["notes"])
    assert weights_json(cli, "--similarity")["layers"][0]["similarity"] is not None


def test_out_draws_the_similarity_of_both_circuits(cli, tmp_path):
    path = tmp_path / "similarity.png"
    result = cli("weights", "--out", str(path), "--heads", "4", "--hiddens", "16")
    assert result.exit_code == 0, result.output
    assert result.stderr.strip().splitlines()[-1] == f"wrote {path}"
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 300 and image.shape[1] > 600
    svg = tmp_path / "similarity.svg"
    assert cli("weights", "--out", str(svg)).exit_code == 0
    text = svg.read_text()
    assert "W_QK = W_qᵀ W_k" in text and "cosine similarity" in text


def test_layer_all_gives_a_layers_by_heads_table_of_one_stat(cli, tmp_path):
    state = d2l_layer()
    path = save(state, tmp_path / "d2l.pt")
    args = ("--weights", str(path), "--heads", "4", "--layer", "all")
    document = weights_json(cli, *args, "--stat", "qk_stable_rank")
    assert document["stat"] == "qk_stable_rank"
    expected = [
        dense_figures(h["matrices"]["qk"])["stable_rank"] for h in expected_heads(state, 4, 4)
    ]
    assert document["stat_grid"] == [pytest.approx(expected, rel=1e-4)]
    table = cli("weights", *args, "--stat", "W_o").stdout
    assert "per layer and head" in table and "head 3" in table
    picture = tmp_path / "layers.png"
    result = cli("weights", *args, "--out", str(picture))
    assert result.exit_code == 0, result.output
    assert matplotlib.image.imread(picture).shape[1] > 300


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--layer", "all", "--stat", "ov_frobenus"), "did you mean 'ov_frobenius'?"),
        (("--stat", "W_q"), "add --layer all"),
        (("--layer", "2"), "--layer 2: the seeded random layer holds 1 attention layer"),
        (("--device", "meta"), "the meta device holds none"),
        (("--out", "x.gif"), "is not an image format"),
        (("--out", "x.png", "--no-similarity"), "drop one of them"),
    ],
)
def test_mistakes_are_one_line(cli, args, message):
    result = cli("weights", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_additive_attention_says_what_applies(cli):
    result = cli("weights", "--score", "additive")
    assert result.exit_code == 0, result.output
    assert "no W_QK or W_OV circuit" in result.stdout
    assert "w_v" in result.stdout
    document = weights_json(cli, "--score", "additive")
    assert document["layers"][0]["heads"] == []


def test_python_api_returns_a_report_that_prints_as_the_table(tmp_path):
    import mha_cli

    report = mha_cli.weights(heads=3, hiddens=12, out=tmp_path / "s.png")
    assert type(report).__name__ == "WeightsReport"
    assert len(report.layer.heads) == 3 and (tmp_path / "s.png").exists()
    assert "W_QK" in str(report) and "| head |" in report.to_markdown()
    assert mha_cli.weights(layer="all", stat="W_q").stat_grid() == [
        [h.norms["W_q"] for h in mha_cli.weights().layer.heads]
    ]


# ---------------------------------------------------------------------------------------------
# A head is flagged only beyond the spread of the others


@pytest.mark.parametrize(("config", "seeds"), [("chapter", range(4)), ("bert-base", (0, 1))])
def test_a_random_layer_flags_no_head(cli, config, seeds):
    for seed in seeds:
        document = weights_json(cli, "--config", config, "--seed", str(seed))
        assert all(h["beyond_spread"] == {} for h in document["layers"][0]["heads"])
        table = cli("weights", "--config", config, "--seed", str(seed)).stdout
        assert "no head stands out" in table and "far below" not in table


@pytest.mark.parametrize(
    ("heads", "hiddens", "weak", "slice_", "circuit"),
    [(5, 100, 3, "W_o", "ov"), (4, 24, 0, "W_o", "ov"), (12, 96, 7, "W_q", "qk")],
)
def test_a_head_scaled_by_a_hundredth_is_flagged(
    cli, tmp_path, heads, hiddens, weak, slice_, circuit
):
    state = d2l_layer(heads=heads, hiddens=hiddens, seed=weak)
    d = hiddens // heads
    if slice_ == "W_o":
        state["W_o.weight"][:, weak * d : (weak + 1) * d] *= 0.01
    else:
        state["W_q.weight"][weak * d : (weak + 1) * d] *= 0.01
    path = save(state, tmp_path / "weak.pt")
    document = weights_json(cli, "--weights", str(path), "--heads", str(heads))
    found = {h["head"]: h["beyond_spread"] for h in document["layers"][0]["heads"]}
    assert found == {i: ({circuit: "below"} if i == weak else {}) for i in range(heads)}
    # the figure shown, recomputed from the hand-cut slices (float64)
    w = {k: v.double() for k, v in state.items()}
    norms = []
    for i in range(heads):
        rows = slice(i * d, (i + 1) * d)
        if circuit == "ov":
            matrix = w["W_o.weight"][:, rows] @ w["W_v.weight"][rows]
        else:
            matrix = w["W_q.weight"][rows].T @ w["W_k.weight"][rows]
        norms.append(float(torch.linalg.matrix_norm(matrix)))
    table = cli("weights", "--weights", str(path), "--heads", str(heads)).stdout
    others = [v for i, v in enumerate(norms) if i != weak]
    shown = f"‖W_{circuit.upper()}‖_F {norms[weak]:#.3g}".rstrip(".")
    assert f"{shown}, far below the other heads' {min(others):#.3g} to {max(others):#.3g}" in table
    assert f"flag: head {weak}: {shown}" in table
    assert "no head stands out" not in table
    assert norms[weak] < 0.05 * min(others)
