"""The reshape explainer: where a row-major reshape puts each axis of an attention-weights tensor.

Pure Python on purpose: a reshape is integer arithmetic on shapes, so `mha reshape` answers
without importing torch. `explain_reshape` parses the shape and the axis names
(`reshape_parse`), lays the source axes onto the target shape (`reshape_refine`, the common
refinement of both shapes) and asks what `show_heatmaps` makes of the result
(`reshape_verdict`); `index_map` then says what the first panels show, in source indices.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from mha_cli.errors import MhaError
from mha_cli.messages import shape_text
from mha_cli.render.display import Displayed
from mha_cli.reshape.parse import DEFAULT_AXES, Axis, parse_axes, parse_shape
from mha_cli.reshape.refine import Piece, made_of_text, place_units, refine
from mha_cli.reshape.verdict import ROLES, Verdict, describe, judge, suggest_target
from mha_cli.spec.axes import KV_PAIRS, QUERIES


@dataclass(frozen=True)
class PanelMap:
    """What one show_heatmaps panel holds: `title` (from the grid axes) and each row's indices."""

    grid: tuple[int, int]
    title: str  # e.g. "example 1, head 0"; "" when the grid axes hold nothing of their own
    rows: tuple[str, ...]  # e.g. "example 1, query 0" (what the title already says left out)
    more_rows: int


@dataclass(frozen=True)
class ReshapeExplanation(Displayed):
    source_shape: tuple[int, ...]
    source_axes: tuple[Axis, ...]  # elementary: folded groups are unfolded
    source_pattern: str  # as the stage table writes axes: "(batch heads), queries, kv pairs"
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


def explain_reshape(
    shape: str | Sequence[int],
    to: str | Sequence[int],
    axes: str | None = None,
    *,
    sizes: Mapping[str, int] | None = None,
) -> ReshapeExplanation:
    """Explain `weights.reshape(to)` for weights of `shape` whose axes are named by `axes`."""
    source = parse_shape(shape)
    if not axes and len(source) not in DEFAULT_AXES:
        raise MhaError(
            f"--shape {shape_text(source)} has {len(source)} axes; name them with --axes, "
            "e.g. --axes batch,heads,queries,keys"
        )
    src, pattern = parse_axes(axes or DEFAULT_AXES[len(source)], source, sizes)
    target = _resolve(source, parse_shape(to, option="--to", allow_infer=True), src)
    four = len(target) == 4
    roles = ROLES if four else tuple(f"axis {k}" for k in range(len(target)))
    qname, kname = _panel_names(src)
    pieces = refine(src, target)
    dropped = place_units(src, target, pieces, ("batch", "heads", qname, kname) if four else ())
    src_sizes = {a.name: a.size for a in src}
    made_of = tuple(made_of_text(ps, n, src_sizes) for ps, n in zip(pieces, target, strict=True))
    frozen = tuple(tuple(ps) for ps in pieces)
    verdict, message = judge(src, target, frozen, qname, kname)
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
        suggestion=suggest_target(verdict, src, suggested, qname, kname),
        suggested_shape=None if verdict is Verdict.OK else suggested,
    )


def _resolve(
    source: tuple[int, ...], target: tuple[int, ...], src: Sequence[Axis]
) -> tuple[int, ...]:
    total, known = math.prod(source), math.prod(v for v in target if v != -1)
    example = _canonical(src, *_panel_names(src)) or source
    if target.count(-1) > 1:
        raise MhaError(
            f"--to {shape_text(target)} has more than one -1; only one size can be inferred, "
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
            f"cannot reshape {shape_text(source)} ({total} elements) to {shape_text(target)}{got}; "
            f"the target sizes must multiply to {total}, e.g. {shape_text(example)}"
        )
    return target


def _panel_names(src: Sequence[Axis]) -> tuple[str, str]:
    names = [a.name for a in src]
    qname = QUERIES if QUERIES in names else (names[-2] if len(names) > 1 else "")
    return qname, KV_PAIRS if KV_PAIRS in names else names[-1]


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
            describe(expl.source_axes, panel * n_rows * n_cols, title),
            tuple(
                describe(expl.source_axes, (panel * n_rows + r) * n_cols, rest)
                for r in range(min(n_rows, max_rows))
            ),
            max(0, n_rows - max_rows),
        )
        for panel in range(min(g0 * g1, max_panels))
    )
