"""Long-context heatmaps: streamed per (example, head) and block of queries, reduced to pixels.

The streamed numbers are checked against the full pass (`run_attention`) and against a float64
einsum computed here; the reduction against numpy; the refusal's suggestion by running it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mha_cli.files.sources import resolve
from mha_cli.layer import run as run_module
from mha_cli.layer import streamed
from mha_cli.spec import memory, streaming
from mha_cli.spec.spec import AttentionSpec

run_attention = run_module.run_attention

TOL = 2e-6  # float32 weights in 0..1: a few ulps of BLAS order


def _streamed(spec: AttentionSpec, queries: str | None = None, keys: str | None = None, **kw):
    run, picture = streamed.stream_heatmap(spec, queries, keys, **kw)
    return run, picture.values.numpy(), picture.masked.numpy()


SPECS = [
    AttentionSpec(batch=2, heads=4, hiddens=32, queries=37, kv=37, valid_lens=None, causal=True),
    AttentionSpec(batch=2, heads=4, hiddens=32, queries=20, kv=33, valid_lens=(7, 33), bias=True),
    AttentionSpec(
        batch=2, heads=4, kv_heads=2, hiddens=32, queries=29, kv=29, valid_lens=None, causal=True,
        window=6, rope="half", qk_norm=True,
    ),
    AttentionSpec(
        batch=2, heads=2, hiddens=16, queries=5, kv=9,
        valid_lens=((1, 2, 3, 0, 9), (9, 8, 7, 6, 5)), causal=True, rope="interleaved",
    ),
    # What the families add (issue 19): Gemma 2's soft-capping and scale, Bloom's ALiBi,
    # OLMo's clamp, OLMo 2's whole-projection norm, YaRN's attention factor.
    AttentionSpec(
        batch=2, heads=4, kv_heads=2, hiddens=32, queries=21, kv=21, valid_lens=(21, 13),
        causal=True, window=5, rope="half", score_scale=0.3, softcap=2.0,
    ),
    AttentionSpec(
        batch=2, heads=6, hiddens=36, queries=19, kv=19, valid_lens=(19, 11), causal=True,
        alibi=True, bias=True,
    ),
    AttentionSpec(
        batch=2, heads=4, hiddens=32, queries=23, kv=23, valid_lens=None, causal=True,
        clip_qkv=0.5, qk_norm=True, qk_norm_whole=True, rope="half",
    ),
    AttentionSpec(
        batch=1, heads=4, hiddens=32, queries=25, kv=25, valid_lens=None, causal=True,
        rope="half", rope_scaling=(("factor", 4.0), ("original_max_position_embeddings", 8),
                                   ("rope_type", "yarn")),
    ),
    # Whisper's cross-attention: fewer queries than keys, biases on all but W_k.
    AttentionSpec(
        batch=2, heads=4, hiddens=32, queries=11, kv=27, valid_lens=(27, 5), bias=True,
        key_bias=False,
    ),
    # Falcon's ALiBi (bfloat16, scaled with the scores); StableLM's and Cohere's per-head
    # LayerNorm of queries and keys.
    AttentionSpec(
        batch=2, heads=5, hiddens=40, queries=19, kv=19, valid_lens=(19, 11), causal=True,
        alibi=True, alibi_scaled=True, bias=True,
    ),
    AttentionSpec(
        batch=2, heads=4, kv_heads=2, hiddens=32, queries=21, kv=21, valid_lens=(21, 9),
        causal=True, rope="half", rotary_dim=4, qk_norm=True, qk_norm_layer=True,
        norm_eps=1e-3,
    ),
    # T5's relative position bias: both sides (the encoder), and causal (the decoder), with
    # distances beyond the exact buckets and beyond relative_max_distance; queries the last.
    AttentionSpec(
        batch=2, heads=4, hiddens=32, head_dim=12, queries=27, kv=31, valid_lens=(31, 17),
        score_scale=1.0, relative_buckets=8, relative_max_distance=12,
    ),
    AttentionSpec(
        batch=2, heads=4, hiddens=32, queries=26, kv=26, valid_lens=None, causal=True,
        relative_buckets=6, relative_max_distance=10,
    ),
]  # fmt: skip


@pytest.mark.parametrize("spec", SPECS)
def test_streamed_weights_are_the_full_pass_weights(spec, monkeypatch):
    """Blocks of 4 query rows (several blocks, a short last one), no reduction: every weight
    and every masked cell is the full pass's."""
    monkeypatch.setattr(streaming, "BLOCK_CELLS", 4 * spec.kv)
    full = run_attention(resolve(spec))
    expected = full.attention_weights.numpy()  # (b, h, q, k)
    masked = np.broadcast_to(full.mask.numpy(), expected.shape)
    run, values, hidden = _streamed(spec, f"0:{spec.queries}")
    assert run.plan.block_rows == 4 and not run.plan.reduced
    np.testing.assert_array_equal(hidden, masked)
    np.testing.assert_allclose(values[~hidden], expected[~masked], rtol=0, atol=TOL)


