"""When a figure of one head is beyond noise: Student's t, Spearman's p-value, and the test that
says whether the lowest heads (or any head) lie beyond the spread of the others.

Plain Python (no torch), so the rules can be read and checked in isolation.

- `t_sf(t, df)`: P(T > t) for Student's t with `df` degrees of freedom (regularised incomplete
  beta function, continued fraction of Numerical Recipes 6.4).
- `spearman_p(a, b)`: two-sided p-value of Spearman's rho: the exact permutation distribution
  up to `EXACT_UP_TO` heads, the t-approximation `t = rho sqrt((n-2)/(1-rho^2))` (n-2 degrees of
  freedom) above.
- `beyond_spread(x, others)`: how far `x` lies from `others` in units of the prediction interval
  of one more value drawn like them: `T = (x - mean) / (s sqrt(1 + 1/m))`, Student's t with m-1
  degrees of freedom when the others are normal. Heads of a random layer are exchangeable, so a
  head only stands out when T is beyond what m other heads make likely (Bonferroni over the
  heads).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

ALPHA = 0.01  # chance, on a layer whose heads are alike, that some head is called out anyway
AGREEMENT_ALPHA = 0.05  # two-sided level at which a rank correlation counts as agreement
EXACT_UP_TO = 7  # heads up to which Spearman's p is exact (7! = 5040 permutations)
MIN_HEADS = 3  # a head's standing needs the spread of at least two others


def _beta_fraction(a: float, b: float, x: float) -> float:
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        step = d * c
        h *= step
        if abs(step - 1.0) < 1e-15:
            break
    return h


def incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_fraction(a, b, x) / a
    return 1.0 - front * _beta_fraction(b, a, 1.0 - x) / b


def t_sf(t: float, df: float) -> float:
    """P(T > t), T Student's t with `df` degrees of freedom."""
    if math.isnan(t):
        return math.nan
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    tail = 0.5 * incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return tail if t > 0 else 1.0 - tail


def t_quantile(p: float, df: float) -> float:
    """The t with P(T > t) = p (0 < p < 0.5), by bisection."""
    low, high = 0.0, 1.0
    while t_sf(high, df) > p:
        high *= 2.0
    for _ in range(200):
        middle = (low + high) / 2.0
        if t_sf(middle, df) > p:
            low = middle
        else:
            high = middle
    return (low + high) / 2.0


def ranks(values: Sequence[float]) -> list[float]:
    """Ranks from 1, ties sharing their average rank (as Spearman's rho needs)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    result = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in range(start, end + 1):
            result[order[position]] = (start + end) / 2 + 1
        start = end + 1
    return result


def _pearson(a: Sequence[float], b: Sequence[float]) -> float:
    mean_a, mean_b = sum(a) / len(a), sum(b) / len(b)
    cov = sum((x - mean_a) * (y - mean_b) for x, y in zip(a, b, strict=True))
    var_a = sum((x - mean_a) ** 2 for x in a)
    var_b = sum((y - mean_b) ** 2 for y in b)
    if var_a == 0 or var_b == 0:
        return math.nan
    return cov / math.sqrt(var_a * var_b)


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation: Pearson's correlation of the ranks; NaN when either
    measure is the same for every head (or NaN anywhere)."""
    if len(a) < 2 or any(math.isnan(v) for v in [*a, *b]):
        return math.nan
    return _pearson(ranks(a), ranks(b))


