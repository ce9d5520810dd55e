"""The reshape explainer: where a row-major reshape puts each axis of an attention-weights tensor.

Pure Python on purpose: a reshape is integer arithmetic on shapes, so `mha reshape` answers
without importing torch. The core is the common refinement of the source and target shapes:
every boundary (stride) of either shape cuts the flat index; where both shapes cut at the same
place (the products agree) the axes in between form a group. Inside a group whose boundaries
divide one another each target axis is a product of whole or partial source axes; otherwise
the target axes take their index from several source axes at once ("mixed").
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from enum import Enum

from mha_cli.errors import MhaError

ROLES = ("grid rows", "grid columns", "panel rows", "panel columns")  # show_heatmaps' 4 axes
_ALIASES = {"b": "batch", "h": "heads", "q": "queries", "k": "keys", "kv": "keys"}
_WORDS = {
    "batch": ("example", "examples"),
    "heads": ("head", "heads"),
    "queries": ("query", "queries"),
    "keys": ("key", "keys"),
}
_DEFAULT_AXES = {2: "queries,keys", 3: "batch,queries,keys", 4: "batch,heads,queries,keys"}
_TOKEN = re.compile(r"\s*(?:([(),])|([A-Za-z_]\w*)(?:\s*=\s*(\d+))?|(\S))")


class Verdict(str, Enum):
    """What `show_heatmaps` makes of the target layout."""

    OK = "ok"
    FOLDED = "folded"  # another axis folded into the panel rows/columns, e.g. (1, 1, 2, 10)
    MIXED = "mixed"  # a target axis takes its index from parts of several source axes
    SPLIT = "split"  # a source axis is cut across target axes
    MISPLACED = "misplaced"  # queries/keys not on the panel rows/columns
    NOT_4D = "not 4-D"


@dataclass(frozen=True)
class Axis:
    name: str
    size: int


@dataclass(frozen=True)
class Piece:
    """One factor of a target axis: its index is `(ravel(source indices of axes) // div) % size`.

    `axes` are source axes in source order; pieces of a target axis are listed most significant
    first, so the target index is the mixed-radix number of the piece values.
    """

    axes: tuple[str, ...]
    size: int
    div: int
    kind: str  # "whole" | "part" | "mixed"


@dataclass(frozen=True)
class PanelMap:
    """What one show_heatmaps panel holds: `title` (from the grid axes) and each row's indices."""

    grid: tuple[int, int]
    title: str  # e.g. "example 1, head 0"; "" when the grid axes hold nothing of their own
    rows: tuple[str, ...]  # e.g. "example 1, query 0" (what the title already says left out)
    more_rows: int


@dataclass(frozen=True)
class ReshapeExplanation:
    source_shape: tuple[int, ...]
    source_axes: tuple[Axis, ...]  # elementary: folded groups are unfolded
    source_pattern: str  # einops style, e.g. "(batch heads) queries keys"
    target_shape: tuple[int, ...]  # -1 resolved
    target_roles: tuple[str, ...]  # show_heatmaps roles for a 4-D target, else "axis k"
    pieces: tuple[tuple[Piece, ...], ...]  # per target axis
    made_of: tuple[str, ...]  # per target axis, human words
    dropped: tuple[str, ...]  # size-1 source axes that no target axis carries
    verdict: Verdict
    message: str
    suggestion: str
    suggested_shape: tuple[int, ...] | None

    def to_dict(self) -> dict[str, object]:
        return {
            "source_shape": list(self.source_shape),
            "source_axes": [asdict(a) for a in self.source_axes],
            "source_pattern": self.source_pattern,
            "target_shape": list(self.target_shape),
            "target": [
                {
                    "axis": k,
                    "size": n,
                    "role": role,
                    "made_of": words,
                    "pieces": [{**asdict(p), "axes": list(p.axes)} for p in ps],
                }
                for k, (n, role, words, ps) in enumerate(
                    zip(
                        self.target_shape, self.target_roles, self.made_of, self.pieces, strict=True
                    )
                )
            ],
            "dropped": list(self.dropped),
            "verdict": self.verdict.value,
            "message": self.message,
            "suggestion": self.suggestion,
            "suggested_shape": None if self.suggested_shape is None else list(self.suggested_shape),
        }


