"""`mha heads`: every measure against d2l's own layer (and torch.nn.MultiheadAttention) rerun
once per head, per variant and per example here, with the head's slice changed by a hook."""

from __future__ import annotations

import json
import math

import d2l_reference as d2l
import matplotlib.image
import pytest
import torch
from oracles import einsum_attention

import mha_cli
from mha_cli.importance import ablation

HEADS, HIDDENS, D = 4, 16, 4


def d2l_layer(seed: int = 0, bias: bool = True) -> d2l.MultiHeadAttention:
    torch.manual_seed(seed)
    layer = d2l.MultiHeadAttention(HIDDENS, HIDDENS, HIDDENS, HIDDENS, HEADS, 0.0, bias=bias)
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_(0, 0.3)  # biases included: the kept W_o bias must not hide anything
    return layer.eval()


def inputs(batch: int = 3, queries: int = 5, kv: int = 7) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(11)
    return {
        "queries": torch.randn(batch, queries, HIDDENS, generator=g),
        "keys": torch.randn(batch, kv, HIDDENS, generator=g),
        "values": torch.randn(batch, kv, HIDDENS, generator=g),
        "valid_lens": torch.tensor([7, 3, 5][:batch]),
    }


def run(layer, data, edit=None) -> torch.Tensor:
    """The layer's output, with `edit(concat)` applied to the input of W_o (the concatenation)."""
    handle = None
    if edit is not None:
        handle = layer.W_o.register_forward_pre_hook(lambda _, args: (edit(args[0]),))
    try:
        return layer(data["queries"], data["keys"], data["values"], data["valid_lens"])
    finally:
        if handle is not None:
            handle.remove()


def without(heads: set[int], mode: str = "zero"):
    """An edit that removes `heads`: their slices zeroed, or set to their mean over examples
    and queries."""

    def edit(concat: torch.Tensor) -> torch.Tensor:
        concat = concat.clone()
        for i in heads:
            part = concat[..., i * D : (i + 1) * D]
            concat[..., i * D : (i + 1) * D] = 0 if mode == "zero" else part.mean((0, 1))
        return concat

    return edit


def change(y: torch.Tensor, other: torch.Tensor) -> float:
    return float((y - other).norm() / y.norm())


@pytest.fixture
def files(tmp_path):
    layer = d2l_layer()
    data = inputs()
    torch.save(layer.state_dict(), tmp_path / "layer.pt")
    torch.save(data, tmp_path / "inputs.pt")
    return layer, data, tmp_path


