"""The families of issue 19, each exactly: mha against transformers' own eager attention.

Each tiny model (tests/hf_families.py: weights from a seeded generator, save_pretrained) runs in
transformers with a padded batch; hooks catch what layer i's attention got and gave, and
`output_attentions` its weights. mha reads the same layer from the saved folder: the weights
agree within 1e-5 and the output within 1e-4, on layers 0, 1 and the last. Without config.json,
the weights alone are refused (the behaviour is unknown) or, given the options, exact.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

import mha_cli

pytest.importorskip("transformers")

from hf_families import (
    ENCODER_DECODER,
    FAMILIES,
    T5_SEQ2SEQ,
    VARIANTS,
    VISION,
    build_families,
    build_t5_seq2seq,
)

MASK = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])  # right padding: valid_lens [6, 4]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory):
    return build_families(tmp_path_factory.mktemp("families"))


def transformers_run(model: Any, layer: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(hidden states into layer `layer`'s attention, its weights (b, h, q, k), its output)."""
    attention = model.attention(layer)
    caught: dict[str, torch.Tensor] = {}

    def grab_input(_module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        caught["input"] = args[0] if args else kwargs["hidden_states"]

    def grab_output(_module: Any, _args: Any, output: Any) -> None:
        caught["output"] = output[0] if isinstance(output, tuple) else output

    # BERT-like attention modules add the residual and a LayerNorm: take the projection's output.
    # Bloom's adds the residual after its dense projection: take that projection's output too.
    projection = attention.output.dense if hasattr(attention, "output") else attention
    projection = attention.dense if model.family == "bloom" else projection
    hooks = [
        attention.register_forward_pre_hook(grab_input, with_kwargs=True),
        projection.register_forward_hook(grab_output),
    ]
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        if model.family in VISION:
            pixels = torch.randn(2, 3, 8, 8, generator=generator)
            result = model.model(pixel_values=pixels, output_attentions=True)
        else:
            ids = torch.randint(2, 64, MASK.shape, generator=generator)
            extra = {"use_cache": False} if "use_cache" in model.config.to_dict() else {}
            result = model.model(
                input_ids=ids, attention_mask=MASK, output_attentions=True, **extra
            )
    for hook in hooks:
        hook.remove()
    return caught["input"], result.attentions[layer], caught["output"]


def run_mha(weights: Path, layer: int, hidden: torch.Tensor, tmp_path: Path, vision: bool) -> Any:
    inputs: dict[str, torch.Tensor] = {"hidden_states": hidden}
    if not vision:
        inputs["valid_lens"] = MASK.sum(-1)
    torch.save(inputs, tmp_path / "inputs.pt")
    return mha_cli.inspect(weights=weights, layer=layer, inputs=str(tmp_path / "inputs.pt"))


def _layers(model: Any) -> tuple[int, ...]:
    return tuple(sorted({0, 1, model.num_layers - 1}))


@pytest.mark.parametrize("family", [f for f in FAMILIES if f not in ENCODER_DECODER])
def test_each_family_reproduces_transformers(models, tmp_path, family):
    model = models[family]
    for layer in _layers(model):
        hidden, expected_weights, expected_output = transformers_run(model, layer)
        report = run_mha(model.folder, layer, hidden, tmp_path, family in VISION)
        weights = report.attention_weights
        torch.testing.assert_close(weights, expected_weights, atol=1e-5, rtol=0)
        if report.mask is not None:  # masked keys get exactly nothing, as in transformers
            assert float(weights[report.mask].abs().max()) == 0.0
        torch.testing.assert_close(report.output_tensor, expected_output, atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    ("family", "layer", "window", "theta", "rotary_dim"),
    [
        ("mixtral", 0, 3, 1e6, 8),  # MixtralConfig.default_theta
        ("qwen2_moe", 0, 3, 1e4, 8),  # even layers below max_window_layers slide
        ("qwen2_moe", 1, None, 1e4, 8),
        ("qwen3_moe", 1, 3, 1e4, 12),  # use_sliding_window: every layer
        ("starcoder2", 1, 3, 1e4, 8),
        ("gemma", 1, None, 1e4, 12),
        ("stablelm", 1, None, 1e4, 2),  # partial_rotary_factor 0.25 of 8
        ("phi3", 1, 3, 5000, 4),  # partial_rotary_factor 0.5 of 8
        ("cohere", 1, None, 5e5, 8),  # CohereConfig.default_theta
        ("gemma2", 0, 3, 1e4, 12),  # layer_types: sliding, full, sliding
        ("gemma2", 1, None, 1e4, 12),
        ("gemma2", 2, 3, 1e4, 12),
        ("gemma3_text", 1, 3, 1e4, 12),  # local layer
        ("gemma3_text", 2, None, 1e6, 12),  # global layer
    ],
)
def test_the_config_gives_window_rope_base_and_rotary_dims(
    models, cli, family, layer, window, theta, rotary_dim
):
    folder = str(models[family].folder)  # --config takes the model folder as its config.json
    result = cli("inspect", "--config", folder, "--layer", str(layer), "--format", "json")
    assert result.exit_code == 0, result.output
    spec = json.loads(result.stdout)["spec"]
    assert spec["window"] == window
    assert spec["rope_theta"] == pytest.approx(theta)
    assert spec["rotary_dim"] == rotary_dim


@pytest.mark.parametrize(
    ("family", "change", "words"),
    [
        ("gemma", {"use_bidirectional_attention": True}, "use_bidirectional_attention = true"),
        ("mpt", {"attn_config": {"qk_ln": True}}, "qk_ln = true"),
        ("mpt", {"n_heads": 3, "d_model": 24}, "3 heads (not a power of 2)"),
    ],
)
def test_what_a_family_cannot_rebuild_is_refused_by_name(
    models, tmp_path, cli, family, change, words
):
    config = json.loads((models[family].folder / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(config | change))
    result = cli("inspect", "--config", str(tmp_path / "config.json"))
    assert result.exit_code == 2, result.output
    assert words in result.stderr and "not supported" in result.stderr


def test_a_config_without_rope_theta_takes_the_familys_base(models, tmp_path, cli):
    """Mixtral's default base is 1e6, not Llama's 1e4: a config.json without it gets 1e6."""
    config = json.loads((models["mixtral"].folder / "config.json").read_text())
    config.pop("rope_theta", None)
    config.pop("rope_parameters", None)
    config.pop("rope_scaling", None)
    (tmp_path / "config.json").write_text(json.dumps(config))
    result = cli("inspect", "--config", str(tmp_path / "config.json"), "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["spec"]["rope_theta"] == pytest.approx(1e6)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_config_alone_gives_the_shapes_on_the_meta_device(models, cli, family):
    config = str(models[family].folder / "config.json")
    result = cli("inspect", "--config", config, "--device", "meta", "--format", "json")
    assert result.exit_code == 0, result.output
    spec = json.loads(result.stdout)["spec"]
    cfg = models[family].config
    assert spec["heads"] == cfg.num_attention_heads
    assert spec["hiddens"] == cfg.hidden_size


@pytest.mark.parametrize("family", FAMILIES)
def test_weights_without_config_are_refused_with_what_is_unknown(models, tmp_path, cli, family):
    """Key names tell sizes, not behaviour: the weights alone exit 2, never run on guesses."""
    alone = tmp_path / "model.safetensors"
    shutil.copy(models[family].folder / "model.safetensors", alone)
    result = cli("inspect", "--weights", str(alone), "--layer", "1")
    assert result.exit_code == 2, result.output
    assert "config.json" in result.stderr.split("--config")[0]  # says it is missing
    assert "--config config.json" in result.stderr


@pytest.mark.parametrize(
    ("family", "options"),
    [
        ("mixtral", ["--heads", "4", "--causal", "--rope", "half", "--rope-theta", "1e6",
                     "--rotary-dim", "none", "--window", "3"]),
        ("electra", ["--heads", "4", "--no-causal"]),
        ("distilbert", ["--heads", "4", "--no-causal"]),
    ],
)  # fmt: skip
def test_weights_without_config_are_exact_given_the_options(models, tmp_path, cli, family, options):
    model = models[family]
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(model.folder / "model.safetensors", alone / "model.safetensors")
    hidden, expected_weights, _ = transformers_run(model, 1)
    torch.save({"hidden_states": hidden, "valid_lens": MASK.sum(-1)}, tmp_path / "inputs.pt")
    report = mha_cli.inspect(
        weights=alone / "model.safetensors",
        layer=1,
        inputs=str(tmp_path / "inputs.pt"),
        **_api_options(options),
    )
    torch.testing.assert_close(report.attention_weights, expected_weights, atol=1e-5, rtol=0)


def _api_options(options: list[str]) -> dict[str, Any]:
    """The CLI options above as mha_cli.inspect's keywords."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(options):
        name = options[i].lstrip("-").replace("-", "_")
        if name in ("causal", "no_causal"):
            out["causal"] = name == "causal"
            i += 1
            continue
        value = options[i + 1]
        out[name] = value
        i += 2
    return out


def test_families_lists_every_family_with_what_it_needs(cli):
    from mha_cli.hf.families import FAMILY, UNSUPPORTED

    assert not set(FAMILY) & set(UNSUPPORTED)  # never listed as read and as not read
    result = cli("families")
    assert result.exit_code == 0, result.output
    for family in FAMILIES:
        if not family.startswith("llama_"):  # Llama's rope scalings: one model_type
            assert VARIANTS.get(family, family) in result.stdout


def test_every_supported_family_has_a_tiny_model():
    """A family in the table is tested exactly here or in test_hf_exact.py, never in neither."""
    from hf_models import _ATTENTION as FIRST

    from mha_cli.hf.families import FAMILIES as SUPPORTED

    untested = [f for f in SUPPORTED if f not in FIRST and f not in FAMILIES]
    assert untested == []


def test_granites_score_factor_is_a_stage_row(models, cli):
    folder = str(models["granite"].folder)
    result = cli("inspect", "--weights", folder, "--layer", "1", "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["spec"]["score_scale"] == pytest.approx(0.3)
    scores = next(stage for stage in document["stages"] if stage["name"] == "scores")
    assert "* 0.3" in scores["code"] and "sqrt" in scores["code"]


def test_the_scale_option_replaces_one_over_sqrt_d(cli):
    """`--scale` on the seeded layer: the weights equal a float64 softmax of q·kᵀ x scale."""
    plain = cli("inspect", "--score-scale", "0.05", "--format", "json", "--valid-lens", "none")
    assert plain.exit_code == 0, plain.output
    bad = cli("inspect", "--score-scale", "-1")
    assert bad.exit_code == 2 and "--score-scale" in bad.stderr


def test_score_scale_multiplies_the_scores_and_softmax_follows():
    """With --score-scale c the scores are q·kᵀ x c: twice 1/sqrt(d) doubles d2l's scores,
    and the weights are a float64 softmax of them."""
    plain = mha_cli.inspect(valid_lens="none", heads=2, hiddens=8)
    doubled = mha_cli.inspect(valid_lens="none", heads=2, hiddens=8, score_scale=str(2 / 2))
    scores = plain.tensors["scores"].double() * 2  # d = 4: 1/sqrt(d) = 0.5, so c = 1 doubles
    torch.testing.assert_close(doubled.tensors["scores"].double(), scores, atol=1e-5, rtol=0)
    expected = torch.softmax(doubled.tensors["scores"].double(), dim=-1)
    got = doubled.tensors["masked_softmax"].double()
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)


def test_compare_on_granite_gives_sdpa_its_scale(models):
    """`mha compare` on Granite: SDPA runs with scale=attention_multiplier and agrees;
    nn.MultiheadAttention, whose scale is fixed, is not run, and says why."""
    from mha_cli.comparison.lines import failure_message

    comparison = mha_cli.compare(weights=models["granite"].folder, layer=1, valid_lens="3,2")
    assert comparison.agrees, failure_message(comparison)


def test_gemma2_soft_capping_and_scale_are_stage_rows(models, cli):
    folder = str(models["gemma2"].folder)
    result = cli("inspect", "--weights", folder, "--layer", "1", "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["spec"]["softcap"] == pytest.approx(5.0)
    assert document["spec"]["score_scale"] == pytest.approx(10**-0.5)
    names = [stage["name"] for stage in document["stages"]]
    assert names.index("scores") < names.index("softcap") < names.index("masked_softmax")
    softcap = document["stages"][names.index("softcap")]
    assert softcap["code"] == "torch.tanh(scores / softcap) * softcap"


def test_softcap_option_bounds_the_scores():
    report = mha_cli.inspect(softcap="0.5", valid_lens="none", heads=2, hiddens=8)
    capped = report.tensors["softcap"].double()
    expected = torch.tanh(report.tensors["scores"].double() / 0.5) * 0.5
    torch.testing.assert_close(capped, expected, atol=1e-6, rtol=0)
    assert float(capped.abs().max()) <= 0.5


def test_olmos_clamp_is_a_stage_row_and_bites(models, cli):
    """clip_qkv 1.0 on projections that reach beyond it: the clamp rows show it."""
    folder = str(models["olmo"].folder)
    result = cli("inspect", "--weights", folder, "--layer", "1", "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["spec"]["clip_qkv"] == pytest.approx(1.0)
    names = [stage["name"] for stage in document["stages"]]
    assert names.index("W_v") < names.index("queries.clip") < names.index("queries.split")
    clip = document["stages"][names.index("queries.clip")]
    assert clip["code"] == "X.clamp(-clip_qkv, clip_qkv)"
    report = mha_cli.inspect(weights=folder, layer=1)
    assert float(report.tensors["W_q"].abs().max()) > 1.0  # the clamp changes something
    assert float(report.tensors["queries.clip"].abs().max()) <= 1.0


def test_olmo2s_norm_spans_the_projection_before_the_split(models, cli):
    folder = str(models["olmo2"].folder)
    result = cli("inspect", "--weights", folder, "--layer", "1", "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["spec"]["qk_norm_whole"] is True
    names = [stage["name"] for stage in document["stages"]]
    assert names.index("W_k") < names.index("queries.norm_whole") < names.index("queries.split")
    assert "queries.norm" not in names  # no second, per-head norm
    stage = document["stages"][names.index("keys.norm_whole")]
    assert stage["shape"][-1] == 16 and stage["params"] == 16  # 2 key-value heads x 8


def test_dynamic_rope_scaling_beyond_its_context_is_refused(models, cli):
    folder = str(models["llama_dynamic"].folder)  # max_position_embeddings 64
    fine = cli("inspect", "--weights", folder, "--queries", "64", "--kv", "64", "--valid-lens",
               "none", "--format", "json")  # fmt: skip
    assert fine.exit_code == 0, fine.output
    beyond = cli("inspect", "--weights", folder, "--queries", "65", "--kv", "65")
    assert beyond.exit_code == 2
    assert "dynamic rope scaling is the default rotation up to 64 positions" in beyond.stderr


def test_yarn_scaling_is_read_with_its_numbers(models, cli):
    config = str(models["llama_yarn"].folder / "config.json")
    result = cli("inspect", "--config", config, "--device", "meta", "--format", "json")
    assert result.exit_code == 0, result.output
    scaling = json.loads(result.stdout)["spec"]["rope_scaling"]
    assert scaling["rope_type"] == "yarn" and scaling["factor"] == 4.0
    assert scaling["original_max_position_embeddings"] == 16 and scaling["beta_fast"] == 8.0


def test_blooms_alibi_is_a_stage_row_with_blooms_slopes(models):
    report = mha_cli.inspect(weights=models["bloom"].folder, layer=1, valid_lens="none")
    assert report.spec.alibi is True
    scores, biased = report.tensors["scores"].double(), report.tensors["alibi"].double()
    slopes = torch.tensor([2.0**-2, 2.0**-4, 2.0**-6, 2.0**-8], dtype=torch.float64)  # 4 heads
    keys = torch.arange(scores.shape[-1], dtype=torch.float64)
    expected = scores + (slopes[:, None] * keys).repeat(2, 1)[:, None, :]  # batch 2, b-major
    torch.testing.assert_close(biased, expected, atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------
# Encoder-decoder models (Whisper, BART; T5's at the end): --attention encoder|decoder|cross

DECODER_MASK = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])  # decoder valid_lens [5, 3]
KINDS = ("encoder", "decoder", "cross")


def encoder_decoder_run(model: Any, layer: int, kind: str) -> dict[str, torch.Tensor]:
    """What layer `layer`'s `kind` attention got (queries from `hidden_states`, keys and values
    from `key_value_states` for cross-attention) and gave, and its weights (b, h, q, k)."""
    attention = model.attention(layer, kind)
    caught: dict[str, torch.Tensor] = {}

    def grab_input(_module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        caught["queries"] = args[0] if args else kwargs["hidden_states"]
        # UMT5Attention names them encoder_hidden_states, the others key_value_states
        caught["keys"] = kwargs.get("key_value_states", kwargs.get("encoder_hidden_states"))

    def grab_output(_module: Any, _args: Any, output: Any) -> None:
        caught["output"] = output[0]

    hooks = [
        attention.register_forward_pre_hook(grab_input, with_kwargs=True),
        attention.register_forward_hook(grab_output),
    ]
    generator = torch.Generator().manual_seed(7)
    decoder_ids = torch.randint(3, 64, DECODER_MASK.shape, generator=generator)
    inputs: dict[str, Any] = {"decoder_input_ids": decoder_ids}
    inputs["decoder_attention_mask"] = DECODER_MASK
    if model.family == "whisper":  # 8 mel bins x 12 frames: no padding mask in its encoder
        inputs["input_features"] = torch.randn(2, 8, 12, generator=generator)
    else:
        inputs["input_ids"] = torch.randint(3, 64, MASK.shape, generator=generator)
        inputs["attention_mask"] = MASK
    with torch.no_grad():
        result = model.model(**inputs, output_attentions=True, use_cache=False)
    for hook in hooks:
        hook.remove()
    weights = {
        "encoder": result.encoder_attentions,
        "decoder": result.decoder_attentions,
        "cross": result.cross_attentions,
    }[kind][layer]
    keys = caught["keys"] if kind == "cross" else caught["queries"]
    run = {"queries": caught["queries"], "keys": keys, "values": keys}
    if kind == "decoder":
        run["valid_lens"] = DECODER_MASK.sum(-1)
    elif model.family != "whisper":  # the encoder's padding masks its keys, in both attentions
        run["valid_lens"] = MASK.sum(-1)
    return run | {"weights": weights, "output": caught["output"]}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("family", ENCODER_DECODER)
def test_encoder_decoder_attention_reproduces_transformers(models, tmp_path, family, kind):
    model = models[family]
    last = model.layers_of(kind) - 1
    for layer in sorted({0, 1, last}):
        run = encoder_decoder_run(model, layer, kind)
        inputs = {
            name: run[name] for name in ("queries", "keys", "values", "valid_lens") if name in run
        }
        torch.save(inputs, tmp_path / "inputs.pt")
        report = mha_cli.inspect(
            weights=model.folder, layer=layer, attention=kind, inputs=str(tmp_path / "inputs.pt")
        )
        assert report.spec.attention == kind
        assert report.spec.causal is (kind == "decoder")
        assert report.spec.queries == run["queries"].shape[1]
        assert report.spec.kv == run["keys"].shape[1]
        module = model.attention(layer, kind)
        for d2l, name in (
            ("W_q", "q_proj"),
            ("W_k", "k_proj"),
            ("W_v", "v_proj"),
            ("W_o", "out_proj"),
        ):
            theirs = getattr(module, name)
            ours = report.parameters[f"{d2l}.weight"]
            torch.testing.assert_close(ours, theirs.weight, atol=1e-5, rtol=0)
            if theirs.bias is None:  # Whisper's k_proj: the layer has none either
                assert f"{d2l}.bias" not in report.parameters
            else:
                bias = report.parameters[f"{d2l}.bias"]
                torch.testing.assert_close(bias, theirs.bias, atol=1e-5, rtol=0)
        weights = report.attention_weights
        torch.testing.assert_close(weights, run["weights"], atol=1e-5, rtol=0)
        if report.mask is not None:
            assert float(weights[report.mask].abs().max()) == 0.0
        torch.testing.assert_close(report.output_tensor, run["output"], atol=1e-4, rtol=0)


def test_cross_attention_has_fewer_queries_than_keys(models, tmp_path):
    """The chapter's queries != key-value pairs: 5 decoder positions ask 6 encoder positions."""
    run = encoder_decoder_run(models["bart"], 1, "cross")
    assert run["queries"].shape[1] == 5 and run["keys"].shape[1] == 6
    assert run["weights"].shape == (2, 2, 5, 6)  # the decoder's 2 heads


def test_whispers_key_projection_has_no_bias(models, cli):
    """Whisper's k_proj has no bias, its q_proj, v_proj and out_proj have: W_k's stage row
    counts its weight alone, and the layer's parameters are the model's."""
    folder = str(models["whisper"].folder)
    result = cli("inspect", "--weights", folder, "--layer", "1", "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert "whisper encoder self-attention" in document["source"]["layout"]
    assert document["spec"]["bias"] is True and document["spec"]["key_bias"] is False
    params = {stage["name"]: stage["params"] for stage in document["stages"]}
    assert params["W_k"] == 32 * 32 and params["W_q"] == params["W_v"] == 32 * 32 + 32
    module = models["whisper"].attention(1, "encoder")
    assert sum(params[p] or 0 for p in params) == sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    ("kind", "heads", "causal", "words"),
    [
        ("encoder", 4, False, "bart encoder self-attention: model.encoder.layers.N.self_attn"),
        ("decoder", 2, True, "bart decoder self-attention: model.decoder.layers.N.self_attn"),
        ("cross", 2, False, "bart cross-attention: model.decoder.layers.N.encoder_attn"),
    ],
)
def test_attention_picks_the_stack_its_heads_and_its_mask(models, cli, kind, heads, causal, words):
    folder = str(models["bart"].folder)
    result = cli("inspect", "--weights", folder, "--attention", kind, "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["spec"]["heads"] == heads and document["spec"]["causal"] is causal
    assert document["spec"]["attention"] == kind
    assert words in document["source"]["layout"]
    meta = cli("inspect", "--config", folder, "--attention", kind, "--device", "meta",
               "--format", "json")  # fmt: skip
    assert meta.exit_code == 0, meta.output
    assert json.loads(meta.stdout)["spec"]["heads"] == heads


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--attention", "cross"], "--attention cross picks an attention of an encoder-decoder"),
        (["--weights", "{bloom}", "--attention", "cross"], "which has one kind of attention"),
        (["--weights", "{bart}", "--attention", "crosss"], "did you mean 'cross'"),
        (["--weights", "{bart}", "--attention", "decoder", "--layer", "2"],
         "gives 2 decoder layers; pick a layer from 0 to 1"),
        (["--weights", "{alone}", "--attention", "cross"], "--config config.json"),
    ],
)  # fmt: skip
def test_attention_misused_is_one_line(models, tmp_path, cli, args, words):
    alone = tmp_path / "model.safetensors"
    shutil.copy(models["bart"].folder / "model.safetensors", alone)
    folders = {"bloom": models["bloom"].folder, "bart": models["bart"].folder, "alone": alone}
    result = cli("inspect", *[a.format(**folders) for a in args])
    assert result.exit_code == 2, result.output
    assert words in result.stderr
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1


def test_text_on_an_encoder_decoder_model_is_refused(models, tmp_path, cli):
    folder = Path(shutil.copytree(models["bart"].folder, tmp_path / "bart"))
    (folder / "tokenizer_config.json").write_text("{}")  # past the tokenizer check
    result = cli("inspect", "--weights", str(folder), "--text", "hello there")
    assert result.exit_code == 2, result.output
    assert "encoder-decoder model (Whisper, BART; T5 with --attention), is not supported" in (
        result.stderr
    )
    assert "--inputs" in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_compare_agrees_on_whispers_attentions(models, kind):
    """`mha compare` builds torch's layers from the same weights (Whisper's zero key bias
    included) and agrees, on each of the three attentions."""
    from mha_cli.comparison.lines import failure_message

    comparison = mha_cli.compare(
        weights=models["whisper"].folder, layer=1, attention=kind, valid_lens="3,2"
    )
    assert comparison.agrees, failure_message(comparison)


@pytest.mark.parametrize("family", ENCODER_DECODER)
def test_encoder_decoder_weights_alone_are_exact_with_their_config(models, tmp_path, family):
    """The weights file alone is refused (see above); given the model's config.json with
    --config, it is read as the folder is, exactly."""
    model = models[family]
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(model.folder / "model.safetensors", alone / "model.safetensors")
    run = encoder_decoder_run(model, 1, "cross")
    inputs = {
        name: run[name] for name in ("queries", "keys", "values", "valid_lens") if name in run
    }
    torch.save(inputs, tmp_path / "inputs.pt")
    report = mha_cli.inspect(
        weights=alone / "model.safetensors",
        config=model.folder / "config.json",
        layer=1,
        attention="cross",
        inputs=str(tmp_path / "inputs.pt"),
    )
    assert report.spec.heads == 2  # the decoder's, not the encoder's 4
    torch.testing.assert_close(report.attention_weights, run["weights"], atol=1e-5, rtol=0)
    torch.testing.assert_close(report.output_tensor, run["output"], atol=1e-4, rtol=0)


# ---------------------------------------------------------------------------------------------
# Falcon's layouts and ALiBi, StableLM's and Cohere's per-head LayerNorm (issue 19)


@pytest.mark.parametrize(
    ("family", "kv_heads", "rope", "alibi"),
    [
        ("falcon", 1, "half", False),  # multi-query
        ("falcon_new", 2, "half", False),  # num_kv_heads key-value groups
        ("falcon_alibi", 5, "none", True),  # one key-value head per head, ALiBi instead of rope
    ],
)
def test_falcons_config_says_its_heads_and_positions(models, cli, family, kv_heads, rope, alibi):
    folder = str(models[family].folder)
    result = cli("inspect", "--config", folder, "--device", "meta", "--format", "json")
    assert result.exit_code == 0, result.output
    spec = json.loads(result.stdout)["spec"]
    assert (spec["kv_heads"], spec["rope"], spec["alibi"]) == (kv_heads, rope, alibi)
    assert spec["alibi_scaled"] is alibi


def test_falcons_alibi_is_a_stage_row_scaled_with_the_scores(models, cli):
    folder = str(models["falcon_alibi"].folder)
    result = cli("inspect", "--weights", folder, "--layer", "1", "--format", "json")
    assert result.exit_code == 0, result.output
    stages = {stage["name"]: stage for stage in json.loads(result.stdout)["stages"]}
    assert "Falcon" in stages["alibi"]["code"] and "sqrt(d)" in stages["alibi"]["code"]


@pytest.mark.parametrize("family", ["stablelm_qk_layernorm", "cohere_qk_norm"])
def test_the_per_head_layer_norm_is_a_stage_row_with_a_weight_per_head(models, cli, family):
    folder = str(models[family].folder)
    result = cli("inspect", "--weights", folder, "--layer", "1", "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["spec"]["qk_norm_layer"] is True
    assert document["spec"]["norm_eps"] == pytest.approx(1e-3)  # layer_norm_eps
    stages = {stage["name"]: stage for stage in document["stages"]}
    for role, heads in (("queries", 4), ("keys", 2)):
        norm = stages[f"{role}.norm"]
        assert "LayerNorm per head" in norm["code"]
        assert norm["params"] == heads * 8  # (heads, head_dim) weights


@pytest.mark.parametrize(
    ("family", "change", "words"),
    [
        # The grouped weights read as multi-query: their rows do not fit
        ("falcon_new", {"new_decoder_architecture": False}, "query_key_value"),
        ("stablelm_qk_layernorm", {"qk_layernorm": False}, "layernorm.norms.{0..1}"),
        ("cohere_qk_norm", {"use_qk_norm": False}, "self_attn.k_norm.weight"),
        ("stablelm", {"qk_layernorm": True}, "q_norm weight"),
    ],
)
def test_a_config_that_contradicts_the_weights_is_refused(
    models, tmp_path, cli, family, change, words
):
    folder = tmp_path / "model"
    shutil.copytree(models[family].folder, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | change))
    result = cli("inspect", "--weights", str(folder), "--layer", "1")
    assert result.exit_code == 2, result.output
    assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (["--qk-norm-layer"], "--qk-norm-layer says which q/k norm applies"),
        (["--qk-norm", "--qk-norm-layer", "--qk-norm-whole"], "keep one of them"),
        (["--alibi-scaled"], "--alibi-scaled says how the ALiBi bias is scaled"),
    ],
)
def test_the_new_switches_need_what_they_modify(cli, options, words):
    result = cli("inspect", *options)
    assert result.exit_code == 2, result.output
    assert words in result.stderr


