"""The reshape explainer: d2l's (2, 1, 10) question, the head fold, errors, and an oracle test.

The oracle is torch itself: for random shapes and targets, the pieces the explainer reports must
put every element exactly where `torch.arange(n).reshape(...)` puts it.
"""

from __future__ import annotations

import io
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from mha_cli.errors import MhaError
from mha_cli.reshape.explain import ReshapeExplanation, Verdict, explain_reshape, index_map
from mha_cli.reshape.image import render_layouts
from mha_cli.reshape.text import reshape_markdown, reshape_renderable

HEADS = "(batch=2 heads=5),queries,keys"


def test_d2l_book_layout_folds_batch_into_panel_rows() -> None:
    expl = explain_reshape("2,1,10", "1,1,2,10")
    assert expl.verdict is Verdict.FOLDED
    assert expl.made_of[2] == "batch"  # the panel's "Queries" axis is really the examples
    assert expl.message.startswith("batch (2) is folded into the panel rows")
    assert expl.suggested_shape == (2, 1, 1, 10)
    assert "(2, 1, 1, 10)" in expl.suggestion


def test_d2l_examples_apart_is_ok() -> None:
    expl = explain_reshape("(2, 1, 10)", "2, 1, 1, 10")
    assert expl.verdict is Verdict.OK
    assert expl.made_of == ("batch", "nothing (size 1)", "queries", "kv pairs")
    assert expl.suggestion == "" and expl.suggested_shape is None


def test_index_map_makes_the_fold_concrete() -> None:
    folded = index_map(explain_reshape("2,1,10", "1,1,2,10"))
    assert [m.rows for m in folded] == [("example 0, query 0", "example 1, query 0")]
    apart = index_map(explain_reshape("2,1,10", "2,1,1,10"))
    assert [(m.grid, m.title, m.rows) for m in apart] == [
        ((0, 0), "example 0", ("query 0",)),
        ((1, 0), "example 1", ("query 0",)),
    ]


def test_index_map_titles_show_what_a_mixed_grid_holds() -> None:
    panels = index_map(explain_reshape("10,4,6", "5,2,4,6", HEADS))
    assert [m.title for m in panels] == [
        "example 0, head 0",
        "example 0, head 1",
        "example 0, head 2",
        "example 0, head 3",
    ]
    assert panels[0].rows == ("query 0", "query 1", "query 2", "query 3")


def test_head_fold_batch_major_is_ok() -> None:
    expl = explain_reshape("10,4,6", "2,5,4,6", HEADS)
    assert expl.verdict is Verdict.OK
    assert expl.source_pattern == "(batch heads), queries, kv pairs"
    assert expl.made_of[:2] == ("batch", "heads")


def test_head_fold_unfolded_heads_first_is_mixed() -> None:
    expl = explain_reshape("10,4,6", "5,2,4,6", HEADS)
    assert expl.verdict is Verdict.MIXED
    assert {p.kind for k in (0, 1) for p in expl.pieces[k]} == {"mixed"}
    assert expl.message.startswith("(batch heads) is batch-major, so it unfolds as (2, 5)")
    assert "panel [1, 0] shows example 0, head 2" in expl.message
    assert expl.suggested_shape == (2, 5, 4, 6)


def test_head_fold_with_dividing_sizes_is_still_mixed() -> None:
    # 2 divides 8, so every piece is exact, yet a grid row that claims to be a head is not one
    expl = explain_reshape("16,4,6", "8,2,4,6", "(batch=2 heads=8),queries,keys")
    assert expl.verdict is Verdict.MIXED
    assert expl.made_of[:2] == ("batch x part of heads (4 of 8)", "part of heads (2 of 8)")
    assert explain_reshape("16,4,6", "2,8,4,6", "(batch=2 heads=8),queries,keys").verdict is (
        Verdict.OK
    )


def test_group_sizes_from_options_and_einops_letters() -> None:
    expl = explain_reshape("10,4,6", "5,2,4,6", "(b h) q k", sizes={"heads": 5})
    assert expl.verdict is Verdict.MIXED
    assert [(a.name, a.size) for a in expl.source_axes] == [
        ("batch", 2),
        ("heads", 5),
        ("queries", 4),
        ("kv pairs", 6),
    ]


