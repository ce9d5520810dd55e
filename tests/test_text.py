"""Real text through real models (`--text`): the attention weights mha exports are the model's own
(transformers' eager `output_attentions`, computed here independently from the model in memory),
for every family mha reads; the tokens are the folder's tokenizer's; mistakes are one line."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from text_models import ENCODERS, with_tokenizer

import mha_cli
from mha_cli.errors import MhaError

FAMILIES = ["bert", "roberta", "gpt2", "opt", "llama", "mistral", "qwen2", "qwen3", "gpt_neox"]
FAMILIES += ["gptj", "llama_sharded"]
TEXTS = ["the quick brown fox jumps over the lazy dog", "a dog ran"]
BOUND = 1e-5
LONG = "the cat sat on the mat " * 20  # beyond the tiny models' 64 positions


@pytest.fixture(scope="module")
def folders(hf_models, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each tiny model's folder, copied, with a tokenizer saved in it."""
    root = tmp_path_factory.mktemp("text")
    return {
        family: with_tokenizer(model.folder, family, root)
        for family, model in hf_models.items()
        if family != "vit"
    }


def model_attention(hf_model, folder: Path, texts: list[str], layer: int) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """transformers' own attention weights of `layer`, padded on the right by hand (with the pad
    token, else the end-of-text token: a padding query's row depends on which token it is)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    rows = [tokenizer(text)["input_ids"] for text in texts]
    longest = max(map(len, rows))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids = torch.tensor([row + [pad] * (longest - len(row)) for row in rows])
    mask = torch.tensor([[1] * len(row) + [0] * (longest - len(row)) for row in rows])
    with torch.no_grad():
        out = hf_model.model(input_ids=ids, attention_mask=mask, output_attentions=True)
    return out.attentions[layer]


@pytest.mark.parametrize("family", FAMILIES)
def test_attention_weights_are_the_models_own(family: str, hf_models, folders) -> None:
    hf_model, folder = hf_models[family], folders[family]
    for layer in range(hf_model.num_layers):
        report = mha_cli.inspect(weights=str(folder), layer=layer, text=TEXTS)
        expected = model_attention(hf_model, folder, TEXTS, layer)
        assert report.attention_weights.shape == expected.shape
        difference = float((report.attention_weights.double() - expected.double()).abs().max())
        assert difference < BOUND, (family, layer, difference)
        # the run's own check, against the model it ran, agrees
        assert report.text.max_difference is not None and report.text.max_difference < BOUND
        assert any(
            note.startswith("checked against the model's own attention: max difference")
            for note in report.summary.notes
        )


@pytest.mark.parametrize("family", ["bert", "gpt2"])
def test_tokens_and_valid_lengths_come_from_the_folders_tokenizer(family: str, folders) -> None:
    from transformers import AutoTokenizer

    folder = folders[family]
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    report = mha_cli.inspect(weights=str(folder), layer=1, text=TEXTS)
    expected = [tokenizer.convert_ids_to_tokens(tokenizer(t)["input_ids"]) for t in TEXTS]
    assert report.text.tokens == expected
    lengths = [len(tokens) for tokens in expected]
    assert report.text.valid_lens == lengths
    assert report.spec.batch == 2 and report.spec.queries == report.spec.kv == max(lengths)
    assert list(report.spec.valid_lens) == lengths
    assert report.spec.inputs == "text"
    if family in ENCODERS:
        assert expected[0][0] == "[CLS]" and expected[0][-1] == "[SEP]"
        assert report.spec.causal is False
    else:
        assert report.spec.causal is True
    # padding keys get no weight
    short = lengths[1]
    assert float(report.attention_weights[1, :, :, short:].abs().max()) == 0.0


def test_one_text_needs_no_valid_lengths(folders) -> None:
    report = mha_cli.inspect(weights=str(folders["llama"]), layer=0, text="a dog ran")
    assert report.spec.batch == 1 and report.spec.valid_lens is None
    assert report.text.texts == ["a dog ran"]


def test_command_line_says_it_checked_and_json_holds_the_tokens(cli, folders, tmp_path) -> None:
    folder = str(folders["gpt2"])
    result = cli(
        "inspect", "--weights", folder, "--layer", "2", "--text", TEXTS[0], "--text", TEXTS[1]
    )
    assert result.exit_code == 0, result.output
    found = re.search(
        r"checked against the model's own attention: max difference (\S+)", result.output
    )
    assert found is not None and float(found.group(1)) < BOUND
    texts = tmp_path / "texts.txt"
    texts.write_text(f"{TEXTS[0]}\n\n{TEXTS[1]}\n", encoding="utf-8")
    result = cli(
        "inspect",
        "--weights",
        folder,
        "--layer",
        "2",
        "--text-file",
        str(texts),
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["text"]["texts"] == TEXTS
    assert document["text"]["tokens"][1] == ["a", "Ġ", "d", "o", "g", "Ġ", "r", "a", "n"] or (
        "".join(document["text"]["tokens"][1]).replace("Ġ", " ") == "a dog ran"
    )
    assert document["text"]["max_difference"] < BOUND


def test_export_holds_the_models_weights(cli, hf_models, folders, tmp_path) -> None:
    export = tmp_path / "run.safetensors"
    folder = folders["qwen3"]
    result = cli(
        "inspect",
        "--weights",
        str(folder),
        "--layer",
        "1",
        "--text",
        TEXTS[1],
        "--export",
        str(export),
    )
    assert result.exit_code == 0, result.output
    from safetensors.torch import load_file

    saved = load_file(export)["attention_weights"]
    expected = model_attention(hf_models["qwen3"], folder, [TEXTS[1]], 1)
    assert float((saved - expected).abs().max()) < BOUND


def test_heatmap_draws_the_text(cli, folders, tmp_path) -> None:
    out = tmp_path / "text.png"
    result = cli(
        "heatmap",
        "--weights",
        str(folders["bert"]),
        "--layer",
        "0",
        "--text",
        TEXTS[1],
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 1000
    assert "checked against the model's own attention" in result.output


# --- mistakes: exit 2, one line -----------------------------------------------------------------


def refused(result, pattern: str) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


def test_text_without_weights(cli) -> None:
    refused(cli("inspect", "--text", "a dog"), r"--text needs --weights MODEL_FOLDER")


def test_folder_without_tokenizer_names_the_files(cli, hf_models) -> None:
    line = refused(
        cli(
            "inspect", "--weights", str(hf_models["gpt2"].folder), "--layer", "0", "--text", "a dog"
        ),
        r"no tokenizer files",
    )
    assert "tokenizer.json" in line and "vocab.txt" in line


def test_text_longer_than_the_model_is_refused_or_truncated(cli, folders) -> None:
    folder = str(folders["gpt2"])
    refused(
        cli("inspect", "--weights", folder, "--layer", "0", "--text", LONG),
        r"--text 1 is \d+ tokens long, and the model takes at most 64 positions; .*--truncate",
    )
    result = cli("inspect", "--weights", folder, "--layer", "0", "--text", LONG, "--truncate")
    assert result.exit_code == 0, result.output
    assert "text 1 truncated to its first 64 tokens" in result.output
    report = mha_cli.inspect(weights=folder, layer=0, text=[LONG, "a dog"], truncate=True)
    assert report.spec.queries == 64 and report.text.max_difference < BOUND


def test_roberta_positions_leave_out_the_padding_offset(folders) -> None:
    with pytest.raises(MhaError, match="at most 62 positions"):
        mha_cli.inspect(weights=str(folders["roberta"]), layer=0, text=LONG)


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_text(cli, folders, text: str) -> None:
    refused(
        cli("inspect", "--weights", str(folders["gpt2"]), "--text", "a dog", "--text", text),
        r"--text 2 is empty",
    )


@pytest.mark.parametrize(
    ("option", "value"), [("--inputs", "ones"), ("--queries", "3"), ("--kv", "5"), ("--batch", "2")]
)
def test_text_with_other_inputs_conflicts(cli, folders, option: str, value: str) -> None:
    refused(
        cli("inspect", "--weights", str(folders["gpt2"]), "--text", "a dog", option, value),
        rf"--text and {option} both give the inputs",
    )


def test_empty_text_file(cli, folders, tmp_path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    refused(
        cli("inspect", "--weights", str(folders["gpt2"]), "--text-file", str(empty)),
        r"--text-file .* holds no text",
    )


def test_without_transformers_one_line_names_the_extra(folders, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(MhaError, match=re.escape('pip install "mha-cli[text]"')):
        mha_cli.inspect(weights=str(folders["gpt2"]), layer=0, text="a dog")


def test_reading_weights_never_imports_transformers(folders) -> None:
    code = (
        "import sys, mha_cli; "
        f"mha_cli.inspect(weights={str(folders['llama'])!r}, layer=1); "
        "print('transformers' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


# --- token-labelled heatmaps ------------------------------------------------------------------


def test_token_labels_are_readable() -> None:
    from mha_cli.render.token_labels import labels, readable

    # byte-level BPE: a space byte is Ġ, a newline Ċ, é two bytes; SentencePiece's ▁ a space
    assert labels(["the", "Ġcat", "Ċ", "ĠÃ©tÃ©"]) == ["the", "·cat", "↵", "·été"]
    assert labels(["▁the", "▁cat", "s"]) == ["·the", "·cat", "s"]
    assert labels(["[CLS]", "the", "##ing", "[SEP]"]) == ["[CLS]", "the", "##ing", "[SEP]"]
    assert readable("Ġsupercalifragilistic", byte_level=True) == "·supercal…"
    assert readable("a\x07b") == "a\\x07b"


def test_heatmap_axes_are_the_tokens_and_svg_text_stays_text(cli, folders, tmp_path) -> None:
    from svg_text import svg_texts

    from mha_cli.render.token_labels import labels

    report = mha_cli.inspect(weights=str(folders["gpt2"]), layer=0, text=TEXTS[0])
    expected = labels(report.text.tokens[0])
    out = tmp_path / "text.svg"
    result = cli(
        "heatmap",
        "--weights",
        str(folders["gpt2"]),
        "--layer",
        "0",
        "--text",
        TEXTS[0],
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    texts = svg_texts(out)
    # the tokens in order: once along the keys under a panel, once down the queries
    runs = sum(texts[i : i + len(expected)] == expected for i in range(len(texts)))
    assert runs >= 2, texts
    assert "·dog" in texts


def test_long_text_labels_a_readable_subset(folders) -> None:
    from mha_cli.heatmaps.api import save_heatmaps

    files = save_heatmaps(
        weights=str(folders["gpt2"]), layer=0, text=LONG, truncate=True, draw=False
    )
    from mha_cli.heatmaps import image

    figure = image.grid_figure(files.data)
    axes = figure.axes[0]
    rows = [t.get_text() for t in axes.get_yticklabels()]
    panel_rows = files.data.weights.shape[1] // 1  # at most one label column per panel row
    assert all(rows)  # every label shown names a token
    assert len(rows) <= 64 * panel_rows


def test_python_api_heatmap_takes_texts(folders) -> None:
    figure = mha_cli.heatmap(weights=str(folders["llama"]), layer=1, text=["a dog ran", "the cat"])
    labels = [t.get_text() for t in figure.axes[0].get_yticklabels()]
    assert "·dog" in labels or "dog" in "".join(labels)


def captured_inputs(
    hf_model, folder: Path, texts: list[str], layer: int
) -> dict[str, torch.Tensor]:  # type: ignore[no-untyped-def]
    """The layer's attention input, captured here with a hook on the model in memory."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    rows = [tokenizer(text)["input_ids"] for text in texts]
    longest = max(map(len, rows))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids = torch.tensor([row + [pad] * (longest - len(row)) for row in rows])
    mask = torch.tensor([[1] * len(row) + [0] * (longest - len(row)) for row in rows])
    seen = {}

    def hook(_module, args, kwargs):  # type: ignore[no-untyped-def]
        seen["hidden"] = kwargs.get("hidden_states", args[0] if args else None).clone()

    handle = hf_model.attention(layer).register_forward_pre_hook(hook, with_kwargs=True)
    with torch.no_grad():
        hf_model.model(input_ids=ids, attention_mask=mask)
    handle.remove()
    return {"hidden_states": seen["hidden"], "valid_lens": mask.sum(dim=1)}


