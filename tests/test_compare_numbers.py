"""`mha compare`'s numbers against the real thing: d2l's code, torch.nn.MultiheadAttention and
scaled_dot_product_attention built here from the same weights and inputs, and a float64 einsum
(tests/oracles.py) as the golden run. Every figure the JSON reports is recomputed here."""

from __future__ import annotations

import json
import math
from pathlib import Path

import d2l_reference as d2l
import pytest
import torch
from oracles import einsum_attention
from torch import nn
from torch.nn import functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

FUDGE = 5  # PyTorch's SDPA tests' factor, which the verdict line states


def write_files(
    folder: Path,
    *,
    heads: int = 5,
    kv_heads: int = 5,
    hiddens: int = 100,
    queries: int = 4,
    kv: int = 6,
    key_size: int = 100,
    value_size: int = 100,
    bias: bool = False,
    seed: int = 0,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], list[str]]:
    """d2l-named weights and inputs in files, and the options that read them."""
    g = torch.Generator().manual_seed(seed)
    d = hiddens // heads
    shapes = {
        "W_q.weight": (hiddens, hiddens),
        "W_k.weight": (kv_heads * d, key_size),
        "W_v.weight": (kv_heads * d, value_size),
        "W_o.weight": (hiddens, hiddens),
    }
    if bias:
        shapes |= {f"W_{p}.bias": (shapes[f"W_{p}.weight"][0],) for p in "qkvo"}
    weights = {name: (torch.rand(shape, generator=g) - 0.5) / 5 for name, shape in shapes.items()}
    inputs = {
        "queries": torch.randn(2, queries, hiddens, generator=g),
        "keys": torch.randn(2, kv, key_size, generator=g),
        "values": torch.randn(2, kv, value_size, generator=g),
    }
    torch.save(weights, folder / "weights.pt")
    torch.save(inputs, folder / "inputs.pt")
    options = ["--weights", str(folder / "weights.pt"), "--heads", str(heads)]
    return weights, inputs, [*options, "--inputs", str(folder / "inputs.pt")]


