"""`mha heatmap --out view.html`: the self-contained interactive page. What is in the file
(no URL, the run's exact weights, the masks, the labels), the command's messages, and the
page itself in a real headless Chromium (Debian's package, driven by selenium): it loads from
a file:// URL with no console error, shows the tokens, a click changes what is highlighted,
and another head draws another heatmap. Where no browser can be started those tests skip and
say why."""

from __future__ import annotations

import base64
import json
import re
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from oracles import einsum_attention

import mha_cli
from mha_cli.files.sources import resolve
from mha_cli.heatmaps.data import HeatmapData
from mha_cli.heatmaps.page import page_data, page_html, token_labels, write_page
from mha_cli.heatmaps.plot_data import heatmap_data
from mha_cli.layer.run import run_attention
from mha_cli.spec.spec import AttentionSpec

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
TOKENS = ["<s>", "Ġthe", "Ġcat", "Ġsat", "Ġon", "Ġthe", "Ġmat", "."]


def _payload(page: str) -> dict:
    found = re.search(r'<script id="data" type="application/json">(.*?)</script>', page, re.S)
    assert found is not None
    return json.loads(found.group(1))


def _decode(row: dict, head: int, shape: tuple[int, int]) -> np.ndarray:
    """A head's (q, k) weights as the page stores them: its mask's bits, then the unmasked
    weights as float32, row by row; masked cells NaN."""
    masks = row["masks"]
    bits = np.frombuffer(base64.urlsafe_b64decode(masks[head if len(masks) > 1 else 0]), "u1")
    masked = np.unpackbits(bits)[: shape[0] * shape[1]].reshape(shape).astype(bool)
    out = np.full(shape, np.nan)
    out[~masked] = np.frombuffer(base64.urlsafe_b64decode(row["weights"][head]), dtype="<f4")
    return out


def _no_url(page: str, words: tuple[str, ...] = ("http",)) -> None:
    """Nothing in the page can reach a network: no scheme, no src/href, no CSS url(); and
    none of `words` (a user's text may say "http", but never as a link)."""
    lowered = page.lower()
    for needle in ("://", "src=", "href=", "url(", "@import", "<link", "<iframe", *words):
        assert needle not in lowered, needle


def _self_attention_data(heads: int = 3, n: int = 8) -> HeatmapData:
    """A causal self-attention of `n` tokens whose heads differ: head 0 attends to the first
    token, head 1 to the previous one, head 2 to itself (plus a little everywhere)."""
    causal = np.triu(np.ones((n, n), dtype=bool), 1)
    weights = np.zeros((1, heads, n, n))
    for h in range(heads):
        for q in range(n):
            row = np.full(q + 1, 0.1 / (q + 1))
            target = [0, max(q - 1, 0), q][h % 3]
            row[target] += 0.9
            weights[0, h, q, : q + 1] = row / row.sum()
    return HeatmapData(weights, np.broadcast_to(causal, weights.shape), "a test run")


# --- the file --------------------------------------------------------------------------------


