"""Real text through a real model: `--text` / `--text-file` with `--weights MODEL --layer N`.

The model folder's own tokenizer (as `save_pretrained` writes it) makes the tokens; transformers
runs the model (eager attention, float32) up to layer N, where a forward pre-hook on that
layer's attention module captures what it receives: the hidden states after the layer's input
norm, with the model's own positions and mask. Those become the self-attention inputs of mha's
rebuilt layer (queries = keys = values), exactly as an `--inputs` file with `hidden_states`
would. The same hook run records the model's own attention weights of that layer, so the run can
say how far mha's weights are from them.

Texts of different lengths form a batch padded on the right; the valid lengths are the
tokenizer's attention mask summed per text. transformers is imported only here, and only when
`--text` is given: reading weights never needs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mha_cli.errors import MhaError

if TYPE_CHECKING:
    import torch

    from mha_cli.spec.spec import AttentionSpec

# What save_pretrained writes for a tokenizer (fast, slow BPE, WordPiece, SentencePiece).
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "tokenizer.model",
    "spiece.model",
    "sentencepiece.bpe.model",
)
# Options whose value the text decides: giving one with --text is a conflict.
CONFLICTS = {
    "inputs": "--inputs",
    "queries": "--queries",
    "kv": "--kv",
    "batch": "--batch",
    "valid_lens": "--valid-lens",
}
INSTALL = 'pip install "mha-cli[text]"'
SHOWN_TOKENS = 24  # tokens listed in a note per text
# config.json keys that bound the positions, in the order transformers' configs read them.
_POSITION_KEYS = ("max_position_embeddings", "n_positions", "n_ctx")


@dataclass(frozen=True)
class TextRequest:
    """The texts asked for (one per batch example) and whether a long one may be cut."""

    texts: tuple[str, ...]
    truncate: bool = False


@dataclass
class Captured:
    """What the model gave for the texts: the inputs of mha's layer and the model's own weights."""

    texts: list[str]
    tokens: list[list[str]]  # each text's tokens, padding left out
    valid_lens: list[int]
    hidden_states: Any  # (b, n, hiddens) float32: the attention's input, after the input norm
    reference: Any  # (b, heads, n, n): the model's own attention weights of the layer, or None
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Options (pure Python: checked before torch or transformers is imported)


def pop_text(options: dict[str, Any]) -> TextRequest | None:
    """Take `text`, `text_file` and `truncate` out of the options; None when no text is given.
    With a text, the dtype is float32 unless the options say otherwise (transformers' run).

    A text may be one string or a list of them (the repeatable option). Conflicts with the
    options the text decides, and a missing `--weights`, are refused here."""
    text = options.pop("text", None)
    text_file = options.pop("text_file", None)
    truncate = bool(options.pop("truncate", None) or False)
    texts: list[str] = [text] if isinstance(text, str) else list(text or [])
    if text_file is not None:
        texts += read_text_file(Path(str(text_file)))
    elif not texts:
        return None
    for name, option in CONFLICTS.items():
        if options.get(name) is not None:
            raise MhaError(
                f"--text and {option} both give the inputs: the text decides the batch, the "
                f"tokens and the valid lengths; drop {option}"
            )
    if options.get("weights") is None:
        raise MhaError(
            "--text needs --weights MODEL_FOLDER (a Hugging Face model folder with its "
            "tokenizer) and --layer N: the model turns the text into that layer's inputs"
        )
    for number, one in enumerate(texts, 1):
        if not isinstance(one, str):
            raise MhaError(f"--text {number} is a {type(one).__name__}, not a string")
        if not one.strip():
            raise MhaError(
                f"--text {number} is empty; give some words (an empty text has no tokens)"
            )
    if not texts:
        raise MhaError(f"--text-file {text_file} holds no text; write one text per line")
    if options.get("dtype") is None:
        options["dtype"] = "float32"  # as transformers runs the model here
    return TextRequest(tuple(texts), truncate)


def read_text_file(path: Path) -> list[str]:
    """One text per line; blank lines are skipped."""
    if not path.is_file():
        raise MhaError(f"--text-file {path}: no such file; give a text file, one text per line")
    try:
        content = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise MhaError(
            f"--text-file {path} is not UTF-8 text ({error.reason}); save it as UTF-8"
        ) from None
    except OSError as error:
        raise MhaError(f"--text-file {path}: cannot read it ({error.strerror})") from None
    return [line for line in content.splitlines() if line.strip()]


def check_model_folder(weights: str) -> Path:
    """The model folder, with tokenizer files in it."""
    folder = Path(weights)
    if not folder.is_dir():
        where = folder.parent if folder.is_file() else folder
        raise MhaError(
            f"--text needs --weights to be a model folder (config.json, weights and tokenizer "
            f"files, as save_pretrained writes them); {weights} is "
            f"{'a file' if folder.is_file() else 'not a folder'}"
            + (f"; try --weights {where}" if folder.is_file() else "")
        )
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise MhaError(
            f"--text: {folder} has no tokenizer files (looked for {', '.join(TOKENIZER_FILES)}); "
            "save the model's tokenizer there (tokenizer.save_pretrained(folder))"
        )
    return folder


def position_limit(folder: Path) -> int | None:
    """How many tokens the model takes, from its config.json (None when it does not say)."""
    from mha_cli.files.json_values import read_json_file

    path = folder / "config.json"
    if not path.is_file():
        return None
    config = read_json_file(path, "give a config.json written by save_pretrained")
    if not isinstance(config, dict):
        return None
    limit = next((config[k] for k in _POSITION_KEYS if isinstance(config.get(k), int)), None)
    if limit is not None and config.get("model_type") == "roberta":
        # RoBERTa's positions start after the padding index: 514 positions hold 512 tokens
        pad = config.get("pad_token_id", 1)
        limit -= (pad if isinstance(pad, int) else 1) + 1
    return limit


# ---------------------------------------------------------------------------------------------
# The run of the model


def load_transformers() -> Any:
    """transformers, quiet, or one line naming the extra to install."""
    try:
        import transformers
    except ImportError:
        raise MhaError(
            f"--text needs the transformers and tokenizers packages; install them with {INSTALL}"
        ) from None
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


@dataclass
class Tokenized:
    ids: Any  # (b, n) input_ids, padded on the right
    mask: Any  # (b, n) attention_mask: ones, then zeros over the padding
    tokens: list[list[str]]  # each text's tokens, padding left out
    notes: list[str]


def tokenize(folder: Path, request: TextRequest) -> Tokenized:
    """The texts as the model's tokenizer makes them, as one batch padded on the right."""
    transformers = load_transformers()
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, TypeError, KeyError) as error:
        first = _first_line(error)
        raise MhaError(
            f"--text: the tokenizer in {folder} cannot be loaded ({first}); save it again with "
            "tokenizer.save_pretrained(folder)"
        ) from None
    notes: list[str] = []
    limit = position_limit(folder)
    single = [tokenizer(text)["input_ids"] for text in request.texts]
    for number, ids in enumerate(single, 1):
        if not ids:
            raise MhaError(f"--text {number} makes no tokens; give some words")
        if limit is not None and len(ids) > limit:
            if not request.truncate:
                raise MhaError(
                    f"--text {number} is {len(ids)} tokens long, and the model takes at most "
                    f"{limit} positions; shorten it, or give --truncate to keep the first {limit}"
                )
            notes.append(
                f"text {number} truncated to its first {limit} tokens of {len(ids)}: "
                f"the model takes {limit} positions"
            )
    lengths = {len(ids) for ids in single}
    if len(lengths) > 1:
        if tokenizer.padding_side != "right":
            notes.append(
                "the tokenizer pads on the left; the batch is padded on the right instead, as "
                "mha's valid lengths mask the end (each text keeps the positions it has alone)"
            )
        tokenizer.padding_side = "right"
        if tokenizer.pad_token is None:
            fallback = tokenizer.eos_token or tokenizer.unk_token
            tokenizer.pad_token = fallback or tokenizer.convert_ids_to_tokens(0)
    encoded = tokenizer(
        list(request.texts),
        padding=len(lengths) > 1,
        truncation=limit is not None and request.truncate,
        max_length=limit if request.truncate else None,
        return_tensors="pt",
    )
    ids, mask = encoded["input_ids"], encoded.get("attention_mask")
    if mask is None:
        import torch

        mask = torch.ones_like(ids)
    lens = mask.sum(dim=1)
    for row, length in enumerate(lens.tolist()):
        if not bool(mask[row, :length].all()):
            raise MhaError(
                f"--text {row + 1}: the tokenizer's attention mask is not ones then padding; "
                "mha's valid lengths cannot express it"
            )
    tokens = [tokenizer.convert_ids_to_tokens(ids[row, :n].tolist()) for row, n in enumerate(lens)]
    return Tokenized(ids, mask, tokens, notes)


