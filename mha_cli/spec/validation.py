"""Check an `AttentionSpec` before anything is built; each fault is one line with its fix."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from mha_cli.errors import MhaError
from mha_cli.messages import suggest
from mha_cli.spec.spec import (
    ATTENTIONS,
    DEVICES,
    DTYPES,
    ROPES,
    SCORES,
    VALUE_MODES,
    AttentionSpec,
)

# Far beyond today's largest models and contexts, and small enough that every tensor's
# element count stays inside the int64 that torch indexes with.
MAX_SIZE = 2**40
MAX_ELEMENTS = 2**62
SEED_RANGE = (0, 2**64 - 1)  # what torch.manual_seed accepts
LLAMA3_KEYS = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")


def divisors(n: int) -> list[int]:
    """All divisors of n, found in sqrt(n) steps."""
    small = [d for d in range(1, int(n**0.5) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def nearest(options: list[int], wanted: int, count: int = 12) -> str:
    """The options closest to what was asked, in order, so the message stays short."""
    chosen = sorted(sorted(options, key=lambda d: (abs(d - wanted), d))[:count])
    return ", ".join(map(str, chosen)) + (", ..." if len(options) > count else "")


def validate(spec: AttentionSpec) -> AttentionSpec:
    """Return `spec` unchanged if it describes a layer that can be built, else raise MhaError."""
    _check_sizes(spec)
    _check_choices(spec)  # before the head checks: additive attention has exactly one head
    _check_heads(spec)
    _check_positions(spec)
    _check_valid_lens(spec)
    if not 0.0 <= spec.dropout < 1.0:
        raise MhaError(f"--dropout {spec.dropout} is outside [0, 1); use e.g. 0.1, or 0 for none")
    return spec


def validate_early(spec: AttentionSpec) -> AttentionSpec:
    """Every check that needs no file: all of them without `--weights` or an inputs file;
    with files, which fix sizes the spec does not know yet, only the choices and ranges."""
    if spec.weights is None and spec.inputs_file is None:
        return validate(spec)
    _check_choices(spec)
    if not 0.0 <= spec.dropout < 1.0:
        raise MhaError(f"--dropout {spec.dropout} is outside [0, 1); use e.g. 0.1, or 0 for none")
    return spec


def _check_sizes(spec: AttentionSpec) -> None:
    sizes = {
        "--batch": spec.batch,
        "--queries": spec.queries,
        "--kv": spec.kv,
        "--hiddens": spec.hiddens,
        "--heads": spec.heads,
        "--kv-heads": spec.kv_heads,
        "--head-dim": spec.head_dim,
        "--window": spec.window,
        "--rotary-dim": spec.rotary_dim,
        "--query-size": spec.query_size,
        "--key-size": spec.key_size,
        "--value-size": spec.value_size,
    }
    for option, value in sizes.items():
        if value is not None and value < 1:
            raise MhaError(f"{option} {value} must be a positive whole number (1 or more)")
        if value is not None and value > MAX_SIZE:
            raise MhaError(f"{option} {value} is too large; sizes go up to 2**40 = {MAX_SIZE:,}")
    if spec.layer < 0:
        raise MhaError(f"--layer {spec.layer} must be 0 or more (the first layer is 0)")
    low, high = SEED_RANGE
    if not low <= spec.seed <= high:
        raise MhaError(f"--seed {spec.seed} is outside {low}..2**64-1, the seeds torch accepts")
    b, q, k, h = spec.batch, spec.queries, spec.kv, spec.heads
    wide = max(spec.hiddens, h * spec.final().head_dim)
    largest = max(b * h * q * k, b * q * wide * h, b * k * wide)
    if largest > MAX_ELEMENTS:
        raise MhaError(
            f"this configuration has a tensor of {largest:.3g} elements, more than torch can "
            "index even on the meta device (2**62); use smaller sizes"
        )


def _check_heads(spec: AttentionSpec) -> None:
    if spec.head_dim is None and spec.hiddens % spec.heads:
        options = nearest(divisors(spec.hiddens), spec.heads)
        raise MhaError(
            f"--heads {spec.heads}: num_hiddens ({spec.hiddens}) is not divisible by heads "
            f"({spec.heads}); heads that divide it: {options}"
        )
    if spec.kv_heads is None:
        return
    if spec.heads % spec.kv_heads:
        options = nearest(divisors(spec.heads), spec.kv_heads)
        raise MhaError(
            f"--kv-heads {spec.kv_heads}: heads ({spec.heads}) is not a multiple of kv heads "
            f"({spec.kv_heads}); each key-value head serves a whole group of query heads, "
            f"so use one of: {options}"
        )
    if spec.kv_heads != spec.heads and spec.value_mode == "full":
        raise MhaError(
            f"--kv-heads {spec.kv_heads} with --value-mode full: full values are already shared "
            "by every head; drop --kv-heads or use --value-mode split"
        )


def _check_choices(spec: AttentionSpec) -> None:
    choices = {
        "--score": (spec.score, SCORES),
        "--value-mode": (spec.value_mode, VALUE_MODES),
        "--rope": (spec.rope, ROPES),
        "--dtype": (spec.dtype, DTYPES),
        "--device": (spec.device, DEVICES),
    }
    if spec.attention is not None:
        choices["--attention"] = (spec.attention, ATTENTIONS)
    for option, (value, allowed) in choices.items():
        if value not in allowed:
            raise MhaError(
                f"{option} {value!r} is not one of {', '.join(allowed)}{suggest(value, allowed)}"
            )
    if spec.score == "additive" and spec.heads != 1:
        raise MhaError(
            f"--score additive with --heads {spec.heads}: d2l's AdditiveAttention is single-head; "
            "use --heads 1 (or the preset 'additive')"
        )
    if spec.score == "additive":
        extras = [
            option
            for option, used in (
                ("--rope", spec.rope != "none"),
                ("--qk-norm", spec.qk_norm),
                ("--relative-buckets", spec.relative_buckets is not None),
                ("--head-dim", spec.head_dim is not None),
                ("--kv-heads", spec.final().kv_heads != 1),
                ("--key-bias", spec.key_bias is not None and spec.key_bias != spec.bias),
            )
            if used
        ]
        if extras:
            raise MhaError(
                f"--score additive with {', '.join(extras)}: those belong to dot-product "
                "attention; drop them or use --score dot"
            )


def _check_positions(spec: AttentionSpec) -> None:
    """Rotary embedding, sliding window and norms: what the modern decoders add."""
    if spec.window is not None and not spec.causal:
        raise MhaError(
            f"{spec.given('window')} needs a causal layer, but {spec.given('causal')}: a sliding "
            "window lets query i see keys i-W+1..i, the most recent ones; make it causal "
            "or drop the window (--window none)"
        )
    if spec.score_scale is not None and not 0 < spec.score_scale < math.inf:
        raise MhaError(
            f"{spec.given('score_scale')} must be a positive finite number (the scores' factor, "
            "e.g. 0.125), or none for 1/sqrt(head_dim)"
        )
    if spec.softcap is not None and not 0 < spec.softcap < math.inf:
        raise MhaError(
            f"{spec.given('softcap')} must be a positive finite number (scores become "
            "tanh(scores / c) * c, e.g. 50), or none for no soft-capping"
        )
    if spec.clip_qkv is not None and not 0 < spec.clip_qkv < math.inf:
        raise MhaError(
            f"{spec.given('clip_qkv')} must be a positive finite number (W_q, W_k and W_v's "
            "outputs are clamped to [-c, c], e.g. 8), or none for no clamping"
        )
    if spec.relative_buckets is not None:
        _check_relative(spec)
    if spec.qk_norm_whole and not spec.qk_norm:
        raise MhaError(
            f"{spec.given('qk_norm_whole')} says where the q/k norm applies, but there is none "
            "(--no-qk-norm); add --qk-norm or drop --qk-norm-whole"
        )
    if spec.qk_norm_layer and not spec.qk_norm:
        raise MhaError(
            f"{spec.given('qk_norm_layer')} says which q/k norm applies, but there is none "
            "(--no-qk-norm); add --qk-norm or drop --qk-norm-layer"
        )
    if spec.qk_norm_layer and spec.qk_norm_whole:
        raise MhaError(
            f"{spec.given('qk_norm_layer')} (a LayerNorm per head) and "
            f"{spec.given('qk_norm_whole')} (one RMSNorm over all heads) are two different "
            "norms; keep one of them"
        )
    if spec.alibi_scaled and not spec.alibi:
        raise MhaError(
            f"{spec.given('alibi_scaled')} says how the ALiBi bias is scaled, but there is none "
            "(--no-alibi); add --alibi or drop --alibi-scaled"
        )
    if not 0 < spec.norm_eps < math.inf:
        raise MhaError(f"{spec.given('norm_eps')} must be a positive finite number, e.g. 1e-6")
    if spec.rope == "none":
        needs = [spec.given(key) for key in ("rotary_dim", "rope_scaling") if getattr(spec, key)]
        if needs:
            verb, them = ("needs", "it") if len(needs) == 1 else ("need", "them")
            raise MhaError(
                f"{' and '.join(needs)} {verb} a rotary embedding, but {spec.given('rope')}: "
                f"use --rope half or --rope interleaved, or drop {them}"
            )
        return
    d, rotary_dim = spec.final().head_dim, spec.final().rotary_dim or 0
    if rotary_dim > d or rotary_dim % 2:
        raise MhaError(
            f"{spec.given('rotary_dim')}: the rotation turns pairs of a head's {d} "
            f"features, so give an even number up to {d}"
        )
    if not 0 < spec.rope_theta < math.inf:
        raise MhaError(f"{spec.given('rope_theta')} must be a positive finite number, e.g. 10000")
    if spec.rope_scaling is not None:
        origin = dict(spec.origins).get("rope_scaling")
        where = "rope_scaling" + ("" if origin is None else f" ({origin})")
        check_rope_scaling(dict(spec.rope_scaling), where)


ROPE_SCALINGS = {
    "linear": ("factor",),
    "llama3": LLAMA3_KEYS,
    "yarn": ("factor", "original_max_position_embeddings"),
    # dynamic NTK: the default rotation up to original_max_position_embeddings positions
    "dynamic": ("factor", "original_max_position_embeddings"),
    # LongRoPE (Phi-3): one factor per frequency, short ones up to the original context
    "longrope": ("short_factor", "long_factor", "factor", "original_max_position_embeddings"),
}
YARN_OPTIONAL = ("attention_factor", "mscale", "mscale_all_dim", "beta_fast", "beta_slow")


def check_rope_scaling(scaling: Mapping[str, Any], where: str) -> None:
    """A rope scaling the rotation can use, from any source (option, TOML, config.json, API):
    a supported kind with every number it needs, each positive and finite, and llama3's two
    frequency factors apart (their difference divides). `where` names it in the message."""
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind == "default":
        return
    if not isinstance(kind, str) or kind not in ROPE_SCALINGS:
        raise MhaError(
            f"{where}: rope scaling {kind!r} is not supported; supported: default, "
            f"{', '.join(ROPE_SCALINGS)}"
        )
    missing = [key for key in ROPE_SCALINGS[kind] if scaling.get(key) is None]
    if missing:
        raise MhaError(f"{where}: rope scaling {kind!r} lacks {', '.join(missing)}; add them")
    for key in ROPE_SCALINGS[kind]:
        value = scaling[key]
        listed = key in ("short_factor", "long_factor")
        for one in value if listed and isinstance(value, list | tuple) else [value]:
            number = isinstance(one, int | float) and not isinstance(one, bool)
            if not number or not 0 < one < math.inf:
                what = "a list of positive finite numbers" if listed else "a positive finite number"
                raise MhaError(f"{where}: {key} = {value!r} should be {what}; fix it")
    for key in YARN_OPTIONAL if kind == "yarn" else ():
        value = scaling.get(key)
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if value is not None and (not number or not 0 <= value < math.inf):
            raise MhaError(f"{where}: {key} = {value!r} should be a finite number; fix it")
    if kind == "llama3" and scaling["high_freq_factor"] == scaling["low_freq_factor"]:
        raise MhaError(
            f"{where}: llama3 rope scaling has high_freq_factor = low_freq_factor, which divides "
            "by zero; make them differ (Llama 3.1: low 1, high 4)"
        )


def _check_valid_lens(spec: AttentionSpec) -> None:
    lens = spec.valid_lens
    if lens is None:
        return
    given = _format(lens)
    if not lens:
        raise MhaError("--valid-lens is empty; give one length per example, e.g. 3,2, or none")
    rows = lens if isinstance(lens[0], tuple) else (lens,)
    if isinstance(lens[0], tuple):
        if len(lens) != spec.batch or any(len(row) != spec.queries for row in rows):  # type: ignore[arg-type]
            raise MhaError(
                f"--valid-lens {given}: 2-D valid_lens must have {spec.batch} rows (batch) of "
                f"{spec.queries} lengths (queries), separated by ';'"
            )
    elif len(lens) != spec.batch:
        source = (
            f"--valid-lens {given}"
            if "valid_lens" in spec.explicit
            else f"the default --valid-lens {given} (the chapter's)"
        )
        raise MhaError(
            f"{source} has {len(lens)} entries but the batch has {spec.batch} examples; "
            f"give one length per example (e.g. {_example_lens(spec)}) or none"
        )
    for row in rows:
        for length in row:  # type: ignore[union-attr]
            if not 0 <= length <= spec.kv:  # type: ignore[operator]
                raise MhaError(
                    f"--valid-lens {given}: length {length} is outside 0..{spec.kv} "
                    f"(there are {spec.kv} key-value pairs)"
                )


def _example_lens(spec: AttentionSpec) -> str:
    """`6,6,6` for a small batch; a description rather than a million numbers for a large one."""
    if spec.batch <= 8:
        return ",".join([str(spec.kv)] * spec.batch)
    return f"{spec.kv},{spec.kv},... with {spec.batch:,} entries"


def _format(lens: tuple) -> str:  # type: ignore[type-arg]
    if lens and isinstance(lens[0], tuple):
        return ";".join(",".join(map(str, row)) for row in lens)
    return ",".join(map(str, lens))


def _check_relative(spec: AttentionSpec) -> None:
    """T5's buckets: half of them (half of each side's, both ways) exact, the rest logarithmic
    up to relative_max_distance, which must lie beyond the exact ones."""
    buckets = spec.relative_buckets or 0
    least = 2 if spec.causal else 4
    if buckets < least:
        raise MhaError(
            f"{spec.given('relative_buckets')}: a relative position bias needs at least "
            f"{least} buckets ({'causal' if spec.causal else 'both sides'}), e.g. 32 as T5"
        )
    exact = buckets // 2 if spec.causal else buckets // 4
    if spec.relative_max_distance <= exact:
        raise MhaError(
            f"{spec.given('relative_max_distance')} must be more than the {exact} distances "
            f"with a bucket each ({spec.given('relative_buckets')}), e.g. 128 as T5"
        )