def heads_json(cli, tmp_path, *args: str) -> dict:
    result = cli(
        "heads",
        "--weights",
        str(tmp_path / "layer.pt"),
        "--heads",
        str(HEADS),
        "--inputs",
        str(tmp_path / "inputs.pt"),
        *args,
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["schema"] == "mha.heads" and document["version"] == 2
    return document


@pytest.mark.parametrize("mode", ["zero", "mean"])
def test_ablation_matches_a_rerun_per_head(cli, files, mode):
    layer, data, tmp_path = files
    document = heads_json(cli, tmp_path, "--ablation", mode)
    with torch.no_grad():
        y = run(layer, data)
        expected = [change(y, run(layer, data, without({i}, mode))) for i in range(HEADS)]
    got = [h["ablation"] for h in document["heads"]]
    assert got == pytest.approx(expected, rel=1e-4)
    assert document["ablation"] == mode
    assert document["ranking"] == sorted(range(HEADS), key=lambda i: expected[i])


def test_greedy_pruning_matches_brute_force(cli, files):
    layer, data, tmp_path = files
    document = heads_json(cli, tmp_path)
    removed: set[int] = set()
    with torch.no_grad():
        y = run(layer, data)
        for step in document["pruning"]:
            candidates = {
                i: change(y, run(layer, data, without(removed | {i})))
                for i in range(HEADS)
                if i not in removed
            }
            best = min(candidates, key=candidates.get)
            assert step["head"] == best
            assert step["change"] == pytest.approx(candidates[best], rel=1e-4)
            removed.add(best)
    assert removed == set(range(HEADS))


def test_entropy_and_confidence_over_visible_keys(cli, files):
    layer, data, tmp_path = files
    document = heads_json(cli, tmp_path)
    with torch.no_grad():
        run(layer, data)
    weights = layer.attention.attention_weights.reshape(3, HEADS, 5, 7)  # (b, h, q, k)
    for i in range(HEADS):
        entropies, maxima = [], []
        for b in range(3):
            visible = int(data["valid_lens"][b])
            for q in range(5):
                p = weights[b, i, q, :visible].double()
                entropies.append(float(-(p * p.log()).sum()))
                maxima.append(float(p.max()))
        head = document["heads"][i]
        assert head["entropy"] == pytest.approx(sum(entropies) / len(entropies), rel=1e-5)
        assert head["confidence"] == pytest.approx(sum(maxima) / len(maxima), rel=1e-5)


def test_gradient_importance_is_michels_gate_gradient(cli, files):
    layer, data, tmp_path = files
    target = torch.randn(3, 5, HIDDENS, generator=torch.Generator().manual_seed(2))
    torch.save({"output": target}, tmp_path / "targets.pt")
    document = heads_json(cli, tmp_path, "--targets", str(tmp_path / "targets.pt"))
    gates = torch.ones(HEADS, requires_grad=True)

    def gate(concat: torch.Tensor) -> torch.Tensor:
        return concat * gates.repeat_interleave(D)

    per_example = []
    for x in range(3):
        one = {k: v[x : x + 1] for k, v in data.items()}
        loss = ((run(layer, one, gate) - target[x : x + 1]) ** 2).mean()
        (grad,) = torch.autograd.grad(loss, gates)
        per_example.append(grad.abs())
    expected = torch.stack(per_example).mean(0)
    got = [h["gradient"] for h in document["heads"]]
    assert got == pytest.approx(expected.tolist(), rel=1e-4)
    assert set(document["spearman"]) == {"ablation", "entropy", "confidence", "gradient"}


def test_spearman_between_measures(cli, files):
    _, _, tmp_path = files
    document = heads_json(cli, tmp_path)

    def ranks(values):
        order = sorted(range(len(values)), key=lambda i: values[i])
        return [order.index(i) for i in range(len(values))]

    measures = ("ablation", "entropy", "confidence")
    for a in measures:
        for b in measures:
            ra = ranks([h[a] for h in document["heads"]])
            rb = ranks([h[b] for h in document["heads"]])
            n = len(ra)
            rho = 1 - 6 * sum((x - y) ** 2 for x, y in zip(ra, rb, strict=True)) / (n * (n * n - 1))
            assert document["spearman"][a][b] == pytest.approx(rho, abs=1e-12)


def test_torch_multihead_attention_checkpoint(cli, tmp_path):
    torch.manual_seed(4)
    mha = torch.nn.MultiheadAttention(HIDDENS, HEADS, bias=True, batch_first=True).eval()
    with torch.no_grad():
        mha.in_proj_bias.normal_()
        mha.out_proj.bias.normal_()
    torch.save(mha.state_dict(), tmp_path / "layer.pt")
    data = inputs()
    torch.save(data, tmp_path / "inputs.pt")
    document = heads_json(cli, tmp_path)
    padding = torch.arange(7)[None, :] >= data["valid_lens"][:, None]

    def output(module) -> torch.Tensor:
        return module(data["queries"], data["keys"], data["values"], key_padding_mask=padding)[0]

    with torch.no_grad():
        y = output(mha)
        for i, head in enumerate(document["heads"]):
            ablated = torch.nn.MultiheadAttention(HIDDENS, HEADS, bias=True, batch_first=True)
            ablated.load_state_dict(mha.state_dict())
            ablated.out_proj.weight[:, i * D : (i + 1) * D] = 0  # the head's input to out_proj
            assert head["ablation"] == pytest.approx(change(y, output(ablated.eval())), rel=1e-4)


def test_a_head_with_zero_weights_changes_nothing(cli, tmp_path):
    layer = d2l_layer(bias=False)
    with torch.no_grad():
        for name in ("W_q", "W_k", "W_v"):
            getattr(layer, name).weight[D : 2 * D] = 0
        layer.W_o.weight[:, D : 2 * D] = 0
    torch.save(layer.state_dict(), tmp_path / "layer.pt")
    torch.save(inputs(), tmp_path / "inputs.pt")
    document = heads_json(cli, tmp_path)
    assert document["heads"][1]["ablation"] == 0.0
    assert document["ranking"][0] == 1 and document["pruning"][0]["head"] == 1
    table = cli(
        "heads",
        "--weights",
        str(tmp_path / "layer.pt"),
        "--heads",
        str(HEADS),
        "--inputs",
        str(tmp_path / "inputs.pt"),
    ).stdout
    assert "head 1 could go first: without it the output changes by 0 %" in table


# ---------------------------------------------------------------------------------------------
# What a user sees


def test_table_ranks_heads_and_says_no_head_stands_out_on_a_random_layer(cli):
    result = cli("heads")
    assert result.exit_code == 0, result.output
    assert "heads, least important first" in result.stdout
    assert "no head stands out" in result.stdout
    assert "could go first:" not in result.stdout
    assert "Spearman" in result.stdout
    assert "gradient" not in result.stdout  # only with --targets


def test_mean_ablation_changes_the_numbers(cli):
    zero = json.loads(cli("heads", "--format", "json").stdout)
    mean = json.loads(cli("heads", "--format", "json", "--ablation", "mean").stdout)
    assert [h["ablation"] for h in zero["heads"]] != [h["ablation"] for h in mean["heads"]]
    assert [h["entropy"] for h in zero["heads"]] == [h["entropy"] for h in mean["heads"]]


def test_markdown_is_a_pipe_table(cli):
    text = cli("heads", "--format", "markdown").stdout
    assert "| rank | head |" in text and "| --- |" in text


def test_out_writes_the_pruning_curve_image(cli, tmp_path):
    path = tmp_path / "heads.png"
    result = cli("heads", "--out", str(path))
    assert result.exit_code == 0, result.output
    assert result.stderr.strip().splitlines()[-1] == f"wrote {path}"
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 400 and image.shape[1] > 600


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--ablation", "half"), "--ablation 'half' is not one of zero, mean"),
        (("--score", "additive"), "additive attention (--score additive) has one head"),
        (("--train",), "drop --train"),
        (("--device", "meta"), "the meta device computes none"),
        (("--out", "curve.txt"), "is not an image format"),
    ],
)
def test_mistakes_are_one_line(cli, args, message):
    result = cli("heads", *args)
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_targets_of_the_wrong_shape(cli, tmp_path):
    torch.save({"output": torch.zeros(2, 4, 99)}, tmp_path / "t.pt")
    result = cli("heads", "--targets", str(tmp_path / "t.pt"))
    assert result.exit_code == 2
    assert "(2, 4, 99)" in result.stderr and "(2, 4, 100)" in result.stderr
    torch.save({"y": torch.zeros(2, 4, 100)}, tmp_path / "u.pt")
    result = cli("heads", "--targets", str(tmp_path / "u.pt"))
    assert result.exit_code == 2 and "not a tensor 'output'" in result.stderr


