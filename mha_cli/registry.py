"""Every command in one table, read by the command line (`cli.py`) and the Python API
(`mha_cli/__init__.py`), and every result's four faces in one table, read by the one dispatch
(`render/views.py`).

A new command is four files: its computation (with its records and its API function), its
renderer, its typer shell (`commands/NAME.py`, a `register(app, user_errors)` function), and one
line in COMMANDS below. Only strings here: nothing is imported until it is used, so
`mha --help` and `import mha_cli` stay instant, and no module imports another through here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class View:
    """How one kind of result shows itself; each function is "module:function".

    `text(result)` (or `text(result, width=...)` when `wide`) is a rich renderable, for the
    terminal, `str()` and a notebook; `markdown(result)` is Markdown; `json(result, **extra)` is
    the JSON document, by default `schema`'s envelope around `result.to_dict()`."""

    text: str
    markdown: str
    schema: str = ""
    json: str = ""
    wide: bool = False


@dataclass(frozen=True)
class Command:
    """`mha NAME` (its typer shell `shell`), the Python API names `api` exports from the module
    `module`, and the views of the results it returns, by class name."""

    name: str
    shell: str
    module: str = ""
    api: tuple[str, ...] = ()
    views: tuple[tuple[str, View], ...] = ()


_R = "mha_cli.render"

# fmt: off
COMMANDS: tuple[Command, ...] = (
    Command("inspect", "mha_cli.commands.inspect", "mha_cli.layer.api", ("inspect",), (
        ("Report", View(f"{_R}.table:inspect_renderable", f"{_R}.markdown:report_markdown",
                        json=f"{_R}.json_out:report_json", wide=True)),
        ("StagesShown", View(f"{_R}.table:shown_renderable", f"{_R}.markdown:shown_markdown",
                             json=f"{_R}.json_out:shown_json", wide=True)))),
    Command("heatmap", "mha_cli.commands.heatmap", "mha_cli.heatmaps.api", ("heatmap",)),
    Command("reshape", "mha_cli.commands.reshape", "mha_cli.reshape.api", ("explain_reshape",), (
        ("ReshapeExplanation", View("mha_cli.reshape.text:reshape_renderable",
                                    "mha_cli.reshape.text:reshape_markdown", "mha.reshape")),)),
    Command("compare", "mha_cli.commands.compare", "mha_cli.comparison.api", ("compare",), (
        ("Comparison", View("mha_cli.comparison.table:compare_renderable",
                            "mha_cli.comparison.markdown:compare_markdown", "mha.compare",
                            wide=True)),)),
    Command("trace", "mha_cli.commands.trace", "mha_cli.tracing.api", ("trace",), (
        ("TraceReport", View("mha_cli.tracing.table:trace_renderable",
                             "mha_cli.tracing.table:trace_markdown", "mha.trace", wide=True)),)),
    Command("diagram", "mha_cli.commands.diagram", "mha_cli.diagrams.api",
            ("diagram", "save_diagram"), (
        ("Diagram", View("mha_cli.diagrams.terminal:terminal_diagram",
                         "mha_cli.diagrams.terminal:diagram_markdown", "mha.diagram")),)),
    Command("variants", "mha_cli.commands.variants", "mha_cli.layer_variants.api", ("variants",), (
        ("VariantsComparison", View("mha_cli.layer_variants.text:variants_renderable",
                                    "mha_cli.layer_variants.text:variants_markdown",
                                    "mha.variants")),)),
    Command("weights", "mha_cli.commands.weights", "mha_cli.circuits.api", ("weights",), (
        ("WeightsReport", View("mha_cli.circuits.text:weights_renderable",
                               "mha_cli.circuits.text:weights_markdown", "mha.weights")),)),
    Command("heads", "mha_cli.commands.heads", "mha_cli.importance.api", ("heads",), (
        ("HeadsReport", View("mha_cli.importance.text:heads_renderable",
                             "mha_cli.importance.text:heads_markdown", "mha.heads")),)),
    Command("presets", "mha_cli.commands.presets"),
)
# fmt: on

# The API's classes that are no command's function: name -> module.
CLASSES = {
    "Comparison": "mha_cli.comparison.records",
    "Report": "mha_cli.layer.report",
    "TraceReport": "mha_cli.tracing.report",
    "AttentionSpec": "mha_cli.spec.spec",
}

VIEWS: dict[str, View] = {name: view for c in COMMANDS for name, view in c.views}


def api_names() -> dict[str, str]:
    """`mha_cli.NAME` -> the module that defines it."""
    return {name: c.module for c in COMMANDS for name in c.api} | CLASSES
