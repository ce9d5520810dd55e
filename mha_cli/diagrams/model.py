"""The dataflow diagram of one recorded run, as plain data: boxes, and edges carrying shapes.

Built from the stage records alone (the `RunRecord` that `mha inspect` prints), so every shape
and axis name on an edge is the one in the stage table: no shape is computed here. Each stage
is one box (the step) and one edge (its output, labelled with the stage's shape and axes).

Lanes are the diagram's columns: the mask's inputs, then queries, keys and values as they go
through their projection and `transpose_qkv`; the `main` lane is where they meet (scores,
softmax, weighted sum) and what follows (`transpose_output`, `W_o`). Pure Python.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any

from mha_cli.diagrams import ORIGIN
from mha_cli.diagrams.texts import describe, mask_lines, stack_count, title_of
from mha_cli.layer.records import RunRecord, Stage
from mha_cli.render.display import Displayed

ROLES = ("queries", "keys", "values")
MASK_LANE, MAIN_LANE = "mask", "main"
PROJECTIONS = {"W_q": "queries", "W_k": "keys", "W_v": "values"}
OUTPUT, MASK = "output", "mask"  # the two boxes that are not stages
SHOWN_EXAMPLES = 4  # masked keys listed under the picture; the table lists them all
# The steps of d2l's `transpose_qkv`, with what modern decoders do between its split and fold.
TRANSPOSE_QKV_STEPS = ("split", "permute", "norm", "rope", "share", "expand", "fold")


@dataclass(frozen=True)
class Box:
    """One step of the layer (or an input, the mask, the output)."""

    key: str  # the stage's name; `output` or `mask` for the two boxes that are not stages
    title: str
    detail: str  # short lines under the title (the mask's: one per thing it hides)
    kind: str  # input, weight, reshape, compute, mask, output: decides the colour
    lane: str
    row: int
    span: tuple[str, str] | None = None  # a wide box reaches from one lane to another
    stack: int = 1  # heads its output keeps apart: drawn as a stack of this many cards
    stack_label: str = ""
    params: int | None = None  # of the step's weights, as recorded


@dataclass(frozen=True)
class Edge:
    """What flows from one box to the next: the source stage's output, shape and axes."""

    source: str
    target: str
    stage: str | None  # the stage record whose tensor this is; None: the mask's arrow
    shape: tuple[int, ...] | None
    axes: tuple[str, ...] = ()
    note: str = ""  # text for an arrow that carries no recorded tensor


@dataclass(frozen=True)
class Group:
    """Boxes that are one function of d2l's code: `transpose_qkv`, `transpose_output`."""

    label: str
    lanes: tuple[str, str]  # from the first lane to the last
    rows: tuple[int, int]  # from the first row to the last


@dataclass(frozen=True)
class Diagram(Displayed):
    title: str
    lanes: tuple[str, ...]  # left to right
    rows: int
    boxes: list[Box]
    edges: list[Edge]
    notes: list[str] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)

    def box(self, key: str) -> Box:
        return next(b for b in self.boxes if b.key == key)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Stage name -> the shape on its edge: what a test compares with the stage table."""
        return {e.stage: e.shape for e in self.edges if e.stage is not None and e.shape}


def lane_of(name: str) -> str:
    if name in PROJECTIONS:
        return PROJECTIONS[name]
    role = name.split(".")[0]
    if role in ROLES:
        return role
    return MASK_LANE if role == "valid_lens" else MAIN_LANE


def step_of(name: str) -> str:
    """The kind of step a lane stage is: `input`, `project`, or the part after the dot."""
    if name in PROJECTIONS:
        return "project"
    return name.partition(".")[2] or "input"


# Steps drawn on the same row as another: full values are expanded to every head where
# queries and keys are split into heads.
SAME_ROW = {"expand": "split"}


def _row_step(name: str) -> str:
    step = step_of(name)
    return SAME_ROW.get(step, step)


def build_diagram(record: RunRecord, title: str) -> Diagram:
    """The boxes and edges of `record`'s layer, laid out in lanes and rows."""
    stages = record.stages
    lanes: dict[str, list[Stage]] = {}
    for stage in stages:
        lanes.setdefault(lane_of(stage.name), []).append(stage)
    main = lanes.pop(MAIN_LANE)
    masked = bool(mask_lines(record.spec))
    columns = tuple(
        lane for lane in (MASK_LANE, *ROLES) if lane in lanes or (lane == MASK_LANE and masked)
    )
    steps = _merged_steps([[_row_step(s.name) for s in lanes.get(role, [])] for role in ROLES])
    lane_rows = len(steps)
    previous = {s.name: p for lane in lanes.values() for p, s in pairwise(lane)}
    previous |= {s.name: p for p, s in pairwise(main)}

    boxes: list[Box] = []
    for lane, chain in lanes.items():
        for stage in chain:
            # valid_lens repeated per head sits on the lanes' last row, above the mask box
            row = steps.index(_row_step(stage.name)) if _row_step(stage.name) in steps else -1
            row = lane_rows - 1 if row < 0 else row
            boxes.append(_box(record, stage, previous.get(stage.name), lane, row))
    meet, weigh = main[0].name, "weighted_sum"
    for offset, stage in enumerate(main):
        span = {meet: ("queries", "keys"), weigh: ("queries", "values")}.get(stage.name)
        boxes.append(
            _box(record, stage, previous.get(stage.name), MAIN_LANE, lane_rows + offset, span)
        )
    last_row = lane_rows + len(main)
    boxes.append(Box(OUTPUT, "output", "", "output", MAIN_LANE, last_row))
    softmax = next((s.name for s in main if s.name == "masked_softmax"), None)
    if masked and softmax is not None:
        row = next(b.row for b in boxes if b.key == softmax)
        boxes.append(Box(MASK, "mask", "\n".join(mask_lines(record.spec)), "mask", MASK_LANE, row))

    edges = _edges(lanes, main, meet, weigh, masked and softmax is not None)
    notes = diagram_notes(record)
    return Diagram(title, columns, last_row + 1, boxes, edges, notes, _groups(boxes))