def test_grouped_query_heads_keep_their_own_slice(cli):
    document = json.loads(
        cli("heads", "--heads", "4", "--kv-heads", "2", "--format", "json").stdout
    )
    assert [h["kv_head"] for h in document["heads"]] == [0, 0, 1, 1]
    assert len({round(h["ablation"], 12) for h in document["heads"]}) == 4
    assert not math.isnan(document["heads"][0]["ablation"])


@pytest.mark.parametrize(
    ("options", "kv_heads", "full"),
    [({"kv_heads": "2"}, 2, False), ({"value_mode": "full"}, HEADS, True)],
)
def test_grouped_query_and_full_values_against_the_einsum_oracle(options, kv_heads, full):
    """Removing head i = zeroing its columns of W_o (its slice of the concatenation), rerun."""
    report = mha_cli.heads(heads=HEADS, hiddens=HIDDENS, bias=True, dtype="float64", **options)
    run_report = mha_cli.inspect(
        heads=HEADS, hiddens=HIDDENS, bias=True, dtype="float64", **options
    )
    state = dict(run_report.parameters)  # the same seeded weights, as inputs to the oracle
    q, k, v = (run_report.tensors[name] for name in ("queries", "keys", "values"))
    lens = torch.tensor([3, 2])
    y, _ = einsum_attention(q, k, v, state, HEADS, kv_heads, lens, False, full_values=full)
    width = state["W_o.weight"].shape[1] // HEADS
    for i, head in enumerate(report.heads):
        cut = dict(state)
        cut["W_o.weight"] = state["W_o.weight"].clone()
        cut["W_o.weight"][:, i * width : (i + 1) * width] = 0
        without_i, _ = einsum_attention(
            q, k, v, cut, HEADS, kv_heads, lens, False, full_values=full
        )
        assert head.ablation == pytest.approx(change(y, without_i), rel=1e-5)  # float64