def run_json(cli, *args: str) -> dict:
    result = cli("compare", *args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def implementation(document: dict, key: str) -> dict:
    return next(i for i in document["implementations"] if i["key"] == key)


def stage(entry: dict, name: str) -> dict:
    return next(s for s in entry["stages"] if s["name" if "name" in s else "stage"] == name)


def largest(a: torch.Tensor, b: torch.Tensor) -> tuple[float, list[int]]:
    """The largest |a - b| in float64, and the first index where it occurs."""
    diff = (a.double() - b.double()).abs()
    flat = diff.reshape(-1).tolist()
    top = max(flat)
    position, index = flat.index(top), []
    for size in reversed(diff.shape):
        position, rest = divmod(position, size)
        index.append(rest)
    return top, index[::-1]


def close(reported: float, expected: float) -> bool:
    """Two figures computed from the same numbers (the tool's bound from its own errors)."""
    return reported == pytest.approx(expected, rel=1e-6, abs=1e-12)


ULPS = 8  # how far two measurements of the same rounding error may drift apart, in eps x scale


def rounding_like(reported: float, measured: float, dtype: torch.dtype, scale: float) -> bool:
    """A rounding error (or a difference made of rounding) the tool measured, against the same
    one measured here. Never digit for digit: the two runs may use other kernels, another BLAS
    or another thread count, so their rounding differs (3.99e-07 here, 2.79e-07 there). Both must
    be finite and non-negative, and apart by at most a few units in the last place of the values
    compared (ULPS x eps x their largest magnitude), which still tells a rounding error from a
    real difference or from a figure left at zero."""
    slack = ULPS * torch.finfo(dtype).eps * scale
    return math.isfinite(reported) and reported >= 0 and abs(reported - measured) <= slack


def magnitude(t: torch.Tensor) -> float:
    return float(t.double().abs().max())


def check_verdicts(document: dict, dtype: torch.dtype) -> None:
    """PyTorch's rule with torch.testing's own defaults: error <= max(atol, 5 x d2l's error)."""
    rtol, atol = torch.testing._comparison.default_tolerances(dtype)
    assert (document["tolerance"]["rtol"], document["tolerance"]["atol"]) == (rtol, atol)
    assert document["tolerance"]["fudge"] == FUDGE
    references = {s["name"]: s["reference_error"] for s in document["stages"]}
    for entry in document["implementations"]:
        for found in entry["stages"]:
            bound = max(atol, FUDGE * references[found["stage"]])
            assert close(found["bound"], bound)
            assert found["agrees"] == (found["error"] <= bound)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_every_figure_is_that_of_d2l_torch_and_a_float64_einsum(cli, tmp_path, dtype):
    weights, inputs, options = write_files(tmp_path)
    document = run_json(cli, *options, "--valid-lens", "3,2", "--dtype", dtype)
    low = getattr(torch, dtype)
    w = {name: t.to(low) for name, t in weights.items()}  # the weights as mha runs them
    x = [inputs[name].to(low) for name in ("queries", "keys", "values")]
    lens = torch.tensor([3, 2])
    golden, golden_weights = einsum_attention(
        *(t.double() for t in x), {n: t.double() for n, t in w.items()}, 5, 5, lens, False
    )
    layer = d2l.MultiHeadAttention(100, 100, 100, 100, 5, 0.0).to(low).eval()
    layer.load_state_dict(w)
    torch_mha = nn.MultiheadAttention(100, 5, bias=False, batch_first=True).to(low).eval()
    with torch.no_grad():
        reference = layer(*x, lens)  # (2, 4, 100)
        reference_weights = layer.attention.attention_weights.reshape(2, 5, 4, 6)
        torch_mha.in_proj_weight.copy_(
            torch.cat([w["W_q.weight"], w["W_k.weight"], w["W_v.weight"]])
        )
        torch_mha.out_proj.weight.copy_(w["W_o.weight"])
        padding = torch.arange(6)[None, :] >= lens[:, None]  # True: ignore
        output, attention = torch_mha(
            *x, key_padding_mask=padding, need_weights=True, average_attn_weights=False
        )

    stages = {s["name"]: s for s in document["stages"]}
    scale, weights_scale = magnitude(golden), magnitude(golden_weights)
    assert rounding_like(
        stages["W_o"]["reference_error"], largest(reference, golden)[0], low, scale
    )
    assert rounding_like(
        stages["masked_softmax"]["reference_error"],
        largest(reference_weights, golden_weights)[0],
        low,
        weights_scale,
    )
    mha = implementation(document, "torch_mha")
    out, weights_found = stage(mha, "W_o"), stage(mha, "masked_softmax")
    assert rounding_like(out["difference"], largest(output, reference)[0], low, scale)
    assert rounding_like(out["error"], largest(output, golden)[0], low, scale)
    difference = (attention.double() - reference_weights.double()).abs()
    assert rounding_like(weights_found["difference"], float(difference.max()), low, weights_scale)
    if weights_found["difference"]:
        # Where the largest rounding difference falls is noise too: a valid index, at which the
        # difference measured here is of the same size, never a pinned location.
        where = weights_found["where"]
        assert list(where) == ["example", "head", "query", "key"]
        index = tuple(where.values())
        assert all(0 <= i < n for i, n in zip(index, difference.shape, strict=True))
        assert rounding_like(
            weights_found["difference"], float(difference[index]), low, weights_scale
        )
    else:
        assert weights_found["where"] is None
    assert rounding_like(
        weights_found["error"], largest(attention, golden_weights)[0], low, weights_scale
    )
    check_verdicts(document, low)
    assert document["agrees"] is True
    assert {"torch_mha", "torch_mha_no_weights", "sdpa_math"} <= {
        i["key"] for i in document["implementations"] if i["compared"]
    }
    if dtype == "float32":  # the bar for the chapter's example on cpu
        for entry in document["implementations"]:
            assert all(s["difference"] < 1e-6 for s in entry["stages"]), entry["key"]


def heads_of(x: torch.Tensor, heads: int) -> torch.Tensor:
    return x.reshape(x.shape[0], x.shape[1], heads, -1).transpose(1, 2)  # (b, h, n, d)


# (options, kv_heads, valid_lens, causal): grouped-query, causal, per-query lengths, kdim/vdim
CONFIGS = [
    (["--heads", "4", "--kv-heads", "2", "--hiddens", "64"], 2, [3, 2], False),
    (["--heads", "4", "--kv-heads", "1", "--hiddens", "64"], 1, [6, 4], False),
    (["--causal", "--valid-lens", "none", "--queries", "6"], 5, None, True),
    (["--causal", "--valid-lens", "5,3"], 5, [5, 3], True),
    (["--valid-lens", "1,2,3,4;6,5,4,3"], 5, [[1, 2, 3, 4], [6, 5, 4, 3]], False),
    (["--key-size", "7", "--value-size", "9", "--bias"], 5, [3, 2], False),
]


@pytest.mark.parametrize(("args", "kv_heads", "lens", "causal"), CONFIGS, ids=lambda v: str(v))
def test_configs_against_sdpa_and_torch_mha_built_here(cli, tmp_path, args, kv_heads, lens, causal):
    hiddens = int(args[args.index("--hiddens") + 1]) if "--hiddens" in args else 100
    heads = int(args[args.index("--heads") + 1]) if "--heads" in args else 5
    queries = int(args[args.index("--queries") + 1]) if "--queries" in args else 4
    key_size = int(args[args.index("--key-size") + 1]) if "--key-size" in args else hiddens
    value_size = int(args[args.index("--value-size") + 1]) if "--value-size" in args else hiddens
    weights, inputs, options = write_files(
        tmp_path,
        heads=heads,
        kv_heads=kv_heads,
        hiddens=hiddens,
        queries=queries,
        key_size=key_size,
        value_size=value_size,
        bias="--bias" in args,
    )
    extra = [a for a in args if a not in ("--heads", str(heads))]
    if lens is not None and "--valid-lens" not in extra:
        extra += ["--valid-lens", ",".join(map(str, lens))]
    document = run_json(cli, *options, *extra)
    valid = None if lens is None else torch.tensor(lens)
    x = [inputs[name] for name in ("queries", "keys", "values")]
    golden, _ = einsum_attention(
        *(t.double() for t in x),
        {n: t.double() for n, t in weights.items()},
        heads,
        kv_heads,
        valid,
        causal,
    )
    # The mask, True = masked: padding beyond each length, and for causal the future (queries
    # are the last positions of the keys).
    key_pos = torch.arange(6)
    masked = torch.zeros(2, queries, 6, dtype=torch.bool)
    if valid is not None:
        per_query = valid[:, None].expand(2, queries) if valid.dim() == 1 else valid
        masked |= key_pos[None, None, :] >= per_query[:, :, None]
    if causal:
        masked |= key_pos[None, :] > (torch.arange(queries) + 6 - queries)[:, None]

    # SDPA math on heads projected here, key-value heads repeated here.
    def linear(t: torch.Tensor, name: str) -> torch.Tensor:
        return F.linear(t, weights[f"{name}.weight"], weights.get(f"{name}.bias"))

    group = heads // kv_heads
    q = heads_of(linear(x[0], "W_q"), heads)
    k = heads_of(linear(x[1], "W_k"), kv_heads).repeat_interleave(group, dim=1)
    v = heads_of(linear(x[2], "W_v"), kv_heads).repeat_interleave(group, dim=1)
    with torch.no_grad(), sdpa_kernel([SDPBackend.MATH]):
        mixed = F.scaled_dot_product_attention(q, k, v, attn_mask=~masked[:, None])
    sdpa_out = linear(mixed.transpose(1, 2).reshape(2, queries, hiddens), "W_o")
    found = stage(implementation(document, "sdpa_math"), "W_o")
    scale = magnitude(golden)
    assert rounding_like(found["error"], largest(sdpa_out, golden)[0], torch.float32, scale)
    assert found["agrees"]

    # nn.MultiheadAttention with each key-value head's rows repeated for its query heads.
    def widen(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(kv_heads, -1, *t.shape[1:]).repeat_interleave(group, 0).flatten(0, 1)

    torch_mha = nn.MultiheadAttention(
        hiddens, heads, bias="--bias" in args, kdim=key_size, vdim=value_size, batch_first=True
    ).eval()
    state = {
        "q_proj_weight": weights["W_q.weight"],
        "k_proj_weight": widen(weights["W_k.weight"]),
        "v_proj_weight": widen(weights["W_v.weight"]),
        "out_proj.weight": weights["W_o.weight"],
    }
    if torch_mha._qkv_same_embed_dim:
        state = {
            "in_proj_weight": torch.cat([state.pop(f"{p}_proj_weight") for p in "qkv"]),
            **state,
        }
    if "--bias" in args:
        state["in_proj_bias"] = torch.cat(
            [weights["W_q.bias"], widen(weights["W_k.bias"]), widen(weights["W_v.bias"])]
        )
        state["out_proj.bias"] = weights["W_o.bias"]
    torch_mha.load_state_dict(state)
    with torch.no_grad():
        mha_out, _ = torch_mha(*x, attn_mask=masked.repeat_interleave(heads, dim=0))
    found = stage(implementation(document, "torch_mha"), "W_o")
    assert rounding_like(found["error"], largest(mha_out, golden)[0], torch.float32, scale)
    for entry in document["implementations"]:
        assert all(s["difference"] < 1e-6 for s in entry["stages"]), entry["key"]
    assert document["agrees"] is True
    check_verdicts(document, torch.float32)


def test_weights_from_a_torch_multihead_attention_checkpoint(cli, tmp_path):
    """The module itself, saved and compared: nn.MultiheadAttention's column is that module."""
    torch.manual_seed(4)
    original = nn.MultiheadAttention(100, 5, bias=True, batch_first=True).eval()
    with torch.no_grad():
        for parameter in (original.in_proj_bias, original.out_proj.bias):
            parameter.uniform_(-0.1, 0.1)  # torch starts them at 0: make them count
    torch.save(original.state_dict(), tmp_path / "mha.pt")
    _, inputs, options = write_files(tmp_path)
    options[1] = str(tmp_path / "mha.pt")
    document = run_json(cli, *options, "--valid-lens", "3,2")
    assert document["source"]["layout"] == "torch.nn.MultiheadAttention (packed in_proj)"
    x = [inputs[name] for name in ("queries", "keys", "values")]
    lens = torch.tensor([3, 2])
    weight, bias = original.in_proj_weight.detach(), original.in_proj_bias.detach()
    d2l_names = {
        **{f"W_{p}.weight": part for p, part in zip("qkv", weight.chunk(3), strict=True)},
        **{f"W_{p}.bias": part for p, part in zip("qkv", bias.chunk(3), strict=True)},
        "W_o.weight": original.out_proj.weight.detach(),
        "W_o.bias": original.out_proj.bias.detach(),
    }
    golden, _ = einsum_attention(
        *(t.double() for t in x), {n: t.double() for n, t in d2l_names.items()}, 5, 5, lens, False
    )
    with torch.no_grad():
        output, _ = original(*x, key_padding_mask=torch.arange(6)[None, :] >= lens[:, None])
    found = stage(implementation(document, "torch_mha"), "W_o")
    assert rounding_like(
        found["error"], largest(output, golden)[0], torch.float32, magnitude(golden)
    )
    assert found["difference"] < 1e-6
    assert document["agrees"] is True


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_cuda_backends_agree_within_the_tolerance(cli, dtype):
    document = run_json(
        cli, "--device", "cuda", "--dtype", dtype, "--heads", "4", "--hiddens", "256"
    )
    ran = {i["key"] for i in document["implementations"] if i["compared"]}
    assert "sdpa_math" in ran
    assert ran & {"sdpa_flash", "sdpa_efficient", "sdpa_cudnn"}  # a fused CUDA kernel ran
    assert document["agrees"] is True
    check_verdicts(document, getattr(torch, dtype))


def test_reference_error_is_zero_in_float64_and_the_floor_is_the_bound(cli):
    document = run_json(cli, "--dtype", "float64")
    rtol, atol = torch.testing._comparison.default_tolerances(torch.float64)
    assert all(s["reference_error"] == 0 for s in document["stages"])
    assert all(s["bound"] == atol for s in document["stages"])
    assert math.isclose(document["tolerance"]["rtol"], rtol)
    assert document["agrees"] is True
