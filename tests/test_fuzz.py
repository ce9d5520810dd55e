"""Property tests with hypothesis, through the real command line (issue 4).

1. Random option strings for `inspect`, `heatmap` and `reshape` never produce a traceback: the
   exit code is 0, 1 or 2, and a refusal is one line on stderr that starts with "mha".
2. Every valid small specification runs, and the shapes it prints are those of the tensors it
   exports; the attention weights are (b, h, q, k) and each row sums to 1.
3. `--device meta` and `--device cpu` agree on every stage's shape and count.
4. `mha reshape` explains every reshape whose element counts match, and refuses the others.

The last tests pin command lines that fuzzing found to break the contract; they fail until the
product is fixed and are kept failing on purpose (not xfail), so the lead sees them.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import shlex
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from typer.main import get_command
from typer.testing import CliRunner

from mha_cli.cli import app

ENV = {"COLUMNS": "160", "NO_COLOR": "1", "MHA_DEBUG": ""}
# A refusal is one line naming the option, the value and a fix: a screenful is not one line.
MAX_ERROR_LINE = 1000
# Any single run of a small spec, or a refusal, takes well under this; a hang fails the test.
# (A guard against hangs, not a speed target: bench/bench.py measures speed.)
RUN_LIMIT_S = 30


# --------------------------------------------------------------------------------------------
# Running a command line with a time limit, and the error contract


class TookTooLong(Exception):
    """Raised inside the command by SIGALRM: CliRunner stores it as result.exception."""


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    def expire(signum: int, frame: Any) -> None:
        raise TookTooLong(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def mha(*args: str, limit: int = RUN_LIMIT_S) -> Any:
    """`mha ARGS` in-process, as the `cli` fixture runs it, stopped after `limit` seconds."""
    with time_limit(limit):
        return CliRunner().invoke(app, list(args), env=ENV)


def shown(args: tuple[str, ...] | list[str]) -> str:
    return shlex.join(["mha", *args])


def assert_contract(result: Any, args: tuple[str, ...] | list[str]) -> None:
    """Exit 0, 1 or 2; no traceback; a refusal (2) is one short line on stderr from mha."""
    where = f"{shown(args)}\nexit {result.exit_code}\nstderr: {result.stderr[:2000]!r}"
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{where}\nexception: {result.exception!r}"
    )
    assert result.exit_code in (0, 1, 2), where
    assert "Traceback" not in result.output, where
    if result.exit_code == 2:
        # Lines end at "\n" only: a file name may hold \x85 or \x1e, which splitlines() splits.
        assert result.stderr.count("\n") == 1 and result.stderr.endswith("\n"), where
        assert result.stderr.startswith("mha"), where
        assert len(result.stderr) <= MAX_ERROR_LINE, (
            f"{where}\n(a {len(result.stderr):,}-char line)"
        )


def fuzz(examples: int, shrink: bool = True) -> settings:
    """Settings for a property run through the CLI; `shrink=False` where a failure can be a
    hang, which shrinking would repeat hundreds of times (the minimal cases are pinned below)."""
    phases = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if shrink else [])
    return settings(
        max_examples=examples,
        deadline=None,
        phases=phases,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


# --------------------------------------------------------------------------------------------
# 1. Random option strings never produce a traceback


def _options(command: str) -> tuple[list[str], list[str]]:
    """(options that take a value, flags) of a command, read from the real CLI."""
    params = get_command(app).commands[command].params  # type: ignore[attr-defined]
    valued = [o for p in params if not p.is_flag for o in p.opts]  # type: ignore[attr-defined]
    flags = [o for p in params if p.is_flag for o in [*p.opts, *p.secondary_opts]]  # type: ignore[attr-defined]
    return valued, flags


INSPECT_VALUED, INSPECT_FLAGS = _options("inspect")
HEATMAP_VALUED, HEATMAP_FLAGS = _options("heatmap")
RESHAPE_VALUED, RESHAPE_FLAGS = _options("reshape")
# Options that write a file: only ever given a path inside the example's own folder.
WRITES = {"--export", "--out", "-o", "--render", "-r"}
# Options that read a file: given garbage, the assets below, or a path written by an export.
READS = {"--inputs", "--weights", "--config", "-c"}


def test_the_vocabulary_is_the_real_command_line():
    for name in ("--batch", "--kv-heads", "--valid-lens", "--dtype", "--device", "--config"):
        assert name in INSPECT_VALUED and name in HEATMAP_VALUED
    assert {"--format", "--expect", "--export"} <= set(INSPECT_VALUED)
    assert {"--out", "--dpi", "--image-format", "--export"} <= set(HEATMAP_VALUED)
    assert {"--per-head", "--annotate", "--terminal", "--causal", "--no-bias"} <= set(HEATMAP_FLAGS)
    assert {"--shape", "--to", "--axes", "--batch", "--heads", "--render"} <= set(RESHAPE_VALUED)


# The default run keeps CI fast; `pytest -m long` runs each property again with the full
# budget that found the bugs pinned at the end of this file.
INSPECT_EXAMPLES, HEATMAP_EXAMPLES, RESHAPE_EXAMPLES = 100, 15, 100
LONG_INSPECT, LONG_HEATMAP, LONG_RESHAPE = 1000, 150, 600
BIG_PRESETS = ("bert-base", "gpt2-small", "transformer-base")
# Text a shell can pass: no NUL, no lone surrogates.
TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12
)
# Refused by mha's memory guard on any machine: the smallest needs over 10**12 elements.
HUGE = [10**12, 10**15, 2**63 - 1, 2**63, 2**64, 10**23, -(10**23)]
SPECIAL = [
    "", " ", "none", "None", "3,2;1", "(2,1)", "3,2", "2,2;2,2", "1;1", ";", ",", "1,,2",
    "[2, 1]", "-", "--", "-0", "+3", " 3", "0x10", "1_000", "1e3", "0.5", "1.0", "nan", "inf",
    "-inf", "dot", "additive", "full", "split", "float64", "float16", "bfloat16", "int8",
    "cpu", "meta", "cuda", "json", "markdown", "table", "svg", "pdf", "jpg", "randn", "ones",
    "chapter", "gqa-long", "gpt2-small", "bert-base", "transformer-base", "chaptr",
    "output=2,4,100", "params=40000", "scores=10,4,6", "output=1", "nope=2", "params=x", "=",
]  # fmt: skip
VALUE = st.one_of(
    st.integers(0, 12).map(str),  # valid small sizes (and zero)
    st.integers(-(10**6), -1).map(str),  # negative
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(HUGE).map(str),
    st.sampled_from(SPECIAL),
    TEXT,  # garbage
)
# A relative path (the example runs in its own empty folder) or the folder itself.
SAFE_NAME = TEXT.filter(lambda s: not any(c in s for c in "/\\~") and s.strip() not in ("..",))
WRITE_NAMES = "x.pt x.safetensors x.pth x.txt x out.png out.svg out.pdf out.jpg out sub sub/"
WRITE_PATH = st.one_of(
    st.sampled_from([*WRITE_NAMES.split(), "missing/x.pt", "missing/out.png", ".", ""]),
    SAFE_NAME,
)


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Files a user might pass to the reading options: good, broken and hostile ones."""
    folder = tmp_path_factory.mktemp("fuzz_assets")
    (folder / "good.toml").write_text("batch = 2\nheads = 2\nhiddens = 8\nqueries = 3\nkv = 4\n")
    (folder / "bad.toml").write_text("heads = = 5\n")
    (folder / "unknown.toml").write_text("haeds = 5\n")
    (folder / "wrong_type.toml").write_text('heads = "five"\nvalid_lens = [[1, 2], 3]\n')
    (folder / "binary.toml").write_bytes(b"\xff\xfe\x00 not text")
    (folder / "garbage.pt").write_bytes(b"this is not a checkpoint")
    (folder / "garbage.safetensors").write_bytes(b"\x00\x01 nope")
    with open(folder / "hostile.pt", "wb") as f:
        pickle.dump({"W_q.weight": _Hostile(folder / "marker.txt")}, f)
    torch.save(torch.nn.MultiheadAttention(8, 2).state_dict(), folder / "torch_mha8.pt")
    torch.save({"encoder.weight": torch.zeros(3, 3)}, folder / "unknown_layout.pt")
    inputs8 = {"queries": torch.zeros(2, 3, 8), "keys": torch.zeros(2, 4, 8)}
    torch.save({**inputs8, "values": torch.ones(2, 4, 8)}, folder / "inputs8.pt")
    torch.save({"queries": torch.zeros(2, 3)}, folder / "inputs_bad.pt")
    # NaN queries at the default sizes (2, 4, 100) and (2, 6, 100): every weight is NaN.
    torch.save(_nan_inputs(), folder / "inputs_nan.pt")
    (folder / "dir.pt").mkdir()
    return folder