def spearman_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of Spearman's rho between `a` and `b` (no relation: every pairing of
    the ranks equally likely); NaN when rho is undefined or there are fewer than 3 heads."""
    rho = spearman(a, b)
    n = len(a)
    if math.isnan(rho) or n < 3:
        return math.nan
    if n <= EXACT_UP_TO:
        ra, rb = ranks(a), ranks(b)
        at_least = 0
        total = 0
        for order in itertools.permutations(rb):
            total += 1
            if abs(_pearson(ra, order)) >= abs(rho) - 1e-12:
                at_least += 1
        return at_least / total
    if abs(rho) >= 1.0:
        return 0.0
    t = abs(rho) * math.sqrt((n - 2) / (1.0 - rho * rho))
    return min(1.0, 2.0 * t_sf(t, n - 2))


def rho_needed(n: int, alpha: float = AGREEMENT_ALPHA) -> float:
    """The smallest |rho| that is significant at `alpha` (two-sided) for n heads without ties;
    NaN when none is (n < 4 with the exact distribution)."""
    if n < 3:
        return math.nan
    if n <= EXACT_UP_TO:
        base = list(range(1, n + 1))
        values = sorted(
            (abs(_pearson(base, order)) for order in itertools.permutations(base)), reverse=True
        )
        needed = math.nan
        index = 0
        while index < len(values):  # largest first: p grows as |rho| falls
            value = values[index]
            while index < len(values) and values[index] >= value - 1e-12:
                index += 1  # index = how many permutations reach |rho| >= value
            if index / len(values) >= alpha:
                break
            needed = value
        return needed
    t = t_quantile(alpha / 2.0, n - 2)
    return t / math.sqrt(n - 2 + t * t)


def beyond_spread(x: float, others: Sequence[float]) -> float:
    """`(x - mean) / (s sqrt(1 + 1/m))` of x against m others (NaN ignored); ±inf when the
    others are all equal and x is not; NaN with fewer than two others."""
    pool = [v for v in others if not math.isnan(v)]
    m = len(pool)
    if m < 2 or math.isnan(x):
        return math.nan
    mean = sum(pool) / m
    s = math.sqrt(sum((v - mean) ** 2 for v in pool) / (m - 1))
    gap = x - mean
    if s == 0:
        return 0.0 if gap == 0 else math.copysign(math.inf, gap)
    return gap / (s * math.sqrt(1.0 + 1.0 / m))


def stands_out(x: float, others: Sequence[float], heads: int, sides: int = 1) -> bool:
    """x lies beyond the spread of `others` at level ALPHA shared by `heads` heads (and `sides`
    directions): P(|T| this large) < ALPHA / (heads * sides)."""
    t = beyond_spread(x, others)
    if math.isnan(t):
        return False
    m = sum(1 for v in others if not math.isnan(v))
    return t_sf(abs(t), m - 1) < ALPHA / (heads * sides)


def log_scale(values: Sequence[float]) -> list[float]:
    """log of positive figures (a scaled slice moves them by a factor); 0 -> -inf, NaN kept."""
    return [
        math.nan if math.isnan(v) or v < 0 else (-math.inf if v == 0 else math.log(v))
        for v in values
    ]


def lowest_standing_out(
    values: Sequence[float], low: Sequence[float], high: Sequence[float]
) -> list[int]:
    """The heads (indices) whose figure is separated from every other head's: the k lowest
    (k from 1 up to a quarter of the heads), each below the rest beyond their spread (log scale)
    and the highest of them with its interval (`low`..`high`) below every other head's. The
    smallest such group; [] when no head stands out."""
    finite = [i for i, v in enumerate(values) if not math.isnan(v)]
    n = len(finite)
    if n < MIN_HEADS:
        return []
    order = sorted(finite, key=lambda i: values[i])
    logs = log_scale(values)
    for k in range(1, max(1, n // 4) + 1):
        group, rest = order[:k], order[k:]
        if len(rest) < 2:
            break
        top = group[-1]
        if values[top] == values[rest[0]]:
            continue
        separated = max(high[i] for i in group) < min(low[i] for i in rest)
        rest_logs = [logs[i] for i in rest]
        if math.isinf(logs[top]) and all(math.isfinite(v) for v in rest_logs):
            beyond = True  # a head that changes nothing, among heads that change something
        else:
            beyond = stands_out(logs[top], rest_logs, n)
        if separated and beyond:
            return group
    return []


def outliers(values: Sequence[float], heads: int) -> list[tuple[int, int]]:
    """(head, +1 above / -1 below) for each head whose figure (log scale) is beyond the spread
    of the others, two-sided, at ALPHA shared by the heads. Heads found are left out of the
    others' spread one at a time (so two odd heads do not hide each other), up to a quarter of
    the heads."""
    logs = log_scale(values)
    pool = [i for i, v in enumerate(logs) if not math.isnan(v)]
    found: list[tuple[int, int]] = []
    candidates: list[tuple[int, int]] = []
    for _ in range(max(1, len(pool) // 4)):
        if len(pool) < MIN_HEADS:
            break
        scores = [(abs(_standing(logs, i, pool)), i) for i in pool]
        score, worst = max(scores)
        if math.isnan(score) or score == 0:
            break
        side = 1 if _standing(logs, worst, pool) > 0 else -1
        candidates.append((worst, side))
        others = [logs[j] for j in pool if j != worst]
        if stands_out(logs[worst], others, heads, sides=2):
            found = list(candidates)  # every head up to the last that stands out
        pool = [j for j in pool if j != worst]
    return sorted(found)


def _standing(logs: list[float], i: int, pool: list[int]) -> float:
    x = logs[i]
    others = [logs[j] for j in pool if j != i]
    if math.isinf(x):
        finite = all(math.isfinite(v) for v in others)
        return math.copysign(math.inf, x) if finite else 0.0
    t = beyond_spread(x, others)
    return 0.0 if math.isnan(t) else t
