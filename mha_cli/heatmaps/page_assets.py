"""The interactive page's markup, style and script (`page.py` fills in the data).

Plain strings with no URL in them: nothing is fetched, and a test checks it. The script is
ES2017 with no library: it decodes each head's weights when first shown, draws the heatmap in
a <canvas> (masked cells hatched grey, never a colour of the scale), shades the tokens by the
chosen query's weights (and the queries by the chosen key's), and sums up every head.
"""

from __future__ import annotations

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
__STYLE__
</style>
</head>
<body>
<header>
<h1>__HEADING__</h1>
<p class="run">run: <span id="run">__RUN__</span>; page written by mha __VERSION__</p>
</header>
<div id="controls">
<label id="row-control"><span id="row-name">example</span> <select id="row"></select></label>
<span class="control-name">head</span> <span id="heads" role="group"></span>
</div>
<p class="hint">Hover or click a query token to see where it attends (its row of the heatmap
outlined, the keys shaded by its weights); hover or click a key to see what attends to it.
Click a cell of the heatmap to pin both. Keys: &larr; &rarr; change head, &uarr; &darr;
change query.</p>
<section id="tokens">
<div class="strip"><span class="strip-name">queries</span>
<div id="queries" class="chips"></div></div>
<div class="strip"><span class="strip-name">keys</span>
<div id="keys" class="chips"></div></div>
<p id="readout"></p>
</section>
<div id="main">
<figure id="map-box">
<canvas id="map" aria-label="heatmap of the chosen head"></canvas>
<figcaption id="legend">
<canvas id="colorbar" width="220" height="12"></canvas>
<span id="scale-text"></span>
<span class="swatch masked-swatch"></span> <span id="mask-text"></span>
</figcaption>
</figure>
<aside id="summary">
<h2 id="summary-title">heads</h2>
<table id="summary-table">
<thead><tr><th>head</th><th title="share of attention on the first key">first</th>
<th title="share on the previous position (queries after the first)">previous</th>
<th title="share on the query's own position">itself</th>
<th title="mean |query - key| position, weighted by attention">mean distance</th>
<th>in words</th></tr></thead>
<tbody></tbody>
</table>
<p id="summary-source"></p>
</aside>
</div>
<pre id="errors" hidden></pre>
<script id="data" type="application/json">__DATA__</script>
<script>
__SCRIPT__
</script>
</body>
</html>
"""

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.2em 1.5em;
  color: #222; background: #fff; }
h1 { font-size: 1.05em; font-weight: 600; margin: 0 0 0.2em 0; }
.run { margin: 0 0 0.8em 0; color: #555; font-size: 0.9em; }
#controls { display: flex; flex-wrap: wrap; align-items: center; gap: 0.4em 0.8em; }
.control-name, #row-name { font-weight: 600; }
#heads button { font: inherit; min-width: 2.2em; padding: 0.15em 0.4em; margin: 0 0.1em 0.2em 0;
  border: 1px solid #999; background: #f4f4f4; border-radius: 3px; cursor: pointer; }
#heads button[aria-pressed="true"] { background: #2a6fdb; color: #fff; border-color: #2a6fdb; }
.hint { color: #666; font-size: 0.85em; max-width: 60em; }
.strip { display: flex; align-items: flex-start; gap: 0.6em; margin: 0.3em 0; }
.strip-name { width: 4.5em; flex: none; color: #555; font-size: 0.85em; padding-top: 0.2em; }
.chips { display: flex; flex-wrap: wrap; gap: 3px; }
.chip { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
  font-size: 0.85em; padding: 1px 5px; border-radius: 3px; background: #eee; cursor: pointer;
  white-space: pre; border: 2px solid transparent; }
.chip.selected { border-color: #e4572e; }
.chip.masked { background: repeating-linear-gradient(45deg, #e4e4e4 0 4px, #bdbdbd 4px 5px);
  color: #555; }
#readout { min-height: 1.3em; font-size: 0.9em; color: #333; }
#main { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; margin-top: 0.5em; }
#map-box { margin: 0; }
#map { display: block; cursor: crosshair; }
#legend { font-size: 0.8em; color: #444; margin-top: 0.4em; display: flex; align-items: center;
  gap: 0.5em; flex-wrap: wrap; }
.swatch { display: inline-block; width: 14px; height: 14px; border: 1px solid #888; }
.masked-swatch { background: repeating-linear-gradient(45deg, #d4d4d4 0 4px, #8a8a8a 4px 5px); }
#summary { font-size: 0.85em; max-width: 34em; }
#summary h2 { font-size: 1em; margin: 0 0 0.4em 0; }
#summary table { border-collapse: collapse; }
#summary th, #summary td { padding: 2px 8px; text-align: right; border-bottom: 1px solid #eee;
  white-space: nowrap; }
#summary th:last-child, #summary td:last-child { text-align: left; }
#summary tbody tr { cursor: pointer; }
#summary tbody tr.current { background: #e8f0fd; font-weight: 600; }
#summary-source { color: #666; }
#errors { color: #b00; white-space: pre-wrap; }
"""