_BIAS_FIRST = ("T5Attention", "MT5Attention")  # their forward returns the position bias second


def capture(folder: Path, layer: int, request: TextRequest, module_path: str) -> Captured:
    """Run the model on the texts up to layer `layer`; capture its attention's input and weights.

    `module_path` is the attention module's name in the checkpoint (the parent of its query
    projection), matched against the loaded model's module names by suffix."""
    return capture_layers(folder, [layer], request, [module_path])[0]


def capture_layers(
    folder: Path, layers: list[int], request: TextRequest, module_paths: list[str]
) -> list[Captured]:
    """The same for several layers, in one run of the model (loaded once), up to the last."""
    import torch

    tokenized = tokenize(folder, request)
    ids, mask = tokenized.ids, tokenized.mask
    transformers = load_transformers()
    try:
        model = _load_model(transformers, folder)
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        first = _first_line(error)
        raise MhaError(
            f"--text: transformers cannot load the model in {folder} ({first}); "
            "give a folder written by save_pretrained"
        ) from None
    model.eval()
    modules = [_find_module(model, path, folder) for path in module_paths]
    seen: dict[int, dict[str, Any]] = {layer: {} for layer in layers}
    last = max(layers)

    class _Done(Exception):
        pass

    def hooks(layer: int) -> tuple[Any, Any]:
        def before(_module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            hidden = kwargs.get("hidden_states", args[0] if args else None)
            if isinstance(hidden, torch.Tensor):  # what the attention module receives
                seen[layer]["hidden"] = hidden.detach().clone()

        def after(module: Any, _args: Any, output: Any) -> None:
            # (output, weights); T5's and mT5's attention return (output, position_bias, weights)
            at = 2 if type(module).__name__ in _BIAS_FIRST else 1
            weights = output[at] if isinstance(output, tuple) and len(output) > at else None
            if isinstance(weights, torch.Tensor):
                seen[layer]["weights"] = weights.detach().clone()
            if layer == last:
                raise _Done  # the layers after the last one asked for are not needed

        return before, after

    handles = []
    for layer, module in zip(layers, modules, strict=True):
        before, after = hooks(layer)
        handles.append(module.register_forward_pre_hook(before, with_kwargs=True))
        handles.append(module.register_forward_hook(after))
    try:
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask, output_attentions=True)
    except _Done:
        pass
    finally:
        for handle in handles:
            handle.remove()
    captured = []
    for layer in layers:
        if "hidden" not in seen[layer]:
            raise MhaError(f"--text: layer {layer}'s attention in {folder} was never run")
        captured.append(
            Captured(
                texts=list(request.texts),
                tokens=tokenized.tokens,
                valid_lens=[int(n) for n in mask.sum(dim=1).tolist()],
                hidden_states=seen[layer]["hidden"].float(),
                reference=seen[layer].get("weights"),
                notes=tokenized.notes,
            )
        )
    return captured


