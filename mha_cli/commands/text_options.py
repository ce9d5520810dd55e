"""`--text`, `--text-file` and `--truncate`: real text through a real model's layer.

`@text_options` adds them to a command that takes the specification options (apply it inside
`@spec_options`); the command receives them among `options`, as the Python API's `text`,
`text_file` and `truncate` keywords.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any, Optional

import typer

from mha_cli.commands.options import DATA

_TEXT = typer.Option(
    "--text",
    metavar="TEXT",
    help="a text to run through the model of --weights MODEL_FOLDER up to --layer N (its own "
    "tokenizer, positions and mask); repeatable: several texts form a padded batch",
    rich_help_panel=DATA,
    show_default=False,
)
_TEXT_FILE = typer.Option(
    "--text-file",
    metavar="FILE",
    help="a UTF-8 file of texts, one per line, run as --text is",
    rich_help_panel=DATA,
    show_default=False,
)
_TRUNCATE = typer.Option(
    "--truncate",
    help="cut a text longer than the model's positions to its first tokens (with a note) "
    "instead of refusing it",
    rich_help_panel=DATA,
)
TEXT_PARAMETERS = [
    inspect.Parameter(
        "text",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[Optional[list[str]], _TEXT],  # noqa: UP045
    ),
    inspect.Parameter(
        "text_file",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[Optional[str], _TEXT_FILE],  # noqa: UP045
    ),
    inspect.Parameter(
        "truncate",
        inspect.Parameter.KEYWORD_ONLY,
        default=False,
        annotation=Annotated[bool, _TRUNCATE],
    ),
]
_NAMES = [p.name for p in TEXT_PARAMETERS]


def text_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the text options to `command`, handing them over inside its `options` dict."""
    own = list(inspect.signature(command, eval_str=True).parameters.values())

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        given = {name: kwargs.pop(name, None) for name in _NAMES}
        # only what was given: commands without a text never see the keys
        kwargs["options"] = {**kwargs["options"], **{k: v for k, v in given.items() if v}}
        return command(**kwargs)

    wrapper.__signature__ = inspect.Signature(own + TEXT_PARAMETERS)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in own + TEXT_PARAMETERS}
    return wrapper