def _nan_inputs() -> dict[str, torch.Tensor]:
    return {
        "queries": torch.full((2, 4, 100), float("nan")),
        "keys": torch.randn(2, 6, 100),
        "values": torch.randn(2, 6, 100),
    }


class _Hostile:
    """A pickle that would write a marker file if anything ran it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.write_text, (self.marker, "code ran"))


def _read_path(assets: Path) -> st.SearchStrategy[str]:
    names = sorted(p.name for p in assets.iterdir())
    return st.one_of(
        st.sampled_from([str(assets / n) for n in names]),
        st.sampled_from(["x.pt", "x.safetensors", "missing.pt", "missing.toml", ".", ""]),
        TEXT,
    )


def _argument_lists(
    valued: list[str],
    flags: list[str],
    reading: st.SearchStrategy[str],
    most: int,
    value: st.SearchStrategy[str] | None = None,
) -> st.SearchStrategy[list[str]]:
    """Up to `most` options, each with a value, mixed with flags and stray values."""
    value = VALUE if value is None else value

    def value_for(option: str) -> st.SearchStrategy[str]:
        if option in WRITES:
            return WRITE_PATH
        if option in READS:
            return st.one_of(reading, value)
        return value

    pair = st.sampled_from(valued).flatmap(lambda o: value_for(o).map(lambda v: [o, v]))
    stray = value.map(lambda v: [v])  # a value with no option, or a flag followed by a value
    items = [pair, pair, pair, stray]
    if flags:
        items.append(st.sampled_from(flags).map(lambda f: [f]))
    return st.lists(st.one_of(items), max_size=most).map(lambda xs: [a for x in xs for a in x])


def _spec_then_options(options: st.SearchStrategy[list[str]]) -> st.SearchStrategy[list[str]]:
    """Random options alone, or after a valid spec (the last value of an option wins), so that
    half the examples get past validation and run the layer with something odd."""
    base = st.one_of(st.just([]), valid_specs().map(lambda spec: spec[1]))
    return st.tuples(base, options).map(lambda pair: [*pair[0], *pair[1]])


@contextmanager
def fresh_folder(tmp_path: Path) -> Iterator[Path]:
    """Each example runs in a new empty folder, so files one example writes do not leak."""
    folder = Path(tempfile.mkdtemp(prefix="example", dir=tmp_path))
    before = Path.cwd()
    os.chdir(folder)
    try:
        yield folder
    finally:
        os.chdir(before)


def _fuzz(tmp_path: Path, args: list[str]) -> Any:
    with fresh_folder(tmp_path):
        result = mha(*args)
    assert_contract(result, args)
    return result


@fuzz(INSPECT_EXAMPLES, shrink=False)
@given(data=st.data())
def test_random_inspect_options_never_give_a_traceback(tmp_path, assets, data):
    random_inspect(tmp_path, assets, data)


@pytest.mark.long
@fuzz(LONG_INSPECT, shrink=False)
@given(data=st.data())
def test_random_inspect_options_never_give_a_traceback_long(tmp_path, assets, data):
    random_inspect(tmp_path, assets, data)


def random_inspect(tmp_path: Path, assets: Path, data: st.DataObject) -> None:
    options = _argument_lists(INSPECT_VALUED, INSPECT_FLAGS, _read_path(assets), 5)
    args = data.draw(_spec_then_options(options))
    _fuzz(tmp_path, ["inspect", *args])
    assert not (assets / "marker.txt").exists(), "a hostile pickle ran code"


@fuzz(HEATMAP_EXAMPLES, shrink=False)
@given(data=st.data())
def test_random_heatmap_options_never_give_a_traceback(tmp_path, assets, data):
    random_heatmap(tmp_path, assets, data)


@pytest.mark.long
@fuzz(LONG_HEATMAP, shrink=False)
@given(data=st.data())
def test_random_heatmap_options_never_give_a_traceback_long(tmp_path, assets, data):
    random_heatmap(tmp_path, assets, data)


def random_heatmap(tmp_path: Path, assets: Path, data: st.DataObject) -> None:
    valued = [o for o in HEATMAP_VALUED if o != "--dpi"]  # a high dpi renders slowly
    # Presets with 512 to 1024 tokens draw for seconds: leave them to `inspect`.
    value = VALUE.filter(lambda v: v not in BIG_PRESETS)
    options = _argument_lists(valued, HEATMAP_FLAGS, _read_path(assets), 4, value)
    args = data.draw(_spec_then_options(options))
    small = data.draw(st.sampled_from([["--dpi", "20"], ["--dpi", "abc"], ["--dpi", "5"], []]))
    # Always --terminal, or an image inside the example's folder: never ./attention.png elsewhere.
    where = data.draw(st.sampled_from([["--terminal"], ["--out", "out.png"], ["--out", "."]]))
    _fuzz(tmp_path, ["heatmap", *args, *small, *where])


@fuzz(RESHAPE_EXAMPLES, shrink=False)
@given(data=st.data())
def test_random_reshape_options_never_give_a_traceback(tmp_path, data):
    random_reshape(tmp_path, data)


@pytest.mark.long
@fuzz(LONG_RESHAPE, shrink=False)
@given(data=st.data())
def test_random_reshape_options_never_give_a_traceback_long(tmp_path, data):
    random_reshape(tmp_path, data)


def random_reshape(tmp_path: Path, data: st.DataObject) -> None:
    shapes = st.lists(st.integers(-2, 7), min_size=1, max_size=5).map(
        lambda s: ",".join(map(str, s))
    )
    names = ["batch", "heads", "queries", "keys", "b", "h", "q", "k", "x", "(", ")", "batch=2"]
    axes = st.lists(st.sampled_from([*names, "(batch heads)", "(b=2 h)"]), max_size=5).map(",".join)
    argv = ["--shape", "-s", "--to", "-t", "--axes", "-a"]
    extra = st.lists(
        st.sampled_from(argv).flatmap(
            lambda o: st.one_of(shapes if o not in ("--axes", "-a") else axes, VALUE).map(
                lambda v: [o, v]
            )
        ),
        max_size=3,
    ).map(lambda items: [a for i in items for a in i])
    args = [*data.draw(_argument_lists(RESHAPE_VALUED, RESHAPE_FLAGS, TEXT, 4)), *data.draw(extra)]
    _fuzz(tmp_path, ["reshape", *args])


@pytest.mark.parametrize(
    "args",
    [
        ["--queries", "10000000", "--kv", "10000000"],
        ["--queries", "10000000", "--hiddens", "10000", "--heads", "5"],
        ["--kv", "10000000", "--key-size", "100000"],
        ["--batch", "10000000", "--valid-lens", "none", "--queries", "10000000"],
    ],
    ids=" ".join,
)
def test_huge_sizes_are_refused_quickly_by_the_memory_guard(args):
    """Each needs over a terabyte: refused with the estimate and a pointer to --device meta."""
    result = mha("inspect", *args, limit=30)  # a hang guard; bench/bench.py times refusals
    assert_contract(result, ["inspect", *args])
    assert result.exit_code == 2, result.output
    assert "--device meta" in result.stderr
    meta = mha("inspect", *args, "--device", "meta", "--format", "json", limit=10)
    assert meta.exit_code == 0, meta.output  # the meta device computes shapes of any size


# --------------------------------------------------------------------------------------------
# 2 and 3. Valid specifications: printed shapes are the real ones; meta agrees with cpu


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


@st.composite
def valid_specs(draw: st.DrawFn) -> tuple[dict[str, Any], list[str]]:
    """A small specification mha must accept, as (sizes, command-line arguments)."""
    batch, queries, kv = draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 6))
    heads = draw(st.integers(1, 4))
    hiddens = heads * draw(st.integers(1, 5))
    kv_heads = draw(st.sampled_from(_divisors(heads)))
    args = ["--batch", str(batch), "--queries", str(queries), "--kv", str(kv)]
    args += ["--heads", str(heads), "--hiddens", str(hiddens)]
    if kv_heads != heads or draw(st.booleans()):
        args += ["--kv-heads", str(kv_heads)]
    for option in ("--query-size", "--key-size", "--value-size"):
        size = draw(st.none() | st.integers(1, 7))
        if size is not None:
            args += [option, str(size)]
    one_per_example = st.lists(st.integers(0, kv), min_size=batch, max_size=batch).map(
        lambda row: ",".join(map(str, row))
    )
    one_per_query = st.lists(
        st.lists(st.integers(0, kv), min_size=queries, max_size=queries),
        min_size=batch,
        max_size=batch,
    ).map(lambda rows: ";".join(",".join(map(str, r)) for r in rows))
    # One example's per-query rows cannot be written: without a ';' they read as one per example.
    forms = [st.just("none"), one_per_example] + ([one_per_query] if batch > 1 else [])
    lens = draw(st.one_of(forms))
    args += ["--valid-lens", lens]
    if draw(st.booleans()):
        args.append("--causal")
    if draw(st.booleans()):
        args.append("--bias")
    modes = ["split", "full"] if kv_heads == heads else ["split"]
    mode = draw(st.sampled_from([None, *modes]))
    if mode is not None:
        args += ["--value-mode", mode]
    dtype = draw(st.sampled_from([None, "float32", "float64"]))
    if dtype is not None:
        args += ["--dtype", dtype]
    args += ["--seed", str(draw(st.integers(0, 2**31)))]
    sizes = {"batch": batch, "queries": queries, "kv": kv, "heads": heads, "hiddens": hiddens}
    return sizes, args


@fuzz(40)
@given(spec=valid_specs())
def test_every_valid_spec_runs_and_prints_the_real_shapes(tmp_path, spec):
    sizes, args = spec
    export = tmp_path / "x.pt"
    export.unlink(missing_ok=True)
    argv = ["inspect", *args, "--format", "json", "--export", str(export)]
    result = mha(*argv)
    assert_contract(result, argv)
    assert result.exit_code == 0, f"{shown(argv)}\n{result.stderr}"
    document = json.loads(result.stdout)
    exported = torch.load(export, weights_only=True)
    for stage in document["stages"]:
        tensor = exported[stage["name"]]
        assert list(tensor.shape) == stage["shape"], (shown(argv), stage["name"])
        assert stage["bytes"] == tensor.numel() * tensor.element_size(), (shown(argv), stage)
    b, h, q, k = sizes["batch"], sizes["heads"], sizes["queries"], sizes["kv"]
    weights = exported["attention_weights"]
    assert weights.shape == (b, h, q, k), shown(argv)
    sums = weights.double().sum(-1)
    assert torch.allclose(sums, torch.ones_like(sums), atol=1e-5), shown(argv)
    assert list(exported["output"].shape) == document["summary"]["output_shape"], shown(argv)
    assert document["summary"]["output_shape"] == [b, q, sizes["hiddens"]], shown(argv)


STAGE_KEYS = ("name", "shape", "axes", "params", "flops", "bytes")
SUMMARY_KEYS = ("total_params", "total_flops", "output_shape")


@fuzz(30)
@given(spec=valid_specs())
def test_meta_and_cpu_agree_on_every_stage(spec):
    _, args = spec
    documents = []
    for device in ("cpu", "meta"):
        argv = ["inspect", *args, "--format", "json", "--device", device]
        result = mha(*argv)
        assert_contract(result, argv)
        assert result.exit_code == 0, f"{shown(argv)}\n{result.stderr}"
        documents.append(json.loads(result.stdout))
    cpu, meta = (
        (
            [{key: stage[key] for key in STAGE_KEYS} for stage in d["stages"]],
            {key: d["summary"][key] for key in SUMMARY_KEYS},
        )
        for d in documents
    )
    assert cpu == meta, shown(["inspect", *args, "--device", "meta"])


# --------------------------------------------------------------------------------------------
# 4. mha reshape: matching element counts are explained, others refused in one line

VERDICTS = {"ok", "folded", "mixed", "split", "misplaced", "not 4-D"}


@st.composite
def factorisations(draw: st.DrawFn, total: int) -> list[int]:
    """Sizes whose product is `total`, in a random order, with a few 1s mixed in."""
    factors, left = [], total
    while left > 1 and len(factors) < 4:
        d = draw(st.sampled_from([d for d in _divisors(left) if d > 1]))
        factors.append(d)
        left //= d
    if left > 1:
        factors.append(left)
    factors += [1] * draw(st.integers(0, 2))
    return list(draw(st.permutations(factors))) or [1]


@st.composite
def reshapes(draw: st.DrawFn) -> tuple[list[int], list[int]]:
    source = draw(st.lists(st.integers(1, 6), min_size=2, max_size=4))
    target = draw(
        st.one_of(
            factorisations(math.prod(source)),
            st.lists(st.integers(1, 8), min_size=1, max_size=5),
        )
    )
    if draw(st.integers(0, 4)) == 0:  # one size left for reshape to infer
        target[draw(st.integers(0, len(target) - 1))] = -1
    return source, target


@fuzz(150)
@given(case=reshapes(), fmt=st.sampled_from(["json", "table", "markdown"]))
def test_reshape_explains_matching_counts_and_refuses_the_others(case, fmt):
    source, target = case
    argv = ["reshape", "--shape", ",".join(map(str, source)), "--to", ",".join(map(str, target))]
    argv += ["--format", fmt]
    result = mha(*argv)
    assert_contract(result, argv)
    total, known = math.prod(source), math.prod(v for v in target if v != -1)
    fits = total % known == 0 if -1 in target else total == known
    if fits:
        assert result.exit_code == 0, f"{shown(argv)}\n{result.stderr}"
        if fmt == "json":
            document = json.loads(result.stdout)
            assert document["verdict"] in VERDICTS, shown(argv)
            resolved = [total // known if v == -1 else v for v in target]
            assert document["target_shape"] == resolved, shown(argv)
            assert document["source_shape"] == source, shown(argv)
    else:
        assert result.exit_code == 2, f"{shown(argv)}\n{result.output}"
        assert result.stderr.startswith("mha: cannot reshape"), shown(argv)
        assert result.stdout == "", shown(argv)


# --------------------------------------------------------------------------------------------
# Found by the fuzzing above: each breaks the contract, and fails until the product is fixed.

FOUND = [
    # The default --valid-lens message spells out an example list of --batch entries: a
    # 20-million-character "line" at --batch 10**7, MemoryError at 10**12, OverflowError beyond.
    ["inspect", "--batch", "10000000"],
    ["inspect", "--batch", "1000000000000"],
    ["inspect", "--batch", "99999999999999999999999"],
    # torch.manual_seed takes 64 bits: a larger or more negative --seed is a ValueError traceback.
    ["inspect", "--seed", "18446744073709551616"],
    ["inspect", "--seed", "-9223372036854775809"],
    # heads that do not divide a large --hiddens: the message lists divisors(hiddens) by trial
    # division, 40 s for 1000000007 and forever for 10**23 (kv-heads: divisors(heads) likewise).
    ["inspect", "--hiddens", "1000000007"],
    ["inspect", "--hiddens", "99999999999999999999999"],
    ["inspect", "--hiddens", "1000000007", "--heads", "1000000007", "--kv-heads", "2"],
    # An empty --axes is taken as "not given" and looked up among the default names: KeyError
    # for a shape with no default (1 or 5+ axes).
    ["reshape", "--shape", "5", "--axes", ""],
    # A path (or --image-format) with a newline in it is echoed as is: a two-line message.
    ["inspect", "--export", "a\nb"],
    ["inspect", "--inputs", "a\nb"],
    ["inspect", "--weights", "a\nb"],
    ["inspect", "--config", "a\nb.toml"],
    ["heatmap", "--out", "a\nb"],
    ["heatmap", "--per-head", "--image-format", "a\nb"],
    ["reshape", "--render", "a\nb"],
]


@pytest.mark.parametrize("args", FOUND, ids=shown)
def test_found_by_fuzzing(tmp_path, args):
    with fresh_folder(tmp_path):
        result = mha(*args, limit=30)  # a hang guard; bench/bench.py times refusals
    assert_contract(result, args)
    assert result.exit_code == 2, shown(args)


def test_found_by_fuzzing_nan_inputs_in_the_terminal_heatmap(tmp_path):
    """An inputs file with NaN in it: `inspect` and `heatmap --out` run (the weights are NaN),
    but the terminal grid converts NaN to an integer: ValueError and a traceback."""
    path = tmp_path / "nan.pt"
    torch.save(_nan_inputs(), path)
    args = ["heatmap", "--inputs", str(path), "--terminal"]
    result = mha(*args)
    assert_contract(result, args)


# --------------------------------------------------------------------------------------------
# 5. The other ways in: random TOML configs and config.json files (issue 16). Every value goes
# through the same validation as an option: exit 0, or 1/2 with one line, and never NaN output.

CONFIG_EXAMPLES, LONG_CONFIG = 40, 400
ODD_NUMBERS = [0, -1, 1, 2, 4, 8, 0.5, 1e-50, 1e300, math.inf, -math.inf, math.nan, True, "x", [1]]
SCALING = st.fixed_dictionaries(
    {},
    optional={
        "rope_type": st.sampled_from(["linear", "llama3", "default", "yarn", 3]),
        "type": st.sampled_from(["linear", "llama3"]),
        "factor": st.sampled_from(ODD_NUMBERS),
        "low_freq_factor": st.sampled_from([1.0, 4.0, 0, math.nan]),
        "high_freq_factor": st.sampled_from([1.0, 4.0, -2, math.inf]),
        "original_max_position_embeddings": st.sampled_from([8192, 0, 2.5, "x"]),
    },
)
SMALL = st.one_of(st.integers(-1, 8), st.sampled_from(ODD_NUMBERS))
TOML_KEYS = {
    "batch": SMALL,
    "queries": SMALL,
    "kv": SMALL,
    "hiddens": st.sampled_from([8, 12, 16, 0, 7]),
    "heads": st.sampled_from([1, 2, 4, 3, 0]),
    "kv_heads": SMALL,
    "head_dim": SMALL,
    "rotary_dim": SMALL,
    "window": SMALL,
    "causal": st.sampled_from([True, False, 1, "yes"]),
    "rope": st.sampled_from(["none", "half", "interleaved", "spin", 1]),
    "rope_theta": st.sampled_from([10000.0, 1, 0, -5, 1e-50, 1e-30, 1e300, math.inf, math.nan]),
    "rope_scaling": st.one_of(SCALING, st.sampled_from(["none", 5, [1, 2]])),
    "norm_eps": st.sampled_from([1e-6, 0, math.inf, math.nan, -1]),
    "qk_norm": st.booleans(),
    "valid_lens": st.sampled_from(["none", [1, 2], [[1]], "x"]),
    "dtype": st.sampled_from(["float32", "float64", "int8"]),
    "layer": SMALL,
    "haeds": SMALL,
}
HF_KEYS = {
    "hidden_size": st.sampled_from([16, 32, 0, 7, -4, 2.5, "x"]),
    "num_attention_heads": st.sampled_from([1, 2, 4, 3, 0]),
    "num_key_value_heads": st.sampled_from([1, 2, 4, 3, 0]),
    "head_dim": st.sampled_from([4, 8, 6, 0]),
    "num_hidden_layers": st.sampled_from([1, 2, 0]),
    "rope_theta": st.sampled_from([10000.0, 0, -1, 1e-50, 1e300, math.inf, math.nan, "x"]),
    "rope_scaling": st.one_of(SCALING, st.none()),
    "sliding_window": st.sampled_from([None, 0, 2, 3, -1]),
    "max_position_embeddings": st.sampled_from([64, 0, 131072]),
}
# Options given with the config: each may conflict with what the file says.
OVERRIDES = st.lists(
    st.sampled_from(
        [
            ["--rope", "none"],
            ["--rope", "half"],
            ["--no-causal"],
            ["--causal"],
            ["--window", "2"],
            ["--rotary-dim", "2"],
            ["--rope-theta", "inf"],
            ["--rope-theta", "500000"],
            ["--layer", "1"],
            ["--layer", "all"],
            ["--queries", "3"],
            ["--heads", "2"],
        ]
    ),
    max_size=3,
).map(lambda xs: [a for x in xs for a in x])


def toml_value(value: Any) -> str:
    """`value` written as TOML: inline tables, arrays, bare inf and nan."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    return "[" + ", ".join(toml_value(v) for v in value) + "]"


