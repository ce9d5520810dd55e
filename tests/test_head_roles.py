"""What each head does, in words: the share of attention on the first key (sink), the previous
position, itself, and the mean distance, checked against a float64 einsum on the exported
attention weights, and against heads planted to attend to the previous token and to the first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

N = 6  # positions: queries = keys = values = one sequence of N one-hot vectors


def reference(weights: torch.Tensor, rows: torch.Tensor, offset: int) -> dict[str, torch.Tensor]:
    """The figures per head from (b, h, q, k) weights and the (b, q) rows that count, by loops
    over positions (no code shared with mha)."""
    w = weights.double()
    b, h, q, k = w.shape
    sink = torch.zeros(h, dtype=torch.float64)
    itself, distance, previous = sink.clone(), sink.clone(), sink.clone()
    n = n_prev = 0
    for e in range(b):
        for i in range(q):
            if not rows[e, i]:
                continue
            p = i + offset
            n += 1
            sink += w[e, :, i, 0]
            itself += w[e, :, i, p]
            distance += torch.einsum("hk,k->h", w[e, :, i], (torch.arange(k) - p).abs().double())
            if p >= 1:
                n_prev += 1
                previous += w[e, :, i, p - 1]
    return {
        "sink": sink / n,
        "itself": itself / n,
        "distance": distance / n,
        "previous": previous / n_prev,
    }


def inspect_json(cli, *args: str) -> dict:
    result = cli("inspect", *args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def assert_figures(roles: list[dict], expected: dict[str, torch.Tensor]) -> None:
    for name, values in expected.items():
        got = [role[name] for role in roles]
        assert got == pytest.approx(values.tolist(), abs=1e-6), name


@pytest.mark.parametrize(
    "args, offset, lens",
    [
        (["--queries", "6", "--kv", "6", "--valid-lens", "6,4"], 0, [6, 4]),
        (["--queries", "4", "--kv", "7", "--causal", "--valid-lens", "7,6"], 3, [7, 6]),
        (
            ["--queries", "5", "--kv", "5", "--causal", "--heads", "4", "--valid-lens", "none"],
            0,
            None,
        ),
    ],
    ids=["padded", "causal-cache", "causal"],
)
def test_figures_match_an_einsum_on_the_exported_weights(cli, tmp_path, args, offset, lens):
    export = tmp_path / "run.pt"
    document = inspect_json(cli, *args, "--export", str(export))
    weights = torch.load(export)["attention_weights"]  # (b, h, q, k)
    b, _, q, _ = weights.shape
    positions = torch.arange(q) + offset
    rows = torch.ones(b, q, dtype=torch.bool)
    if lens is not None:  # a padded query (at or beyond its valid length) is no token
        rows = positions[None, :] < torch.tensor(lens)[:, None]
    roles = document["summary"]["head_roles"]
    assert [r["head"] for r in roles] == list(range(weights.shape[1]))
    assert_figures(roles, reference(weights, rows, offset))
    assert document["summary"]["head_roles_note"] is None


def planted_layer(tmp_path: Path) -> tuple[Path, Path]:
    """Two heads of head dim 8 over one-hot positions: head 0's query at position i matches the
    key at i - 1 (a previous-token head), head 1's every query matches the key at 0 (a sink)."""
    size = 8
    eye = torch.eye(size)
    shift = torch.zeros(size, size)
    for i in range(1, size):
        shift[i - 1, i] = 1.0  # W_q e_i = e_{i-1}
    to_first = torch.zeros(size, size)
    to_first[0, :] = 1.0  # W_q e_i = e_0 for every i
    state = {
        "W_q.weight": torch.cat([shift, to_first]),  # (16, 8): head 0 rows, then head 1 rows
        "W_k.weight": 40.0 * torch.cat([eye, eye]),
        "W_v.weight": torch.cat([eye, eye]),
        "W_o.weight": torch.eye(2 * size),
    }
    weights = tmp_path / "planted.pt"
    torch.save(state, weights)
    one_hot = torch.eye(size)[:N].expand(2, N, size).clone()  # (2, 6, 8): position i is e_i
    inputs = tmp_path / "inputs.pt"
    torch.save({"queries": one_hot, "keys": one_hot, "values": one_hot}, inputs)
    return weights, inputs


