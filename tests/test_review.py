"""What a close review of mha found (issue 7), one test per finding: each failed before its fix."""

from __future__ import annotations

import gc
import json
import math
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import torch

import mha_cli
from mha_cli.errors import MhaError

MHA = [sys.executable, "-m", "mha_cli"]


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double() - a.double().mean(), b.double() - b.double().mean()
    return float((a * b).sum() / math.sqrt(float((a * a).sum() * (b * b).sum())))


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_inputs_and_weights_come_from_independent_streams(seed):
    """Finding 1: one seed started both streams alike; inputs and weights correlated (-0.35)."""
    report = mha_cli.inspect(seed=seed, queries=100, kv=100)
    n = 10_000  # W_q holds 100 x 100 values; the standard error of r is about 0.01
    for stage, weight in (("queries", "W_q.weight"), ("keys", "W_k.weight")):
        inputs = report.tensors[stage].flatten()[:n]
        weights = report.parameters[weight].flatten()[:n]
        assert abs(pearson(inputs, weights)) < 0.05, (seed, stage)


def test_a_seed_gives_the_same_numbers_and_leaves_torch_global_generator_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    first = mha_cli.inspect(seed=5).output_tensor
    assert torch.equal(torch.rand(3), expected_next)  # the user's own stream is untouched
    assert torch.equal(mha_cli.inspect(seed=5).output_tensor, first)
    assert not torch.equal(mha_cli.inspect(seed=6).output_tensor, first)


def test_bias_projections_allocate_memory_and_are_not_views(cli):
    """Finding 2: with --bias the projections said `view` and left the activation memory."""
    plain = json.loads(cli("inspect", "--format", "json").stdout)
    biased = json.loads(cli("inspect", "--bias", "--format", "json").stdout)
    for name in ("W_q", "W_k", "W_v", "W_o"):
        stage = next(s for s in biased["stages"] if s["name"] == name)
        assert stage["view"] is False, name
    # A bias adds parameters, not activations: both layers allocate the same tensors.
    assert biased["summary"]["activation_bytes"] == plain["summary"]["activation_bytes"]
    # And the views are the steps that only re-index: split and permute, never a fold.
    views = {s["name"] for s in biased["stages"] if s["view"]}
    roles, steps = ("queries", "keys", "values"), ("split", "permute")
    expected = {f"{r}.{s}" for r in roles for s in steps} | {"output.unfold", "output.permute"}
    assert views == expected


@pytest.mark.parametrize("command", ["inspect", "heatmap"])
def test_help_shows_every_default(runner, command):
    """Finding 4: rich read `[default: ...]` as markup and every default vanished."""
    from mha_cli.cli import app

    text = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"}).stdout
    for option, default in (
        ("--batch", "2"),
        ("--queries", "4"),
        ("--kv", "6"),
        ("--hiddens", "100"),
        ("--heads", "5"),
        ("--valid-lens", "3,2"),
        ("--seed", "0"),
        ("--dtype", "float32"),
    ):
        line = next(line for line in text.splitlines() if f" {option} " in line)
        assert f"[default: {default}]" in line, line


def test_weights_accept_a_consistent_kv_heads(cli, tmp_path):
    """Finding 6: `--kv-heads 5` for a 5-head checkpoint was refused although consistent."""
    layer = torch.nn.MultiheadAttention(100, 5, batch_first=True)
    torch.save(layer.state_dict(), tmp_path / "mha.pt")
    ok = cli("inspect", "--weights", str(tmp_path / "mha.pt"), "--heads", "5", "--kv-heads", "5")
    assert ok.exit_code == 0, ok.output
    wrong = cli("inspect", "--weights", str(tmp_path / "mha.pt"), "--heads", "5", "--kv-heads", "1")
    assert wrong.exit_code == 2
    assert wrong.stderr.startswith("mha: --kv-heads 1 contradicts ")


