"""`torch.nn.functional.scaled_dot_product_attention` on d2l's own projected heads, once per
backend: math (every device), flash, memory-efficient and cuDNN where the device has them.

Each backend is forced alone with `torch.nn.attention.sdpa_kernel`; one that cannot run these
inputs says why (torch's own warnings) instead of silently falling back to another. SDPA's
boolean mask means True = attend, the opposite of nn.MultiheadAttention's. Grouped-query
attention uses `enable_gqa=True` (torch >= 2.5) or, before that, repeats the key-value heads.
Shapes: b batch, h heads, g key-value heads, q queries, k key-value pairs, d head dim.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

import torch
from torch.nn import functional as F

# Our name -> the member of torch.nn.attention.SDPBackend.
BACKENDS = {
    "math": "MATH",
    "flash": "FLASH_ATTENTION",
    "efficient": "EFFICIENT_ATTENTION",
    "cudnn": "CUDNN_ATTENTION",
}
GQA_SINCE = (2, 5)  # scaled_dot_product_attention(..., enable_gqa=True) appeared in torch 2.5


@dataclass(frozen=True)
class SdpaRun:
    backend: str
    output: torch.Tensor | None  # (b, h, q, dv); None when the backend could not run
    reason: str | None = None  # why it could not


def torch_version() -> tuple[int, int]:
    major, minor = torch.__version__.split("+")[0].split(".")[:2]
    return int(major), int(re.match(r"\d+", minor).group())  # type: ignore[union-attr]


def has_enable_gqa() -> bool:
    return torch_version() >= GQA_SINCE


def run_backends(
    queries: torch.Tensor,  # (b, h, q, d)
    keys: torch.Tensor,  # (b, g, k, d)
    values: torch.Tensor,  # (b, g, k, dv)
    attend: torch.Tensor | None,  # (b|1, 1, q, k) bool, True = attend
) -> list[SdpaRun]:
    """One run per backend, math first."""
    return [_run(name, queries, keys, values, attend) for name in BACKENDS]


def _run(
    backend: str,
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    attend: torch.Tensor | None,
) -> SdpaRun:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with _only(backend), torch.no_grad():
                output = sdpa(queries, keys, values, attend)
        except (RuntimeError, _Unavailable) as error:
            messages = [str(w.message) for w in caught]
            return SdpaRun(backend, None, _reason(backend, queries.device, messages, error))
    return SdpaRun(backend, output)


def sdpa(
    queries: torch.Tensor,  # (b, h, q, d)
    keys: torch.Tensor,  # (b, g, k, d)
    values: torch.Tensor,  # (b, g, k, dv)
    attend: torch.Tensor | None,  # (b|1, 1, q, k), True = attend
) -> torch.Tensor:  # (b, h, q, dv)
    """SDPA with its default scale 1/sqrt(d), which is d2l's."""
    group = queries.shape[1] // keys.shape[1]
    if group == 1:
        return F.scaled_dot_product_attention(queries, keys, values, attn_mask=attend)
    if has_enable_gqa():
        return F.scaled_dot_product_attention(
            queries, keys, values, attn_mask=attend, enable_gqa=True
        )
    keys = keys.repeat_interleave(group, dim=1)  # (b, h, k, d): what enable_gqa does inside
    values = values.repeat_interleave(group, dim=1)  # (b, h, k, dv)
    return F.scaled_dot_product_attention(queries, keys, values, attn_mask=attend)


class _Unavailable(Exception):
    """This torch has no such backend."""


@contextmanager
def _only(backend: str) -> Iterator[None]:
    """Only `backend` may run SDPA inside the block."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:  # an old torch: the flags of torch.backends.cuda.sdp_kernel
        with _legacy_only(backend):
            yield
        return
    member = getattr(SDPBackend, BACKENDS[backend], None)
    if member is None:
        raise _Unavailable(f"torch {torch.__version__} has no {backend} backend")
    with sdpa_kernel([member]):
        yield


def _legacy_only(backend: str) -> AbstractContextManager[None]:
    if backend == "cudnn":
        raise _Unavailable(f"torch {torch.__version__} has no cudnn backend")
    return torch.backends.cuda.sdp_kernel(  # type: ignore[no-any-return]
        enable_math=backend == "math",
        enable_flash=backend == "flash",
        enable_mem_efficient=backend == "efficient",
    )


def _reason(backend: str, device: torch.device, messages: list[str], error: BaseException) -> str:
    """torch's own explanation, without its headers and source locations."""
    if isinstance(error, _Unavailable):
        return str(error)
    reasons = []
    for message in messages:
        text = re.sub(r"\s*\(Triggered internally at .*", "", message, flags=re.S).strip()
        if text and not text.endswith(":") and text not in reasons:
            reasons.append(text)
    if reasons:
        return "; ".join(reasons)
    if device.type == "cpu" and backend in ("efficient", "cudnn"):
        return "a CUDA kernel; this run is on the cpu"
    return " ".join(str(error).split())
