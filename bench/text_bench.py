"""Time `mha heatmap --weights TINY_GPT2 --layer 1 --text "..."` against a bare script that
imports transformers, loads the same model and tokenizer and runs one forward pass (issue 18:
target <= 1.5x).

Run by hand: `python bench/text_bench.py [--runs 5]`. The tiny GPT-2 (tests/hf_models.py) and
its tokenizer (tests/text_models.py) are built once in a temporary folder; each timed run is a
fresh process, measured from outside (wall time), alternating the two sides so machine drift
touches both alike. Prints the medians and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEXT = "the quick brown fox jumps over the lazy dog"
BARE = r"""
import sys
import torch, transformers
folder = sys.argv[1]
tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
model = transformers.AutoModel.from_pretrained(
    folder, attn_implementation="eager", dtype=torch.float32, local_files_only=True
)
with torch.no_grad():
    model(**tokenizer(sys.argv[2], return_tensors="pt"), output_attentions=True)
"""


def build(root: Path) -> Path:
    sys.path.insert(0, str(ROOT / "tests"))
    from hf_models import build_all
    from text_models import with_tokenizer

    models = build_all(root / "models")
    (root / "text").mkdir()
    return with_tokenizer(models["gpt2"].folder, "gpt2", root / "text")


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = build(Path(tmp))
        mha = [sys.executable, "-m", "mha_cli", "heatmap", "--weights", str(folder)]
        mha += ["--layer", "1", "--text", TEXT, "--out", str(Path(tmp) / "text.png")]
        bare = [sys.executable, "-c", BARE, str(folder), TEXT]
        timed(mha), timed(bare)  # warm-up: file caches, bytecode
        ours, theirs = [], []
        for _ in range(args.runs):
            ours.append(timed(mha))
            theirs.append(timed(bare))
    a, b = statistics.median(ours), statistics.median(theirs)
    print(f"mha heatmap --text:                     {a:.2f} s (median of {args.runs})")
    print(f"import transformers + load + 1 forward: {b:.2f} s")
    print(f"ratio {a / b:.2f} (target <= 1.5): {'ok' if a / b <= 1.5 else 'SLOWER'}")


if __name__ == "__main__":
    main()
