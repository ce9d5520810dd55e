"""The one way a result shows itself: text (a rich renderable), Markdown or JSON, chosen by the
result's class in `registry.VIEWS`. Records never import their renderers: they reach them
through this dispatch, by name."""

from __future__ import annotations

import importlib
from typing import Any

from mha_cli.registry import VIEWS, View


def view_of(result: Any) -> View:
    for cls in type(result).__mro__:
        if cls.__name__ in VIEWS:
            return VIEWS[cls.__name__]
    raise TypeError(f"no view registered for {type(result).__name__}")


def _function(where: str) -> Any:
    module, _, name = where.partition(":")
    return getattr(importlib.import_module(module), name)


def renderable(result: Any, width: int | None = None) -> Any:
    view = view_of(result)
    text = _function(view.text)
    return text(result, width=width) if view.wide else text(result)


def markdown(result: Any) -> str:
    return _function(view_of(result).markdown)(result)


def json_text(result: Any, **extra: Any) -> str:
    view = view_of(result)
    if view.json:
        return _function(view.json)(result, **extra)
    from mha_cli.render.json_out import envelope

    return envelope(view.schema, result.to_dict())