def _first_line(error: Exception) -> str:
    """What a library's error says, in one line for ours (its name when it says nothing)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _load_model(transformers: Any, folder: Path) -> Any:
    """The model, eager attention in float32: AutoModel's class for its config, else the class
    config.json's `architectures` names (a tower such as SiglipTextModel has no AutoModel entry)."""
    import json

    import torch

    kwargs = {"attn_implementation": "eager", "dtype": torch.float32, "local_files_only": True}
    try:
        return transformers.AutoModel.from_pretrained(folder, **kwargs)
    except ValueError:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        names = [str(n) for n in config.get("architectures") or []]
        found = [getattr(transformers, n) for n in names if hasattr(transformers, n)]
        if not found:
            raise
        return found[0].from_pretrained(folder, **kwargs)


def _find_module(model: Any, module_path: str, folder: Path) -> Any:
    """The loaded model's module whose name ends the checkpoint's name (a task model's weights
    carry a prefix such as `bert.` or `transformer.` that the base model lacks)."""
    names = [
        name
        for name, _ in model.named_modules()
        if name and (module_path == name or module_path.endswith("." + name))
    ]
    if not names:
        raise MhaError(
            f"--text: transformers' model of {folder} has no module {module_path}; "
            "the checkpoint and its config.json disagree"
        )
    return model.get_submodule(max(names, key=len))


