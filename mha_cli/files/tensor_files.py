"""Named tensors in files: the inputs a run reads and the tensors `--export` writes.

Opening a file safely (no code from it is run) is `tensor_io`'s job; this module checks what the
file holds and writes exports whole or not at all. Every problem with a user's file becomes one
`MhaError` line that names the file and the fix; no exception from torch or safetensors escapes
as a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mha_cli.errors import MhaError
from mha_cli.files.atomic import write_atomically
from mha_cli.files.tensor_io import SAFETENSORS_SUFFIX, TORCH_SUFFIXES, read_tensor_file
from mha_cli.messages import shape_text, size_text, suggest

if TYPE_CHECKING:
    import torch

QKV = {"queries": "query_size", "keys": "key_size", "values": "value_size"}
SELF = "hidden_states"  # self-attention: queries, keys and values are one tensor
INPUT_NAMES = (*QKV, SELF, "valid_lens")
_INPUTS_FIX = "a dict of tensors: torch.save({'queries': q, 'keys': k, 'values': v}, path)"


# ---------------------------------------------------------------------------------------------
# Inputs


def load_inputs(path: Path) -> dict[str, torch.Tensor]:
    """`queries`, `keys`, `values` (batch, n, size), or `hidden_states` (batch, n, hiddens) for
    self-attention, and optionally `valid_lens`, from a file."""
    path = Path(path)
    stored = read_tensor_file(path, _INPUTS_FIX)
    if not isinstance(stored, dict):
        raise MhaError(
            f"{path} holds a {type(stored).__name__}, not named tensors; save a dict with "
            "'queries', 'keys', 'values' and optionally 'valid_lens'"
        )
    _check_names(path, stored)
    inputs = {name: _tensor(path, stored, name) for name in INPUT_NAMES if name in stored}
    if SELF in inputs:  # self-attention: the one sequence is queries, keys and values at once
        hidden = inputs.pop(SELF)
        inputs.update(queries=hidden, keys=hidden, values=hidden)
    _check_qkv(path, inputs)
    if "valid_lens" in inputs:
        _check_valid_lens(path, inputs)
    return inputs


def _check_names(path: Path, stored: dict[Any, Any]) -> None:
    # Unknown names first: a typo ("querys") also makes a required name missing, and the
    # suggestion is the more useful message.
    unknown = [str(name) for name in stored if name not in INPUT_NAMES]
    if unknown:
        described = ", ".join(f"'{name}'" for name in unknown)
        hint = next((s for s in (suggest(name, INPUT_NAMES) for name in unknown) if s), "")
        plural = "s" if len(unknown) > 1 else ""
        raise MhaError(
            f"{path}: unknown tensor{plural} {described}{hint}; "
            f"an inputs file holds only {', '.join(INPUT_NAMES)}"
        )
    if SELF in stored:
        both = [name for name in QKV if name in stored]
        if both:
            raise MhaError(
                f"{path} holds 'hidden_states' and {', '.join(repr(n) for n in both)}; give "
                "either hidden_states (self-attention) or queries, keys and values"
            )
        return
    missing = [name for name in QKV if name not in stored]
    if missing:
        raise MhaError(
            f"{path}: no tensor {', '.join(repr(m) for m in missing)}; an inputs file must hold "
            "queries, keys and values, each (batch, n, size), or hidden_states (batch, n, "
            "hiddens) for self-attention, and optionally valid_lens"
        )


def _tensor(path: Path, stored: dict[str, Any], name: str) -> torch.Tensor:
    import torch

    value = stored[name]
    if not isinstance(value, torch.Tensor):
        raise MhaError(
            f"{path}: '{name}' holds a {type(value).__name__}, not a tensor; "
            f"save torch.tensor(...) under '{name}'"
        )
    check_kind(path, name, value)
    return value


def check_values(
    path: Path, name: str, tensor: torch.Tensor, fix: str, finite: bool = True
) -> None:
    """Floating point, no empty axis, and finite (unless `finite` is False): what every tensor
    read from a file must be."""
    check_kind(path, name, tensor)
    if not tensor.is_floating_point():
        raise MhaError(
            f"{path}: '{name}' holds {dtype_text(tensor)} values, expected floating point; {fix}"
        )
    if 0 in tensor.shape:
        raise MhaError(
            f"{path}: '{name}' has shape {shape_text(tensor)}, with an empty axis; {fix}"
        )
    if finite:
        check_finite(path, name, tensor)


def check_kind(path: Path, name: str, tensor: torch.Tensor) -> None:
    """A dense tensor with values, in a dtype torch computes with on every device: not sparse,
    not meta (a shape without values), not float8.

    float8 is refused rather than upcast: a float8 checkpoint is a quantized one, whose weights
    mean something only with their scales (`weight_scale_inv`...), which mha does not apply."""
    import torch

    if tensor.layout != torch.strided:
        layout = str(tensor.layout).removeprefix("torch.")
        raise MhaError(
            f"{path}: '{name}' is a sparse tensor ({layout}), and mha reads dense tensors only; "
            "save it with .to_dense()"
        )
    if tensor.is_meta:
        raise MhaError(
            f"{path}: '{name}' is a meta tensor: it has a shape but no values (saved from a "
            "layer on the meta device); save the tensor with its values"
        )
    if "float8" in str(tensor.dtype):
        raise MhaError(
            f"{path}: '{name}' holds {dtype_text(tensor)} values (a quantized model's, "
            "meaningful only with their scales), which mha does not compute with; save it "
            "dequantized in float32, float16 or bfloat16"
        )


def check_finite(path: Path, name: str, tensor: torch.Tensor) -> None:
    """NaN or inf spreads through every softmax row it touches: refuse it with a count."""
    import torch

    # aminmax is one pass with no temporary and propagates NaN and inf: about 40 times faster
    # than counting with isfinite (2 ms against 80 ms for a 4096 x 4096 float16 weight), which
    # matters for a 7B model's layer. Only a tensor that fails is counted, for the message.
    low, high = torch.aminmax(tensor)
    if bool(torch.isfinite(low) & torch.isfinite(high)):
        return
    bad = int((~torch.isfinite(tensor)).sum())
    if bad:
        raise MhaError(
            f"{path}: '{name}' holds {bad} NaN or infinite values; attention over them is NaN, "
            "so replace them (e.g. torch.nan_to_num) before saving"
        )


def _check_qkv(path: Path, inputs: dict[str, torch.Tensor]) -> None:
    for name, size in QKV.items():
        tensor = inputs[name]
        rows = "queries" if name == "queries" else "key-value pairs"
        if tensor.dim() != 3:
            raise MhaError(
                f"{path}: '{name}' has shape {shape_text(tensor)}, expected 3-D "
                f"(batch, {rows}, {size}); add the missing axis with unsqueeze"
            )
        check_values(path, name, tensor, "save a non-empty float tensor (e.g. .float())")
    queries, keys, values = inputs["queries"], inputs["keys"], inputs["values"]
    for name, tensor in (("keys", keys), ("values", values)):
        if tensor.shape[0] != queries.shape[0]:
            raise MhaError(
                f"{path}: '{name}' has shape {shape_text(tensor)}, expected batch "
                f"{queries.shape[0]} as in 'queries' {shape_text(queries)}; "
                "queries, keys and values must share the first (batch) axis"
            )
    if values.shape[1] != keys.shape[1]:
        raise MhaError(
            f"{path}: 'values' has shape {shape_text(values)}, expected {keys.shape[1]} "
            f"key-value pairs as in 'keys' {shape_text(keys)}; keys and values must have the "
            "same length (axis 1)"
        )


def _check_valid_lens(path: Path, inputs: dict[str, torch.Tensor]) -> None:
    import torch

    lens = inputs["valid_lens"]
    batch, num_queries, kv = (
        inputs["queries"].shape[0],
        inputs["queries"].shape[1],
        inputs["keys"].shape[1],
    )
    if lens.is_floating_point() or lens.is_complex() or lens.dtype == torch.bool:
        raise MhaError(
            f"{path}: 'valid_lens' holds {dtype_text(lens)} values, expected integers; "
            "save it with .long()"
        )
    if tuple(lens.shape) not in ((batch,), (batch, num_queries)):
        raise MhaError(
            f"{path}: 'valid_lens' has shape {shape_text(lens)}, expected ({batch},) (batch) or "
            f"({batch}, {num_queries}) (batch, queries)"
        )
    low, high = int(lens.min()), int(lens.max())
    if low < 0 or high > kv:
        bad = low if low < 0 else high
        raise MhaError(
            f"{path}: 'valid_lens' holds {bad}, outside 0..{kv}; a valid length counts "
            f"key-value pairs, and there are {kv}"
        )


def load_targets(path: Path) -> dict[str, torch.Tensor]:
    """`output`, the layer output a run is scored against (`mha heads --targets`)."""
    path = Path(path)
    fix = "save a dict: torch.save({'output': target}, path), target (batch, queries, hiddens)"
    stored = read_tensor_file(path, fix)
    if not isinstance(stored, dict) or "output" not in stored:
        held = (
            ", ".join(repr(str(k)) for k in stored)
            if isinstance(stored, dict)
            else f"a {type(stored).__name__}"
        )
        raise MhaError(f"{path} holds {held or 'nothing'}, not a tensor 'output'; {fix}")
    tensor = _tensor(path, stored, "output")
    check_values(path, "output", tensor, "save a finite float tensor")
    return {"output": tensor}


# ---------------------------------------------------------------------------------------------
# Writing


def check_export_path(path: Path) -> str:
    """Refuse an export path before any work is done; returns its (lower-case) suffix."""
    suffix = path.suffix.lower()
    if suffix not in (*TORCH_SUFFIXES, SAFETENSORS_SUFFIX):
        kind = f"unsupported file type '{path.suffix}'" if path.suffix else "no file extension"
        raise MhaError(f"--export {path}: {kind}; use a .pt or .safetensors file")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise MhaError(f"--export {path}: folder {folder} does not exist; create it first")
    return suffix


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Write named tensors to a `.pt`/`.pth` or `.safetensors` file, whole or not at all."""
    path = Path(path)
    suffix = check_export_path(path)
    if any(t.is_meta for t in tensors.values()):
        raise MhaError(
            f"cannot export to {path}: the tensors are on the meta device (shapes only, no "
            "values); export needs real tensors, run with --device cpu"
        )
    ready = _standalone(tensors)
    write_atomically(path, lambda tmp: _write(tmp, ready, suffix, path))


