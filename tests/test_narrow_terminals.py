"""At 80 and 100 columns the tables still read: nothing wider than the terminal, no word of
code or description cut in the middle."""

from __future__ import annotations

import json
import re

import pytest
from svg_text import flat

from mha_cli.spec.configs import preset_descriptions


@pytest.mark.parametrize("columns", [80, 100])
def test_presets_at_a_narrow_terminal_keeps_every_word_whole(cli_columns, columns):
    result = cli_columns(columns, "presets")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= columns
    text = flat(result.stdout)
    for name, values in preset_descriptions():
        assert any(line.startswith(name + " ") for line in lines), name
        assert flat(values["description"]) in text  # wrapped at spaces only, never cut
        assert f"{values['heads']} head" in text


def test_presets_in_a_wide_terminal_is_one_table_row_each(cli_columns):
    result = cli_columns(160, "presets")
    header = next(line for line in result.stdout.splitlines() if "kv heads" in line)
    assert re.search(r"name .*hiddens .*heads .*kv heads .*description", header)
    assert sum(line.startswith("│ ") for line in result.stdout.splitlines()) >= len(
        preset_descriptions()
    )


@pytest.mark.parametrize("columns", [80, 100])
def test_stage_table_at_a_narrow_terminal_keeps_code_words_whole(cli, cli_columns, columns):
    stages = json.loads(cli("inspect", "--format", "json").stdout)["stages"]
    result = cli_columns(columns, "inspect")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= columns
    # Words of d2l code that fit the code column are never folded in the middle (at 80 columns
    # the column was 15 characters wide: "self.W_q(querie" / "s)").
    words = {w for s in stages for w in s["code"].split() if len(w) <= 22}
    for word in sorted(words):
        assert any(word in line for line in lines), word
    for stage in stages:
        assert any(re.match(rf"^\s*\d+\s+{re.escape(stage['name'])}\b", ln) for ln in lines)