def test_falcons_alibi_matches_a_float64_computation():
    """Independent of the layer: (q·kᵀ + bf16(slope_h · j)) / sqrt(d), masked, softmaxed."""
    from mha_cli.files.sources import resolve
    from mha_cli.layer.run import run_attention
    from mha_cli.spec.spec import AttentionSpec

    spec = AttentionSpec(
        batch=1, heads=4, hiddens=32, queries=9, kv=9, valid_lens=None, causal=True,
        alibi=True, alibi_scaled=True,
    )  # fmt: skip
    full = run_attention(resolve(spec))
    p = {name: t.double() for name, t in full.parameters.items()}
    x_q, x_k = full.tensors["queries"].double()[0], full.tensors["keys"].double()[0]
    q = (x_q @ p["W_q.weight"].T).reshape(9, 4, 8).permute(1, 0, 2)
    k = (x_k @ p["W_k.weight"].T).reshape(9, 4, 8).permute(1, 0, 2)
    slopes = torch.tensor([2.0 ** (-2 * (h + 1)) for h in range(4)], dtype=torch.float64)
    alibi = (slopes[:, None] * torch.arange(9)).bfloat16().double()  # Falcon rounds to bf16
    scores = (torch.einsum("hqd,hkd->hqk", q, k) + alibi[:, None, :]) / 8**0.5
    future = torch.triu(torch.ones(9, 9, dtype=torch.bool), diagonal=1)
    expected = torch.softmax(scores.masked_fill(future, -torch.inf), dim=-1)
    got = full.attention_weights[0].double()
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------
# T5, mT5, UMT5: relative position bias (issue 19)


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize(("buckets", "distance"), [(32, 128), (8, 5), (6, 10), (64, 1000)])
def test_t5_buckets_are_transformers_buckets(bidirectional, buckets, distance):
    """Every distance from -600 to 600, against T5Attention._relative_position_bucket."""
    from transformers.models.t5.modeling_t5 import T5Attention

    from mha_cli.layer.relative_bias import relative_position_bucket

    relative = torch.arange(-600, 601)[None, :] - torch.arange(3)[:, None]  # (3, 1201)
    expected = T5Attention._relative_position_bucket(relative, bidirectional, buckets, distance)
    got = relative_position_bucket(relative, bidirectional, buckets, distance)
    assert torch.equal(got, expected)
    assert int(got.min()) >= 0 and int(got.max()) < buckets