def test_streamed_weights_match_a_float64_einsum():
    """Independent of the layer's code: projections, scores, causal mask and softmax in
    float64 from the run's own inputs and weights."""
    spec = AttentionSpec(
        batch=1, heads=3, hiddens=24, queries=40, kv=40, valid_lens=None, causal=True, bias=True
    )
    full = run_attention(resolve(spec))
    p = {name: t.double() for name, t in full.parameters.items()}
    x_q, x_k = full.tensors["queries"].double()[0], full.tensors["keys"].double()[0]
    q = (x_q @ p["W_q.weight"].T + p["W_q.bias"]).reshape(40, 3, 8).permute(1, 0, 2)
    k = (x_k @ p["W_k.weight"].T + p["W_k.bias"]).reshape(40, 3, 8).permute(1, 0, 2)
    scores = torch.einsum("hqd,hkd->hqk", q, k) / math.sqrt(8)
    future = torch.triu(torch.ones(40, 40, dtype=torch.bool), diagonal=1)
    oracle = torch.softmax(scores.masked_fill(future, -math.inf), dim=-1).numpy()
    _, values, hidden = _streamed(spec, "0:40")
    np.testing.assert_array_equal(hidden[0], np.broadcast_to(future.numpy(), (3, 40, 40)))
    np.testing.assert_allclose(values[0][~hidden[0]], oracle[~hidden[0]], atol=1e-6)


def test_streamed_heads_use_their_own_layer_norm_weights():
    """A per-head LayerNorm (StableLM, Cohere) has a weight per head: a group of heads streamed
    from the middle gets its own rows of it, as the full pass's normed queries and keys."""
    spec = AttentionSpec(
        batch=1, heads=4, kv_heads=2, hiddens=32, queries=9, kv=9, valid_lens=None,
        causal=True, qk_norm=True, qk_norm_layer=True, rope="half",
    )  # fmt: skip
    layer = run_module.build_layer(spec.final(), torch.device("cpu"), torch.float32, None)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for norm in (layer.q_norm, layer.k_norm):
            norm.weight.copy_(1 + 0.5 * torch.randn(norm.weight.shape, generator=generator))
    x_q, x_k, values = (torch.randn(1, 9, 32, generator=generator) for _ in range(3))
    positions = torch.arange(9)
    recorded: dict[str, torch.Tensor] = {}

    def record(name: str, tensor: torch.Tensor, **_: object) -> None:
        recorded[name] = tensor

    with torch.no_grad():
        layer(x_q, x_k, values, None, record)
        for role, x, first, count in (("queries", x_q, 2, 2), ("keys", x_k, 1, 1)):
            rows = streamed.head_rows(layer, x[0], first, role, positions, count)
            expected = recorded[f"{role}.rope"][0, first : first + count]
            torch.testing.assert_close(rows, expected, atol=1e-6, rtol=0)