def test_chunked_terms_give_the_same_measures(monkeypatch, files):
    """Many tokens are processed a few examples at a time; the figures do not depend on it."""
    _, _, tmp_path = files
    torch.save({"output": torch.randn(3, 5, HIDDENS)}, tmp_path / "targets.pt")
    options = {
        "weights": str(tmp_path / "layer.pt"),
        "heads": HEADS,
        "inputs": str(tmp_path / "inputs.pt"),
        "targets": tmp_path / "targets.pt",
        "ablation": "mean",
    }
    whole = mha_cli.heads(**options)
    monkeypatch.setattr(ablation, "CHUNK_BYTES", 1)  # one example per chunk
    chunked = mha_cli.heads(**options)
    for a, b in zip(whole.heads, chunked.heads, strict=True):
        assert (a.ablation, a.gradient) == pytest.approx((b.ablation, b.gradient), rel=1e-12)
    assert [s.head for s in whole.pruning] == [s.head for s in chunked.pruning]


def test_python_api_returns_a_report_that_prints_as_the_table():
    report = mha_cli.heads(heads=3, hiddens=12)
    assert type(report).__name__ == "HeadsReport"
    assert "no head stands out" in str(report) and report.candidates == []
    assert json.loads(report.to_json())["schema"] == "mha.heads"
    assert report.ranking()[0].ablation <= report.ranking()[-1].ablation


# ---------------------------------------------------------------------------------------------
# A candidate only beyond noise; agreement from rho and the number of heads


def test_standard_errors_are_the_delta_method_over_rows_of_reruns(cli, files):
    """Each head's ± from reruns without it: per row (example, query) a_n = ||y_n - y_n,-i||²,
    s_n = ||y_n||²; f = sqrt(Σa / Σs); se by the delta method, and close to the jackknife."""
    layer, data, tmp_path = files
    document = heads_json(cli, tmp_path)
    with torch.no_grad():
        y = run(layer, data).double().reshape(-1, HIDDENS)
        s = (y**2).sum(-1)
        for i, head in enumerate(document["heads"]):
            other = run(layer, data, without({i})).double().reshape(-1, HIDDENS)
            a = ((y - other) ** 2).sum(-1)
            n = len(a)
            ratio = float(a.sum() / s.sum())
            z = (a - ratio * s) / s.mean()
            se = math.sqrt(float((z**2).sum()) / (n * (n - 1))) / (2 * math.sqrt(ratio))
            assert head["ablation_se"] == pytest.approx(se, rel=1e-3)
            leave_one_out = [
                math.sqrt(float((a.sum() - a[k]) / (s.sum() - s[k]))) for k in range(n)
            ]
            mean = sum(leave_one_out) / n
            jackknife = math.sqrt((n - 1) / n * sum((v - mean) ** 2 for v in leave_one_out))
            assert head["ablation_se"] == pytest.approx(jackknife, rel=0.35)
            low, high = head["ablation_interval"]
            assert low == pytest.approx(max(0.0, head["ablation"] - 1.96 * se), rel=1e-3)
            assert high == pytest.approx(head["ablation"] + 1.96 * se, rel=1e-3)
    weights = layer.attention.attention_weights.reshape(3, HEADS, 5, 7)
    for i, head in enumerate(document["heads"]):
        entropies = []
        for b in range(3):
            p = weights[b, i, :, : int(data["valid_lens"][b])].double()
            entropies += (-(p * p.log()).sum(-1)).tolist()
        n = len(entropies)
        mean = sum(entropies) / n
        se = math.sqrt(sum((e - mean) ** 2 for e in entropies) / (n - 1) / n)
        assert head["entropy_se"] == pytest.approx(se, rel=1e-4)


@pytest.mark.parametrize(
    ("config", "seeds"), [("chapter", range(5)), ("bert-base", (0, 1)), ("gpt2-small", (3,))]
)
def test_a_random_layer_has_no_head_that_stands_out(cli, config, seeds):
    for seed in seeds:
        table = cli("heads", "--config", config, "--seed", str(seed))
        assert table.exit_code == 0, table.output
        assert "no head stands out" in table.stdout
        assert "could go first:" not in table.stdout
        document = json.loads(
            cli("heads", "--config", config, "--seed", str(seed), "--format", "json").stdout
        )
        assert document["candidates"] == []


def chapter_layer_with_a_weak_head(weak: int, seed: int, scale: float = 0.01):
    """d2l's chapter layer (100 hiddens, 5 heads, default initialisation) with head `weak`'s
    columns of W_o scaled by `scale`."""
    torch.manual_seed(seed)
    layer = d2l.MultiHeadAttention(100, 100, 100, 100, 5, 0.0).eval()
    with torch.no_grad():
        layer.W_o.weight[:, weak * 20 : (weak + 1) * 20] *= scale
    return layer