SCRIPT = r"""
"use strict";
window.addEventListener("error", function (e) {
  const box = document.getElementById("errors");
  box.hidden = false;
  box.textContent += "page error: " + (e.message || e) + "\n";
});
(function () {
  const DATA = JSON.parse(document.getElementById("data").textContent);
  const Q = DATA.queries, K = DATA.keys, H = DATA.heads;
  const state = { row: 0, head: 0, query: null, key: null, hover: null };
  const cache = new Map();
  const $ = function (id) { return document.getElementById(id); };

  function bytesOf(text) {
    const raw = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
    const bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) { bytes[i] = raw.charCodeAt(i); }
    return bytes;
  }

  /* A head's (Q x K) weights, row by row; masked cells NaN. */
  function weightsOf(row, head) {
    const id = row * H + head;
    if (cache.has(id)) { return cache.get(id); }
    const masks = DATA.rows[row].masks;
    const bits = bytesOf(masks[masks.length > 1 ? head : 0]);
    const view = new DataView(bytesOf(DATA.rows[row].weights[head]).buffer);
    const out = new Float32Array(Q * K);
    let next = 0;
    for (let i = 0; i < Q * K; i++) {
      if (bits[i >> 3] & (128 >> (i & 7))) { out[i] = NaN; continue; }
      out[i] = view.getFloat32(4 * next, true);
      next++;
    }
    cache.set(id, out);
    return out;
  }

  const RGB = DATA.colours.map(function (hex) {
    return [1, 3, 5].map(function (i) { return parseInt(hex.slice(i, i + 2), 16); });
  });
  function fraction(v) {
    const s = DATA.scale;
    if (s.kind === "linear") { return Math.max(0, Math.min(1, v / s.vmax)); }
    const low = Math.log(s.vmin), high = Math.log(s.vmax);
    return Math.max(0, Math.min(1, (Math.log(Math.max(v, s.vmin)) - low) / (high - low)));
  }
  function rgb(f) {
    const x = f * (RGB.length - 1), i = Math.min(RGB.length - 2, Math.floor(x)), t = x - i;
    const c = [0, 1, 2].map(function (j) {
      return Math.round(RGB[i][j] + t * (RGB[i + 1][j] - RGB[i][j]));
    });
    return "rgb(" + c.join(",") + ")";
  }
  function colourOf(v) { return rgb(fraction(v)); }
  function fmt(v) { return Number.isNaN(v) ? "masked" : v.toFixed(4); }
  function fmt2(v) { return (v === null || v === undefined) ? "\u2013" : v.toFixed(2); }

  function shown() {
    const h = state.hover;
    return h !== null ? h : { query: state.query, key: state.key };
  }

  function hatch(ctx) {
    const tile = document.createElement("canvas");
    tile.width = 6; tile.height = 6;
    const t = tile.getContext("2d");
    t.fillStyle = DATA.mask.face; t.fillRect(0, 0, 6, 6);
    t.strokeStyle = DATA.mask.hatch; t.lineWidth = 1;
    t.beginPath(); t.moveTo(0, 6); t.lineTo(6, 0); t.moveTo(-1, 1); t.lineTo(1, -1);
    t.moveTo(5, 7); t.lineTo(7, 5); t.stroke();
    return ctx.createPattern(tile, "repeat");
  }

  const canvas = $("map");
  const geometry = { cell: 8, left: 0, top: 0 };

  function drawMap() {
    const row = DATA.rows[state.row], w = weightsOf(state.row, state.head);
    /* Room beside the head summary where the window has it; every label up to ~64 tokens. */
    const room = Math.max(320, Math.min(720, window.innerWidth - 620));
    const cell = Math.max(5, Math.min(36, Math.floor(room / Math.max(Q, K))));
    const font = Math.max(8, Math.min(12, cell - 2));
    const ctx0 = canvas.getContext("2d");
    ctx0.font = font + "px ui-monospace, monospace";
    const step = Math.max(1, Math.ceil((font + 2) / cell));
    const widest = function (labels) {
      return labels.reduce(function (m, s) { return Math.max(m, ctx0.measureText(s).width); }, 0);
    };
    const left = Math.ceil(widest(row.queries)) + 10, top = Math.ceil(widest(row.keys)) + 10;
    const width = left + K * cell + 4, height = top + Q * cell + 4;
    const ratio = window.devicePixelRatio || 1;
    canvas.width = Math.round(width * ratio); canvas.height = Math.round(height * ratio);
    canvas.style.width = width + "px"; canvas.style.height = height + "px";
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, width, height);
    const pattern = hatch(ctx);
    for (let q = 0; q < Q; q++) {
      for (let k = 0; k < K; k++) {
        const v = w[q * K + k];
        ctx.fillStyle = Number.isNaN(v) ? pattern : colourOf(v);
        ctx.fillRect(left + k * cell, top + q * cell, cell, cell);
      }
    }
    const pick = shown();
    ctx.font = font + "px ui-monospace, monospace";
    ctx.textBaseline = "middle";
    for (let q = 0; q < Q; q++) {
      if (q % step !== 0 && q !== pick.query) { continue; }
      ctx.fillStyle = q === pick.query ? "#e4572e" : "#333";
      ctx.textAlign = "right";
      ctx.fillText(row.queries[q], left - 5, top + (q + 0.5) * cell);
    }
    for (let k = 0; k < K; k++) {
      if (k % step !== 0 && k !== pick.key) { continue; }
      ctx.save();
      ctx.translate(left + (k + 0.5) * cell, top - 5);
      ctx.rotate(-Math.PI / 2);
      ctx.fillStyle = k === pick.key ? "#e4572e" : "#333";
      ctx.textAlign = "left";
      ctx.fillText(row.keys[k], 0, 0);
      ctx.restore();
    }
    ctx.lineWidth = 2;
    ctx.strokeStyle = "#e4572e";
    if (pick.query !== null) {
      ctx.setLineDash([]);
      ctx.strokeRect(left - 1, top + pick.query * cell - 1, K * cell + 2, cell + 2);
    }
    if (pick.key !== null) {
      ctx.setLineDash([4, 3]);
      ctx.strokeRect(left + pick.key * cell - 1, top - 1, cell + 2, Q * cell + 2);
      ctx.setLineDash([]);
    }
    geometry.cell = cell; geometry.left = left; geometry.top = top;
    canvas.dataset.row = String(state.row);
    canvas.dataset.head = String(state.head);
  }

  function cellAt(event) {
    const box = canvas.getBoundingClientRect();
    const k = Math.floor((event.clientX - box.left - geometry.left) / geometry.cell);
    const q = Math.floor((event.clientY - box.top - geometry.top) / geometry.cell);
    return (q >= 0 && q < Q && k >= 0 && k < K) ? { query: q, key: k } : null;
  }

  function chips(id, labels, side) {
    const box = $(id);
    box.textContent = "";
    labels.forEach(function (label, i) {
      const chip = document.createElement("span");
      chip.className = "chip";
      chip.textContent = label;
      chip.dataset.index = String(i);
      chip.tabIndex = 0;
      chip.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { chip.click(); e.preventDefault(); }
      });
      chip.addEventListener("mouseenter", function () {
        state.hover = focusOn(side, i); update();
      });
      chip.addEventListener("mouseleave", function () { state.hover = null; update(); });
      chip.addEventListener("click", function () {
        const f = focusOn(side, i);
        const same = state.query === f.query && state.key === f.key;
        state.query = same ? null : f.query; state.key = same ? null : f.key;
        state.hover = null;
        update();
      });
      box.appendChild(chip);
    });
  }

  function selfAttention() { return DATA.tokens && Q === K; }

  function focusOn(side, i) {
    const both = selfAttention();
    return side === "queries"
      ? { query: i, key: both ? i : null }
      : { query: both ? i : null, key: i };
  }

  function shadeChips() {
    const w = weightsOf(state.row, state.head), pick = shown();
    const paint = function (id, weightOf, chosen) {
      $(id).querySelectorAll(".chip").forEach(function (chip, i) {
        const v = weightOf(i);
        chip.classList.toggle("selected", i === chosen);
        chip.classList.toggle("masked", v !== null && Number.isNaN(v));
        if (v === null || Number.isNaN(v)) {
          chip.style.background = ""; chip.style.color = "";
        } else {
          chip.style.background = colourOf(v);
          chip.style.color = fraction(v) > 0.6 ? "#111" : "#fff";
        }
        chip.dataset.weight = v === null ? "" : fmt(v);
        chip.title = v === null ? "" : "weight " + fmt(v);
      });
    };
    paint("keys", function (k) {
      return pick.query === null ? null : w[pick.query * K + k];
    }, pick.key);
    paint("queries", function (q) {
      return pick.key === null ? null : w[q * K + pick.key];
    }, pick.query);
    const row = DATA.rows[state.row], parts = [];
    const top = function (values, labels, skip) {
      return values.map(function (v, i) { return [v, i]; })
        .filter(function (p) { return !Number.isNaN(p[0]) && skip.indexOf(p[1]) < 0; })
        .sort(function (a, b) { return b[0] - a[0]; }).slice(0, 3)
        .map(function (p) { return "\u201c" + labels[p[1]] + "\u201d " + p[0].toFixed(2); })
        .join(", ");
    };
    if (pick.query !== null) {
      const line = Array.from(w.subarray(pick.query * K, (pick.query + 1) * K));
      const most = top(line, row.keys, []);
      parts.push("query \u201c" + row.queries[pick.query] + "\u201d attends to " +
        (most || "nothing (all masked)"));
    }
    if (pick.key !== null) {
      const column = [];
      for (let q = 0; q < Q; q++) { column.push(w[q * K + pick.key]); }
      const most = top(column, row.queries, row.padding || []);
      parts.push("key \u201c" + row.keys[pick.key] + "\u201d is attended by " +
        (most || "no query"));
    }
    $("readout").textContent = parts.length ? parts.join("; ") + " (head " + state.head + ")" : "";
  }

  function figures(row, head) {
    const given = DATA.rows[row].summaries ? DATA.rows[row].summaries[head] : null;
    if (given && given.first !== undefined) { return Object.assign({ from: "run" }, given); }
    const w = weightsOf(row, head), padding = DATA.rows[row].padding || [];
    let n = 0, first = 0, prev = 0, nprev = 0, self = 0, nself = 0, dist = 0;
    for (let q = 0; q < Q; q++) {
      let real = false;
      for (let k = 0; k < K; k++) { if (!Number.isNaN(w[q * K + k])) { real = true; break; } }
      if (!real || padding.indexOf(q) >= 0) { continue; }
      n++;
      const at = function (k) { const v = w[q * K + k]; return Number.isNaN(v) ? 0 : v; };
      first += at(0);
      if (q >= 1 && q - 1 < K) { prev += at(q - 1); nprev++; }
      if (q < K) { self += at(q); nself++; }
      for (let k = 0; k < K; k++) { dist += at(k) * Math.abs(q - k); }
    }
    const f = {
      from: "page",
      first: n ? first / n : null,
      previous: nprev ? prev / nprev : null,
      itself: nself ? self / nself : null,
      distance: n ? dist / n : null,
      words: given && given.words ? given.words : ""
    };
    if (!f.words) {
      const named = [["first token", f.first], ["previous token", f.previous], ["itself", f.itself]]
        .filter(function (p) { return p[1] !== null; })
        .sort(function (a, b) { return b[1] - a[1]; });
      f.words = named.length && named[0][1] > 0.5
        ? named[0][0] + " " + named[0][1].toFixed(2)
        : "spread";
    }
    return f;
  }

  function summary() {
    const body = document.querySelector("#summary-table tbody");
    body.textContent = "";
    let fromRun = false;
    for (let h = 0; h < H; h++) {
      const f = figures(state.row, h);
      fromRun = fromRun || f.from === "run";
      const tr = document.createElement("tr");
      tr.dataset.head = String(h);
      if (h === state.head) { tr.className = "current"; }
      [String(h), fmt2(f.first), fmt2(f.previous), fmt2(f.itself),
       f.distance === null ? "\u2013" : f.distance.toFixed(1), f.words].forEach(function (text) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.appendChild(td);
      });
      tr.addEventListener("click", function () { setHead(h); });
      body.appendChild(tr);
    }
    $("summary-title").textContent = "heads of " + DATA.rows[state.row].name;
    $("summary-source").textContent = fromRun
      ? "figures from the run"
      : "figures computed in this page, averaged over the queries that see any key" +
        ((DATA.rows[state.row].padding || []).length ? " (padding left out)" : "");
  }

  function update() {
    document.querySelectorAll("#heads button").forEach(function (b, h) {
      b.setAttribute("aria-pressed", h === state.head ? "true" : "false");
    });
    document.body.dataset.row = String(state.row);
    document.body.dataset.head = String(state.head);
    const pick = shown();
    document.body.dataset.query = pick.query === null ? "" : String(pick.query);
    document.body.dataset.key = pick.key === null ? "" : String(pick.key);
    drawMap();
    shadeChips();
    document.querySelectorAll("#summary-table tbody tr").forEach(function (tr, h) {
      tr.classList.toggle("current", h === state.head);
    });
  }

  function setHead(h) { state.head = (h + H) % H; update(); }

  function setRow(r) {
    state.row = r; state.query = null; state.key = null; state.hover = null;
    const row = DATA.rows[r];
    chips("queries", row.queries, "queries");
    chips("keys", row.keys, "keys");
    summary();
    update();
  }

  $("row-name").textContent = DATA.rowName;
  DATA.rows.forEach(function (row, i) { $("row").add(new Option(row.name, String(i))); });
  if (DATA.rows.length < 2) { $("row").disabled = true; }
  $("row").addEventListener("change", function () { setRow(Number($("row").value)); });
  for (let h = 0; h < H; h++) {
    const b = document.createElement("button");
    b.type = "button"; b.textContent = String(h); b.dataset.head = String(h);
    b.addEventListener("click", function () { setHead(h); });
    $("heads").appendChild(b);
  }
  canvas.addEventListener("mousemove", function (e) { state.hover = cellAt(e); update(); });
  canvas.addEventListener("mouseleave", function () { state.hover = null; update(); });
  canvas.addEventListener("click", function (e) {
    const c = cellAt(e);
    if (c) { state.query = c.query; state.key = c.key; state.hover = null; update(); }
  });
  document.addEventListener("keydown", function (e) {
    if (e.target && e.target.tagName === "SELECT") { return; }
    if (e.key === "ArrowLeft") { setHead(state.head - 1); e.preventDefault(); }
    if (e.key === "ArrowRight") { setHead(state.head + 1); e.preventDefault(); }
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      const step = e.key === "ArrowDown" ? 1 : -1;
      const q = state.query === null ? 0 : (state.query + step + Q) % Q;
      const f = focusOn("queries", q);
      state.query = f.query; state.key = f.key; state.hover = null; update(); e.preventDefault();
    }
  });

  const bar = $("colorbar").getContext("2d");
  for (let x = 0; x < 220; x++) { bar.fillStyle = rgb(x / 219); bar.fillRect(x, 0, 1, 12); }
  const s = DATA.scale;
  $("scale-text").textContent = (s.kind === "log" ? "log scale " : "") +
    (s.kind === "log" ? s.vmin.toPrecision(2) : "0") + " \u2013 " + s.vmax.toPrecision(3) +
    " (one scale for every head)";
  $("mask-text").textContent = DATA.mask.label;
  setRow(0);
})();
"""
