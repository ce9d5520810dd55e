"""How close two attention implementations must agree, as PyTorch's own tests decide it.

PyTorch's SDPA tests compare three runs: a golden run in higher precision (float64), the
reference in the dtype under test, and the implementation under test in that dtype. The
implementation passes when its error against the golden run is at most `fudge` times the error
the reference itself makes in that dtype, and never less than an absolute floor
(`max(atol, fudge * reference_error)`). The floor and the relative part come from
`torch.testing.assert_close`'s defaults for the dtype. Shared by `mha compare` and
`mha trace --check`, so both say "agree" for the same numbers. Pure Python.
"""

from __future__ import annotations

from dataclasses import dataclass

# torch.testing.assert_close's default (rtol, atol) per dtype.
ASSERT_CLOSE_DEFAULTS: dict[str, tuple[float, float]] = {
    "float64": (1e-7, 1e-7),
    "float32": (1.3e-6, 1e-5),
    "float16": (1e-3, 1e-5),
    "bfloat16": (1.6e-2, 1e-5),
}
FUDGE = 5.0  # PyTorch's SDPA tests' default "fudge factor" for outputs


@dataclass(frozen=True)
class Tolerance:
    """The agreement rule for one dtype."""

    dtype: str
    rtol: float
    atol: float
    fudge: float = FUDGE

    def bound(self, reference_error: float) -> float:
        """Largest error allowed, given what the reference loses against the golden run."""
        return max(self.atol, self.fudge * reference_error)

    def agrees(self, error: float, reference_error: float) -> bool:
        """NaN never agrees: a NaN where the reference has a number is a failure."""
        return error == error and error <= self.bound(reference_error)

    def describe(self) -> str:
        return (
            f"{self.dtype}: error <= max(atol {self.atol:g}, {self.fudge:g} x the reference's own "
            f"{self.dtype} error against float64); torch.testing defaults rtol {self.rtol:g}, "
            f"atol {self.atol:g}"
        )


def tolerance(dtype: str) -> Tolerance:
    rtol, atol = ASSERT_CLOSE_DEFAULTS[dtype]
    return Tolerance(dtype, rtol, atol)
