"""Big files, small memory (issue 8): one attention layer out of a Llama-7B-shaped checkpoint.

Run by hand: `python bench/checkpoint_bench.py [--runs 5] [--layer 17] [--whole] [--dir DIR]`.

Writes a model folder shaped like Llama-2-7B (32 layers, 4096 hiddens, 32 heads, 11008 MLP,
32000 tokens, float16, about 13.5 GB): config.json and a model.safetensors that is a header
and a sparse file of the full size (the holes cost no disk). Layer `--layer`'s four attention
projections get random values (128 MiB written), so reading them reads real bytes.

Every case is a fresh subprocess timed from spawn to exit; its peak memory is its own maximum
resident set size (`os.wait4`), as in bench/bench.py; this process stays small and imports no
torch, because Linux carries a process's peak RSS across exec into the child it spawns.

Cases: a bare `import torch`; mha reading the layer (`load_hf_layer`, which also checks every
value); and with `--whole`, safetensors' `load_file` of the whole checkpoint with every value
used, memory-mapped and read into memory (`backend="pread"`), when the machine has the memory.
The budget of the issue: time at most 1.5 x `import torch`, peak memory at most `import torch`
+ 3 x the layer's attention weights (3 x 128 MiB).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import (  # bench/bench.py: one fresh child, timed, with its RSS
    child_env,
    mha_executable,
    run_once,
)

HIDDEN, HEADS, LAYERS, MLP, VOCAB = 4096, 32, 32, 11008, 32000
LAYER_BYTES = 4 * HIDDEN * HIDDEN * 2  # q, k, v, o in float16: 128 MiB
MIB = 2**20

READ_LAYER = """
import sys
from mha_cli.hf.checkpoint import load_hf_layer
layer = load_hf_layer(sys.argv[1], int(sys.argv[2]))
assert layer.state["W_q.weight"].shape == (4096, 4096)
assert bool(layer.state["W_o.weight"].any())  # the values were read (and checked, above)
"""
# safetensors 0.8 maps the file: load_file's tensors read their pages when used, so every
# value is used here (any() scans a tensor with no temporary of its size). "pread" reads every
# tensor into memory of its own, as older safetensors and torch.load without mmap do.
READ_WHOLE = """
import sys
from safetensors.torch import load_file
state = load_file(sys.argv[1], backend=sys.argv[2])
assert len(state) == 291
assert sum(bool(t.any()) for t in state.values()) == 4  # only layer 17's attention is random
"""


def tensors() -> dict[str, tuple[int, ...]]:
    """Llama-2-7B's tensors and shapes, as LlamaForCausalLM saves them."""
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (VOCAB, HIDDEN)}
    for i in range(LAYERS):
        head = f"model.layers.{i}."
        for p in "qkvo":
            shapes[f"{head}self_attn.{p}_proj.weight"] = (HIDDEN, HIDDEN)
        shapes[f"{head}mlp.gate_proj.weight"] = (MLP, HIDDEN)
        shapes[f"{head}mlp.up_proj.weight"] = (MLP, HIDDEN)
        shapes[f"{head}mlp.down_proj.weight"] = (HIDDEN, MLP)
        shapes[f"{head}input_layernorm.weight"] = (HIDDEN,)
        shapes[f"{head}post_attention_layernorm.weight"] = (HIDDEN,)
    shapes["model.norm.weight"] = (HIDDEN,)
    shapes["lm_head.weight"] = (VOCAB, HIDDEN)
    return shapes


