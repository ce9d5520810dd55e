"""Record every tensor operation inside anyone's `forward`, as `mha inspect` records its own.

A `torch.overrides.TorchFunctionMode` sees each call of a torch function or tensor method
(`reshape`, `permute`, `bmm`, `F.softmax`, `masked_fill`, `nn.Linear`'s `F.linear`, the
`reshape`s and `permute`s einops makes...), whatever style the code is written in; hooks on
the submodules give the group rows. Each operation becomes a `TraceStep`: the line of the
user's code that called it, its output's shape, its axes named from the specification's sizes,
and, for `--check`, a copy of its values taken at once (later in-place steps such as d2l's
`X[~mask] = value` would change them).
"""

from __future__ import annotations

import os
import sys
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import torch
from torch import nn
from torch.nn.parameter import UninitializedTensorMixin  # type: ignore[attr-defined]
from torch.overrides import TorchFunctionMode

from mha_cli.layer.records import Stage
from mha_cli.spec.axis_guess import Axis, AxisSizes
from mha_cli.tracing.axes import output_axes
from mha_cli.tracing.figures import flops_of, tensors_in, value_range
from mha_cli.tracing.frames import SourceFinder
from mha_cli.tracing.records import INPUT, Row, TraceGroup, TraceStep

# Python functions of torch that do a whole attention layer in one call: recorded step by
# step inside, else `nn.MultiheadAttention` would show as one row.
SEE_INSIDE = (nn.functional.multi_head_attention_forward,)
SOFTMAXES = frozenset({"softmax", "_softmax", "log_softmax"})


@dataclass
class Trace:
    """The rows, and beside them what `--check` and the heatmap need."""

    rows: list[Row] = field(default_factory=list)
    values: dict[int, torch.Tensor] = field(default_factory=dict)  # step -> copy (keep_values)
    parents: dict[int, list[int]] = field(default_factory=dict)  # step -> steps it read
    derived: set[int] = field(default_factory=set)  # steps computed from the inputs
    output: Any = None  # what forward returned
    failure: Failure | None = None  # the operation that raised, when forward did not return

    @property
    def steps(self) -> list[TraceStep]:
        return [row for row in self.rows if isinstance(row, TraceStep)]


@dataclass(frozen=True)
class Failure:
    """The torch operation that raised inside the user's forward, and what it was given."""

    operation: str  # "setitem", "bmm"...
    location: str  # "attention.py:42"
    code: str  # the source on that line
    shapes: list[str]  # its tensor arguments: "(40, 6) float32"
    error: BaseException

    def describe(self) -> str:
        given = ", ".join(self.shapes) if self.shapes else "no tensor"
        return f"{self.operation} of {given}"


class ForwardFailed(Exception):
    """The user's forward raised: the steps recorded up to there, and the error itself."""

    def __init__(self, trace: Trace, error: Exception) -> None:
        super().__init__(str(error))
        self.trace, self.error = trace, error