def test_cli_writes_one_self_contained_page_and_says_so(cli, tmp_path):
    result = cli("heatmap", "--out", str(tmp_path / "view.html"))
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[-1] == f"wrote {tmp_path / 'view.html'}"
    assert [p.name for p in tmp_path.iterdir()] == ["view.html"]  # no temporary file left
    page = (tmp_path / "view.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<canvas" in page
    _no_url(page)
    data = _payload(page)
    # Which run made it: the spec's sizes, and the chapter's title.
    assert "heads 5" in data["run"] and "valid_lens [3, 2]" in data["run"]
    assert "heads 5" in page and "random weights (seed 0)" in page
    assert f"page written by mha {mha_cli.__version__}" in page
    assert data["rowName"] == "example" and [r["name"] for r in data["rows"]] == [
        "example 0",
        "example 1",
    ]
    # No tokens in this run: positions name the rows and columns.
    assert data["rows"][0]["queries"] == ["q0", "q1", "q2", "q3"]
    assert data["rows"][0]["keys"] == [f"k{i}" for i in range(6)]
    assert len(page) < 40_000  # the chapter's example: small


def test_page_weights_are_the_runs_and_the_oracles_and_masked_cells_are_nan(tmp_path):
    spec = AttentionSpec(valid_lens=((1, 2, 3, 4), (6, 5, 4, 3)), causal=True, bias=True)
    run = run_attention(resolve(spec))
    data = page_data(heatmap_data(run), report=run)
    lens = torch.tensor(spec.valid_lens)
    t = run.tensors
    _, expected = einsum_attention(
        t["queries"], t["keys"], t["values"], run.parameters, 5, 5, lens, causal=True
    )
    mask = run.mask.numpy()
    for b, row in enumerate(data["rows"]):
        for h in range(data["heads"]):
            got = _decode(row, h, (data["queries"], data["keys"]))
            assert (np.isnan(got) == mask[b, h]).all()  # masked cells, and only those, NaN
            want = expected[b, h].double().numpy()
            assert np.nanmax(np.abs(got - want)) < 1e-5  # float32 carries them whole
            assert np.nanmax(np.abs(got - run.attention_weights[b, h].numpy())) <= 1e-7


def test_heads_with_masks_of_their_own_and_a_causal_map_costs_half():
    rng = np.random.default_rng(0)
    weights = rng.random((1, 3, 5, 7))
    masked = rng.random((1, 3, 5, 7)) < 0.4  # a traced module's zeros differ per head
    payload = page_data(HeatmapData(weights, masked, "t"))
    row = payload["rows"][0]
    assert len(row["masks"]) == 3
    for h in range(3):
        got = _decode(row, h, (5, 7))
        assert (np.isnan(got) == masked[0, h]).all()
        assert np.nanmax(np.abs(got - weights[0, h])) < 1e-7
    causal = _self_attention_data(n=32)
    unmasked = HeatmapData(causal.weights, np.zeros_like(causal.masked), "t")

    def size(data: HeatmapData) -> int:
        return sum(len(text) for text in page_data(data)["rows"][0]["weights"])

    assert size(causal) < 0.55 * size(unmasked)


def test_python_api_writes_the_page_and_returns_its_path(tmp_path):
    path = mha_cli.heatmap(out=tmp_path / "api.html", heads=2, hiddens=16, valid_lens="2,5")
    assert path == tmp_path / "api.html"
    data = _payload(path.read_text(encoding="utf-8"))
    assert data["heads"] == 2 and "heads 2" in data["run"]


def test_python_api_out_names_an_image_too(tmp_path):
    assert mha_cli.heatmap(out=tmp_path / "grid.png") == tmp_path / "grid.png"
    assert (tmp_path / "grid.png").read_bytes().startswith(b"\x89PNG")


def test_tokens_label_the_page_padding_found_from_the_mask_and_urls_escaped():
    data = _self_attention_data()
    tokens = [["https://example.org/a", *TOKENS[1:]]]
    page = page_html(data, tokens=tokens)
    _no_url(page, words=())  # a token holding a link does not put a URL in the file
    payload = _payload(page)
    assert payload["tokens"] is True
    assert payload["rows"][0]["queries"][1:3] == ["·the", "·cat"]
    # Markup in a token stays text: the data block cannot be closed from inside.
    tricky = page_html(data, tokens=[["</script><b>&", *TOKENS[1:]]])
    assert tricky.count("</script>") == 2  # the data block's and the script's own
    assert _payload(tricky)["rows"][0]["keys"][0] == "</script><b>&"
    assert payload["rows"][0]["queries"][0] == "https://example…"  # shortened to 16
    # A padded example (right or left): the tokens go to the positions that are not padding.
    weights = np.full((1, 1, 4, 4), 0.5)
    masked = np.zeros((1, 1, 4, 4), dtype=bool)
    masked[..., :, 0] = True  # position 0 is padding: masked as a key for every query
    masked[..., 0, :] = True
    padded = page_data(HeatmapData(weights, masked, "t"), tokens=[["a", "b", "c"]])
    assert padded["rows"][0]["keys"] == ["[pad]", "a", "b", "c"]
    # Padding on the right whose own rows still see keys: the keys' padding names both.
    masked = np.zeros((1, 1, 4, 4), dtype=bool)
    masked[..., :, 3] = True
    right = page_data(HeatmapData(weights, masked, "t"), tokens=[["a", "b", "c"]])
    assert right["rows"][0]["queries"] == right["rows"][0]["keys"] == ["a", "b", "c", "[pad]"]
    assert right["rows"][0]["padding"] == [3] and padded["rows"][0]["padding"] == [0]


def test_token_labels_show_space_marks_and_stay_short():
    assert token_labels(["Ġcat"])[0] == "·cat" and token_labels(["▁cat"])[0] == "·cat"
    assert token_labels(["Ċ"])[0] == "↵" and token_labels([""])[0] == "∅"
    assert len(token_labels(["x" * 40])[0]) == 16


def test_several_layers_in_one_page_and_the_runs_figures_carried():
    # The model view's data (--layer all): rows are layers; figures the run computed travel.
    data = _self_attention_data()
    layers = HeatmapData(np.concatenate([data.weights] * 2), data.masked[[0, 0]], "two layers")
    pattern = SimpleNamespace(
        head=1,
        layer=1,
        sink=0.1,
        previous=0.91,
        itself=float("nan"),
        distance=1.3,
        role="prev 0.91",
    )
    report = SimpleNamespace(
        spec=None, text=SimpleNamespace(tokens=[TOKENS], heads=[pattern], model="m", layer=None)
    )
    payload = page_data(layers, report=report, row_name="layer")
    assert [r["name"] for r in payload["rows"]] == ["layer 0", "layer 1"]
    assert payload["rows"][1]["queries"] == token_labels(TOKENS)
    assert payload["rows"][1]["summaries"][1]["previous"] == 0.91
    assert payload["rows"][1]["summaries"][1]["words"] == "prev 0.91"
    assert payload["rows"][1]["summaries"][1]["itself"] is None  # NaN: none, JSON stays JSON
    page_html(layers, report=report, row_name="layer")
    assert payload["rows"][0]["summaries"][1] == {}  # layer 0 carries none: the page computes
    assert payload["run"] == "model m"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--per-head"], "the page holds every head already; drop --per-head"),
        (["--image-format", "svg"], "is the interactive page, not an image; drop --image-format"),
    ],
)
def test_page_refusals_are_one_line(cli, tmp_path, args, message):
    result = cli("heatmap", "--out", str(tmp_path / "view.html"), *args)
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "view.html").exists()


