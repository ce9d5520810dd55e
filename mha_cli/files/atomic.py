"""Write files whole or not at all: write to a temporary sibling, then rename."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from mha_cli.errors import MhaError


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success rename it onto `target`.

    On any failure (or KeyboardInterrupt, or SIGTERM: see `mha_cli.cli`) the temporary file
    is removed and `target` is left untouched, so a reader never sees a half-written file.
    A `target` that is a symbolic link is written through: its target is replaced (atomically,
    in that target's folder) and the link stays a link.
    """
    target = Path(target)
    if target.is_symlink():
        target = Path(os.path.realpath(target))  # the file the link names, even a dangling one
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise MhaError(f"cannot write {target}: folder {parent} does not exist; create it first")
    tmp: Path | None = None
    try:
        # `tmp` names the file before it exists, so that a signal arriving just after the file
        # is created (SIGTERM, Ctrl-C) still finds it in the `finally` below, to remove.
        while tmp is None:
            tmp = parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
            try:
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:  # another writer's: leave it, draw another name
                tmp = None
        yield tmp
        # Created private (0600); give it the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except OSError as exc:
        raise MhaError(f"cannot write {target}: {exc.strerror}; choose a writable path") from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def _umask() -> int:
    current = os.umask(0)  # reading the umask means setting it; restore it at once
    os.umask(current)
    return current


def write_atomically(target: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp_path)` and move the result onto `target` only if it succeeded."""
    with atomic_path(target) as tmp:
        write(tmp)


def make_folder(folder: Path, what: str) -> Path:
    """Create `folder` (and its parents) for `what` is written there, or say in one line why
    it cannot be."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise MhaError(f"cannot write {what} into {folder}: it is a file; name a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MhaError(
            f"cannot create folder {folder}: {exc.strerror}; choose a writable path"
        ) from None
    return folder