class _Tape:
    """The recording itself: the rows so far and what each tensor seen is."""

    def __init__(self, sizes: AxisSizes, sources: SourceFinder, keep_values: bool) -> None:
        self.trace = Trace()
        self.sizes, self.sources, self.keep_values = sizes, sources, keep_values
        self.seen: dict[int, tuple[weakref.ref[torch.Tensor], int, list[Axis]]] = {}
        self.storages: dict[int, weakref.ref[torch.Tensor]] = {}
        self.modules: list[str] = []

    def find(self, tensor: torch.Tensor) -> tuple[int, list[Axis]] | None:
        entry = self.seen.get(id(tensor))
        if entry is None or entry[0]() is not tensor:
            return None
        return entry[1], entry[2]

    def axes_of(self, tensor: torch.Tensor) -> list[Axis] | None:
        found = self.find(tensor)
        return None if found is None else found[1]

    def add_input(self, name: str, tensor: torch.Tensor, axes: list[Axis]) -> None:
        self._add(name, tensor, axes, "", "", INPUT, [], derived=True)

    def add_group(self, path: str, module: nn.Module) -> None:
        params = sum(p.numel() for p in module.parameters())
        self.trace.rows.append(TraceGroup(path, type(module).__name__, params, len(self.modules)))
        self.modules.append(path)

    def leave_group(self) -> None:
        if self.modules:
            self.modules.pop()

    def add_op(
        self, func: Callable[..., Any], args: tuple, kwargs: dict, out: Any, frame: FrameType
    ) -> None:
        name = op_name(func)
        call = (*args, *kwargs.values())
        if any(isinstance(t, UninitializedTensorMixin) for t in tensors_in(call)):
            return  # a lazy layer (the English edition's LazyLinear) making its weights
        if name == "setitem":  # X[mask] = value: the step's result is X itself, changed
            out = args[0]
        outputs = _tensors_of(out)
        if not outputs or all(isinstance(t, nn.Parameter) for t in outputs):
            return  # sizes, dtypes, and a lazy layer initialising its own weights
        parents = [found[0] for t in tensors_in(call) if (found := self.find(t)) is not None]
        derived = any(p in self.trace.derived for p in parents)
        location, code, called_by_user = self.sources.locate(frame, func)
        if not derived and not called_by_user:
            return  # a library's housekeeping on weights, not a step of the user's code
        flops = flops_of(name, call, outputs[0])
        for i, tensor in enumerate(outputs):
            label = name if len(outputs) == 1 else f"{name}[{i}]"
            axes = output_axes(name, call, tensor, self.axes_of, self.sizes)
            in_place = name == "setitem" or name.endswith("_")
            self._add(label, tensor, axes, location, code, "op", parents, derived, flops, in_place)
            flops = 0

    def fail(
        self,
        func: Callable[..., Any],
        args: tuple,
        kwargs: dict,
        frame: FrameType,
        error: Exception,
    ) -> None:
        """The innermost operation that raised (an outer one re-raises the same error)."""
        if self.trace.failure is not None and self.trace.failure.error is error:
            return
        location, code, _ = self.sources.locate(frame, func)
        shapes = [
            f"({', '.join(str(s) for s in t.shape)}) {str(t.dtype).removeprefix('torch.')}"
            for t in tensors_in((*args, *kwargs.values()))
        ]
        self.trace.failure = Failure(op_name(func), location, code, shapes, error)

    def _add(
        self,
        name: str,
        tensor: torch.Tensor,
        axes: list[Axis],
        location: str,
        code: str,
        kind: str,
        parents: list[int],
        derived: bool,
        flops: int = 0,
        in_place: bool = False,
    ) -> None:
        index = len(self.trace.steps)
        root = tensor._base if tensor._base is not None else tensor
        seen_root = self.storages.get(id(root))
        view = in_place or (seen_root is not None and seen_root() is root)
        self.storages[id(root)] = weakref.ref(root)
        computed = tensor.device.type != "meta"
        stage = Stage(
            name=name,
            code=code or name,
            shape=tuple(tensor.shape),
            axes=tuple(a.name for a in axes),
            params=None,
            flops=flops,
            bytes=tensor.numel() * tensor.element_size(),
            view=view,
            dtype=str(tensor.dtype).removeprefix("torch."),
            value_range=value_range(tensor) if computed else None,
        )
        step = TraceStep(
            index,
            stage,
            location,
            tuple(a.guessed for a in axes),
            self._module(),
            self._depth(kind),
            kind,
        )
        self.trace.rows.append(step)
        self.trace.parents[index] = parents
        if derived:
            self.trace.derived.add(index)
        # Softmax outputs are kept always: they are the attention weights heatmaps draw.
        if computed and (self.keep_values or name in SOFTMAXES):
            self.trace.values[index] = tensor.detach().clone()
        self.seen[id(tensor)] = (weakref.ref(tensor), index, axes)

    def _module(self) -> str:
        return self.modules[-1] if self.modules else ""

    def _depth(self, kind: str) -> int:
        return 0 if kind == INPUT else len(self.modules)