def test_page_in_a_missing_folder_is_refused_before_the_run(cli, tmp_path):
    result = cli("heatmap", "--out", str(tmp_path / "nowhere" / "view.html"))
    assert result.exit_code == 2
    assert "folder" in result.stderr and "does not exist" in result.stderr


# --- the page in a real browser --------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """One headless Chromium (Debian's package) for the module, driven by selenium through
    Debian's chromedriver; skipped, with the reason, where any of them is missing."""
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')"
    )
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if shutil.which(path) is None:
            pytest.skip(f"no {path}: install Debian's {package} (.ci/run does, as root)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1300,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    try:
        driver = webdriver.Chrome(options=options, service=service)
    except Exception as exc:  # any failure to start is a reason to skip
        pytest.skip(f"headless Chromium did not start: {str(exc).splitlines()[0]}")
    driver.set_page_load_timeout(20)
    yield driver
    driver.quit()


def _open(driver, path: Path) -> list[dict]:
    driver.get(path.resolve().as_uri())
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def _chips(driver, side: str) -> list:
    return driver.find_elements("css selector", f"#{side} .chip")


def test_browser_click_highlights_and_another_head_draws_another_map(browser, tmp_path):
    start = time.perf_counter()
    path = write_page(tmp_path / "tokens.html", _self_attention_data(), tokens=[TOKENS])
    assert _open(browser, path) == []  # no console error
    assert browser.find_element("id", "errors").text == ""
    # The tokens are shown, as the page labels them.
    shown = [chip.text for chip in _chips(browser, "queries")]
    assert shown == token_labels(TOKENS)
    # A click on a query token: it is outlined, the keys are shaded by its weights, masked
    # (future) keys are hatched; head 1 attends to the previous token.
    browser.find_elements("css selector", "#heads button")[1].click()
    assert browser.find_element("tag name", "body").get_attribute("data-head") == "1"
    keys = _chips(browser, "keys")
    assert all(chip.get_attribute("data-weight") == "" for chip in keys)
    _chips(browser, "queries")[3].click()
    body = browser.find_element("tag name", "body")
    assert body.get_attribute("data-query") == "3" and body.get_attribute("data-key") == "3"
    assert "selected" in _chips(browser, "queries")[3].get_attribute("class")
    weights = [chip.get_attribute("data-weight") for chip in _chips(browser, "keys")]
    assert weights[4:] == ["masked"] * 4
    assert max(range(4), key=lambda k: float(weights[k])) == 2  # the previous token
    assert abs(sum(float(w) for w in weights[:4]) - 1) < 1e-3
    assert "masked" in _chips(browser, "keys")[5].get_attribute("class")
    assert "attends to" in browser.find_element("id", "readout").text
    # What attends to token 3: the queries shaded by their weight on it.
    column = [chip.get_attribute("data-weight") for chip in _chips(browser, "queries")]
    assert column[:3] == ["masked"] * 3 and float(column[4]) > 0.5
    # Another head: another heatmap drawn.
    canvas = "return document.getElementById('map').toDataURL();"
    before = browser.execute_script(canvas)
    browser.find_elements("css selector", "#heads button")[2].click()
    after = browser.execute_script(canvas)
    assert after != before
    assert browser.find_element("id", "map").get_attribute("data-head") == "2"
    # The head summary computed in the page names what each head does.
    words = [
        row.find_elements("tag name", "td")[-1].text
        for row in browser.find_elements("css selector", "#summary-table tbody tr")
    ]
    assert words[0].startswith("first token") and words[1].startswith("previous token")
    assert words[2].startswith("itself")
    assert time.perf_counter() - start < 20


def test_browser_opens_the_commands_page_with_no_console_error(browser, cli, tmp_path):
    assert cli("heatmap", "--causal", "--out", str(tmp_path / "view.html")).exit_code == 0
    assert _open(browser, tmp_path / "view.html") == []
    assert [chip.text for chip in _chips(browser, "keys")] == [f"k{i}" for i in range(6)]
    # A key: the queries are shaded by their weight on it (what attends to it).
    _chips(browser, "keys")[1].click()
    column = [chip.get_attribute("data-weight") for chip in _chips(browser, "queries")]
    assert all(0 < float(w) < 1 for w in column)  # no padding among example 0's queries
    assert browser.find_element("tag name", "body").get_attribute("data-query") == ""
    rows = browser.find_elements("css selector", "#row option")
    assert [r.text for r in rows] == ["example 0", "example 1"]
    before = browser.execute_script("return document.getElementById('map').toDataURL();")
    browser.execute_script(
        "const s = document.getElementById('row'); s.value = '1';"
        "s.dispatchEvent(new Event('change'));"
    )
    assert browser.find_element("id", "summary-title").text == "heads of example 1"
    assert browser.execute_script("return document.getElementById('map').toDataURL();") != before
    assert browser.find_element("id", "errors").text == ""