def assert_no_nan_output(result: Any, args: list[str]) -> None:
    """A run that went through prints no NaN range: a spec that would is refused first."""
    if result.exit_code == 0:
        assert "nan" not in result.stdout.lower(), f"{shown(args)}\n{result.stdout[-3000:]}"


def random_config_file(tmp_path: Path, data: st.DataObject) -> None:
    folder = Path(tempfile.mkdtemp(prefix="config", dir=tmp_path))
    if data.draw(st.booleans(), label="toml"):
        values = data.draw(st.dictionaries(st.sampled_from(sorted(TOML_KEYS)), st.none()))
        table = {key: data.draw(TOML_KEYS[key], label=key) for key in values}
        path = folder / "c.toml"
        path.write_text("".join(f"{k} = {toml_value(v)}\n" for k, v in table.items()))
    else:
        family = data.draw(st.sampled_from(["llama", "mistral", "qwen2", "gpt2"]))
        config = {"model_type": family, "hidden_size": 16, "num_attention_heads": 2}
        config |= {"num_hidden_layers": 2}
        keys = data.draw(st.dictionaries(st.sampled_from(sorted(HF_KEYS)), st.none()))
        config |= {key: data.draw(HF_KEYS[key], label=key) for key in keys}
        path = folder / "config.json"
        path.write_text(json.dumps(config))  # NaN and Infinity as Python's json writes them
    command = data.draw(st.sampled_from(["inspect", "inspect", "heatmap", "diagram"]))
    where = {"heatmap": ["--terminal"], "diagram": ["--out", "d.svg"]}.get(command, [])
    args = [command, "--config", str(path), *data.draw(OVERRIDES), *where]
    result = _fuzz(tmp_path, args)
    if command != "diagram":
        assert_no_nan_output(result, args)


@fuzz(CONFIG_EXAMPLES, shrink=False)
@given(data=st.data())
def test_random_config_files_never_give_a_traceback_or_nan(tmp_path, data):
    random_config_file(tmp_path, data)


@pytest.mark.long
@fuzz(LONG_CONFIG, shrink=False)
@given(data=st.data())
def test_random_config_files_never_give_a_traceback_or_nan_long(tmp_path, data):
    random_config_file(tmp_path, data)