def fmt(shape: Sequence[int]) -> str:
    return str(tuple(shape))


def axis_word(name: str, count: int = 1) -> str:
    """The noun for one index of an axis: batch -> example(s), heads -> head(s)."""
    singular, plural = _WORDS.get(name, (name, name))
    return singular if count == 1 else plural


def parse_shape(
    text: str | Sequence[int], *, option: str = "--shape", allow_infer: bool = False
) -> tuple[int, ...]:
    """'2,1,10', '(2, 1, 10)', '2 1 10' or a sequence of ints -> (2, 1, 10)."""
    if isinstance(text, str):
        parts = [p for p in re.split(r"[,\s]+", text.strip().strip("()[] ")) if p]
        bad = [p for p in parts if not re.fullmatch(r"-?\d+", p)]
        if bad or not parts:
            raise MhaError(f"{option} {text!r} is not a shape; give sizes such as 2,1,10")
        values = tuple(int(p) for p in parts)
    else:
        values = tuple(int(v) for v in text)
    hint = " (or one -1 to infer a size)" if allow_infer else ""
    for v in values:
        if v < 1 and not (allow_infer and v == -1):
            raise MhaError(f"{option} {fmt(values)} has size {v}; sizes must be positive{hint}")
    return values


def parse_axes(
    text: str, shape: tuple[int, ...], sizes: Mapping[str, int] | None = None
) -> tuple[tuple[Axis, ...], str]:
    """'(batch=2 heads) queries keys' (commas optional) -> elementary axes and the pattern.

    A folded group needs the sizes of all but one member: from `name=size` in the pattern or
    from `sizes` (the lead passes the spec's --batch/--heads); the last one is inferred, as in
    einops. `sizes` never overrides an ungrouped axis: that size is the shape's.
    """
    groups: list[list[tuple[str, int | None]]] = []
    open_group: list[tuple[str, int | None]] | None = None
    for m in _TOKEN.finditer(text):
        punct, name, size, junk = m.groups()
        if junk or (punct == "(" and open_group is not None) or (punct == ")" and not open_group):
            raise MhaError(
                f"--axes {text!r}: unexpected {junk or punct!r}; write names such as "
                "batch,queries,keys or (batch heads),queries,keys"
            )
        if punct == "(":
            open_group = []
        elif punct == ")":
            groups.append(open_group or [])
            open_group = None
        elif name:
            entry = (_ALIASES.get(name, name), int(size) if size else None)
            if open_group is not None:
                open_group.append(entry)
            else:
                groups.append([entry])
    if open_group is not None:
        raise MhaError(f"--axes {text!r}: a '(' is not closed; e.g. (batch heads),queries,keys")
    if len(groups) != len(shape):
        example = _DEFAULT_AXES.get(len(shape), "x,y")
        raise MhaError(
            f"--axes {text!r} names {len(groups)} axes but --shape {fmt(shape)} has "
            f"{len(shape)}; name one per axis, e.g. {example}"
        )
    names = [n for g in groups for n, _ in g]
    if len(set(names)) != len(names):
        raise MhaError(f"--axes {text!r} repeats a name; give each axis its own name")
    axes = [
        a
        for g, dim in zip(groups, shape, strict=True)
        for a in _group_sizes(g, dim, sizes or {}, text)
    ]
    pattern = " ".join(f"({' '.join(n for n, _ in g)})" if len(g) > 1 else g[0][0] for g in groups)
    return tuple(axes), pattern


