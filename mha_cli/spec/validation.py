"""Check an `AttentionSpec` before anything is built; each fault is one line with its fix."""

from __future__ import annotations

from mha_cli.errors import MhaError
from mha_cli.messages import suggest
from mha_cli.spec.spec import DEVICES, DTYPES, SCORES, VALUE_MODES, AttentionSpec

# Far beyond today's largest models and contexts, and small enough that every tensor's
# element count stays inside the int64 that torch indexes with.
MAX_SIZE = 2**40
MAX_ELEMENTS = 2**62
SEED_RANGE = (0, 2**64 - 1)  # what torch.manual_seed accepts


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
    _check_valid_lens(spec)
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
        "--query-size": spec.query_size,
        "--key-size": spec.key_size,
        "--value-size": spec.value_size,
    }
    for option, value in sizes.items():
        if value is not None and value < 1:
            raise MhaError(f"{option} {value} must be a positive whole number (1 or more)")
        if value is not None and value > MAX_SIZE:
            raise MhaError(f"{option} {value} is too large; sizes go up to 2**40 = {MAX_SIZE:,}")
    low, high = SEED_RANGE
    if not low <= spec.seed <= high:
        raise MhaError(f"--seed {spec.seed} is outside {low}..2**64-1, the seeds torch accepts")
    b, q, k, h = spec.batch, spec.queries, spec.kv, spec.heads
    largest = max(b * h * q * k, b * q * spec.hiddens * h, b * k * spec.hiddens)
    if largest > MAX_ELEMENTS:
        raise MhaError(
            f"this configuration has a tensor of {largest:.3g} elements, more than torch can "
            "index even on the meta device (2**62); use smaller sizes"
        )


def _check_heads(spec: AttentionSpec) -> None:
    if spec.hiddens % spec.heads:
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
        "--dtype": (spec.dtype, DTYPES),
        "--device": (spec.device, DEVICES),
    }
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
