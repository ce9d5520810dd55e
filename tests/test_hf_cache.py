"""`--weights gpt2` / `--weights org/name`: a model id found in the Hugging Face cache, laid out
here as huggingface_hub lays it out (refs/main -> snapshots/<commit>/, files linked into
blobs/), with no network and without huggingface_hub."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("transformers")

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GPT-2 (3 layers, 4 heads), as save_pretrained writes it."""
    import torch
    from hf_models import _configs, _redraw

    config, cls = _configs()["gpt2"]
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    model = cls(config).eval()
    _redraw(model, 0)
    folder = tmp_path_factory.mktemp("saved") / "tiny-gpt2"
    model.save_pretrained(folder)
    return folder


def lay_out_cache(cache: Path, model_id: str, saved: Path, refs: bool = True) -> Path:
    """cache/models--org--name/{blobs,snapshots/COMMIT,refs/main}; the snapshot's files are
    links into blobs/ named by their hash. Returns the snapshot folder."""
    repo = cache / ("models--" + model_id.replace("/", "--"))
    snapshot = repo / "snapshots" / COMMIT
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for file in saved.iterdir():
        blob = repo / "blobs" / hashlib.sha256(file.read_bytes()).hexdigest()
        shutil.copyfile(file, blob)
        (snapshot / file.name).symlink_to(os.path.relpath(blob, snapshot))
    if refs:
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text(COMMIT)
    return snapshot


@pytest.fixture
def cache(tmp_path: Path, saved_model: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "hub"
    snapshot = lay_out_cache(cache, "tiny-org/tiny-gpt2", saved_model)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.delenv("HF_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    return snapshot


def inspect_json(cli, weights: str, *more: str) -> dict:
    result = cli("inspect", "--weights", weights, "--layer", "1", *more, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_inspect_reads_the_cached_snapshot(cli, cache: Path, saved_model: Path, tmp_path: Path):
    by_id = inspect_json(cli, "tiny-org/tiny-gpt2", "--export", str(tmp_path / "id.pt"))
    by_path = inspect_json(cli, str(saved_model), "--export", str(tmp_path / "path.pt"))
    assert by_id["source"]["path"] == str(cache)
    assert by_id["source"]["layout"] == by_path["source"]["layout"]
    assert by_id["stages"] == by_path["stages"]
    import torch

    a, b = torch.load(tmp_path / "id.pt"), torch.load(tmp_path / "path.pt")
    assert torch.equal(a["attention_weights"], b["attention_weights"])


def test_weights_and_heatmap_take_an_id(cli, cache: Path, tmp_path: Path):
    result = cli("weights", "--weights", "tiny-org/tiny-gpt2", "--layer", "2")
    assert result.exit_code == 0, result.output
    assert "layer 2" in result.stdout
    out = tmp_path / "map.png"
    result = cli("heatmap", "--weights", "tiny-org/tiny-gpt2", "--layer", "0", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 1000


def test_hf_home_and_a_bare_name_without_refs(
    cli, tmp_path: Path, saved_model: Path, monkeypatch: pytest.MonkeyPatch
):
    """HF_HOME/hub when HF_HUB_CACHE is unset; a name without an owner; no refs/main: the one
    snapshot there is."""
    snapshot = lay_out_cache(tmp_path / "home" / "hub", "tiny-gpt2", saved_model, refs=False)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert inspect_json(cli, "tiny-gpt2")["source"]["path"] == str(snapshot)


def test_default_cache_is_under_the_home_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    from mha_cli.hf.cache import hub_cache

    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HF_HOME", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert hub_cache() == tmp_path / ".cache" / "huggingface" / "hub"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # as huggingface_hub reads it
    assert hub_cache() == tmp_path / "xdg" / "huggingface" / "hub"


def test_a_local_path_wins_over_an_id(cli, cache: Path, saved_model: Path, tmp_path: Path):
    local = tmp_path / "tiny-org" / "tiny-gpt2"
    shutil.copytree(saved_model, local)
    assert inspect_json(cli, "tiny-org/tiny-gpt2")["source"]["path"] == "tiny-org/tiny-gpt2"


@pytest.mark.parametrize("command", ["inspect", "weights", "heatmap"])
def test_a_model_not_in_the_cache_is_one_line(cli, cache: Path, command: str):
    result = cli(command, "--weights", "someone/not-cached", "--layer", "0")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output
    folder = cache.parents[2] / "models--someone--not-cached"
    assert "someone/not-cached is not in the Hugging Face cache" in lines[0]
    assert str(folder) in lines[0]
    assert "does not download" in lines[0]
    assert "huggingface-cli download someone/not-cached" in lines[0]


def test_a_missing_file_is_still_a_missing_file(cli, cache: Path):
    result = cli("inspect", "--weights", "model.safetensors")
    assert result.exit_code == 2
    assert "no such file" in result.output and "cache" not in result.output