@pytest.mark.parametrize(("weak", "seed"), [(3, 0), (0, 1), (4, 2)])
def test_a_head_with_w_o_scaled_by_a_hundredth_is_named(cli, tmp_path, weak, seed):
    layer = chapter_layer_with_a_weak_head(weak, seed)
    torch.save(layer.state_dict(), tmp_path / "layer.pt")
    g = torch.Generator().manual_seed(seed)
    data = {
        "queries": torch.randn(2, 4, 100, generator=g),
        "keys": torch.randn(2, 6, 100, generator=g),
        "values": torch.randn(2, 6, 100, generator=g),
        "valid_lens": torch.tensor([3, 2]),
    }
    torch.save(data, tmp_path / "inputs.pt")
    args = ("heads", "--weights", str(tmp_path / "layer.pt"), "--heads", "5")
    args += ("--inputs", str(tmp_path / "inputs.pt"))
    result = cli(*args)
    assert result.exit_code == 0, result.output
    with torch.no_grad():
        y = run(layer, data)

        def cut(i: int):
            def edit(concat: torch.Tensor) -> torch.Tensor:
                concat = concat.clone()
                concat[..., i * 20 : (i + 1) * 20] = 0
                return concat

            return edit

        expected = [change(y, run(layer, data, cut(i))) for i in range(5)]
    assert f"head {weak} could go first: without it the output changes by " in result.stdout
    assert "no head stands out" not in result.stdout
    document = json.loads(cli(*args, "--format", "json").stdout)
    assert document["candidates"] == [weak]
    got = [h["ablation"] for h in document["heads"]]
    assert got == pytest.approx(expected, rel=1e-4)
    assert expected[weak] < 0.05 * min(e for i, e in enumerate(expected) if i != weak)


def test_two_weak_heads_are_named_together(cli, tmp_path):
    """Two heads scaled down do not hide each other behind their own spread."""
    torch.manual_seed(5)
    layer = d2l.MultiHeadAttention(96, 96, 96, 96, 12, 0.0).eval()
    with torch.no_grad():
        for i in (2, 7):
            layer.W_o.weight[:, i * 8 : (i + 1) * 8] *= 0.01
    torch.save(layer.state_dict(), tmp_path / "layer.pt")
    result = cli("heads", "--weights", str(tmp_path / "layer.pt"), "--heads", "12")
    assert result.exit_code == 0, result.output
    assert "heads 2 and 7 could go first, together" in result.stdout or (
        "heads 7 and 2 could go first, together" in result.stdout
    )


def exact_spearman_p(a: list[float], b: list[float]) -> float:
    """Two-sided p of Spearman's rho from every permutation (no ties), rho from d²."""
    import itertools

    n = len(a)

    def ranks(values):
        order = sorted(range(n), key=lambda i: values[i])
        return [order.index(i) for i in range(n)]

    def rho(ra, rb):
        return 1 - 6 * sum((x - y) ** 2 for x, y in zip(ra, rb, strict=True)) / (n * (n * n - 1))

    ra, rb = ranks(a), ranks(b)
    observed = abs(rho(ra, rb))
    hits = [abs(rho(ra, list(p))) >= observed - 1e-12 for p in itertools.permutations(rb)]
    return sum(hits) / len(hits)


def t_two_sided_p(rho: float, n: int) -> float:
    """2 P(T > |t|), t = rho sqrt((n-2)/(1-rho²)), by integrating Student's density (Simpson)."""
    df = n - 2
    t = abs(rho) * math.sqrt(df / (1 - rho * rho))
    c = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)

    def density(x: float) -> float:
        return c * (1 + x * x / df) ** (-(df + 1) / 2)

    steps = 20000
    h = t / steps
    inner = density(0) + density(t)
    inner += sum((4 if k % 2 else 2) * density(k * h) for k in range(1, steps))
    return 2 * (0.5 - inner * h / 3)