def test_heads_on_text_measure_the_models_own_inputs(cli, hf_models, folders, tmp_path) -> None:
    inputs = tmp_path / "inputs.pt"
    # one text: no padding rows, which --text leaves out and an inputs file keeps
    torch.save(captured_inputs(hf_models["opt"], folders["opt"], TEXTS[:1], 1), inputs)
    on_text = mha_cli.heads(weights=str(folders["opt"]), layer=1, text=TEXTS[:1])
    on_file = mha_cli.heads(weights=str(folders["opt"]), layer=1, inputs=str(inputs))
    for a, b in zip(on_text.heads, on_file.heads, strict=True):
        assert abs(a.ablation - b.ablation) < 1e-5 and abs(a.entropy - b.entropy) < 1e-5
    assert on_text.spec.inputs == "text"
    assert any(n.startswith("checked against the model's own attention") for n in on_text.notes)
    assert all(head.role for head in on_text.heads)  # what each head does, in words
    result = cli("heads", "--weights", str(folders["opt"]), "--layer", "1", "--text", TEXTS[1])
    assert result.exit_code == 0, result.output
    assert "checked against the model's own attention: max difference" in result.output


def test_report_json_holds_head_roles(cli, folders) -> None:
    result = cli(
        "inspect",
        "--weights",
        str(folders["mistral"]),
        "--layer",
        "0",
        "--text",
        TEXTS[0],
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    heads = json.loads(result.stdout)["text"]["heads"]
    assert [h["head"] for h in heads] == [0, 1, 2, 3]
    for head in heads:
        assert 0 <= head["sink"] <= 1 and 0 <= head["previous"] <= 1 and 0 <= head["itself"] <= 1
    # mistral's window of 3: a query sees at most 2 keys back
    assert all(0 <= head["distance"] <= 2 for head in heads)


def test_text_with_module_or_meta_is_refused(cli, folders) -> None:
    folder = str(folders["gpt2"])
    refused(
        cli("heatmap", "--weights", folder, "--text", "a dog", "--module", "x.py:make"),
        r"--text runs a Hugging Face model's layer, --module your own module",
    )
    refused(
        cli("inspect", "--weights", folder, "--text", "a dog", "--device", "meta"),
        r"--text runs the model on the text, and the meta device computes nothing",
    )


def test_a_family_mha_cannot_rebuild_is_refused_before_the_model_runs(
    cli, folders, tmp_path
) -> None:
    folder = tmp_path / "other"
    import shutil

    shutil.copytree(folders["gpt2"], folder)
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "mamba"
    (folder / "config.json").write_text(json.dumps(config))
    refused(
        cli("inspect", "--weights", str(folder), "--text", "a dog"),
        r"model_type 'mamba' is not supported",
    )


# --- the model view: --layer all ----------------------------------------------------------------


@pytest.mark.parametrize("family", ["gpt2", "qwen2", "roberta"])
def test_model_view_is_every_layers_own_attention(
    family: str, hf_models, folders, monkeypatch
) -> None:
    import transformers

    from mha_cli.heatmaps.api import save_heatmaps

    loads = []
    original = transformers.AutoModel.from_pretrained

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        loads.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", counted)
    files = save_heatmaps(weights=str(folders[family]), layer="all", text=TEXTS[0], draw=False)
    assert len(loads) == 1  # the model is loaded once for every layer
    hf_model = hf_models[family]
    data = files.data
    assert data.row_name == "layer" and data.weights.shape[0] == hf_model.num_layers
    for layer in range(hf_model.num_layers):
        expected = model_attention(hf_model, folders[family], [TEXTS[0]], layer)[0].numpy()
        assert abs(data.weights[layer] - expected).max() < BOUND, layer
    heads = files.report.text.heads
    assert len(heads) == hf_model.num_layers * data.weights.shape[1]
    assert {h.layer for h in heads} == set(range(hf_model.num_layers))
    assert sum(n.startswith("layer ") for n in files.report.summary.notes) >= hf_model.num_layers
    assert any(
        n.startswith(("layer 1: ", "layer 1, ")) and "head" in n for n in files.report.summary.notes
    )
    assert files.report.text.max_difference < BOUND


def test_model_view_on_the_command_line(cli, folders, tmp_path) -> None:
    from svg_text import svg_texts

    out = tmp_path / "view.svg"
    result = cli(
        "heatmap",
        "--weights",
        str(folders["llama"]),
        "--layer",
        "all",
        "--text",
        TEXTS[1],
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    assert "(every layer of 2)" in result.output
    texts = svg_texts(out)
    assert "layer 0" in texts and "layer 1" in texts and "·dog" in texts


def test_model_view_needs_one_text(cli, folders) -> None:
    folder = str(folders["gpt2"])
    refused(
        cli("heatmap", "--weights", folder, "--layer", "all"),
        r"--layer all draws every layer's attention on a text",
    )
    refused(
        cli("heatmap", "--weights", folder, "--layer", "all", "--text", "a", "--text", "b"),
        r"--layer all draws one text, and 2 were given",
    )


# --- tokenizers of other kinds ------------------------------------------------------------------


def test_left_padding_tokenizer_is_padded_on_the_right_with_a_note(
    hf_models, folders, tmp_path
) -> None:
    import shutil

    from transformers import AutoTokenizer

    folder = tmp_path / "llama_left"
    shutil.copytree(folders["llama"], folder)
    AutoTokenizer.from_pretrained(folder, padding_side="left").save_pretrained(folder)
    assert AutoTokenizer.from_pretrained(folder).padding_side == "left"
    report = mha_cli.inspect(weights=str(folder), layer=1, text=TEXTS)
    assert any(
        "pads on the left; the batch is padded on the right" in n for n in report.summary.notes
    )
    expected = model_attention(hf_models["llama"], folder, TEXTS, 1)
    assert float((report.attention_weights - expected).abs().max()) < BOUND


def test_tokenizer_without_pad_eos_or_unk(hf_models, folders, tmp_path) -> None:
    import shutil

    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    folder = tmp_path / "gpt2_plain"
    shutil.copytree(hf_models["gpt2"].folder, folder)
    words = sorted({w for t in TEXTS for w in t.split()})
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok).save_pretrained(folder)
    report = mha_cli.inspect(weights=str(folder), layer=1, text=TEXTS)
    assert report.text.tokens[1] == ["a", "dog", "ran"]
    assert report.text.valid_lens == [9, 3] and report.text.max_difference < BOUND


def test_missing_text_file(cli, folders, tmp_path) -> None:
    refused(
        cli("inspect", "--weights", str(folders["gpt2"]), "--text-file", str(tmp_path / "no.txt")),
        r"--text-file .*no.txt: no such file",
    )


def test_weights_file_instead_of_folder(cli, folders) -> None:
    refused(
        cli("inspect", "--weights", str(folders["gpt2"] / "model.safetensors"), "--text", "a dog"),
        r"--text needs --weights to be a model folder.*try --weights",
    )


def test_heatmap_of_texts_hatches_the_padding_rows_and_names_the_layer(folders) -> None:
    from mha_cli.heatmaps.api import save_heatmaps

    files = save_heatmaps(weights=str(folders["bert"]), layer=1, text=TEXTS, draw=False)
    short = files.report.text.valid_lens[1]
    assert files.data.masked[1, :, short:, :].all()  # padding's own rows
    assert not files.data.masked[1, :, :short, :short].any()  # an encoder sees every real token
    assert files.data.title.startswith(
        f"attention weights of layer 1 of {folders['bert']} on 2 texts"
    )
    assert "valid_lens" not in files.data.title


def test_heads_on_texts_of_different_lengths_leave_the_padding_rows_out(hf_models, folders) -> None:
    """Each head's ablation over two texts is the change over their real rows only: the same
    figure whatever the padding, so one text padded or not gives the same numbers."""
    padded = mha_cli.heads(weights=str(folders["gpt2"]), layer=1, text=[TEXTS[1], TEXTS[0]])
    alone = [mha_cli.heads(weights=str(folders["gpt2"]), layer=1, text=t) for t in TEXTS]
    # entropy is a mean over rows: the padded batch's is the row-weighted mean of the two alone
    lengths = padded.spec.valid_lens
    for head in range(padded.spec.heads):
        expected = (
            alone[1].heads[head].entropy * lengths[0] + alone[0].heads[head].entropy * lengths[1]
        ) / sum(lengths)
        assert abs(padded.heads[head].entropy - expected) < 1e-6


# --- a model id, from the Hugging Face cache ------------------------------------------------------


def lay_out_cache(cache: Path, model_id: str, folder: Path) -> None:
    """The cache as huggingface_hub writes it: blobs, a snapshot of symlinks, refs/main."""
    import hashlib

    model = cache / ("models--" + model_id.replace("/", "--"))
    revision = "0123456789abcdef0123456789abcdef01234567"
    snapshot = model / "snapshots" / revision
    (model / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for file in folder.iterdir():
        data = file.read_bytes()
        blob = model / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / file.name).symlink_to(Path("../../blobs") / blob.name)
    (model / "refs").mkdir()
    (model / "refs" / "main").write_text(revision)
    # an older snapshot that refs/main does not name is never read
    (model / "snapshots" / "old").mkdir()


def test_model_id_from_the_hugging_face_cache(
    cli, hf_models, folders, tmp_path, monkeypatch
) -> None:
    cache = tmp_path / "hub"
    lay_out_cache(cache, "tiny-org/tiny-gpt2", folders["gpt2"])
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.chdir(tmp_path)
    report = mha_cli.inspect(weights="tiny-org/tiny-gpt2", layer=1, text=TEXTS[0])
    expected = model_attention(hf_models["gpt2"], folders["gpt2"], [TEXTS[0]], 1)
    assert float((report.attention_weights - expected).abs().max()) < BOUND
    # reading the weights alone finds it too (no transformers needed)
    plain = mha_cli.inspect(weights="tiny-org/tiny-gpt2", layer=1)
    assert plain.source is not None and "snapshots" in plain.source.path
    result = cli("inspect", "--weights", "tiny-org/tiny-gpt2", "--layer", "1", "--text", "a dog")
    assert result.exit_code == 0, result.output


def test_model_id_not_cached_says_so(cli, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.chdir(tmp_path)
    line = refused(
        cli("inspect", "--weights", "gpt2", "--layer", "1"),
        r"the model gpt2 is not in the Hugging Face cache",
    )
    assert str(tmp_path / "empty") in line and "huggingface-cli download gpt2" in line


# --- the interactive page (--out view.html) on a text; tests/test_html_page.py has the rest -----


def page_payload(path: Path) -> dict:  # type: ignore[type-arg]
    found = re.search(
        r'<script id="data" type="application/json">(.*?)</script>', path.read_text(), re.S
    )
    assert found is not None
    return json.loads(found.group(1))


def page_weights(row: dict, head: int, n: int) -> torch.Tensor:  # type: ignore[type-arg]
    """A head's (n, n) weights as the page stores them (mask bits, then the unmasked float32
    weights row by row); masked cells 0."""
    import base64

    import numpy as np

    masks = row["masks"]
    bits = np.frombuffer(base64.urlsafe_b64decode(masks[head if len(masks) > 1 else 0]), "u1")
    masked = np.unpackbits(bits)[: n * n].reshape(n, n).astype(bool)
    out = np.zeros((n, n), dtype=np.float32)
    out[~masked] = np.frombuffer(base64.urlsafe_b64decode(row["weights"][head]), dtype="<f4")
    return torch.from_numpy(out)


def test_page_is_self_contained_and_holds_the_weights(cli, folders, tmp_path) -> None:
    from mha_cli.heatmaps.page import token_labels

    out = tmp_path / "view.html"
    result = cli(
        "heatmap",
        "--weights",
        str(folders["llama"]),
        "--layer",
        "1",
        "--text",
        TEXTS[0],
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    for external in ("http:", "https:", "src=", "href=", "@import", "url("):
        assert external not in page, external  # no network: nothing is fetched
    data = page_payload(out)
    report = mha_cli.inspect(weights=str(folders["llama"]), layer=1, text=TEXTS[0])
    row = data["rows"][0]
    tokens = report.text.tokens[0]
    assert row["queries"] == token_labels(tokens) and row["keys"] == token_labels(tokens)
    n = len(tokens)
    for head in range(report.spec.heads):
        weights = page_weights(row, head, n)  # float32 travels exactly
        assert float((weights - report.attention_weights[0, head]).abs().max()) < 1e-6
    roles = report.summary.head_roles
    assert [s["words"] for s in row["summaries"]] == [r.role for r in roles]


def test_page_of_every_layer(folders, tmp_path) -> None:
    from mha_cli.heatmaps.api import save_heatmaps

    out = tmp_path / "model.html"
    files = save_heatmaps(weights=str(folders["gpt2"]), layer="all", text=TEXTS[1], out=out)
    data = page_payload(out)
    assert data["rowName"] == "layer" and [r["name"] for r in data["rows"]] == [
        "layer 0",
        "layer 1",
        "layer 2",
    ]
    role = next(r for r in files.report.text.heads if r.layer == 2 and r.head == 1)
    assert data["rows"][2]["summaries"][1]["words"] == role.role


def test_per_head_titles_say_what_the_head_does(folders) -> None:
    from mha_cli.heatmaps.api import save_heatmaps

    files = save_heatmaps(weights=str(folders["qwen2"]), layer="all", text=TEXTS[0], draw=False)
    from mha_cli.layer.role_records import short_role

    layers = {role.layer for role in files.report.text.heads}
    assert layers == set(range(files.data.weights.shape[0]))  # every layer's heads
    for role in files.report.text.heads:
        title = files.data.panel(role.layer, role.head).panel_title
        assert title == f"layer {role.layer}, head {role.head}: {short_role(role.role)}"
    from mha_cli.heatmaps.data import HeatmapData

    words = HeatmapData(
        weights=torch.ones(1, 2, 2, 2).numpy() / 2,
        masked=torch.zeros(1, 2, 2, 2, dtype=torch.bool).numpy(),
        title="t",
        head_words=(("previous token 0.91", ""),),
    )
    assert words.panel(0, 0).panel_title == "example 0, head 0: previous token 0.91"
    assert words.panel(0, 1).panel_title == "example 0, head 1"


def test_characters_the_font_lacks_are_written_as_code_points(tmp_path) -> None:
    import warnings

    import numpy as np
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    from mha_cli.heatmaps import image
    from mha_cli.heatmaps.data import HeatmapData
    from mha_cli.heatmaps.token_axes import token_labels

    font = FT2Font(font_manager.findfont(font_manager.FontProperties()))
    if font.get_char_index(ord("猫")) != 0:
        pytest.skip("this machine's default font draws CJK characters")
    data = HeatmapData(
        weights=np.full((1, 1, 2, 2), 0.5),
        masked=np.zeros((1, 1, 2, 2), dtype=bool),
        title="t",
        tokens=(("猫", "cat"),),
    )
    assert token_labels(data) == [["U+732B", "cat"]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "Glyph missing" warning
        image.render_grid(data, tmp_path / "cjk.png")


def test_terminal_grid_names_each_query_rows_token(cli_columns, folders) -> None:
    from mha_cli.render.token_labels import labels

    report = mha_cli.inspect(weights=str(folders["gpt2"]), layer=1, text=TEXTS[1])
    result = cli_columns(
        120,
        "heatmap",
        "--weights",
        str(folders["gpt2"]),
        "--layer",
        "1",
        "--text",
        TEXTS[1],
        "--terminal",
    )
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if "│" in line]
    shown = [row.split("│")[0].split()[-1] for row in rows]
    assert shown == labels(report.text.tokens[0], 8)
    assert all(len(line) <= 120 for line in result.stdout.splitlines())


def test_layer_beyond_the_model_is_refused_before_it_runs(cli, folders) -> None:
    refused(
        cli("inspect", "--weights", str(folders["gpt2"]), "--layer", "9", "--text", "a dog"),
        r"--layer 9 is beyond the model",
    )


# --- a window of a text (--queries-range / --keys-range), streamed from the captured inputs ---


def test_a_window_of_a_text_is_the_models_own_there_with_its_tokens(
    cli, hf_models, folders, tmp_path
) -> None:
    from svg_text import svg_texts

    from mha_cli.heatmaps.api import save_heatmaps
    from mha_cli.render.token_labels import labels

    text = TEXTS[0]
    files = save_heatmaps(
        weights=str(folders["llama"]), layer=1, text=text, queries_range="3:9",
        keys_range="1:6", out=tmp_path / "window.svg",
    )  # fmt: skip
    expected = model_attention(hf_models["llama"], folders["llama"], [text], 1)[:, :, 3:9, 1:6]
    drawn = torch.from_numpy(files.data.weights.copy())  # (1, h, 6, 5): every weight, no reduction
    masked = torch.from_numpy(files.data.masked.copy())
    assert drawn.shape == expected.shape and not bool(masked.all())
    assert float((drawn - expected)[~masked].abs().max()) < BOUND  # the causal cells are 0 there
    assert float(expected[masked].abs().max()) == 0.0
    tokens = model_tokens(folders["llama"], text)
    assert files.data.tokens == (tuple(tokens[3:9]),) and files.data.key_tokens == (
        tuple(tokens[1:6]),
    )
    shown = svg_texts(tmp_path / "window.svg")
    for label in labels(tokens[3:9]) + labels(tokens[1:6]):
        assert label in shown, label
    notes = files.report.summary.notes
    assert any(n.startswith("checked against the model's own attention") for n in notes)
    result = cli(
        "heatmap", "--weights", str(folders["llama"]), "--layer", "1", "--text", text,
        "--keys-range", "0:4", "--out", str(tmp_path / "w.png"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "(the window)" in result.stderr  # checked against the model where it was drawn


def model_tokens(folder: Path, text: str) -> list[str]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return tokenizer.convert_ids_to_tokens(tokenizer(text)["input_ids"])


def test_a_window_beyond_the_text_is_one_line(cli, folders) -> None:
    result = cli(
        "heatmap", "--weights", str(folders["llama"]), "--layer", "1", "--text", "a dog ran",
        "--queries-range", "0:500",
    )  # fmt: skip
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 and "--queries-range" in result.output
