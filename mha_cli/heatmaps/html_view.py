"""`mha heatmap --text ... --out view.html`: a self-contained interactive page of the attention.

Everything is inline (script, style, data); there is no URL anywhere, so the page opens from a
file with no network. Choose the layer (or example) and the head; hover or click a token on the
left to see where it attends (the keys on the right shaded by its weights), or a token on the
right to see what attends to it. The per-head summary in words sits beside it.

A page opened as `view.html#selftest` clicks a token itself and writes what it found into
`<pre id="selftest">` (and any script error into `<pre id="errors">`), so a headless browser's
`--dump-dom` can check it with no driver.
"""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING, Any

from mha_cli.render.token_labels import labels

if TYPE_CHECKING:
    from mha_cli.heatmaps.data import HeatmapData
    from mha_cli.layer.role_records import HeadRole as HeadPattern

DIGITS = 4  # weights are rounded to this many decimals in the page


def view_data(data: HeatmapData, patterns: list[HeadPattern]) -> dict[str, Any]:
    """The page's data: per row (layer or example) and head, the real tokens' weights."""
    tokens = [labels(list(t)) for t in data.tokens or ()]
    rows, heads = data.weights.shape[0], data.weights.shape[1]
    words: dict[tuple[int, int], str] = {}
    for p in patterns:
        words[(p.layer if p.layer is not None else 0, p.head)] = p.describe()
    grids = []
    for row in range(rows):
        n = len(tokens[row])
        grids.append(
            [
                {
                    "weights": [
                        [round(float(w), DIGITS) for w in line[:n]]
                        for line in data.weights[row, head, :n]
                    ],
                    "words": words.get((row if data.row_name == "layer" else 0, head), ""),
                }
                for head in range(heads)
            ]
        )
    return {"rowName": data.row_name, "tokens": tokens, "grids": grids, "title": data.title}


def html_view(data: HeatmapData, patterns: list[HeadPattern]) -> str:
    payload = json.dumps(view_data(data, patterns), ensure_ascii=True).replace("</", "<\\/")
    return (
        PAGE.replace("__TITLE__", html.escape(data.title))
        .replace("__DATA__", payload)
        .replace("__SCRIPT__", SCRIPT)
    )


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>__TITLE__</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.1em; font-weight: 600; }
#controls { margin: 0.8em 0; }
#controls label { margin-right: 1.2em; }
#view { display: flex; gap: 2em; align-items: flex-start; }
.column { display: flex; flex-direction: column; }
.token { font-family: ui-monospace, monospace; padding: 1px 6px; margin: 1px 0;
  border-radius: 3px; cursor: pointer; white-space: pre; min-width: 4em; }
.token.chosen { outline: 2px solid #d62728; }
.column h2 { font-size: 0.85em; font-weight: 500; color: #666; margin: 0 0 0.4em 0; }
#words { max-width: 28em; font-size: 0.9em; }
#words p { margin: 0.3em 0; }
#errors, #selftest { display: none; }
</style>
</head>
<body>
<h1>__TITLE__</h1>
<div id="controls">
<label><span id="row-name"></span> <select id="row"></select></label>
<label>head <select id="head"></select></label>
</div>
<div id="view">
<div class="column"><h2>queries: hover or click</h2><div id="queries"></div></div>
<div class="column"><h2>keys: hover or click</h2><div id="keys"></div></div>
<div id="words"></div>
</div>
<pre id="errors"></pre>
<pre id="selftest"></pre>
<script id="data" type="application/json">__DATA__</script>
<script>
__SCRIPT__
</script>
</body>
</html>
"""

SCRIPT = """
"use strict";
window.addEventListener("error", function (e) {
  document.getElementById("errors").textContent += (e.message || "error") + "\\n";
});
const DATA = JSON.parse(document.getElementById("data").textContent);
const rowSelect = document.getElementById("row");
const headSelect = document.getElementById("head");
const state = { row: 0, head: 0, query: null, key: null };

function shade(weight) {
  const alpha = Math.max(0, Math.min(1, weight));
  return "rgba(31, 119, 180, " + alpha.toFixed(3) + ")";
}

function grid() { return DATA.grids[state.row][state.head].weights; }

function draw() {
  const tokens = DATA.tokens[state.row];
  const weights = grid();
  for (const side of ["queries", "keys"]) {
    const column = document.getElementById(side);
    column.textContent = "";
    tokens.forEach(function (token, i) {
      const cell = document.createElement("div");
      cell.className = "token";
      cell.textContent = token;
      cell.dataset.index = String(i);
      let weight = 0;
      if (side === "keys" && state.query !== null) { weight = weights[state.query][i]; }
      if (side === "queries" && state.key !== null) { weight = weights[i][state.key]; }
      cell.style.background = shade(weight);
      cell.style.color = weight > 0.55 ? "#fff" : "";
      cell.title = weight ? weight.toFixed(4) : "";
      if ((side === "queries" && i === state.query) || (side === "keys" && i === state.key)) {
        cell.classList.add("chosen");
      }
      const pick = function () {
        if (side === "queries") { state.query = i; state.key = null; }
        else { state.key = i; state.query = null; }
        draw();
      };
      cell.addEventListener("mouseenter", pick);
      cell.addEventListener("click", pick);
      column.appendChild(cell);
    });
  }
  const words = document.getElementById("words");
  words.textContent = "";
  DATA.grids[state.row].forEach(function (head, i) {
    if (!head.words) { return; }
    const line = document.createElement("p");
    line.textContent = head.words;
    if (i === state.head) { line.style.fontWeight = "600"; }
    words.appendChild(line);
  });
}

document.getElementById("row-name").textContent = DATA.rowName;
DATA.grids.forEach(function (_, i) { rowSelect.add(new Option(String(i), String(i))); });
DATA.grids[0].forEach(function (_, i) { headSelect.add(new Option(String(i), String(i))); });
rowSelect.addEventListener("change", function () {
  state.row = Number(rowSelect.value); state.query = null; state.key = null; draw();
});
headSelect.addEventListener("change", function () {
  state.head = Number(headSelect.value); draw();
});
draw();

if (location.hash === "#selftest") {
  const before = document.querySelectorAll("#keys .token")[0].style.background;
  document.querySelectorAll("#queries .token")[0].click();
  const after = document.querySelectorAll("#keys .token")[0].style.background;
  const shown = Array.from(document.querySelectorAll("#queries .token")).map(function (t) {
    return t.textContent;
  });
  document.getElementById("selftest").textContent = JSON.stringify({
    tokens: shown, before: before, after: after,
    chosen: document.querySelectorAll(".token.chosen").length,
    errors: document.getElementById("errors").textContent
  });
}
"""
