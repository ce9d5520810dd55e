"""How numbers read in every renderer: counts, bytes, shapes, value ranges."""

from __future__ import annotations

from mha_cli.messages import size_text

_SI = ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"))


def count(n: int | None) -> str:
    """Exact below a million (`160,000`), SI above (`17.59 T`)."""
    if n is None:
        return ""
    for scale, unit in _SI:
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:,}"


def size(n: int) -> str:
    """Bytes in binary units: `3.1 KiB`, `4.0 GiB`."""
    return size_text(n)


def value_range(bounds: tuple[float, float] | list[float] | None) -> str:
    if bounds is None:
        return "not computed"
    low, high = bounds
    return f"{low:.3g} .. {high:.3g}"
