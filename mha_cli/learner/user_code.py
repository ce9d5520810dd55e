"""Load the user's attention code named by a target, `FILE.py:NAME` or `package.module:NAME`.

This runs the user's code, as pytest does with test files: the file is imported as a module
(its folder first on `sys.path`, so its own imports work). A target that names nothing is a
mistake (one line, exit 2); an exception the user's code raises is reported as its one-line
message and the line of their code that raised it (`UserCodeError`), with the whole traceback
kept as its cause for `MHA_DEBUG=1`.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from mha_cli.errors import EXIT_FAILED_CHECK, MhaError
from mha_cli.messages import suggest

if TYPE_CHECKING:
    from mha_cli.tracing.report import TraceReport

T = TypeVar("T")
FORM = "FILE.py:NAME or package.module:NAME"


class UserCodeError(MhaError):
    """The user's own code raised an exception (or called sys.exit) while mha ran it."""


class ModuleFailed(UserCodeError):
    """The traced module's forward raised, or left a layer it declares uncalled: `report`
    holds the steps recorded up to there. Exit code 2, or 1 under `--check` (the module
    is the one at fault, and a check that cannot pass has failed)."""

    def __init__(self, message: str, report: TraceReport, checked: bool) -> None:
        super().__init__(message)
        self.report = report
        if checked:
            self.exit_code = EXIT_FAILED_CHECK


@dataclass(frozen=True)
class Target:
    """What a target names, and where the user's code lives (to find their lines)."""

    text: str  # as given: "attention.py:MultiHeadAttention"
    obj: Any  # the class, function or module instance it names
    name: str
    roots: tuple[str, ...]  # folders whose files are the user's code
    where: str  # the file or module it came from, for people


def load_target(text: str) -> Target:
    """Import the file or module of `text` and return the object it names."""
    path_part, sep, name = text.rpartition(":")
    if not sep or not path_part or not name:
        raise MhaError(f"target {text!r}: expected {FORM}, e.g. attention.py:MultiHeadAttention")
    if path_part.endswith(".py") or os.sep in path_part or "/" in path_part:
        module, roots = _import_file(Path(path_part), text)
    else:
        module, roots = _import_module(path_part, text)
    try:
        obj = getattr(module, name)
    except AttributeError:
        names = [n for n in vars(module) if not n.startswith("_")]
        raise MhaError(
            f"{path_part} defines no {name!r}{suggest(name, names)}; name an nn.Module class "
            "or a function returning (module, args)"
        ) from None
    where = getattr(module, "__file__", None) or path_part
    return Target(text, obj, name, roots, where)


def _import_file(path: Path, text: str) -> tuple[ModuleType, tuple[str, ...]]:
    if not path.exists():
        raise MhaError(f"{path}: no such file; give the path of your .py file ({FORM})")
    if path.is_dir() or path.suffix != ".py":
        raise MhaError(f"{path} is not a .py file; give {FORM}")
    path = path.resolve()
    module_name = f"_mha_user_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise MhaError(f"{path}: cannot be imported as Python; give {FORM}")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.parent)
    _on_path(folder)  # as pytest's rootdir insertion: `import helpers` beside it works
    sys.modules[module_name] = module
    loader = spec.loader
    roots = (folder,)
    try:
        with user_code(text, roots):
            loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module, roots


def _import_module(dotted: str, text: str) -> tuple[ModuleType, tuple[str, ...]]:
    if not all(part.isidentifier() for part in dotted.split(".")):
        raise MhaError(
            f"target {text!r}: {dotted!r} is neither a .py file nor a module name; give {FORM}"
        )
    _on_path(os.getcwd())  # as `python -m`: the working folder's packages are found
    top = dotted.split(".")[0]
    try:
        found = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise MhaError(
            f"no module named {top!r} (target {text!r}); install it, or give a .py file path"
        )
    roots = tuple(found.submodule_search_locations or [str(Path(found.origin or ".").parent)])
    with user_code(text, roots):
        module = importlib.import_module(dotted)
    return module, roots


def _on_path(folder: str) -> None:
    if folder not in sys.path:
        sys.path.insert(0, folder)


@contextmanager
def user_code(
    target: str, roots: tuple[str, ...], not_theirs: tuple[type[BaseException], ...] = ()
) -> Iterator[None]:
    """Run the user's code; an exception it raises becomes one line naming their line.
    `not_theirs`: exceptions of mha's own code running inside theirs (a recorder's bug)."""
    passed: tuple[type[BaseException], ...] = (MhaError, KeyboardInterrupt, *not_theirs)
    try:
        with redirect_stdout(sys.stderr):  # the user's print()s: stdout is mha's output
            yield
    except SystemExit as error:
        raise UserCodeError(_exited(error, target, roots)) from error
    except Exception as error:
        if isinstance(error, passed):
            raise
        raise UserCodeError(describe(error, target, roots)) from error


def _exited(error: SystemExit, target: str, roots: tuple[str, ...]) -> str:
    """sys.exit(...) in the user's code: mha is not theirs to end; say where it was called."""
    frame = _user_frame(error.__traceback__, roots)
    where = ""
    if frame is not None:
        line = (frame.line or "").strip()
        where = f" at {_short(frame.filename)}:{frame.lineno}" + (f" ({line})" if line else "")
    code = "" if error.code is None else repr(error.code)
    return (
        f"{target}: your code ends the program (SystemExit({code})){where} while mha runs "
        "it; mha cannot trace a module that exits: remove the call, or put script code under "
        '`if __name__ == "__main__":`'
    )


def call_user(target: Target, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    with user_code(target.text, target.roots):
        return function(*args, **kwargs)


def describe(error: BaseException, target: str, roots: tuple[str, ...], operation: str = "") -> str:
    """`attention.py:42 (scores = ...): RuntimeError: shapes cannot be multiplied ...`;
    `operation` ("bmm of (10, 4, 20) float32, ...") names the torch call that raised."""
    message = " ".join(str(error).split()) or "(no message)"
    if len(message) > 300:
        message = message[:297] + "..."
    frame = _user_frame(error.__traceback__, roots)
    where = ""
    if frame is not None:
        line = (frame.line or "").strip()
        where = f" at {_short(frame.filename)}:{frame.lineno}" + (f" ({line})" if line else "")
    if operation:
        where += f" in {operation}"
    return (
        f"{target}: your code raised {type(error).__name__}{where}: {message} "
        "(MHA_DEBUG=1 shows the whole traceback)"
    )


def _user_frame(tb: TracebackType | None, roots: tuple[str, ...]) -> traceback.FrameSummary | None:
    frames = traceback.extract_tb(tb)
    folders = [str(Path(r).resolve()) for r in roots]
    mine = [
        f
        for f in frames
        if any(os.path.realpath(f.filename).startswith(r + os.sep) for r in folders)
        and "site-packages" not in f.filename
    ]
    if mine:
        return mine[-1]
    return frames[-1] if frames else None


def _short(filename: str) -> str:
    try:
        return os.path.relpath(filename)
    except ValueError:
        return filename


def target_of_object(obj: Any) -> Target:
    """A class, function or module passed from Python (`mha_cli.trace(MyAttention)`)."""
    import inspect

    kind = obj if isinstance(obj, type) or inspect.isroutine(obj) else type(obj)
    name = getattr(kind, "__qualname__", type(obj).__name__)
    try:
        where = inspect.getfile(kind)
    except (TypeError, OSError):
        return Target(name, obj, name, (), "<unknown>")
    return Target(name, obj, name, (str(Path(where).resolve().parent),), where)
