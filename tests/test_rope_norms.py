"""rope and norms against transformers' own functions: same frequencies, same rotations, same
per-head RMSNorm, in float32 and in bfloat16 (where the dtype handling shows)."""

from __future__ import annotations

import pytest
import torch

from mha_cli.layer.norms import rms_norm
from mha_cli.layer.rope import apply_rope, inverse_frequencies

transformers = pytest.importorskip("transformers")
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS  # noqa: E402
from transformers.models.gpt_neox import modeling_gpt_neox as neox  # noqa: E402
from transformers.models.gptj import modeling_gptj as gptj  # noqa: E402
from transformers.models.llama import modeling_llama as llama  # noqa: E402
from transformers.models.qwen3 import modeling_qwen3 as qwen3  # noqa: E402

B, H, N, D = 2, 3, 7, 16
LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0}
LLAMA3["original_max_position_embeddings"] = 64  # short, so all three bands occur for D = 16


def close(mine: torch.Tensor, theirs: torch.Tensor) -> None:
    assert mine.dtype == theirs.dtype
    torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-6)


def randn(*shape: int, dtype: torch.dtype = torch.float32, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator).to(dtype)


def llama_config(rope_parameters: dict) -> transformers.LlamaConfig:
    return transformers.LlamaConfig(
        hidden_size=D * H,
        num_attention_heads=H,
        max_position_embeddings=256,
        rope_parameters=rope_parameters,
    )


# ---------------------------------------------------------------------------------------------
# Inverse frequencies


@pytest.mark.parametrize("theta", [10000.0, 500000.0])
def test_default_frequencies(theta: float) -> None:
    config = llama_config({"rope_type": "default", "rope_theta": theta})
    theirs, _ = llama.LlamaRotaryEmbedding.compute_default_rope_parameters(config)
    close(inverse_frequencies(D, theta), theirs)


def test_linear_frequencies() -> None:
    config = llama_config({"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0})
    theirs, _ = ROPE_INIT_FUNCTIONS["linear"](config)
    close(inverse_frequencies(D, 10000.0, {"rope_type": "linear", "factor": 4.0}), theirs)


@pytest.mark.parametrize("theta", [10000.0, 500000.0])
def test_llama3_frequencies(theta: float) -> None:
    config = llama_config({**LLAMA3, "rope_theta": theta})
    theirs, _ = ROPE_INIT_FUNCTIONS["llama3"](config)
    mine = inverse_frequencies(D, theta, LLAMA3)
    close(mine, theirs)
    unscaled = inverse_frequencies(D, theta)
    # the test means something: some frequencies kept, some divided by 8, some in between
    assert (mine == unscaled).any() and (mine == unscaled / 8).any()
    assert ((mine != unscaled) & (mine != unscaled / 8)).any()


def test_gptj_frequencies() -> None:
    table = gptj.create_sinusoidal_positions(N, 8)  # (n, rd): sin | cos of position * inv_freq
    angles = torch.arange(N).float()[:, None] * inverse_frequencies(8, 10000.0)
    close(torch.cat((angles.sin(), angles.cos()), dim=1), table)


# ---------------------------------------------------------------------------------------------
# Rotations


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("scaling", [None, LLAMA3])
def test_half_pairing_is_llamas(dtype: torch.dtype, scaling: dict | None) -> None:
    params = {"rope_type": "default", "rope_theta": 10000.0} | (scaling or {})
    config = llama_config(params)
    q, k = randn(B, H, N, D, dtype=dtype), randn(B, H, N, D, dtype=dtype, seed=1)
    positions = torch.arange(3, 3 + N)[None].expand(B, -1)  # (b, n): later positions
    cos, sin = llama.LlamaRotaryEmbedding(config)(q, positions)
    q_theirs, k_theirs = llama.apply_rotary_pos_emb(q, k, cos, sin)
    inv_freq = inverse_frequencies(D, 10000.0, scaling)
    close(apply_rope(q, positions, inv_freq, D, "half"), q_theirs)
    close(apply_rope(k, positions[0], inv_freq, D, "half"), k_theirs)  # (n,) positions too


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_partial_half_pairing_is_gpt_neoxs(dtype: torch.dtype) -> None:
    config = transformers.GPTNeoXConfig(
        hidden_size=D * H, num_attention_heads=H, rotary_pct=0.25, max_position_embeddings=64
    )
    q, k = randn(B, H, N, D, dtype=dtype), randn(B, H, N, D, dtype=dtype, seed=1)
    positions = torch.tensor([[0, 1, 2, 3, 4, 5, 6], [5, 6, 7, 8, 9, 10, 11]])  # (b, n)
    cos, sin = neox.GPTNeoXRotaryEmbedding(config)(q, positions)
    q_theirs, k_theirs = neox.apply_rotary_pos_emb(q, k, cos, sin)
    inv_freq = inverse_frequencies(4, 10000.0)
    close(apply_rope(q, positions, inv_freq, 4, "half"), q_theirs)
    close(apply_rope(k, positions, inv_freq, 4, "half"), k_theirs)
    assert torch.equal(q_theirs[..., 4:], q[..., 4:])  # only the first 4 dims turned


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("rotary_dim", [6, D])
def test_interleaved_pairing_is_gptjs(dtype: torch.dtype, rotary_dim: int) -> None:
    config = transformers.GPTJConfig(n_embd=D * H, n_head=H, rotary_dim=rotary_dim, n_positions=64)
    x = randn(B, N, H, D, dtype=dtype)  # GPT-J rotates before its head transpose: (b, n, h, d)
    positions = torch.arange(2, 2 + N)[None].expand(B, -1)
    sin, cos = gptj.GPTJRotaryEmbedding(config)(x, positions)
    turned = gptj.apply_rotary_pos_emb(x[..., :rotary_dim], sin, cos)
    theirs = torch.cat([turned, x[..., rotary_dim:]], dim=-1).transpose(1, 2)  # (b, h, n, d)
    inv_freq = inverse_frequencies(rotary_dim, 10000.0)
    close(apply_rope(x.transpose(1, 2), positions, inv_freq, rotary_dim, "interleaved"), theirs)


def test_position_zero_is_identity_and_norms_are_kept() -> None:
    x = randn(1, H, N, D)
    out = apply_rope(x, torch.arange(N), inverse_frequencies(D, 10000.0), D, "interleaved")
    assert torch.equal(out[:, :, 0], x[:, :, 0])
    torch.testing.assert_close(out.norm(dim=-1), x.norm(dim=-1))


def test_unknown_pairing() -> None:
    with pytest.raises(ValueError, match=r"^pairing 'full'"):
        apply_rope(randn(1, 1, 2, 4), torch.arange(2), inverse_frequencies(4, 1e4), 4, "full")


# ---------------------------------------------------------------------------------------------
# Per-head RMSNorm


@pytest.mark.parametrize(
    ("x_dtype", "w_dtype"),
    [
        (torch.float32, torch.float32),
        (torch.bfloat16, torch.bfloat16),
        (torch.bfloat16, torch.float32),  # the result is promoted to float32, as in transformers
    ],
)
def test_rms_norm_is_qwen3s(x_dtype: torch.dtype, w_dtype: torch.dtype) -> None:
    norm = qwen3.Qwen3RMSNorm(D, eps=1e-5)
    with torch.no_grad():
        norm.weight.copy_(randn(D, seed=2) + 1)
    norm = norm.to(w_dtype)
    x = randn(B, N, H, D, dtype=x_dtype) * 3
    with torch.no_grad():
        theirs = norm(x)
    close(rms_norm(x, norm.weight.detach(), 1e-5), theirs)