@pytest.mark.parametrize(
    ("to", "verdict"),
    [("20", Verdict.NOT_4D), ("2,1,2,5", Verdict.SPLIT), ("1,2,1,10", Verdict.OK)],
)
def test_other_verdicts(to: str, verdict: Verdict) -> None:
    assert explain_reshape("2,1,10", to).verdict is verdict


def test_queries_on_the_grid_is_misplaced() -> None:
    assert explain_reshape("2,4,6", "2,4,1,6").verdict is Verdict.MISPLACED


def test_infer_minus_one() -> None:
    assert explain_reshape("2,1,10", "1,1,-1,10").target_shape == (1, 1, 2, 10)
    assert explain_reshape("10,4,6", "2,-1,4,6", HEADS).target_shape == (2, 5, 4, 6)


@pytest.mark.parametrize(
    ("shape", "to", "axes", "match"),
    [
        (
            "2,1,10",
            "1,1,3,10",
            None,
            r"^cannot reshape \(2, 1, 10\) \(20 elements\) to \(1, 1, 3, 10\) \(30 elements\); ",
        ),
        ("2,1,10", "3,-1", None, r"^cannot reshape \(2, 1, 10\) \(20 elements\) to \(3, -1\): "),
        ("2,1,10", "-1,-1,10", None, r"^--to \(-1, -1, 10\) has more than one -1"),
        ("2,0,10", "1", None, r"^--shape \(2, 0, 10\) has size 0"),
        ("2,x", "1", None, r"^--shape '2,x' is not a shape"),
        ("2,1,10", "2,1,1,10", "batch,queries", r"^--axes 'batch,queries' names 2 axes"),
        ("10,4,6", "2,5,4,6", "(batch heads),queries,keys", r"^--axes .*needs the sizes"),
        ("10,4,6", "2,5,4,6", "(batch=3 heads),queries,keys", r"^--axes .*can't divide"),
        ("10,4,6", "2,5,4,6", "(batch heads,queries,keys", r"^--axes .*not closed"),
    ],
)
def test_bad_input_is_one_clear_line(shape: str, to: str, axes: str | None, match: str) -> None:
    with pytest.raises(MhaError, match=match) as info:
        explain_reshape(shape, to, axes)
    assert "\n" not in str(info.value) and info.value.exit_code == 2


def test_to_dict_is_json() -> None:
    data = explain_reshape("10,4,6", "5,2,4,6", HEADS).to_dict()
    again = json.loads(json.dumps(data))
    assert again["verdict"] == "mixed" and again["target_shape"] == [5, 2, 4, 6]
    assert again["target"][0]["pieces"][0] == {
        "axes": ["batch", "heads"],
        "size": 5,
        "div": 2,
        "kind": "mixed",
    }


# --- oracle: the pieces agree with torch's row-major reshape -------------------------------


