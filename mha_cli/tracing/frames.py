"""Which line of the user's code called a torch operation, and how to show where it is.

The Python stack at a recorded operation runs from the torch function up through torch's own
wrappers (`nn.Linear.forward`, `F.softmax`, einops' backend...) to the user's line. The user's
code is what lies under the target's folder (its package's, for `package.module:NAME`), minus
installed packages; the innermost frame there is the row's source. Where no frame is the
user's (torch's own `nn.MultiheadAttention`), the innermost caller outside torch's dispatch
machinery is.
"""

from __future__ import annotations

import linecache
import os
import site
import sysconfig
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import torch

import mha_cli

CODE_WIDTH = 120  # a source line longer than this is cut: the table has other columns too


def _folder(module_file: str | None) -> str:
    return str(Path(module_file).resolve().parent) + os.sep if module_file else "\0"


_TORCH = _folder(torch.__file__)
# Dispatch machinery between an operation and its caller: never the source of a step.
_DISPATCH = ("overrides.py", "_tensor.py", "utils/_device.py", "nn/modules/module.py")
_PLUMBING = (*(_TORCH + name for name in _DISPATCH), _folder(mha_cli.__file__))


def installed_folders() -> list[str]:
    """Where installed packages and the standard library live."""
    paths = {sysconfig.get_paths()[key] for key in ("purelib", "platlib", "stdlib")}
    paths.update(site.getsitepackages() if hasattr(site, "getsitepackages") else [])
    paths.add(site.getusersitepackages())
    return sorted((str(Path(p).resolve()) + os.sep for p in paths if p), key=len, reverse=True)


class SourceFinder:
    """Finds the user's line for a frame, and shows file:line short."""

    def __init__(self, roots: Sequence[str], cwd: str) -> None:
        # The longest root first: a file is shown relative to the innermost folder holding it.
        self.roots = sorted((str(Path(r).resolve()) + os.sep for r in roots), key=len, reverse=True)
        installed = installed_folders()
        # A root inside an installed package (torch.nn:MultiheadAttention) keeps its files.
        self.excluded = [p for p in installed if not any(r.startswith(p) for r in self.roots)]
        self.installed = installed
        self.cwd = str(Path(cwd).resolve()) + os.sep
        self._user: dict[str, bool] = {}

    def is_user_file(self, filename: str) -> bool:
        known = self._user.get(filename)
        if known is None:
            path = os.path.realpath(filename) if os.path.isabs(filename) else filename
            known = any(path.startswith(r) for r in self.roots) and not any(
                path.startswith(p) for p in self.excluded
            )
            self._user[filename] = known
        return known

    def locate(self, frame: FrameType | None, func: Callable[..., Any]) -> tuple[str, str, bool]:
        """(file:line, the code on that line, whether the user's code called the operation
        itself rather than through a library, as a lazy layer making its weights does)."""
        own_code = getattr(func, "__code__", None)  # F.softmax handing itself to the mode
        caller = None
        while frame is not None:
            filename = frame.f_code.co_filename
            if frame.f_code is not own_code and not filename.startswith(_PLUMBING):
                if caller is None:
                    caller = frame
                if self.is_user_file(filename):
                    return (*self._where(frame), frame is caller)
            frame = frame.f_back
        return (*self._where(caller), False) if caller is not None else ("", "", False)

    def _where(self, frame: FrameType) -> tuple[str, str]:
        filename, line = frame.f_code.co_filename, frame.f_lineno
        code = linecache.getline(filename, line).strip()
        if len(code) > CODE_WIDTH:
            code = code[: CODE_WIDTH - 3] + "..."
        return f"{self.short(filename)}:{line}", code

    def short(self, filename: str) -> str:
        """The user's files relative to their folder (`attention.py`), installed packages'
        relative to the packages folder (`torch/nn/functional.py`), else the full path."""
        path = os.path.realpath(filename)
        for folder in self.installed:
            if path.startswith(folder):
                return path[len(folder) :]
        if self.is_user_file(filename):
            root = next(r for r in self.roots if path.startswith(r))
            return path[len(root) :]
        if path.startswith(self.cwd):
            return path[len(self.cwd) :]
        return path
