"""The pictures need nothing newer than the declared matplotlib floor (3.8).

`hatchcolor=` on patches exists only from matplotlib 3.11; on 3.10 and older a patch given it
fails (`Patch.set() got an unexpected keyword argument 'hatchcolor'`). This test takes that
keyword away from the installed matplotlib, as 3.8 to 3.10 have it, and draws every picture
mha makes: heatmap grid, per-head files, the reshape render, masked cells and their legend.
(The whole suite also passes in a virtual environment with matplotlib 3.8.4 and numpy 1.26.)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.patches import Patch

from mha_cli.heatmaps.data import HeatmapData
from mha_cli.heatmaps.image import render_grid, render_per_head
from mha_cli.reshape.explain import explain_reshape
from mha_cli.reshape.image import render_layouts

REFUSED = "Patch.set() got an unexpected keyword argument 'hatchcolor'"


@pytest.fixture
def matplotlib_3_10(monkeypatch: pytest.MonkeyPatch) -> None:
    """`hatchcolor` refused wherever code outside matplotlib gives it: as a keyword of a patch,
    through `.set(...)`, or by calling `set_hatchcolor` (matplotlib 3.11 calls it itself)."""
    init, set_, set_hatchcolor = Patch.__init__, Patch.set, getattr(Patch, "set_hatchcolor", None)

    def refuse(kwargs: dict[str, object]) -> None:
        if "hatchcolor" in kwargs:
            raise TypeError(REFUSED)

    def patched_init(self: Patch, *args: object, **kwargs: object) -> None:
        refuse(kwargs)
        init(self, *args, **kwargs)

    def patched_set(self: Patch, **kwargs: object) -> object:
        refuse(kwargs)
        return set_(self, **kwargs)

    monkeypatch.setattr(Patch, "__init__", patched_init)
    monkeypatch.setattr(Patch, "set", patched_set)
    if set_hatchcolor is not None:

        def patched_set_hatchcolor(self: Patch, color: object) -> None:
            if not sys._getframe(1).f_globals.get("__name__", "").startswith("matplotlib"):
                raise AttributeError(
                    f"'{type(self).__name__}' object has no attribute 'hatchcolor'"
                )
            set_hatchcolor(self, color)

        monkeypatch.setattr(Patch, "set_hatchcolor", patched_set_hatchcolor)


def masked_data() -> HeatmapData:
    masked = np.zeros((2, 2, 3, 4), bool)
    masked[..., 2:] = True
    return HeatmapData(np.full((2, 2, 3, 4), 0.5), masked, "masked")


@pytest.mark.usefixtures("matplotlib_3_10")
@pytest.mark.parametrize("suffix", ["png", "svg", "pdf"])
def test_heatmaps_draw_without_hatchcolor(tmp_path: Path, suffix: str) -> None:
    assert render_grid(masked_data(), tmp_path / f"g.{suffix}", annotate=True).exists()
    one = HeatmapData(masked_data().weights[:1, :1], masked_data().masked[:1, :1], "one")
    assert render_per_head(one, tmp_path / "heads", fmt=suffix)[0].exists()


@pytest.mark.usefixtures("matplotlib_3_10")
def test_reshape_render_draws_without_hatchcolor(tmp_path: Path) -> None:
    weights = np.full((2, 1, 10), 0.1)
    masked = np.zeros((2, 1, 10), bool)
    masked[0, :, 2:] = True
    layouts = [explain_reshape((2, 1, 10), to) for to in ((1, 1, 2, 10), (2, 1, 1, 10))]
    assert render_layouts(weights, layouts, tmp_path / "r.png", masked=masked).exists()


@pytest.mark.usefixtures("matplotlib_3_10")
def test_the_stand_in_refuses_hatchcolor_and_keeps_the_rest() -> None:
    for use in (
        lambda: Patch(hatchcolor="grey"),
        lambda: Patch().set(hatchcolor="grey"),
        lambda: Patch().set_hatchcolor("grey"),
    ):
        with pytest.raises((TypeError, AttributeError), match="hatchcolor"):
            use()
    assert Patch(hatch="//", facecolor="grey").get_hatch() == "//"