def a_record(ablation: list[float], entropy: list[float]):
    from mha_cli.importance.records import HeadMeasure, HeadsRecord, PruningStep, correlations
    from mha_cli.importance.spread import rho_needed

    heads = [
        HeadMeasure(i, i, a, e, 0.5 + 0.001 * i, pruned_at=i + 1)
        for i, (a, e) in enumerate(zip(ablation, entropy, strict=True))
    ]
    rho, p = correlations(heads, ("ablation", "entropy", "confidence"))
    return HeadsRecord(
        spec={}, source=None, ablation_mode="zero", heads=heads,
        pruning=[PruningStep(i + 1, i, 0.1) for i in range(len(heads))], output_norm=1.0,
        correlations=rho, correlation_p=p, rho_needed=rho_needed(len(heads)),
    )  # fmt: skip


def test_spearman_wording_for_five_heads_and_rho_0_6(cli):
    from mha_cli.importance.text import agreement_lines

    ablation = [0.1, 0.2, 0.3, 0.4, 0.5]
    for entropy, rho in (([2.0, 1.0, 4.0, 5.0, 3.0], 0.6), ([3.0, 5.0, 4.0, 1.0, 2.0], -0.6)):
        record = a_record(ablation, entropy)
        assert record.correlations["ablation"]["entropy"] == pytest.approx(rho, abs=1e-12)
        p = exact_spearman_p(ablation, entropy)
        assert p == pytest.approx(0.35, abs=0.01)  # 42 of 120 orderings
        assert record.correlation_p["ablation"]["entropy"] == pytest.approx(p, abs=1e-12)
        lines = agreement_lines(record)
        line = next(x for x in lines if "ablation" in x and "entropy" in x)
        assert line.startswith("no clear agreement between ablation and entropy")
        assert f"ρ = {rho:+.2f} over 5 heads, p = 0.35" in line
        assert "5 heads need |ρ| ≥ 1.00" in line
        assert "opposite" not in line and "agrees" not in line


def test_spearman_wording_for_many_heads_and_a_strong_correlation():
    from mha_cli.importance.text import agreement_lines

    g = torch.Generator().manual_seed(0)
    n = 40
    ablation = torch.rand(n, generator=g, dtype=torch.float64)
    noise = torch.rand(n, generator=g, dtype=torch.float64)
    for sign in (1, -1):
        entropy = (sign * ablation + 0.4 * noise).tolist()
        record = a_record(ablation.tolist(), entropy)
        rho = record.correlations["ablation"]["entropy"]
        assert sign * rho > 0.7
        p = t_two_sided_p(rho, n)
        assert record.correlation_p["ablation"]["entropy"] == pytest.approx(p, rel=1e-4)
        assert p < 1e-5
        line = next(x for x in agreement_lines(record) if "ablation" in x and "entropy" in x)
        if sign > 0:
            assert line.startswith(f"entropy agrees with ablation (ρ = {rho:+.2f} over 40 heads")
        else:
            assert line.startswith(f"entropy runs opposite to ablation (ρ = {rho:+.2f} over 40")
    # a weak positive rho over many heads is never "opposite", and not agreement either
    weak = (ablation + 3.0 * noise).tolist()
    record = a_record(ablation.tolist(), weak)
    rho = record.correlations["ablation"]["entropy"]
    p = t_two_sided_p(rho, n)
    assert record.correlation_p["ablation"]["entropy"] == pytest.approx(p, rel=1e-4)
    line = next(x for x in agreement_lines(record) if "ablation" in x and "entropy" in x)
    assert "opposite" not in line
    assert line.startswith("no clear agreement") == (p >= 0.05)


def test_the_agreement_shown_by_the_cli_is_computed_from_rho_and_the_heads(cli):
    """A positive correlation is never called opposite; p as recomputed here."""
    for config, n in (("chapter", 5), ("bert-base", 12)):
        document = json.loads(cli("heads", "--config", config, "--format", "json").stdout)
        table = cli("heads", "--config", config).stdout
        columns = {m: [h[m] for h in document["heads"]] for m in ("ablation", "entropy")}
        rho = document["spearman"]["ablation"]["entropy"]
        if n <= 7:
            p = exact_spearman_p(columns["ablation"], columns["entropy"])
        else:
            p = t_two_sided_p(rho, n)
        assert document["spearman_p"]["ablation"]["entropy"] == pytest.approx(p, rel=1e-4)
        if p >= 0.05:
            expected = f"no clear agreement between ablation and entropy (ρ = {rho:+.2f}"
        elif rho < 0:
            expected = f"entropy runs opposite to ablation (ρ = {rho:+.2f} over {n} heads"
        else:
            expected = f"entropy agrees with ablation (ρ = {rho:+.2f} over {n} heads"
        assert expected in table
        assert "runs opposite to the others" not in table