def test_planted_previous_token_and_sink_heads_are_named(cli, cli_columns, tmp_path):
    weights, inputs = planted_layer(tmp_path)
    args = ("--weights", str(weights), "--inputs", str(inputs), "--heads", "2")
    roles = inspect_json(cli, *args)["summary"]["head_roles"]
    previous, sink = roles
    assert previous["kind"] == "previous" and previous["previous"] > 0.99
    assert previous["role"] == f"previous token {previous['previous']:.2f}"
    assert sink["kind"] == "sink" and sink["sink"] > 0.99
    assert sink["role"].startswith("first token (sink) 0.99") or sink["role"].endswith("1.00")
    assert sink["distance"] == pytest.approx(sum(range(N)) / N, abs=0.05)  # query i is i away
    # query 0 has no previous key: W_q sends it to zero, so it spreads evenly (mean distance 2.5)
    assert previous["distance"] == pytest.approx((2.5 + (N - 1) * 1.0) / N, abs=0.05)
    table = cli("inspect", *args).stdout
    assert "roles: head 0: previous token 1.00; head 1: first token (sink) 1.00" in table
    heads = cli("heads", *args)
    assert heads.exit_code == 0, heads.output
    assert "prev 1.00" in heads.stdout and "sink 1.00" in heads.stdout
    narrow = cli_columns(80, "heads", *args).stdout  # no room for the column: a line instead
    assert "roles: head 0: previous token 1.00; head 1: first token (sink) 1.00" in narrow
    document = json.loads(cli("heads", *args, "--format", "json").stdout)
    assert [h["role"] for h in document["heads"]] == [r["role"] for r in roles]


def test_an_itself_head_and_even_attention_is_no_role(cli, tmp_path):
    """W_q = W_k = 40 I: each query matches its own key. Equal weights with the book's ones
    make every row even: spread, with the mean distance."""
    size = 8
    state = {
        "W_q.weight": torch.eye(size),
        "W_k.weight": 40.0 * torch.eye(size),
        "W_v.weight": torch.eye(size),
        "W_o.weight": torch.eye(size),
    }
    torch.save(state, tmp_path / "self.pt")
    one_hot = torch.eye(size)[:N].expand(1, N, size).clone()
    torch.save({"queries": one_hot, "keys": one_hot, "values": one_hot}, tmp_path / "in.pt")
    args = ("--weights", str(tmp_path / "self.pt"), "--inputs", str(tmp_path / "in.pt"))
    (role,) = inspect_json(cli, *args, "--heads", "1")["summary"]["head_roles"]
    assert role["kind"] == "itself" and role["itself"] > 0.99
    assert role["role"] == f"itself {role['itself']:.2f}"
    (even,) = inspect_json(
        cli,
        "--inputs",
        "ones",
        "--heads",
        "1",
        "--valid-lens",
        "none",
        "--queries",
        "4",
        "--kv",
        "4",
    )["summary"]["head_roles"]
    assert even["kind"] == "spread" and even["sink"] == pytest.approx(0.25, abs=1e-6)
    assert even["role"] == "spread (mean distance 1.2)"  # mean |i - j| over 4 x 4 = 1.25


def test_cross_attention_says_na_and_why(cli):
    document = inspect_json(cli)  # the book's 4 queries against 6 key-value pairs
    roles = document["summary"]["head_roles"]
    assert all(r["previous"] is None and r["itself"] is None for r in roles)
    assert all(r["sink"] is not None for r in roles)
    note = document["summary"]["head_roles_note"]
    assert "n/a" in note and "cross-attention" in note
    table = cli("inspect").stdout
    assert "note: previous token, itself and distance are n/a" in table
    shares = ", ".join(f"head {r['head']} {r['sink']:.2f}" for r in roles)  # one line, no n/a
    assert f"share of each head's attention on the first key (sink): {shares}" in table


def test_thirty_two_heads_fit_eighty_columns(cli_columns):
    result = cli_columns(
        80, "inspect", "--heads", "32", "--hiddens", "64", "--queries", "6", "--kv", "6", "--causal"
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("head  sink"))
    table = lines[start : start + 17]
    assert all(len(line) <= 80 for line in table)
    assert (
        "│" in table[1]
        and table[16].split()[0] == "15"
        and table[16].split()[-1] in ("spread", "sink", "previous", "itself")
    )


def test_meta_device_has_no_roles(cli):
    document = inspect_json(cli, "--device", "meta")
    assert document["summary"]["head_roles"] == []


def test_heatmap_panels_are_titled_with_the_role_where_it_fits(cli, tmp_path):
    from svg_text import svg_texts

    weights, inputs = planted_layer(tmp_path)
    args = ("--weights", str(weights), "--inputs", str(inputs), "--heads", "2")
    result = cli("heatmap", *args, "--out", str(tmp_path / "grid.svg"))
    assert result.exit_code == 0, result.output
    texts = svg_texts(tmp_path / "grid.svg")
    assert "head 0: prev 1.00" in texts and "head 1: sink 1.00" in texts
    out = str(tmp_path / "heads")
    result = cli("heatmap", *args, "--per-head", "--image-format", "svg", "--out", out)
    assert result.exit_code == 0, result.output
    one = svg_texts(next((tmp_path / "heads").glob("example0_head0.*")))
    assert any("head 0: prev 1.00" in text for text in one), one


def test_no_valid_row_is_said_once(cli):
    document = inspect_json(cli, "--queries", "4", "--kv", "4", "--valid-lens", "0,0")
    roles = document["summary"]["head_roles"]
    assert {r["kind"] for r in roles} == {"n/a"} and all(r["sink"] is None for r in roles)
    assert document["summary"]["head_roles_note"].startswith("head roles n/a: every query row")