def _groups(boxes: list[Box]) -> list[Group]:
    """The rows of `transpose_qkv` (the head split and fold of the lanes) and of
    `transpose_output` (the unfold and concatenation after the weighted sum)."""
    groups = []
    split = [b for b in boxes if b.lane in ROLES and step_of(b.key) in TRANSPOSE_QKV_STEPS]
    if split:
        roles = [lane for lane in ROLES if any(b.lane == lane for b in split)]
        rows = (min(b.row for b in split), max(b.row for b in split))
        groups.append(Group("transpose_qkv", (roles[0], roles[-1]), rows))
    unfold = [b.row for b in boxes if b.key.startswith("output.")]
    if unfold:
        groups.append(Group("transpose_output", (MAIN_LANE, MAIN_LANE), (min(unfold), max(unfold))))
    return groups


def _box(
    record: RunRecord,
    stage: Stage,
    before: Stage | None,
    lane: str,
    row: int,
    span: tuple[str, str] | None = None,
) -> Box:
    kind, detail = describe(stage, before, record)
    stack, stack_label = stack_count(stage, record.summary.num_heads)
    return Box(
        stage.name,
        title_of(stage, record.spec),
        detail,
        kind,
        lane,
        row,
        span,
        stack,
        stack_label,
        stage.params,
    )


def _edges(
    lanes: dict[str, list[Stage]], main: list[Stage], meet: str, weigh: str, mask: bool
) -> list[Edge]:
    """Each stage's output goes to the next step of its lane; the lanes' last tensors go where
    they meet: queries and keys to the scores, values to the weighted sum, valid_lens to the
    mask."""
    ends = {"queries": meet, "keys": meet, "values": weigh, MASK_LANE: MASK}
    edges = []
    for lane, chain in lanes.items():
        targets = [s.name for s in chain[1:]] + [ends[lane]]
        edges += [_edge(stage, target) for stage, target in zip(chain, targets, strict=True)]
        if lane == MASK_LANE and not mask:  # valid_lens without a softmax to mask: no arrow
            edges.pop()
    targets = [s.name for s in main[1:]] + [OUTPUT]
    edges += [_edge(stage, target) for stage, target in zip(main, targets, strict=True)]
    if mask:
        edges.append(Edge(MASK, "masked_softmax", None, None, note="masked scores → -1e6"))
    return edges


def _edge(stage: Stage, target: str) -> Edge:
    return Edge(stage.name, target, stage.name, stage.shape, stage.axes)


def _merged_steps(sequences: list[list[str]]) -> list[str]:
    """One order of the lanes' steps in which each lane's own order holds: a step missing from
    the order goes right after the step before it in its lane."""
    order: list[str] = []
    for sequence in sequences:
        for index, step in enumerate(sequence):
            if step in order:
                continue
            after = order.index(sequence[index - 1]) + 1 if index else 0
            order.insert(after, step)
    return order


def diagram_notes(record: RunRecord) -> list[str]:
    """The figures under the picture: totals, which query heads share a key-value head, masks."""
    from mha_cli.diagrams.texts import sharing_text
    from mha_cli.render import numbers

    summary = record.summary
    notes = [
        f"parameters {numbers.count(summary.total_params)}  ·  FLOPs "
        f"{numbers.count(summary.total_flops)}  ·  activations "
        f"{numbers.size(summary.activation_bytes)} ({record.spec.dtype})"
    ]
    sharing = sharing_text(record)
    if sharing:
        notes.append(sharing)
    if record.spec.value_mode == "full":
        concat, out = record.stage("output.concat"), record.stage("W_o")
        notes.append(
            f"values kept whole: every head weighs all {record.stage('W_v').shape[-1]} "
            f"value features, so the heads concatenate to {concat.shape[-1]} and W_o has "
            f"{numbers.count(out.params)} parameters"
        )
    if not record.spec.causal:  # padding alone: which keys each example masks
        masked = summary.masked_keys
        notes += [f"example {m.example}: {m.description}" for m in masked[:SHOWN_EXAMPLES]]
        if len(masked) > SHOWN_EXAMPLES:
            notes.append(f"... and {len(masked) - SHOWN_EXAMPLES} more examples (mha inspect)")
    return [*notes, *ORIGIN]