def test_inspect_reads_at_80_columns(runner):
    """Finding 7: at 80 columns the code column was 3 characters wide."""
    from mha_cli.cli import app

    text = runner.invoke(app, ["inspect"], env={"COLUMNS": "80", "NO_COLOR": "1"}).stdout
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "self.W_q(queries)" in text  # the d2l code is still there, whole
    assert "torch.bmm(queries," in text
    for name in ("queries.split", "valid_lens.repeat", "masked_softmax", "output.concat"):
        assert name in text


def test_too_big_heatmap_suggests_sizes_that_then_work(cli, monkeypatch):
    """Finding 9: `heatmap --config gqa-long` said "use --device cpu", which said "use meta"."""
    import mha_cli.layer.run as run
    import mha_cli.spec.memory as memory

    small = 48 * 2**20  # pretend this machine has 48 MiB free
    monkeypatch.setattr(memory, "available_bytes", lambda: small)
    monkeypatch.setattr(run, "available_bytes", lambda: small)
    on_meta = cli("heatmap", "--queries", "2048", "--kv", "2048", "--device", "meta")
    assert on_meta.exit_code == 2
    assert "--device meta" not in on_meta.stderr.split(";", 1)[1]  # never offered as the fix
    too_big = cli("heatmap", "--queries", "2048", "--kv", "2048", "--valid-lens", "none")
    assert too_big.exit_code == 2
    fix = too_big.stderr.split("e.g. ")[1].split()
    assert fix[0] == "--queries" and fix[2] == "--kv"
    followed = cli("heatmap", "--valid-lens", "none", *fix, "--out", "/dev/null/x.png")
    assert "needs about" not in followed.stderr  # the suggested sizes fit
    assert "does not exist" in followed.stderr  # (and the run got as far as the output path)


def test_python_dash_m_runs_the_command_line():
    done = subprocess.run([*MHA, "--version"], capture_output=True, text=True)
    assert done.returncode == 0
    assert done.stdout.strip() == f"mha {mha_cli.__version__}"
    assert metadata.version("mha-cli") == mha_cli.__version__  # written in one place


def test_shell_completion_is_offered(runner):
    from mha_cli.cli import app

    assert "--install-completion" in runner.invoke(app, ["--help"]).stdout