@pytest.mark.parametrize("family", ["t5", "umt5"])
def test_t5s_relative_bias_is_a_stage_row_from_the_right_table(models, cli, family):
    """Layer 2 of T5 adds layer 0's table (T5 shares it); UMT5's layer 2 its own. The row's
    values are the scores plus transformers' own compute_bias (float64), and the scores are
    not scaled."""
    model = models[family]
    folder = str(model.folder)
    result = cli("inspect", "--weights", folder, "--layer", "2", "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["spec"]["relative_buckets"] == 8
    assert document["spec"]["relative_max_distance"] == 5
    assert document["spec"]["score_scale"] == 1.0
    names = [stage["name"] for stage in document["stages"]]
    assert names.index("scores") < names.index("relative_bias") < names.index("masked_softmax")
    row = document["stages"][names.index("relative_bias")]
    assert "relative_attention_bias" in row["code"] and row["params"] == 8 * 4
    assert "not / sqrt(d)" in document["stages"][names.index("scores")]["code"]
    owner = 0 if family == "t5" else 2
    table = f"encoder.block.{owner}.layer.0.SelfAttention.relative_attention_bias.weight"
    assert table in result.stdout
    report = mha_cli.inspect(weights=folder, layer=2, valid_lens="none", queries=6, kv=6)
    added = report.tensors["relative_bias"].double() - report.tensors["scores"].double()
    with torch.no_grad():
        bias = model.attention(owner).compute_bias(6, 6)  # (1, h, q, k)
    expected = bias[0].double().repeat(2, 1, 1)  # ((b h), q, k), batch-major
    torch.testing.assert_close(added, expected, atol=1e-5, rtol=0)


def test_a_whole_t5_model_reads_its_encoder_exactly(tmp_path):
    """T5ForConditionalGeneration holds an encoder and a decoder: --layer N is the encoder's
    layer N, against transformers' encoder run with a padded batch."""
    import transformers as t
    from hf_models import _redraw

    config = t.T5Config(
        d_model=32, d_kv=8, num_heads=4, num_layers=2, num_decoder_layers=3, d_ff=64,
        vocab_size=64, relative_attention_num_buckets=16, relative_attention_max_distance=20,
    )  # fmt: skip
    config._attn_implementation = "eager"
    model = t.T5ForConditionalGeneration(config).eval()
    _redraw(model, 7)
    model.save_pretrained(tmp_path / "t5")
    ids = torch.randint(2, 64, MASK.shape, generator=torch.Generator().manual_seed(3))
    caught: dict[str, torch.Tensor] = {}
    for layer in (0, 1):
        attention = model.encoder.block[layer].layer[0].SelfAttention
        caught.clear()
        hooks = [
            attention.register_forward_pre_hook(
                lambda _m, args, kwargs: caught.update(input=args[0]), with_kwargs=True
            ),
            attention.register_forward_hook(lambda _m, _a, out: caught.update(output=out[0])),
        ]
        with torch.no_grad():
            result = model.encoder(input_ids=ids, attention_mask=MASK, output_attentions=True)
        for hook in hooks:
            hook.remove()
        report = run_mha(tmp_path / "t5", layer, caught["input"], tmp_path, vision=False)
        torch.testing.assert_close(
            report.attention_weights, result.attentions[layer], atol=1e-5, rtol=0
        )
        torch.testing.assert_close(report.output_tensor, caught["output"], atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"relative_attention_num_buckets": 16}, "relative_attention_num_buckets 16 x heads 4"),
        ({"d_kv": 8}, "head_dim 8"),
    ],
)
def test_a_t5_config_that_contradicts_the_weights_is_refused(models, tmp_path, cli, change, words):
    folder = tmp_path / "t5"
    shutil.copytree(models["t5"].folder, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | change))
    result = cli("inspect", "--weights", str(folder), "--layer", "1")
    assert result.exit_code == 2, result.output
    assert words in result.stderr and "Traceback" not in result.output