def write_model(folder: Path, layer: int) -> Path:
    """config.json and a sparse float16 model.safetensors; the layer's attention is random."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    header, offset = {}, 0
    for name, shape in sorted(tensors().items()):
        size = 2
        for n in shape:
            size *= n
        header[name] = {
            "dtype": "F16",
            "shape": list(shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)  # safetensors aligns the data to 8 bytes
    path = folder / "model.safetensors"
    generator = torch.Generator().manual_seed(0)
    with path.open("wb") as file:
        file.write(len(raw).to_bytes(8, "little") + raw)
        file.truncate(8 + len(raw) + offset)  # sparse: nothing written, no disk used
        for p in "qkvo":
            begin = header[f"model.layers.{layer}.self_attn.{p}_proj.weight"]["data_offsets"][0]
            values = torch.randn(HIDDEN, HIDDEN, generator=generator).half()
            file.seek(8 + len(raw) + begin)
            file.write(values.numpy().tobytes())
    config = {"model_type": "llama", "hidden_size": HIDDEN, "num_attention_heads": HEADS}
    config |= {"num_key_value_heads": HEADS, "num_hidden_layers": LAYERS, "intermediate_size": MLP}
    config |= {"vocab_size": VOCAB, "rms_norm_eps": 1e-5, "max_position_embeddings": 4096}
    config |= {"rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}}
    config["dtype"] = "float16"
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return path


def available_memory() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--layer", type=int, default=17)
    parser.add_argument("--whole", action="store_true", help="also load the whole file")
    parser.add_argument("--whole-runs", type=int, default=1, help="runs of each whole-file load")
    parser.add_argument("--dir", type=Path, help="where to write the model (default: a temp dir)")
    parser.add_argument("--write-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.write_only:
        write_model(args.dir, args.layer)
        return

    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        folder = args.dir or tmp / "llama-7b-shaped"
        # A child writes the file: a child's peak RSS counts its parent's memory at the spawn
        # (Linux keeps maxrss across exec), so this process must stay small, torch-free.
        writer = [sys.executable, __file__, "--write-only", "--dir", str(folder)]
        subprocess.run([*writer, "--layer", str(args.layer)], check=True)
        path = folder / "model.safetensors"
        size = path.stat().st_size
        print(f"{path}: {size / 1e9:.2f} GB apparent, layer {args.layer}'s attention 128 MiB")
        python = sys.executable
        light = {
            "import torch": [python, "-c", "import torch"],
            f"mha: read layer {args.layer}": [
                python,
                "-c",
                READ_LAYER,
                str(folder),
                str(args.layer),
            ],
            # The whole command: read the layer, build it (float32), run 8 tokens through it.
            f"mha inspect --layer {args.layer}": [
                mha_executable(),
                "inspect",
                "--weights",
                str(folder),
                "--layer",
                str(args.layer),
                "--batch",
                "1",
                "--queries",
                "8",
                "--kv",
                "8",
                "--valid-lens",
                "none",
            ],
        }
        env = child_env(tmp, inherit=False)
        results = measure(light, args.runs, tmp, env)
        # The whole-file loads come last: they push torch's own files out of the page cache.
        have, need = available_memory() / 1e9, 1.2 * size / 1e9
        if args.whole and have > need:
            whole = {
                f"whole file: load_file {backend}": [python, "-c", READ_WHOLE, str(path), backend]
                for backend in ("mmap", "pread")
            }
            results |= measure(whole, args.whole_runs, tmp, env, warm_up=False)
        elif args.whole:
            print(f"whole-file load skipped: {have:.1f} GB available, it needs about {need:.1f}")
        report(results, args.runs)


def measure(
    cases: dict[str, list[str]], runs: int, cwd: Path, env: dict[str, str], warm_up: bool = True
) -> dict[str, list[tuple[float, float]]]:
    """(wall s, peak MiB) of `runs` fresh processes per case, round-robin over the cases."""
    if warm_up:  # one untimed run each: bytecode written, files in the page cache
        for argv in cases.values():
            run_once(argv, cwd, env)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, argv in cases.items():
            wall, peak, error = run_once(argv, cwd, env)
            if error:
                raise SystemExit(f"{name}: {error}")
            results[name].append((wall, peak))
    return results


def report(results: dict[str, list[tuple[float, float]]], runs: int) -> None:
    base_time = statistics.median(w for w, _ in results["import torch"])
    base_peak = statistics.median(p for _, p in results["import torch"])
    print(
        f"\nmedian of {runs} runs (whole file: of --whole-runs); peak = the process's maximum RSS"
    )
    print(f"{'case':<32} {'time s':>8} {'x torch':>8} {'peak MiB':>9} {'+ MiB':>7}")
    for name, runs_ in results.items():
        wall = statistics.median(w for w, _ in runs_)
        peak = statistics.median(p for _, p in runs_)
        print(f"{name:<32} {wall:8.2f} {wall / base_time:8.2f} {peak:9.0f} {peak - base_peak:7.0f}")
    for name in (n for n in results if n.startswith("mha")):
        budget_line(name, results[name], base_time, base_peak)


def budget_line(
    name: str, runs_: list[tuple[float, float]], base_time: float, base_peak: float
) -> None:
    wall = statistics.median(w for w, _ in runs_)
    peak = statistics.median(p for _, p in runs_)
    budget = base_peak + 3 * LAYER_BYTES / MIB
    print(
        f"{name}: time <= 1.5 x import torch ({1.5 * base_time:.2f} s): "
        f"{'met' if wall <= 1.5 * base_time else 'MISSED'} ({wall / base_time:.2f} x); "
        f"peak <= import torch + 3 x 128 MiB ({budget:.0f} MiB): "
        f"{'met' if peak <= budget else 'MISSED'} (+{peak - base_peak:.0f} MiB)"
    )


if __name__ == "__main__":
    main()
