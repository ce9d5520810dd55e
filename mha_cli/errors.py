"""The one exception family of mha, and the exit codes a script can rely on.

The core raises; the command line catches once and prints one line on stderr. The Python API
lets the exception through, so a notebook gets the same one-line message.
"""

from __future__ import annotations

# Exit codes: 0 success, 1 an expectation (or comparison) that does not hold, 2 a mistake in the
# input (a run too big for memory included); output that cannot be written: 141 when the reader
# went away (a pipe closed early, as a shell reports SIGPIPE), with one line on stderr, 74
# otherwise (sysexits' EX_IOERR: a closed or full standard output).
# Broken pipes, the one rule: a command's answer (table, JSON, Markdown, terminal picture) cut
# short by its reader is 141 and one line, since a script must not take half an answer for a
# whole one; help, version and usage text cut short (`mha --help | head -1`) is 0 and silent,
# as most command-line tools do, since nothing was lost that the reader wanted.
# Signals: Ctrl-C (SIGINT) exits 130 and SIGTERM 143 (128 + the signal's number), each with one
# line on stderr, after removing the temporary files of any write in progress.
EXIT_FAILED_CHECK = 1
EXIT_USAGE = 2
EXIT_IO = 74
EXIT_BROKEN_PIPE = 141
EXIT_INTERRUPTED = 130  # SIGINT
EXIT_TERMINATED = 143  # SIGTERM


class MhaError(Exception):
    """A user's mistake: bad option, bad file, impossible request. Exit code 2."""

    exit_code: int = EXIT_USAGE


class ExpectationFailed(MhaError):
    """An `--expect` assertion did not hold. Exit code 1."""

    exit_code = EXIT_FAILED_CHECK


class ImplementationsDisagree(MhaError):
    """`mha compare`: a torch implementation differs from d2l's layer beyond the tolerance.
    Exit code 1."""

    exit_code = EXIT_FAILED_CHECK


class OutputError(MhaError):
    """Standard output refused what the command wrote: closed, full, or a pipe closed early."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class AssumptionNote(UserWarning):
    """A value a run takes on trust (a checkpoint without its config.json): not an error, but
    the command line shows it on stderr, and the Python API as a warning."""
