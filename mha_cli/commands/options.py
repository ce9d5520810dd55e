"""The attention-specification options every layer-running command shares.

`@spec_options` adds them to a command's signature (Typer reads `__signature__`) and
hands the command one `AttentionSpec` built from config + command line, so each command
function stays short and the option names are defined exactly once.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import replace
from typing import Annotated, Any, Optional

import typer

from mha_cli.spec.spec import AttentionSpec, merge, parse_option

SIZES = "Sizes"
MASKS = "Masks"
VARIANT = "Variant"
DATA = "Inputs and weights"
RUN = "Run"

# (field, type, option names, help, panel). Every default is None: "not given", so a
# config's value is kept unless the command line overrides it.
_SPEC_OPTIONS: list[tuple[str, type, tuple[str, ...], str, str]] = [
    ("batch", int, ("--batch", "-b"), "batch size [default: 2]", SIZES),
    ("queries", int, ("--queries", "-q"), "number of queries [default: 4]", SIZES),
    ("kv", int, ("--kv", "-k"), "number of key-value pairs [default: 6]", SIZES),
    ("hiddens", int, ("--hiddens",), "num_hiddens [default: 100]", SIZES),
    ("heads", int, ("--heads", "-n"), "num_heads [default: 5]", SIZES),
    (
        "kv_heads",
        int,
        ("--kv-heads",),
        "key-value heads: fewer than heads is grouped-query, 1 is multi-query [default: heads]",
        SIZES,
    ),
    ("query_size", int, ("--query-size",), "query features before W_q [default: hiddens]", SIZES),
    ("key_size", int, ("--key-size",), "key features before W_k [default: hiddens]", SIZES),
    ("value_size", int, ("--value-size",), "value features before W_v [default: hiddens]", SIZES),
    (
        "valid_lens",
        str,
        ("--valid-lens",),
        "3,2 (one per example), 3,2,1,4;2,2,2,2 (one per query, rows by ';'; a batch of one: "
        "1,2,3,4;) or none "
        "[default: 3,2]",
        MASKS,
    ),
    ("causal", bool, ("--causal/--no-causal",), "mask future keys (query i sees keys 0..i)", MASKS),
    ("score", str, ("--score",), "dot (scaled dot product) or additive [default: dot]", VARIANT),
    (
        "value_mode",
        str,
        ("--value-mode",),
        "split (d2l: each head gets hiddens/heads value features) or full (each head keeps "
        "all) [default: split]",
        VARIANT,
    ),
    ("bias", bool, ("--bias/--no-bias",), "bias in W_q, W_k, W_v, W_o [default: no bias]", VARIANT),
    (
        "dropout",
        float,
        ("--dropout",),
        "dropout on the attention weights; inactive unless --train [default: 0]",
        VARIANT,
    ),
    ("train", bool, ("--train/--eval",), "training mode (dropout active) [default: eval]", VARIANT),
    ("seed", int, ("--seed",), "seed for random weights and inputs [default: 0]", DATA),
    (
        "inputs",
        str,
        ("--inputs",),
        "randn, ones (as the book), or a .pt/.safetensors file with queries, keys, "
        "values[, valid_lens] [default: randn]",
        DATA,
    ),
    (
        "weights",
        str,
        ("--weights",),
        "checkpoint (.pt/.pth/.safetensors) of d2l's MultiHeadAttention or "
        "torch.nn.MultiheadAttention [default: random]",
        DATA,
    ),
    ("dtype", str, ("--dtype",), "float32, float64, float16 or bfloat16 [default: float32]", RUN),
    (
        "device",
        str,
        ("--device",),
        "cpu, cuda, or meta (shapes and counts of any size, nothing allocated) [default: cpu]",
        RUN,
    ),
]


def _parameter(
    field: str, kind: type, names: tuple[str, ...], help_text: str, panel: str
) -> inspect.Parameter:
    # Numbers arrive as text and are parsed by the spec, so a bad value gets mha's own
    # one-line message naming the value and a fix, not typer's generic one.
    metavar = {int: "INT", float: "FLOAT"}.get(kind)
    option = typer.Option(
        *names, help=help_text, rich_help_panel=panel, show_default=False, metavar=metavar
    )
    # Built at run time for typer to read, so a static type checker cannot follow it.
    annotated: Any = Optional[str if metavar else kind]  # noqa: UP045
    return inspect.Parameter(
        field,
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[annotated, option],  # type: ignore[valid-type]
    )


_CONFIG = inspect.Parameter(
    "config",
    inspect.Parameter.KEYWORD_ONLY,
    default=None,
    annotation=Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--config",
            "-c",
            help="a preset name (see `mha presets`) or a TOML file; options override it",
            rich_help_panel=RUN,
            show_default=False,
        ),
    ],
)
SPEC_PARAMETERS = [_parameter(*option) for option in _SPEC_OPTIONS] + [_CONFIG]


def build_spec(config: str | None, given: dict[str, Any]) -> AttentionSpec:
    """Defaults, then the config, then the options given on the command line."""
    from mha_cli.spec.configs import load_config

    spec = AttentionSpec()
    if config is None and given.get("score") == "additive":
        # `--score additive` alone reproduces its chapter's example, as plain `mha inspect`
        # reproduces the multi-head one: those are the defaults, not choices the user made.
        chapter = merge(spec, load_config("additive"), "preset additive")
        spec = replace(chapter, explicit=frozenset())
    if config is not None:
        spec = merge(spec, load_config(config), f"config {config}")
    values = {
        k: parse_option(k, v) if isinstance(v, str) else v
        for k, v in given.items()
        if v is not None
    }
    return merge(spec, values, "command line")


def spec_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Replace the command's `spec` parameter by the specification options."""
    own = [
        p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "spec"
    ]
    names = [p.name for p in SPEC_PARAMETERS]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        given = {name: kwargs.pop(name) for name in names}
        config = given.pop("config")
        return command(spec=build_spec(config, given), **kwargs)

    wrapper.__signature__ = inspect.Signature(own + SPEC_PARAMETERS)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in own + SPEC_PARAMETERS}
    return wrapper