def _standalone(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU, contiguous tensors that each own their whole storage.

    torch.save writes a view's entire storage (a slice of a big tensor would save all of it),
    and safetensors refuses tensors that share memory (the output is also the last stage).
    """
    seen: set[int] = set()
    ready = {}
    for name, tensor in tensors.items():
        tensor = tensor.detach().cpu().contiguous()
        storage = tensor.untyped_storage()
        own_bytes = tensor.numel() * tensor.element_size()
        if storage.data_ptr() in seen or storage.nbytes() != own_bytes:
            tensor = tensor.clone()
        seen.add(tensor.untyped_storage().data_ptr())
        ready[name] = tensor
    return ready


def _write(tmp: Path, tensors: dict[str, torch.Tensor], suffix: str, target: Path) -> None:
    needed = sum(t.numel() * t.element_size() for t in tensors.values())
    try:
        if suffix == SAFETENSORS_SUFFIX:
            from safetensors.torch import save_file

            save_file(tensors, tmp)
        else:
            import torch

            torch.save(tensors, tmp)
    except Exception as exc:  # the writers raise their own types (SafetensorError...)
        # A full disk reaches us in three disguises: OSError ENOSPC, safetensors' "os error
        # 28", and torch's "unexpected pos A vs B" (its C++ writer checks only the position).
        if _disk_full(exc, tmp, needed):
            raise MhaError(
                f"cannot write {target}: no space left on device (the export needs about "
                f"{size_text(needed)}); free some space or choose another folder"
            ) from None
        if isinstance(exc, OSError):
            raise  # atomic_path turns it into one line with the reason
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise MhaError(f"cannot write {target}: {detail}; choose a writable path") from None


def _disk_full(error: Exception, tmp: Path, needed: int) -> bool:
    import errno
    import shutil

    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if "os error 28" in str(error) or "No space left" in str(error):
        return True
    try:  # the half-written temporary file still holds its space: is the rest missing?
        written = tmp.stat().st_size if tmp.exists() else 0
        return shutil.disk_usage(tmp.parent).free < max(needed - written, 1) + 4096
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------
# Formatting for messages


def dtype_text(tensor: torch.Tensor) -> str:
    return str(tensor.dtype).removeprefix("torch.")
