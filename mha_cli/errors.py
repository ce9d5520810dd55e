"""The one exception family of mha.

The core raises; the CLI catches once in `main()` and prints one line on stderr.
Each error carries the exit code a script can rely on.
"""

from __future__ import annotations


class MhaError(Exception):
    """A user's mistake: bad option, bad file, impossible request. Exit code 2."""

    exit_code: int = 2


class ExpectationFailed(MhaError):
    """An `--expect` assertion did not hold. Exit code 1."""

    exit_code = 1