def _predict(expl: ReshapeExplanation, src_index: tuple[int, ...]) -> tuple[int, ...]:
    """Target index of an element from the reported pieces alone."""
    where = {a.name: (i, a.size) for a, i in zip(expl.source_axes, src_index, strict=True)}
    out = []
    for pieces in expl.pieces:
        value = 0
        for p in pieces:
            flat = 0
            for name in p.axes:  # ravel the piece's source axes, source order
                flat = flat * where[name][1] + where[name][0]
            value = value * p.size + (flat // p.div) % p.size
        out.append(value)
    return tuple(out)


@st.composite
def reshapes(draw: st.DrawFn) -> tuple[list[list[int]], tuple[int, ...]]:
    dims = draw(
        st.lists(st.lists(st.integers(1, 4), min_size=1, max_size=2), min_size=1, max_size=4)
    )
    total = math.prod(math.prod(d) for d in dims)
    primes = [p for p in (2, 3) for _ in range(20) if total % p ** (_ + 1) == 0]
    order = draw(st.permutations(primes))
    cuts = sorted(draw(st.lists(st.integers(0, len(order)), max_size=5)))
    bounds = [0, *cuts, len(order)]
    target = tuple(math.prod(order[a:b]) for a, b in itertools.pairwise(bounds))
    return dims, target


@settings(max_examples=300, deadline=None)
@given(reshapes())
def test_pieces_agree_with_torch(case: tuple[list[list[int]], tuple[int, ...]]) -> None:
    dims, target = case
    names = iter("abcdefgh")
    axes = ",".join(
        f"({' '.join(f'{next(names)}={n}' for n in d)})" if len(d) > 1 else next(names)
        for d in dims
    )
    shape = [math.prod(d) for d in dims]
    expl = explain_reshape(",".join(map(str, shape)), ",".join(map(str, target)), axes)
    sizes = [a.size for a in expl.source_axes]
    where = torch.arange(math.prod(sizes)).reshape(sizes).reshape(target)
    for index in np.ndindex(*target):
        flat = int(where[index])
        src_index = np.unravel_index(flat, sizes)
        assert _predict(expl, tuple(int(i) for i in src_index)) == index


# --- renderers ---------------------------------------------------------------------------


def _text(expl: ReshapeExplanation) -> str:
    console = Console(file=io.StringIO(), width=120, color_system=None)
    console.print(reshape_renderable(expl))
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_text_table_shows_roles_and_verdict() -> None:
    out = _text(explain_reshape("2,1,10", "1,1,2,10"))
    assert "panel rows" in out and "folded" in out and "(2, 1, 1, 10)" in out
    assert "example 1, query 0" in out


def test_text_keeps_bracketed_text() -> None:
    out = _text(explain_reshape("10,4,6", "5,2,4,6", "(b=2 h) q k"))
    assert "panel [1, 0] shows example 0, head 2" in out  # not swallowed as rich markup


def test_markdown() -> None:
    md = reshape_markdown(explain_reshape("2,1,10", "1,1,2,10"))
    assert "| 2 | 2 | panel rows | batch |" in md and "**folded**" in md


def _weights() -> np.ndarray:
    rng = np.random.default_rng(0)
    w = rng.random((2, 1, 10))
    return w / w.sum(-1, keepdims=True)


def _layouts(*targets: tuple[int, ...]) -> list[ReshapeExplanation]:
    return [explain_reshape((2, 1, 10), target) for target in targets]


@pytest.mark.parametrize(
    ("suffix", "magic"), [(".png", b"\x89PNG\r\n\x1a\n"), (".svg", b"<?xml"), (".pdf", b"%PDF")]
)
def test_render_layouts_writes_the_format(tmp_path: Path, suffix: str, magic: bytes) -> None:
    out = render_layouts(
        _weights(), _layouts((1, 1, 2, 10), (2, 1, 1, 10)), tmp_path / f"r{suffix}"
    )
    assert out.read_bytes().startswith(magic)
    assert [p.name for p in tmp_path.iterdir()] == [f"r{suffix}"]  # no temporary left behind


def test_render_layouts_png_size(tmp_path: Path) -> None:
    import matplotlib.image as mpimg

    out = render_layouts(
        _weights(), _layouts((1, 1, 2, 10), (2, 1, 1, 10)), tmp_path / "r.png", dpi=50
    )
    height, width = mpimg.imread(out).shape[:2]
    assert width > height > 50


def test_render_layouts_rejects_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(MhaError, match=r"^cannot write .*\.jpg: "):
        render_layouts(_weights(), _layouts((2, 1, 1, 10)), tmp_path / "r.jpg")
    assert not list(tmp_path.iterdir())


def test_the_explainer_and_the_stage_table_say_the_same_words(cli):
    """One axis vocabulary: the weights' axes read alike in `mha reshape` and `mha inspect`."""
    import json

    table = json.loads(cli("inspect", "--format", "json").stdout)
    softmax = next(s for s in table["stages"] if s["name"] == "masked_softmax")
    args = ["--shape", "10,4,6", "--axes", "(b h),q,k", "--batch", "2", "--to", "2,5,4,6"]
    explained = json.loads(cli("reshape", *args, "--format", "json").stdout)
    assert explained["source_pattern"] == ", ".join(softmax["axes"])
    assert {a["name"] for a in explained["source_axes"]} <= {"batch", "heads", *softmax["axes"]}
