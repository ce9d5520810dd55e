"""The attention-specification options every layer-running command shares.

`@spec_options` adds them to a command's signature (typer reads `__signature__`) and hands the
command the options that were given, as a dict for the Python API (`mha_cli.inspect(**options)`),
so each command function stays short and the option names are defined exactly once.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any, Optional

import typer

SIZES = "Sizes"
MASKS = "Masks"
VARIANT = "Variant"
MODERN = "Modern decoders"
DATA = "Inputs and weights"
RUN = "Run"

# (field, type, option names, help, default shown in --help, panel). Every real default is None,
# "not given", so a config's value is kept unless the command line overrides it; the shown
# default is what the layer gets when neither gives one.
_SPEC_OPTIONS: list[tuple[str, type, tuple[str, ...], str, str | None, str]] = [
    ("batch", int, ("--batch", "-b"), "batch size", "2", SIZES),
    ("queries", int, ("--queries", "-q"), "number of queries", "4", SIZES),
    ("kv", int, ("--kv", "-k"), "number of key-value pairs", "6", SIZES),
    ("hiddens", int, ("--hiddens",), "num_hiddens", "100", SIZES),
    ("heads", int, ("--heads", "-n"), "num_heads", "5", SIZES),
    (
        "kv_heads",
        int,
        ("--kv-heads",),
        "key-value heads: fewer than heads is grouped-query, 1 is multi-query",
        "heads",
        SIZES,
    ),
    ("head_dim", int, ("--head-dim",), "features per head", "hiddens / heads", SIZES),
    ("query_size", int, ("--query-size",), "query features before W_q", "hiddens", SIZES),
    ("key_size", int, ("--key-size",), "key features before W_k", "hiddens", SIZES),
    ("value_size", int, ("--value-size",), "value features before W_v", "hiddens", SIZES),
    (
        "valid_lens",
        str,
        ("--valid-lens",),
        "3,2 (one per example), 3,2,1,4;2,2,2,2 (one per query, rows by ';'; a batch of one: "
        "1,2,3,4;) or none",
        "3,2",
        MASKS,
    ),
    ("causal", bool, ("--causal/--no-causal",), "mask future keys", "no-causal", MASKS),
    (
        "window",
        int,
        ("--window",),
        "sliding window W with --causal: the query at position p sees keys p-W+1..p",
        "none",
        MASKS,
    ),
    ("score", str, ("--score",), "dot (scaled dot product) or additive", "dot", VARIANT),
    (
        "value_mode",
        str,
        ("--value-mode",),
        "split (d2l: each head gets head-dim value features) or full (each head keeps all)",
        "split",
        VARIANT,
    ),
    ("bias", bool, ("--bias/--no-bias",), "bias in W_q, W_k, W_v and W_o", "no-bias", VARIANT),
    (
        "out_bias",
        bool,
        ("--out-bias/--no-out-bias",),
        "bias in W_o alone (Qwen2: --bias --no-out-bias)",
        "as --bias",
        VARIANT,
    ),
    (
        "key_bias",
        bool,
        ("--key-bias/--no-key-bias",),
        "bias in W_k alone (Whisper: --bias --no-key-bias)",
        "as --bias",
        VARIANT,
    ),
    (
        "dropout",
        float,
        ("--dropout",),
        "dropout on the attention weights; inactive unless --train",
        "0",
        VARIANT,
    ),
    ("train", bool, ("--train/--eval",), "training mode (dropout active)", "eval", VARIANT),
    (
        "rope",
        str,
        ("--rope",),
        "rotary position embedding: none, half (rotate-half: Llama, Qwen, NeoX) or "
        "interleaved (GPT-J)",
        "none",
        MODERN,
    ),
    ("rope_theta", float, ("--rope-theta",), "rotary base theta", "10000", MODERN),
    ("rotary_dim", int, ("--rotary-dim",), "features of each head that rotate", "head dim", MODERN),
    (
        "qk_norm",
        bool,
        ("--qk-norm/--no-qk-norm",),
        "per-head RMSNorm of queries and keys before the rotation (Qwen3)",
        "no-qk-norm",
        MODERN,
    ),
    ("norm_eps", float, ("--norm-eps",), "epsilon of --qk-norm", "1e-6", MODERN),
    (
        "qk_norm_whole",
        bool,
        ("--qk-norm-whole/--qk-norm-per-head",),
        "with --qk-norm: one RMSNorm over all heads' features, before the split (OLMo 2)",
        "qk-norm-per-head",
        MODERN,
    ),
    (
        "qk_norm_layer",
        bool,
        ("--qk-norm-layer/--qk-norm-rms",),
        "with --qk-norm: a LayerNorm per head (mean subtracted, no bias, one weight per head "
        "and feature: StableLM, Cohere) instead of an RMSNorm",
        "qk-norm-rms",
        MODERN,
    ),
    (
        "score_scale",
        float,
        ("--score-scale",),
        "the scores' factor instead of 1/sqrt(head dim) (Granite's attention_multiplier)",
        "none: 1/sqrt(head dim)",
        MODERN,
    ),
    (
        "softcap",
        float,
        ("--softcap",),
        "attention logit soft-capping c: scores become tanh(scores / c) * c (Gemma 2)",
        "none",
        MODERN,
    ),
    (
        "alibi",
        bool,
        ("--alibi/--no-alibi",),
        "ALiBi: head h adds slope_h x j to the score of key j (Bloom, MPT, Falcon)",
        "no-alibi",
        MODERN,
    ),
    (
        "alibi_scaled",
        bool,
        ("--alibi-scaled/--alibi-unscaled",),
        "with --alibi: Falcon's ALiBi, slope_h x j rounded to bfloat16 and scaled with the "
        "scores (by 1/sqrt(head dim)), instead of added after the scaling (Bloom, MPT)",
        "alibi-unscaled",
        MODERN,
    ),
    (
        "relative_buckets",
        int,
        ("--relative-buckets",),
        "T5's relative position bias: a learned bias per head for each of this many buckets "
        "of the distance j - i",
        "none",
        MODERN,
    ),
    (
        "relative_max_distance",
        int,
        ("--relative-max-distance",),
        "with --relative-buckets: distances from this on share the last bucket",
        "128",
        MODERN,
    ),
    (
        "clip_qkv",
        float,
        ("--clip-qkv",),
        "clamp the outputs of W_q, W_k and W_v to [-c, c] (OLMo)",
        "none",
        MODERN,
    ),
    ("seed", int, ("--seed",), "seed for random weights and inputs", "0", DATA),
    (
        "inputs",
        str,
        ("--inputs",),
        "randn, ones (as the book), or a .pt/.safetensors file with queries, keys, "
        "values[, valid_lens]",
        "randn",
        DATA,
    ),
    (
        "weights",
        str,
        ("--weights",),
        "checkpoint (.pt/.pth/.safetensors) of d2l's MultiHeadAttention or "
        "torch.nn.MultiheadAttention, or a Hugging Face model: its folder, or an id (gpt2, "
        "org/name) in the Hugging Face cache",
        "random",
        DATA,
    ),
    (
        "layer",
        int,
        ("--layer",),
        "which layer of a whole-model checkpoint (mha weights, and mha heatmap with --text: "
        "also all)",
        "0",
        DATA,
    ),
    (
        "attention",
        str,
        ("--attention",),
        "which attention of an encoder-decoder model (Whisper, BART, T5, mT5, UMT5) --layer N "
        "picks: encoder (self-attention), decoder (causal self-attention) or cross (queries from "
        "the decoder, keys and values from the encoder's output)",
        "encoder",
        DATA,
    ),
    ("dtype", str, ("--dtype",), "float32, float64, float16 or bfloat16", "float32", RUN),
    (
        "device",
        str,
        ("--device",),
        "cpu, cuda, or meta (shapes and counts of any size, nothing allocated)",
        "cpu",
        RUN,
    ),
]


def _parameter(
    field: str, kind: type, names: tuple[str, ...], help_text: str, shown: str | None, panel: str
) -> inspect.Parameter:
    # Numbers arrive as text and are parsed by the spec, so a bad value gets mha's own
    # one-line message naming the value and a fix, not typer's generic one.
    metavar = {int: "INT", float: "FLOAT"}.get(kind)
    option = typer.Option(
        *names,
        help=help_text + default_text(shown),
        rich_help_panel=panel,
        show_default=False,
        metavar=metavar,
    )
    # Built at run time for typer to read, so a static type checker cannot follow it.
    annotated: Any = Optional[str if metavar else kind]  # noqa: UP045
    return inspect.Parameter(
        field,
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[annotated, option],  # type: ignore[valid-type]
    )


# The image options every drawing command shares, defined once.
DPI = Annotated[int, typer.Option("--dpi", help="resolution of PNG images", min=10, max=1200)]


def out_option(help: str, show_default: bool | str = False) -> Any:
    """`--out/-o PATH` of a command that writes an image, `help` saying which image: the
    command's `OUT = Annotated[str | None, out_option(...)]`."""
    return typer.Option("--out", "-o", help=help, show_default=show_default)