def test_json_never_holds_nan_or_infinity(cli, tmp_path):
    """Finding 11: a float16 overflow wrote `NaN`/`Infinity` into the JSON, which is not JSON."""
    big = torch.full((1, 2, 8), 60000.0)
    torch.save({"queries": big, "keys": big, "values": big}, tmp_path / "big.pt")
    big_file = str(tmp_path / "big.pt")
    result = cli(
        "inspect", "--inputs", big_file, "--hiddens", "8", "--heads", "2", "--dtype", "float16",
        "--format", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output

    def refuse(constant: str) -> None:
        raise AssertionError(f"not JSON: {constant}")

    document = json.loads(result.stdout, parse_constant=refuse)
    ranges = [s["value_range"] for s in document["stages"]]
    assert [None, None] in ranges  # the overflowed stages say "no finite number", as null


def test_closed_full_and_broken_stdout_end_in_one_line():
    """Finding 12: output that cannot be written ended in a traceback."""
    closed = subprocess.run(
        [*MHA, "inspect"],
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: os.close(1),  # as `mha inspect >&-` in a shell
    )
    assert closed.returncode == 74
    assert closed.stderr == "mha: cannot write to standard output: standard output is closed\n"
    with open("/dev/full", "w") as full:
        done = subprocess.run([*MHA, "inspect"], stdout=full, stderr=subprocess.PIPE, text=True)
    assert done.returncode == 74
    assert done.stderr == "mha: cannot write to standard output: No space left on device\n"
    process = subprocess.Popen(
        [*MHA, "inspect"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader goes away before mha writes
    error = process.stderr.read()
    assert process.wait() == 141
    assert error == "mha: standard output was closed before the output was written (broken pipe)\n"


@pytest.mark.parametrize(
    "args",
    [
        ["heatmap", "--out", "/proc/attention.png"],
        ["heatmap", "--per-head", "--out", "/proc/heads/"],
        ["inspect", "--export", "/proc/stages.pt"],
        ["reshape", "--render", "/proc/layouts.png"],
    ],
)
def test_a_file_system_that_refuses_the_write_ends_in_one_line(cli, args):
    result = cli(*args)
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("mha: cannot ")


def test_validation_answers_without_torch():
    """`mha inspect --heads 7` answers before torch is imported, even where it cannot be."""
    code = (
        "import sys; sys.modules['torch'] = None; sys.argv = ['mha', 'inspect', '{}'];"
        "from mha_cli.cli import main; main()"
    )
    wrong = subprocess.run(
        [sys.executable, "-c", code.format("--heads=7")], capture_output=True, text=True
    )
    assert wrong.returncode == 2
    assert wrong.stderr.startswith("mha: --heads 7: num_hiddens (100) is not divisible by heads")
    fine = subprocess.run(
        [sys.executable, "-c", code.format("--heads=5")], capture_output=True, text=True
    )
    assert fine.returncode == 2
    assert fine.stderr == (
        "mha: this command runs the layer and needs PyTorch, which is not installed here; "
        "install it (pip install torch)\n"
    )


def test_start_up_tricks_stay_in_the_command_line_process(monkeypatch):
    """Finding 13: gc.freeze and the dynamo marks ran in every in-process call."""
    from mha_cli import fast_start
    from mha_cli.layer import meta_speed

    def forbidden() -> int:
        raise AssertionError("the dynamo trick ran outside the mha process")

    monkeypatch.setattr(meta_speed, "skip_dynamo_import", forbidden)
    frozen = gc.get_freeze_count()
    mha_cli.inspect(device="meta", queries=4096, kv=4096)
    assert gc.get_freeze_count() == frozen
    assert not fast_start.enabled()


def test_matplotlib_docstrings_are_skipped_only_in_the_command_line_process():
    """`mha` leaves matplotlib's per-Artist `set()` property listings unwritten while it
    imports matplotlib (nobody reads them there), restores `kwdoc`, and the Python API keeps
    them. Each in a fresh process, matplotlib not yet imported."""
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from mha_cli import fast_start\n"
        "if sys.argv[1] == 'cli':\n"
        "    fast_start.enable()\n"
        "fast_start.import_heavy('matplotlib.figure')\n"
        "import matplotlib.artist, matplotlib.lines\n"
        "restored = matplotlib.artist.kwdoc(matplotlib.lines.Line2D) != ''\n"
        "listed = 'Properties:' in (matplotlib.lines.Line2D.set.__doc__ or '')\n"
        "print(restored, listed)\n"
    )
    for where, listed in (("cli", False), ("api", True)):
        done = subprocess.run(
            [sys.executable, "-c", probe, where], capture_output=True, text=True, check=True
        )
        assert done.stdout.split() == ["True", str(listed)], (where, done.stdout, done.stderr)


def test_api_errors_raise_and_never_exit():
    with pytest.raises(MhaError, match=r"^--heads 7: num_hiddens \(100\) is not divisible"):
        mha_cli.inspect(heads=7)
    with pytest.raises(MhaError, match=r"^options: unknown key 'heds'; did you mean 'heads'\?"):
        mha_cli.inspect(heds=5)
    with pytest.raises(mha_cli.ExpectationFailed, match=r"output expected \(2, 4, 99\)"):
        mha_cli.inspect(expect=["output=2,4,99"])


def test_wheel_ships_every_preset(tmp_path):
    """Presets live in the top-level configs/ folder and must ship inside the wheel."""
    import zipfile

    root = Path(__file__).parent.parent
    wheel_command = ["pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)]
    built = subprocess.run(
        [sys.executable, "-m", *wheel_command, str(root)],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("mha_cli-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    presets = sorted(p.name for p in (root / "configs").glob("*.toml"))
    assert presets  # the folder is not empty
    for preset in presets:
        assert f"mha_cli/configs/{preset}" in names