def test_a_window_is_the_full_pass_cut_to_it():
    spec = AttentionSpec(batch=1, heads=2, hiddens=16, queries=50, kv=50, valid_lens=None)
    full = run_attention(resolve(spec)).attention_weights.numpy()
    _, values, hidden = _streamed(spec, "10:20", "30:")
    assert values.shape == (1, 2, 10, 20) and not hidden.any()
    np.testing.assert_allclose(values, full[:, :, 10:20, 30:50], atol=TOL)
    # Each row was normalised over all 50 keys, not over the 20 drawn.
    assert (values.sum(-1) < 0.9).all()


def _sink_and_diagonal(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal softmax rows with a planted sink (key 0 scores high for every query) and a
    diagonal (each query also likes itself), over n keys."""
    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(n, n, generator=generator)
    scores[:, 0] += 6.0  # the sink
    scores += 4.0 * torch.eye(n)  # the diagonal
    future = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
    return torch.softmax(scores.masked_fill(future, -math.inf), dim=-1), future


def _numpy_reduce(weights: np.ndarray, masked: np.ndarray, fq: int, fk: int, how: str):
    """An independent per-pixel loop."""
    rows, cols = math.ceil(weights.shape[0] / fq), math.ceil(weights.shape[1] / fk)
    out, empty = np.zeros((rows, cols)), np.zeros((rows, cols), dtype=bool)
    for i in range(rows):
        for j in range(cols):
            cell = weights[i * fq : (i + 1) * fq, j * fk : (j + 1) * fk]
            seen = ~masked[i * fq : (i + 1) * fq, j * fk : (j + 1) * fk]
            empty[i, j] = not seen.any()
            if seen.any():
                out[i, j] = cell[seen].max() if how == "max" else cell[seen].mean()
    return out, empty


@pytest.mark.parametrize("how", ["max", "mean"])
@pytest.mark.parametrize(("rows", "fq", "fk"), [(203, 16, 12), (7, 16, 5), (40, 1, 3)])
def test_reduction_matches_a_pixel_loop(how, rows, fq, fk):
    """Sides that do not divide, a block shorter than a pixel, and a uniform row (every key
    masked, as d2l leaves it) whose weights must not leak into the pixels."""
    weights, future = _sink_and_diagonal(203)
    weights, future = weights[:rows].clone(), future[:rows].clone()
    future[rows // 2] = True
    weights[rows // 2] = 1 / 203
    values, hidden = streamed.reduce_block(weights, future, fq, fk, how)
    expected, empty = _numpy_reduce(weights.numpy(), future.numpy(), fq, fk, how)
    np.testing.assert_array_equal(hidden.numpy(), empty)
    np.testing.assert_allclose(values.numpy(), expected, atol=1e-7)


def test_a_one_key_sink_and_the_diagonal_survive_the_max_reduction():
    weights, future = _sink_and_diagonal(512)
    values, hidden = streamed.reduce_block(weights, future, 16, 16, "max")
    values = values.numpy()
    # The sink: pixel column 0 holds the largest weight of every pixel row.
    assert (values[:, 0] >= values[:, 1:].max(axis=1)).all()
    assert (values[:, 0] >= weights[:, 0].min().item()).all()
    # The diagonal: every diagonal pixel outshines the off-diagonal pixels of its row
    # (sink column aside).
    for i in range(2, values.shape[0]):
        assert values[i, i] > values[i, 1:i].max()
    # Masked only where every cell is masked: the strict upper triangle of pixels.
    np.testing.assert_array_equal(hidden.numpy(), np.triu(np.ones((32, 32), bool), 1))
    # A mean keeps the sink as well, but thins the one-key column's contrast.
    means, _ = streamed.reduce_block(weights, future, 16, 16, "mean")
    assert (means.numpy()[:, 0] < values[:, 0]).all()


def test_cli_long_context_picture_says_what_a_pixel_is(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(streaming, "STREAM_CELLS", 1000)
    monkeypatch.setattr(streaming, "GRID_PIXELS", 64)
    monkeypatch.setattr(streaming, "MIN_PANEL_PIXELS", 16)
    out = tmp_path / "long.png"
    args = ["--hiddens", "16", "--heads", "4", "--queries", "300", "--kv", "300", "--batch", "1"]
    result = cli("heatmap", *args, "--valid-lens", "none", "--causal", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "each pixel the max of 10 queries x 10 keys" in result.stderr
    assert out.stat().st_size > 0


@pytest.mark.parametrize(
    ("option", "text", "message"),
    [
        ("--queries-range", "8:2", "--queries-range 8:2: the 10 queries are 0..9"),
        ("--queries-range", "0:11", "START:STOP needs 0 <= START < STOP <= 10"),
        ("--keys-range", "x", "--keys-range 'x' is not a range: give START:STOP"),
        ("--keys-range", "3", "is not a range"),
        ("--reduce", "median", "'median' is not one of"),
    ],
)
def test_bad_ranges_are_one_line_exit_2(cli, tmp_path, option, text, message):
    result = cli("heatmap", "--queries", "10", "--kv", "12", option, text, "--out", str(tmp_path))
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not list(tmp_path.iterdir())


def test_ranges_with_module_are_refused(cli, tmp_path):
    result = cli("heatmap", "--module", "x.py:M", "--queries-range", "0:2")
    assert result.exit_code == 2
    assert "drop them with --module" in result.output


def test_refusal_under_streaming_suggests_a_size_that_runs(cli, tmp_path, monkeypatch):
    """What truly cannot fit streamed is refused with its size; the suggestion runs."""
    spec = AttentionSpec(batch=1, heads=2, hiddens=64, queries=8192, kv=8192, valid_lens=None)
    plan = streaming.plan_stream(spec, streaming.Window(0, 8192), streaming.Window(0, 8192))
    small = int(streaming.streamed_bytes(spec, plan) * 0.5)
    monkeypatch.setattr(memory, "available_bytes", lambda: small)
    monkeypatch.setattr(run_module, "available_bytes", lambda: small)
    args = ["--batch", "1", "--heads", "2", "--hiddens", "64", "--valid-lens", "none"]
    result = cli("heatmap", *args, "--queries", "8192", "--kv", "8192", "--out", str(tmp_path))
    assert result.exit_code == 2, result.output
    assert "even computed one head and" in result.output
    suggestion = result.output.split("e.g. ")[1].split()
    assert suggestion[0] == "--queries" and suggestion[2] == "--kv"
    assert int(suggestion[1]) < 8192
    again = cli("heatmap", *args, *suggestion[:4], "--out", str(tmp_path / "fits.png"))
    assert again.exit_code == 0, again.output


def test_full_export_that_cannot_fit_is_refused_with_its_size(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: 2 << 30)
    args = ["--batch", "1", "--heads", "32", "--hiddens", "256", "--valid-lens", "none"]
    result = cli(
        "heatmap", *args, "--queries", "8192", "--kv", "8192",
        "--export", str(tmp_path / "w.pt"), "--out", str(tmp_path / "a.png"),
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "attention_weights (1, 32, 8192, 8192), 8.0 GiB alone" in result.output
    assert "drop --export to draw the picture streamed" in result.output
    assert not list(tmp_path.iterdir())


def test_export_beside_a_streamed_picture_writes_the_full_weights(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(streaming, "STREAM_CELLS", 1000)
    args = ["--batch", "1", "--heads", "2", "--hiddens", "16", "--queries", "40", "--kv", "40"]
    result = cli(
        "heatmap", *args, "--valid-lens", "none", "--keys-range", "0:10",
        "--export", str(tmp_path / "w.pt"), "--out", str(tmp_path / "a.png"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    saved = torch.load(tmp_path / "w.pt")
    assert tuple(saved["attention_weights"].shape) == (1, 2, 40, 40)


@pytest.mark.parametrize("how", ["max", "mean"])
@pytest.mark.parametrize("lens", [(64, 30), None])
@pytest.mark.parametrize(
    ("window", "queries_range", "keys_range"),
    [(None, None, None), (7, None, None), (None, "5:59", "3:50"), (9, "10:", ":41")],
)
def test_reduced_streamed_picture_is_the_full_pass_reduced(
    monkeypatch, how, lens, window, queries_range, keys_range
):
    """Blocks of 6 rows, pixels of 3 x 4 weights (3 x 3 in a window), causal blocks computed
    only over the keys they see: the same picture as the full pass's weights reduced."""
    monkeypatch.setattr(streaming, "GRID_PIXELS", 20)
    monkeypatch.setattr(streaming, "MIN_PANEL_PIXELS", 16)
    monkeypatch.setattr(streaming, "BLOCK_CELLS", 6 * 64)
    spec = AttentionSpec(
        batch=2, heads=2, hiddens=16, queries=60, kv=64, valid_lens=lens, causal=True,
        window=window,
    )  # fmt: skip
    full = run_attention(resolve(spec))
    run, values, hidden = _streamed(spec, queries_range, keys_range, reduction=how)
    assert run.plan.reduced
    mask = full.mask.expand(full.attention_weights.shape)
    expected = streamed.reduce_full(full.attention_weights, mask, run.plan)
    assert expected.masked.any() and not expected.masked.all()
    np.testing.assert_array_equal(hidden, expected.masked.numpy())
    np.testing.assert_allclose(values, expected.values.numpy(), atol=TOL)


HEAD_SPECS = [
    AttentionSpec(batch=2, heads=4, hiddens=32, queries=30, kv=30, valid_lens=None, causal=True),
    AttentionSpec(batch=2, heads=4, hiddens=32, queries=12, kv=30, valid_lens=(0, 17), causal=True),
    AttentionSpec(
        batch=2, heads=4, kv_heads=2, hiddens=32, queries=30, kv=20, valid_lens=None, causal=True,
        window=5, rope="half", qk_norm=True, bias=True,
    ),
    AttentionSpec(
        batch=2, heads=2, hiddens=16, queries=5, kv=9,
        valid_lens=((1, 2, 3, 0, 9), (9, 8, 7, 6, 5)), value_mode="full",
    ),
    AttentionSpec(
        batch=2, heads=4, hiddens=32, queries=20, kv=20, valid_lens=(20, 9), causal=True,
        alibi=True, softcap=3.0, clip_qkv=0.4,
    ),
    AttentionSpec(
        batch=2, heads=4, kv_heads=2, hiddens=32, queries=20, kv=20, valid_lens=None,
        causal=True, qk_norm=True, qk_norm_whole=True, score_scale=0.2, rope="half",
    ),
    AttentionSpec(  # Whisper's: biases on all but W_k, fewer queries than keys
        batch=2, heads=4, hiddens=32, queries=9, kv=21, valid_lens=(21, 8), bias=True,
        key_bias=False,
    ),
    AttentionSpec(
        batch=2, heads=4, kv_heads=2, hiddens=32, queries=20, kv=20, valid_lens=(20, 9),
        causal=True, qk_norm=True, qk_norm_layer=True, alibi=True, alibi_scaled=True,
        score_scale=0.3,
    ),
    AttentionSpec(
        batch=2, heads=4, hiddens=32, queries=22, kv=25, valid_lens=(25, 11), score_scale=1.0,
        relative_buckets=8, relative_max_distance=12,
    ),
    AttentionSpec(
        batch=2, heads=4, hiddens=32, queries=20, kv=20, valid_lens=None, causal=True,
        relative_buckets=6, relative_max_distance=10,
    ),
    # one valid length per example, nothing causal: the mask is one row for a whole block
    AttentionSpec(batch=2, heads=4, hiddens=32, queries=20, kv=20, valid_lens=(20, 9)),
]  # fmt: skip


@pytest.mark.parametrize("spec", HEAD_SPECS)
def test_streamed_heads_measure_as_the_full_pass(spec, monkeypatch):
    """`mha heads` streamed (blocks of 4 rows) gives the full pass's measures, with bounds."""
    from mha_cli.importance.head_importance import measure_heads

    full = measure_heads(spec)
    monkeypatch.setattr(streaming, "STREAM_CELLS", 1)
    monkeypatch.setattr(streaming, "BLOCK_CELLS", 4 * spec.kv)
    long = measure_heads(spec)
    assert any(line.startswith("streamed: attention computed") for line in long.notes)
    assert [line for line in long.notes if not line.startswith("streamed")] == full.notes
    for a, b in zip(full.heads, long.heads, strict=True):
        for name in ("ablation", "entropy", "confidence", "ablation_se", "entropy_se"):
            x, y = getattr(a, name), getattr(b, name)
            assert y == pytest.approx(x, rel=1e-5, abs=1e-6, nan_ok=True), (name, a.head)
        assert b.role == a.role  # what the head does, in words, tallied block by block
    assert [p.head for p in long.pruning] == [p.head for p in full.pruning]


def test_head_terms_in_chunks_that_split_examples(monkeypatch):
    """Long context: chunks of a few rows (not whole examples) give the same terms, gradient
    importance included, so `mha heads` holds (h, rows, H), not (h, queries, H)."""
    from mha_cli.importance import ablation

    generator = torch.Generator().manual_seed(1)
    concat = torch.randn(3, 7, 4 * 5, generator=generator)
    w_o = torch.randn(6, 20, generator=generator)
    targets = torch.randn(3, 7, 6, generator=generator)
    whole = ablation.head_terms(concat, w_o, None, 4, "mean", targets)
    monkeypatch.setattr(ablation, "CHUNK_BYTES", 8 * 4 * 6 * 5)  # 5 rows: across examples
    split = ablation.head_terms(concat, w_o, None, 4, "mean", targets)
    torch.testing.assert_close(split.gram, whole.gram, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(split.gradient, whole.gradient, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(split.a_s, whole.a_s, rtol=1e-12, atol=1e-12)


def test_progress_bar_goes_to_stderr_only_in_a_terminal(capsys, monkeypatch):
    import sys

    from mha_cli.commands import progress_bar

    with progress_bar.stderr_progress() as progress:  # not a terminal: no bar, lines only
        progress.steps(1, 4)
        progress.say("writing x.png")
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == "writing x.png\n"

    monkeypatch.setattr(progress_bar, "DELAY_S", 0.0)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    with progress_bar.stderr_progress() as progress:
        for done in range(1, 5):
            progress.steps(done, 4)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "attention weights, one head at a time" in captured.err


def test_terminal_grid_of_a_reduced_picture_says_what_a_cell_is(cli, monkeypatch):
    monkeypatch.setattr(streaming, "STREAM_CELLS", 1000)
    monkeypatch.setattr(streaming, "GRID_PIXELS", 16)
    monkeypatch.setattr(streaming, "MIN_PANEL_PIXELS", 8)
    args = ["--batch", "1", "--heads", "2", "--hiddens", "16", "--queries", "64", "--kv", "64"]
    result = cli("heatmap", *args, "--valid-lens", "none", "--causal", "--terminal")
    assert result.exit_code == 0, result.output
    assert "one cell per 8 x 8 weights (see the title)" in result.stdout
    assert "each pixel the max of 8 queries x 8 keys" in result.stdout


def test_weights_that_cannot_fit_streamed_suggest_hiddens_that_run(cli, tmp_path, monkeypatch):
    spec = AttentionSpec(batch=1, heads=4, hiddens=2048, queries=4096, kv=4096, valid_lens=None)
    plan = streaming.plan_stream(spec, streaming.Window(0, 4096), streaming.Window(0, 4096))
    small = int(streaming.streamed_bytes(spec, plan) * 0.5)  # its weights take most of it
    monkeypatch.setattr(memory, "available_bytes", lambda: small)
    monkeypatch.setattr(run_module, "available_bytes", lambda: small)
    args = ["--batch", "1", "--heads", "4", "--queries", "4096", "--kv", "4096"]
    result = cli("heatmap", *args, "--hiddens", "2048", "--valid-lens", "none")
    assert result.exit_code == 2, result.output
    suggestion = result.output.split("e.g. ")[1].split()
    assert suggestion[0] == "--hiddens" and int(suggestion[1]) < 2048
    again = cli(
        "heatmap", *args, *suggestion[:2], "--valid-lens", "none", "--out", str(tmp_path / "a.png")
    )
    assert again.exit_code == 0, again.output


def test_meta_device_at_long_context_points_to_cpu(cli):
    args = ["--batch", "1", "--heads", "8", "--hiddens", "64", "--valid-lens", "none"]
    result = cli("heatmap", *args, "--queries", "8192", "--kv", "8192", "--device", "meta")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "mha: heatmaps need computed values, and --device meta computes none; use --device cpu "
        "(a long context is computed one head at a time)"
    )


def test_inspect_that_cannot_fit_points_to_the_streamed_commands(cli, tmp_path, monkeypatch):
    """`mha inspect` holds every stage's tensor: at a size it cannot hold, its refusal names
    the commands that compute one head at a time, and `mha heatmap` indeed runs there."""
    spec = AttentionSpec(batch=1, heads=2, hiddens=16, queries=3072, kv=3072, valid_lens=None)
    full = memory.estimate_bytes(spec, "inspect")[0]
    plan = streaming.plan_stream(spec, streaming.Window(0, 3072), streaming.Window(0, 3072))
    room = 4 * streaming.streamed_bytes(spec, plan)
    assert room < full * 0.8
    monkeypatch.setattr(memory, "available_bytes", lambda: room)
    monkeypatch.setattr(run_module, "available_bytes", lambda: room)
    args = ["--batch", "1", "--heads", "2", "--hiddens", "16", "--valid-lens", "none"]
    args += ["--queries", "3072", "--kv", "3072"]
    result = cli("inspect", *args)
    assert result.exit_code == 2, result.output
    assert "mha heatmap and mha heads compute it one head at a time" in result.output
    drawn = cli("heatmap", *args, "--out", str(tmp_path / "long.png"))
    assert drawn.exit_code == 0, drawn.output


@pytest.mark.parametrize("mode", ["zero", "mean"])
def test_head_terms_against_each_head_s_own_output_change(mode):
    """Every figure `mha heads` draws from one pass (Gram, Σa², Σas, Σs², gradient) equals the
    same sums over explicit per-head output changes δ_i = (c_i - m_i) W_o_iᵀ, in float64."""
    from mha_cli.importance import ablation

    heads, width, hiddens = 3, 4, 5
    generator = torch.Generator().manual_seed(7)
    concat = torch.randn(2, 6, heads * width, generator=generator)
    w_o = torch.randn(hiddens, heads * width, generator=generator)
    b_o = torch.randn(hiddens, generator=generator)
    targets = torch.randn(2, 6, hiddens, generator=generator)
    got = ablation.head_terms(concat, w_o, b_o, heads, mode, targets)
    c = concat.double().reshape(12, heads, width)
    w = w_o.double().reshape(hiddens, heads, width)
    y_i = torch.stack([c[:, i] @ w[:, i].T for i in range(heads)])  # (h, n, H)
    y = y_i.sum(0) + b_o.double()
    mean = c.mean(0) if mode == "mean" else torch.zeros(heads, width, dtype=torch.float64)
    delta = torch.stack([(c[:, i] - mean[i]) @ w[:, i].T for i in range(heads)])
    a = (delta**2).sum(-1)  # (h, n)
    s = (y**2).sum(-1)  # (n,)
    flat = delta.reshape(heads, -1)
    close = {"rtol": 1e-10, "atol": 1e-10}
    torch.testing.assert_close(got.gram, flat @ flat.T, **close)
    torch.testing.assert_close(got.a_squares, (a**2).sum(-1), **close)
    torch.testing.assert_close(got.a_s, a @ s, **close)
    assert got.s_squares == pytest.approx(float((s**2).sum()), rel=1e-10)
    assert got.output_norm == pytest.approx(float(y.norm()), rel=1e-10)
    error = (y - targets.double().reshape(12, hiddens)).reshape(2, 6, hiddens)
    dots = torch.einsum("hbqo,bqo->hb", y_i.reshape(heads, 2, 6, hiddens), error)
    torch.testing.assert_close(got.gradient, (dots * 2 / (6 * hiddens)).abs().mean(1), **close)