def test_t5s_decoder_config_is_refused_by_name(models, tmp_path, cli):
    config = json.loads((models["t5"].folder / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(config | {"is_decoder": True}))
    result = cli("inspect", "--config", str(tmp_path / "config.json"))
    assert result.exit_code == 2, result.output
    assert "is_decoder = true (a decoder alone) is not supported" in result.stderr
    assert "--attention decoder or cross" in result.stderr


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (["--relative-buckets", "3"], "--relative-buckets 3: a relative position bias needs at "
         "least 4 buckets"),
        (["--relative-buckets", "8", "--relative-max-distance", "2"],
         "--relative-max-distance 2 must be more than the 2 distances"),
        (["--relative-buckets", "8", "--score", "additive", "--heads", "1"],
         "--relative-buckets"),
    ],
)  # fmt: skip
def test_relative_bias_options_are_checked(cli, options, words):
    result = cli("inspect", *options)
    assert result.exit_code == 2, result.output
    assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_relative_bias_option_adds_the_tables_column_by_bucket():
    """--relative-buckets on the seeded layer: the row adds table[bucket(j - i), h], the buckets
    recomputed here in float64 from T5's formula (bidirectional: 4 exact, then log-spaced)."""
    import math

    report = mha_cli.inspect(
        relative_buckets="16", relative_max_distance="12", valid_lens="none", heads=2,
        hiddens=8, queries=9, kv=9,
    )  # fmt: skip
    table = report.parameters["relative_bias.weight"].double()  # (16, 2)
    assert table.shape == (16, 2)

    def bucket(rel: int) -> int:  # T5's, written out: 8 buckets a side, 4 of them exact
        side = 8 if rel > 0 else 0
        n = abs(rel)
        if n < 4:
            return side + n
        return side + min(7, 4 + int(math.log(n / 4) / math.log(12 / 4) * 4))

    expected = torch.tensor(
        [[[table[bucket(j - i), h] for j in range(9)] for i in range(9)] for h in range(2)]
    ).repeat(2, 1, 1)
    added = report.tensors["relative_bias"].double() - report.tensors["scores"].double()
    torch.testing.assert_close(added, expected, atol=1e-6, rtol=0)
    from mha_cli.spec.counts import parameter_count

    assert report.summary.total_params == 4 * 8 * 8 + 16 * 2  # W_q, W_k, W_v, W_o and the table
    assert parameter_count(report.spec) == report.summary.total_params