class RecorderBug(RuntimeError):
    """An error in mha's own recording, never the user's: shown with its traceback."""


class _Mode(TorchFunctionMode):
    def __init__(self, tape: _Tape) -> None:
        super().__init__()
        self.tape = tape

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        if func in SEE_INSIDE:
            return self._inside(func, args, kwargs)
        try:
            out = func(*args, **kwargs)  # the user's computation: its errors are theirs
        except Exception as error:
            self._failed(func, args, kwargs, error)
            raise
        try:
            self.tape.add_op(func, args, kwargs, out, sys._getframe(1))
        except Exception as error:
            raise RecorderBug(f"recording {op_name(func)} failed: {error!r}") from error
        return out

    def _failed(
        self, func: Callable[..., Any], args: tuple, kwargs: dict, error: Exception
    ) -> None:
        try:
            self.tape.fail(func, args, kwargs, sys._getframe(2), error)
        except Exception as bug:
            raise RecorderBug(f"recording {op_name(func)}'s error failed: {bug!r}") from bug

    def _inside(self, func: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        """Run a whole-layer function with this mode still on, so its steps are recorded.

        Its body starts by handing itself to the active mode (`has_torch_function(...)`);
        for that one check, the module's name answers False, and the body runs here.
        """
        module: Any = sys.modules[func.__module__]
        original = module.has_torch_function
        asked: list[bool] = []

        def first_time_false(operands: Any) -> bool:
            if not asked:
                asked.append(True)
                return False
            return original(operands)

        module.has_torch_function = first_time_false
        try:
            with self:
                return func(*args, **kwargs)
        finally:
            module.has_torch_function = original


def op_name(func: Callable[..., Any]) -> str:
    """`reshape`, `linear`, `T` (a property), `getitem` (dunders lose their underscores)."""
    name = getattr(func, "__name__", None) or type(func).__name__
    owner = getattr(func, "__self__", None)
    if name == "__get__" and owner is not None:  # Tensor.T, Tensor.mT: properties
        name = getattr(owner, "__name__", name)
    return name.strip("_") if name.startswith("__") else name


def trace_forward(
    module: nn.Module,
    args: Sequence[Any],
    kwargs: dict[str, Any],
    inputs: Sequence[tuple[str, torch.Tensor, list[Axis]]],
    sizes: AxisSizes,
    roots: Sequence[str],
    keep_values: bool,
) -> Trace:
    """Run `module(*args, **kwargs)` once, recording every step. An error the user's code
    raises comes back as `ForwardFailed`, with the steps recorded up to it."""
    tape = _Tape(sizes, SourceFinder(roots, os.getcwd()), keep_values)
    for name, tensor, axes in inputs:
        tape.add_input(name, tensor, axes)
    try:
        with _group_hooks(module, tape), _Mode(tape):
            tape.trace.output = module(*args, **kwargs)
    except RecorderBug:
        raise
    except Exception as error:
        if tape.trace.failure is not None and tape.trace.failure.error is not error:
            tape.trace.failure = None  # an operation's error the user caught; this one is not
        raise ForwardFailed(tape.trace, error) from error
    return tape.trace


@contextmanager
def _group_hooks(module: nn.Module, tape: _Tape) -> Iterator[None]:
    handles = []
    for path, child in module.named_modules():
        if not path:
            continue
        handles.append(child.register_forward_pre_hook(lambda m, a, p=path: tape.add_group(p, m)))
        handles.append(
            child.register_forward_hook(lambda m, a, o: tape.leave_group(), always_call=True)
        )
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _tensors_of(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, list | tuple):
        return [t for t in out if isinstance(t, torch.Tensor)]
    return []