# ---------------------------------------------------------------------------------------------
# Into the run, and the report


def prepare(
    spec: AttentionSpec, request: TextRequest
) -> tuple[AttentionSpec, dict[str, torch.Tensor], Captured]:
    """The spec sized by the texts, the inputs of mha's layer, and what the model gave."""
    if spec.device == "meta":
        raise MhaError(
            "--text runs the model on the text, and the meta device computes nothing; "
            "use --device cpu (or cuda)"
        )
    folder = check_model_folder(str(spec.weights))
    captured = capture(folder, spec.layer, request, attention_module(spec))
    spec, inputs = sized(spec, captured)
    return spec, inputs, captured


def attention_module(spec: AttentionSpec) -> str:
    """The checkpoint's name of layer `spec.layer`'s attention module: its query projection's
    parent (mha's reader of the layer finds it, in every layout it reads)."""
    from mha_cli.files.model_layer import read_model_layer

    _, source, read = read_model_layer(spec)
    if read.attention is not None:
        raise MhaError(
            f"--text on {spec.weights}, an encoder-decoder model (Whisper, BART; T5 with "
            "--attention), is not supported: a text feeds one stack; give the layer's inputs "
            "with --inputs (queries, keys, values: the decoder's states and the encoder's output)"
        )
    return source.keys[0].rsplit(".", 2)[0]


def sized(spec: AttentionSpec, captured: Captured) -> tuple[AttentionSpec, dict[str, Any]]:
    """The spec sized by the captured inputs, and those inputs, as mha's layer takes them."""
    hidden = captured.hidden_states
    batch, length = hidden.shape[0], hidden.shape[1]
    lens = captured.valid_lens
    spec = replace(
        spec,
        batch=batch,
        queries=length,
        kv=length,
        valid_lens=None if all(n == length for n in lens) else tuple(lens),
    )
    return spec, {"queries": hidden, "keys": hidden, "values": hidden}


def max_difference(attention: Any, reference: Any) -> float | None:
    """The largest |mha - model| over every weight, or None when there is nothing to compare."""
    if attention is None or reference is None or tuple(attention.shape) != tuple(reference.shape):
        return None
    return float((attention.double() - reference.double()).abs().max())


def check_line(difference: float) -> str:
    return f"checked against the model's own attention: max difference {difference:.2g}"


def token_lines(captured: Captured) -> list[str]:
    """One line per text: its tokens as the axes label them (the first SHOWN_TOKENS)."""
    from mha_cli.render.token_labels import labels

    lines = []
    for number, tokens in enumerate(captured.tokens, 1):
        shown = labels(tokens)
        more = f" … ({len(shown)} in all)" if len(shown) > SHOWN_TOKENS else ""
        lines.append(f"text {number}, {len(shown)} tokens: {' '.join(shown[:SHOWN_TOKENS])}{more}")
    return lines


def with_text(report: Any, spec: AttentionSpec, captured: Captured) -> Any:
    """The report, holding the texts and tokens, its notes saying how the weights compare with
    the model's own."""
    from mha_cli.text.records import TextRecord

    difference = max_difference(report.attention_weights, captured.reference)
    notes = [*captured.notes, *report.summary.notes, *token_lines(captured)]
    if difference is not None:
        notes.append(check_line(difference))
    record = TextRecord(
        texts=captured.texts,
        tokens=captured.tokens,
        valid_lens=captured.valid_lens,
        model=str(spec.weights),
        layer=spec.layer,
        max_difference=difference,
        heads=list(report.summary.head_roles),
    )
    return replace(
        report,
        spec=spec_for_report(report.spec),
        summary=replace(report.summary, notes=notes),
        text=record,
    )


def spec_for_report(spec: Any) -> Any:
    """The run's final specification as a report shows it: the inputs are the text."""
    return replace(spec, inputs="text")