def _group_sizes(
    group: list[tuple[str, int | None]], dim: int, sizes: Mapping[str, int], text: str
) -> list[Axis]:
    if len(group) == 1:
        name, given = group[0]
        if given is not None and given != dim:
            raise MhaError(f"--axes {text!r} says {name}={given} but --shape has {dim} there")
        return [Axis(name, dim)]
    known = [g if g is not None else sizes.get(n) for n, g in group]
    label = f"({' '.join(n for n, _ in group)})"
    if known.count(None) > 1:
        first = group[0][0]
        raise MhaError(
            f"--axes {text!r}: {label} of size {dim} needs the sizes of all but one "
            f"of its axes; write e.g. ({first}=2 {' '.join(n for n, _ in group[1:])})"
        )
    product = math.prod(k for k in known if k is not None)
    if None in known:
        if product < 1 or dim % product:
            raise MhaError(
                f"--axes {text!r}: can't divide {label} of size {dim} by {product}; "
                f"give sizes whose product divides {dim}"
            )
        known = [k if k is not None else dim // product for k in known]
    elif product != dim:
        raise MhaError(
            f"--axes {text!r}: {label} multiplies to {product} but --shape has {dim} "
            "there; give sizes whose product is that size"
        )
    return [Axis(n, int(k or 0)) for (n, _), k in zip(group, known, strict=True)]


def _strides(sizes: Sequence[int]) -> list[int]:
    return [math.prod(sizes[i + 1 :]) for i in range(len(sizes))]  # row-major (C order)


def _refine(src: Sequence[Axis], tgt: Sequence[int]) -> list[list[Piece]]:
    s_str, t_str, total = _strides([a.size for a in src]), _strides(tgt), math.prod(tgt)
    s_cut, t_cut = set(s_str) | {total}, set(t_str) | {total}
    cuts = sorted(s_cut & t_cut)  # where the running products of both shapes agree
    big_s = [j for j, a in enumerate(src) if a.size > 1]
    pieces: list[list[Piece]] = [[] for _ in tgt]
    for c0, c1 in itertools.pairwise(cuts):
        inner = sorted(b for b in s_cut | t_cut if c0 <= b <= c1)
        t_in = [k for k, n in enumerate(tgt) if n > 1 and c0 <= t_str[k] < c1]
        if all(hi % lo == 0 for lo, hi in itertools.pairwise(inner)):
            # boundaries nest: each slice lies inside one source axis and one target axis
            for lo, hi in itertools.pairwise(inner):
                j = next(j for j in big_s if s_str[j] <= lo and hi <= s_str[j] * src[j].size)
                k = next(k for k in t_in if t_str[k] <= lo and hi <= t_str[k] * tgt[k])
                kind = "whole" if hi // lo == src[j].size else "part"
                pieces[k].insert(0, Piece((src[j].name,), hi // lo, lo // s_str[j], kind))
        else:
            # e.g. (batch=2 heads=5) read as (5, 2): no target axis is a function of one source
            names = tuple(src[j].name for j in big_s if c0 <= s_str[j] < c1)
            for k in t_in:
                pieces[k].append(Piece(names, tgt[k], t_str[k] // c0, "mixed"))
    return pieces


def _place_units(
    src: Sequence[Axis], tgt: Sequence[int], pieces: list[list[Piece]], expected: Sequence[str]
) -> tuple[str, ...]:
    """Give each size-1 source axis to a size-1 target axis at the same position.

    A reshape cannot tell size-1 axes apart, so prefer the target axis whose role expects that
    name (queries -> panel rows), then align from the right; returns the axes left over.
    """
    s_str, t_str = _strides([a.size for a in src]), _strides(tgt)
    dropped: list[str] = []
    for pos in sorted({s_str[j] for j, a in enumerate(src) if a.size == 1}):
        units = [a.name for j, a in enumerate(src) if a.size == 1 and s_str[j] == pos]
        free = [k for k, n in enumerate(tgt) if n == 1 and t_str[k] == pos]
        for name in list(units):
            k = next((k for k in free if k < len(expected) and expected[k] == name), None)
            if k is not None:
                pieces[k].append(Piece((name,), 1, 1, "whole"))
                units.remove(name)
                free.remove(k)
        for name, k in zip(reversed(units), reversed(free), strict=False):
            pieces[k].append(Piece((name,), 1, 1, "whole"))
        dropped += units[: max(0, len(units) - len(free))]
    return tuple(dropped)


def _made_of(ps: Sequence[Piece], size: int, src_sizes: Mapping[str, int]) -> str:
    if not ps:
        return "nothing (size 1)" if size == 1 else "?"
    words = []
    for p in ps:
        if p.kind == "mixed":
            words.append(f"parts of {' and '.join(p.axes)} (mixed)")
        elif p.kind == "part":
            words.append(f"part of {p.axes[0]} ({p.size} of {src_sizes[p.axes[0]]})")
        else:
            words.append(p.axes[0])
    return " x ".join(words)


def explain_reshape(
    shape: str | Sequence[int],
    to: str | Sequence[int],
    axes: str | None = None,
    *,
    sizes: Mapping[str, int] | None = None,
) -> ReshapeExplanation:
    """Explain `weights.reshape(to)` for weights of `shape` whose axes are named by `axes`."""
    source = parse_shape(shape)
    if axes is None and len(source) not in _DEFAULT_AXES:
        raise MhaError(
            f"--shape {fmt(source)} has {len(source)} axes; name them with --axes, "
            "e.g. --axes batch,heads,queries,keys"
        )
    src, pattern = parse_axes(axes or _DEFAULT_AXES[len(source)], source, sizes)
    target = _resolve(source, parse_shape(to, option="--to", allow_infer=True), src)
    four = len(target) == 4
    roles = ROLES if four else tuple(f"axis {k}" for k in range(len(target)))
    qname, kname = _panel_names(src)
    pieces = _refine(src, target)
    dropped = _place_units(src, target, pieces, ("batch", "heads", qname, kname) if four else ())
    src_sizes = {a.name: a.size for a in src}
    made_of = tuple(_made_of(ps, n, src_sizes) for ps, n in zip(pieces, target, strict=True))
    frozen = tuple(tuple(ps) for ps in pieces)
    verdict, message = _judge(src, target, frozen, qname, kname)
    suggested = _canonical(src, qname, kname)
    return ReshapeExplanation(
        source_shape=source,
        source_axes=src,
        source_pattern=pattern,
        target_shape=target,
        target_roles=roles,
        pieces=frozen,
        made_of=made_of,
        dropped=dropped,
        verdict=verdict,
        message=message,
        suggestion=_suggest(verdict, src, suggested, qname, kname),
        suggested_shape=None if verdict is Verdict.OK else suggested,
    )


def _resolve(
    source: tuple[int, ...], target: tuple[int, ...], src: Sequence[Axis]
) -> tuple[int, ...]:
    total, known = math.prod(source), math.prod(v for v in target if v != -1)
    example = _canonical(src, *_panel_names(src)) or source
    if target.count(-1) > 1:
        raise MhaError(
            f"--to {fmt(target)} has more than one -1; only one size can be inferred, "
            f"e.g. {','.join(str(v) for v in example[:-2])},-1,{example[-1]}"
        )
    if -1 in target and total % known == 0:
        target = tuple(total // known if v == -1 else v for v in target)
    if math.prod(target) != total or -1 in target:
        got = (
            f": {total} is not divisible by {known}"
            if -1 in target
            else (f" ({math.prod(target)} elements)")
        )
        raise MhaError(
            f"cannot reshape {fmt(source)} ({total} elements) to {fmt(target)}{got}; "
            f"the target sizes must multiply to {total}, e.g. {fmt(example)}"
        )
    return target


def _panel_names(src: Sequence[Axis]) -> tuple[str, str]:
    names = [a.name for a in src]
    qname = "queries" if "queries" in names else (names[-2] if len(names) > 1 else "")
    return qname, "keys" if "keys" in names else names[-1]


def _canonical(src: Sequence[Axis], qname: str, kname: str) -> tuple[int, ...] | None:
    """The 4-D layout show_heatmaps wants: grid axes = the leading axes, panel = queries x keys.

    None when queries and keys are not the last two source axes: then no reshape can make the
    panels right and the tensor must be permuted first.
    """
    if [a.name for a in src[-2:]] != [qname, kname]:
        return None
    lead = [a.size for a in src[:-2]] or [1]
    # more than two leading axes: fold all but the last into the grid rows (row-major, unmixed)
    return (
        math.prod(lead[:-1] or lead),
        lead[-1] if len(lead) > 1 else 1,
        src[-2].size,
        src[-1].size,
    )


def _suggest(
    verdict: Verdict, src: Sequence[Axis], shape: tuple[int, ...] | None, qname: str, kname: str
) -> str:
    if verdict is Verdict.OK:
        return ""
    if shape is None and not qname:
        return "name at least two axes (queries, keys) to get a show_heatmaps layout"
    if shape is None:
        return (
            f"permute the weights so that {qname} and {kname} are the last two axes, "
            "then reshape; a reshape alone cannot move them"
        )
    lead = [a.name for a in src[:-2]]
    grid = f"grid rows = {' x '.join(lead[:-1] or lead)}" if lead else "one panel"
    grid += f", grid columns = {lead[-1]}" if len(lead) > 1 else ""
    return f"use {fmt(shape)}: {grid}, each panel {qname} x {kname}"


def _judge(
    src: Sequence[Axis],
    target: tuple[int, ...],
    pieces: tuple[tuple[Piece, ...], ...],
    qname: str,
    kname: str,
) -> tuple[Verdict, str]:
    sizes = {a.name: a.size for a in src}
    # mixed: an index made of several source axes where one is cut, e.g. (batch=2 heads=8)
    # read as (8, 2) gives grid rows = batch x half of heads (the boundaries divide, no "mixed"
    # piece, yet a row that claims to be a head is not one)
    mixed = [
        k
        for k, ps in enumerate(pieces)
        if any(p.kind == "mixed" for p in ps) or (len(ps) > 1 and any(p.kind == "part" for p in ps))
    ]
    if mixed:
        return Verdict.MIXED, _mixed_message(src, target, pieces, mixed)
    if len(target) != 4:
        return Verdict.NOT_4D, (
            f"show_heatmaps takes 4 axes (grid rows, grid columns, panel "
            f"rows, panel columns); {fmt(target)} has {len(target)}"
        )
    for k, want, other, label in ((2, qname, kname, "Queries"), (3, kname, qname, "Keys")):
        extra = [p.axes[0] for p in pieces[k] if p.axes[0] != want]
        if not extra:
            continue
        if other in extra and any(p.kind == "part" for p in pieces[k]):
            break  # keys cut into panel rows and columns: a split, reported below
        if other in extra:
            return Verdict.MISPLACED, (
                f"the {ROLES[k]} hold {_made_of(pieces[k], 1, sizes)}, "
                f'not {want}: the "{label}" label is wrong'
            )
        held = [(p.axes[0], p.size) for p in pieces[k]]
        held += [(want, 1)] if sizes.get(want) == 1 and want not in extra else []
        stack = " x ".join(f"{n} {axis_word(name, n)}" for name, n in held)
        folded = " and ".join(f"{n} ({sizes[n]})" for n in extra)
        return Verdict.FOLDED, (
            f"{folded} {'is' if len(extra) == 1 else 'are'} folded into the {ROLES[k]}: each "
            f"panel stacks {stack} = {target[k]} {ROLES[k].split()[1]}, so "
            f'{axis_word(extra[0], 2)} share a panel and its "{label}" label is wrong; the '
            "numbers are the same, only the layout differs"
        )
    for ps in pieces:
        for p in ps:
            if p.kind == "part":
                where = [
                    ROLES[k] for k, qs in enumerate(pieces) if any(q.axes == p.axes for q in qs)
                ]
                return Verdict.SPLIT, (
                    f"{p.axes[0]} ({sizes[p.axes[0]]}) is split across the "
                    f"{' and '.join(where)}: each holds only part of it"
                )
    for k in (0, 1):
        on_grid = [p.axes[0] for p in pieces[k] if p.axes[0] in (qname, kname) and p.size > 1]
        if on_grid:
            name = on_grid[0]
            return Verdict.MISPLACED, (
                f"{name} ({sizes[name]}) sit on the {ROLES[k]}, so "
                f"each panel shows a single {axis_word(name)}"
            )
    grid = [_made_of(pieces[k], target[k], sizes) for k in (0, 1)]
    each = " and ".join(axis_word(a.name) for a in src if a.name not in (qname, kname))
    return Verdict.OK, (
        f"panel rows are {qname} and panel columns are {kname}; grid rows hold "
        f"{grid[0]} and grid columns hold {grid[1]}, so each panel shows "
        f"{'one ' + each + chr(39) + 's' if each else 'the'} {qname} x {kname}"
    )


def _mixed_message(
    src: Sequence[Axis],
    target: tuple[int, ...],
    pieces: tuple[tuple[Piece, ...], ...],
    mixed: list[int],
) -> str:
    used = {n for k in mixed for p in pieces[k] for n in p.axes}
    names = [a.name for a in src if a.name in used]
    sizes = {a.name: a.size for a in src}
    mixed = [k for k, ps in enumerate(pieces) if any(set(p.axes) & used for p in ps)]
    roles = [ROLES[k] if len(target) == 4 else f"axis {k}" for k in mixed]
    text = (
        f"({' '.join(names)}) is {names[0]}-major, so it unfolds as "
        f"{fmt([sizes[n] for n in names])}; with {fmt([target[k] for k in mixed])} the "
        f"{' and '.join(roles)} take their indices from parts of {' and '.join(names)}"
    )
    if len(target) == 4 and set(mixed) & {0, 1}:
        shown = [(r, c) for r, c in ((0, 1), (1, 0)) if r < target[0] and c < target[1]]
        text += (
            " ("
            + "; ".join(
                f"panel [{r}, {c}] shows "
                + _describe(src, (r * target[1] + c) * target[2] * target[3], set(names))
                for r, c in shown
            )
            + ")"
        )
    return text + "; no error is raised: every element still lands somewhere"


def _describe(src: Sequence[Axis], flat: int, keep: set[str]) -> str:
    """'example 1, head 0': the source indices of element `flat` on the axes in `keep`."""
    index = []
    for a in reversed(src):
        flat, i = divmod(flat, a.size)
        index.append(f"{axis_word(a.name)} {i}" if a.name in keep else "")
    return ", ".join(w for w in reversed(index) if w)


def index_map(
    expl: ReshapeExplanation, *, max_panels: int = 4, max_rows: int = 4
) -> tuple[PanelMap, ...]:
    """For a 4-D target: what the first panels and their first rows show, in source indices."""
    if len(expl.target_shape) != 4:
        return ()
    g0, g1, n_rows, n_cols = expl.target_shape
    held = [{n for p in ps for n in p.axes} for ps in expl.pieces]
    # the title names what the grid axes alone hold; the rows leave out what is constant in them
    title = (held[0] | held[1]) - held[2] - held[3]
    across = {p.axes[0] for p in expl.pieces[3] if p.kind == "whole"} - held[2]
    rest = {a.name for a in expl.source_axes} - title - across
    return tuple(
        PanelMap(
            divmod(panel, g1),
            _describe(expl.source_axes, panel * n_rows * n_cols, title),
            tuple(
                _describe(expl.source_axes, (panel * n_rows + r) * n_cols, rest)
                for r in range(min(n_rows, max_rows))
            ),
            max(0, n_rows - max_rows),
        )
        for panel in range(min(g0 * g1, max_panels))
    )