def default_text(shown: str | None) -> str:
    """` [default: 2]`, escaped: typer's help is rich markup, where a bare `[default: 2]` is a
    tag and vanishes (and typer's own `show_default="2"` prints `(2)`)."""
    return f" \\[default: {shown}]" if shown else ""


_CONFIG = inspect.Parameter(
    "config",
    inspect.Parameter.KEYWORD_ONLY,
    default=None,
    annotation=Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--config",
            "-c",
            help="a preset name (see `mha presets`), a TOML file, or a Hugging Face config.json; "
            "options override it",
            rich_help_panel=RUN,
            show_default=False,
        ),
    ],
)
SPEC_PARAMETERS = [_parameter(*option) for option in _SPEC_OPTIONS] + [_CONFIG]


def spec_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Replace the command's `options` parameter by the specification options (and --config).

    The command receives `options`: the given options by field name (None: not given), with
    `config` among them, ready for the Python API's keyword arguments.
    """
    own = [
        p
        for p in inspect.signature(command, eval_str=True).parameters.values()
        if p.name != "options"
    ]
    names = [p.name for p in SPEC_PARAMETERS]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        options = {name: kwargs.pop(name) for name in names}
        return command(options=options, **kwargs)

    wrapper.__signature__ = inspect.Signature(own + SPEC_PARAMETERS)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in own + SPEC_PARAMETERS}
    return wrapper