def test_t5_text_is_checked_against_its_attention_weights_not_its_position_bias(
    models, tmp_path, cli
):
    """T5Attention returns (output, position_bias, weights): --text compares mha's weights with
    the third, and they agree (the second, the bias, would differ by units)."""
    from text_models import wordpiece

    folder = tmp_path / "t5"
    shutil.copytree(models["t5"].folder, folder)
    wordpiece().save_pretrained(folder)
    result = cli("inspect", "--weights", str(folder), "--layer", "1", "--text", "the cat sat")
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if "max difference" in x)
    assert float(line.rsplit(" ", 1)[1]) < 1e-5, line


# ---------------------------------------------------------------------------------------------
# T5, mT5, UMT5 decoders: --attention decoder | cross (issue 19)


@pytest.fixture(scope="module")
def t5_models(tmp_path_factory: pytest.TempPathFactory):
    return build_t5_seq2seq(tmp_path_factory.mktemp("t5_seq2seq"))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("family", T5_SEQ2SEQ)
def test_t5_decoder_and_cross_attention_reproduce_transformers(t5_models, tmp_path, family, kind):
    """Whole T5/mT5/UMT5 models, a padded batch on both sides (encoder [6, 4], decoder
    [5, 3]): each attention of layers 0, 1 and the last of its stack, weights within 1e-5,
    the attention block's output within 1e-4; the decoder's relative bias table is its block
    0's (T5, mT5) or its own (UMT5), causal, and cross-attention has none."""
    model = t5_models[family]
    last = model.layers_of(kind) - 1
    assert model.layers_of("decoder") == 3 and model.layers_of("encoder") == 2
    for layer in sorted({0, 1, last}):
        run = encoder_decoder_run(model, layer, kind)
        inputs = {name: run[name] for name in ("queries", "keys", "values", "valid_lens")}
        torch.save(inputs, tmp_path / "inputs.pt")
        report = mha_cli.inspect(
            weights=model.folder, layer=layer, attention=kind, inputs=str(tmp_path / "inputs.pt")
        )
        assert report.spec.attention == kind
        assert report.spec.causal is (kind == "decoder")
        assert report.spec.heads == 4 and report.spec.head_dim == 12
        assert report.spec.score_scale == 1.0
        assert report.spec.queries == run["queries"].shape[1]
        assert report.spec.kv == run["keys"].shape[1]
        module = model.attention(layer, kind)
        for d2l, name in (("W_q", "q"), ("W_k", "k"), ("W_v", "v"), ("W_o", "o")):
            ours = report.parameters[f"{d2l}.weight"]
            torch.testing.assert_close(ours, getattr(module, name).weight, atol=1e-5, rtol=0)
            assert f"{d2l}.bias" not in report.parameters
        if kind == "cross":
            assert report.spec.relative_buckets is None
            assert "relative_bias.weight" not in report.parameters
        else:
            table = model.bias_table(layer, kind).weight
            ours = report.parameters["relative_bias.weight"]
            torch.testing.assert_close(ours, table, atol=1e-5, rtol=0)
        weights = report.attention_weights
        torch.testing.assert_close(weights, run["weights"], atol=1e-5, rtol=0)
        if report.mask is not None:
            assert float(weights[report.mask].abs().max()) == 0.0
        torch.testing.assert_close(report.output_tensor, run["output"], atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    ("kind", "words", "table"),
    [
        ("decoder", "t5 decoder self-attention: decoder.block.N.layer.0.SelfAttention",
         "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"),
        ("cross", "t5 cross-attention: decoder.block.N.layer.1.EncDecAttention", None),
    ],
)  # fmt: skip
def test_t5s_attention_picks_the_decoders_stack_and_its_layers(t5_models, cli, kind, words, table):
    """--attention decoder on layer 2 reads decoder block 2 with decoder block 0's shared table
    (a relative_bias stage row, causal buckets); cross has no such row. The decoder's 3 layers
    (num_decoder_layers) bound --layer, the encoder's 2 without --attention, as before."""
    folder = str(t5_models["t5"].folder)
    args = ("inspect", "--weights", folder, "--attention", kind, "--layer", "2")
    result = cli(*args, "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert words in document["source"]["layout"] and "layer 2 of 3" in document["source"]["layout"]
    assert document["spec"]["causal"] is (kind == "decoder")
    names = [stage["name"] for stage in document["stages"]]
    assert ("relative_bias" in names) is (table is not None)
    if table is not None:
        assert table in result.stdout
    beyond = cli("inspect", "--weights", folder, "--attention", kind, "--layer", "3")
    assert beyond.exit_code == 2 and "gives 3 decoder layers" in beyond.stderr
    encoder = cli("inspect", "--weights", folder, "--layer", "2")
    assert encoder.exit_code == 2 and "gives 2 layers" in encoder.stderr
    meta = cli("inspect", "--config", folder, "--attention", kind, "--layer", "2",
               "--device", "meta", "--format", "json")  # fmt: skip
    assert meta.exit_code == 0, meta.output
    assert json.loads(meta.stdout)["spec"]["relative_buckets"] == (8 if table else None)


@pytest.mark.parametrize("family", T5_SEQ2SEQ)
def test_t5s_weights_alone_are_refused_or_exact_with_their_config(t5_models, tmp_path, cli, family):
    """The weights file alone is refused, with --attention too; given the model's config.json
    with --config, the decoder's self- and cross-attention are read exactly."""
    model = t5_models[family]
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(model.folder / "model.safetensors", alone / "model.safetensors")
    weights = alone / "model.safetensors"
    for extra in ([], ["--attention", "decoder"], ["--attention", "cross"]):
        result = cli("inspect", "--weights", str(weights), *extra)
        assert result.exit_code == 2, result.output
        assert "config.json" in result.stderr and "Traceback" not in result.output
        assert len(result.stderr.strip().splitlines()) == 1
    for kind in ("decoder", "cross"):
        run = encoder_decoder_run(model, 2, kind)
        inputs = {name: run[name] for name in ("queries", "keys", "values", "valid_lens")}
        torch.save(inputs, tmp_path / "inputs.pt")
        report = mha_cli.inspect(
            weights=weights, config=model.folder / "config.json", layer=2, attention=kind,
            inputs=str(tmp_path / "inputs.pt"),
        )  # fmt: skip
        torch.testing.assert_close(report.attention_weights, run["weights"], atol=1e-5, rtol=0)
        torch.testing.assert_close(report.output_tensor, run["output"], atol=1e-4, rtol=0)


def test_families_says_t5_reads_its_decoder(cli):
    from mha_cli.hf.families import TABLE, UNSUPPORTED
    from mha_cli.render.families import families_markdown

    assert cli("families").exit_code == 0
    rows = families_markdown(TABLE, UNSUPPORTED).splitlines()
    row = next(line for line in rows if line.startswith("| t5 |"))
    assert "| t5 or t5_decoder or t5_cross |" in row
    assert "decoder (causal; num_decoder_layers) | cross" in row and "not read" not in row


@pytest.mark.parametrize("kind", ("decoder", "cross"))
@pytest.mark.parametrize("family", ("t5", "umt5"))
def test_compare_agrees_on_t5s_decoder_and_cross_attention(t5_models, family, kind):
    """`mha compare` builds torch's layer from the same weights and agrees on decoder
    layer 2 (the decoder's relative bias included)."""
    from mha_cli.comparison.lines import failure_message

    comparison = mha_cli.compare(
        weights=t5_models[family].folder, layer=2, attention=kind, valid_lens="3,2"
    )
    assert comparison.agrees, failure_message(comparison)
