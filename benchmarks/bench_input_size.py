"""Benchmark: the backbone input size, accuracy against embedding speed, on small images.

For each dataset and input size, the frozen EfficientNet-Lite0 (packaged ImageNet
weights) embeds the pool and eval images once (timed: images/s on this machine), then
a logistic-regression head (the fast path's ``logreg``) is trained on random label
budgets of the pool (several seeds) and scored on the eval images.

Datasets, both shipped here: the bundled Fashion-MNIST sample (28x28 grayscale,
500 pool / 200 eval) and scikit-learn's digits (8x8, a stratified 400 pool / 200 eval).
The size :func:`activelab.loop.input_size.choose_input_size` picks for each is marked.

Run:  HF_HUB_OFFLINE=1 nice .venv/bin/python benchmarks/bench_input_size.py
Prints one table and replaces the "Input size" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _report import machine, write_section

from activelab.data.datasets import fetch_dataset, sample_dir
from activelab.loop.input_size import choose_input_size
from activelab.models import create_model

ROOT = Path(__file__).resolve().parents[1]
LITE0_NATIVE = 224


def load_split(folder: Path, split: str) -> tuple[list[str], np.ndarray, list[str]]:
    """Absolute paths, class indices and class names of ``split`` from ``folder/split.csv``."""
    table = pd.read_csv(folder / f"{split}.csv")
    classes = sorted(table["label"].unique())
    index = {c: i for i, c in enumerate(classes)}
    return [str(folder / p) for p in table["filepath"]], np.array([index[c] for c in table["label"]]), classes


def datasets(work: Path) -> dict[str, tuple[Path, int]]:
    """Dataset name -> (folder with pool.csv/eval.csv, image side in px)."""
    digits = work / "digits"
    if not (digits / "eval.csv").exists():
        fetch_dataset("digits", digits, limit=400, eval_limit=200)
    return {"fashion-mnist sample (28 px)": (sample_dir(), 28), "digits (8 px)": (digits, 8)}


def accuracy(
    model,
    paths: list[str],
    y: np.ndarray,
    eval_paths: list[str],
    eval_y: np.ndarray,  # type: ignore[no-untyped-def]
    budget: int,
    seed: int,
) -> float:
    """Eval accuracy of a head fitted on a random ``budget`` of the pool (embeddings cached)."""
    pick = np.random.default_rng(seed).choice(len(paths), size=budget, replace=False)
    model.fit([paths[i] for i in pick], y[pick].tolist(), seed=seed)
    return float((model.predict_proba(eval_paths).argmax(axis=1) == eval_y).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="32,64,128", help="input sizes in pixels")
    parser.add_argument("--budgets", default="20,50,100,300", help="labels per run")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--work", type=Path, default=ROOT / ".bench-cache" / "bench_input_size")
    parser.add_argument("--no-doc", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",")]
    budgets = [int(b) for b in args.budgets.split(",")]

    # the first forward pass imports torchvision's transforms (seconds): keep it out of the timings
    create_model("efficientnet_lite0", path="fast", image_size=sizes[0], device="cpu").embed(
        load_split(sample_dir(), "eval")[0][:1]
    )
    rows = []
    for name, (folder, side) in datasets(args.work).items():
        paths, y, classes = load_split(folder, "pool")
        eval_paths, eval_y, _ = load_split(folder, "eval")
        chosen = choose_input_size(side, LITE0_NATIVE)
        for size in sizes:
            model = create_model("efficientnet_lite0", classes=classes, path="fast", image_size=size, device="cpu")
            t = time.perf_counter()
            model.embed(paths + eval_paths)
            rate = (len(paths) + len(eval_paths)) / (time.perf_counter() - t)
            row: dict[str, object] = {
                "dataset": name,
                "size": f"{size}{' (rule)' if size == chosen else ''}",
                "images/s": f"{rate:.0f}",
            }
            for budget in budgets:
                accs = [accuracy(model, paths, y, eval_paths, eval_y, budget, seed) for seed in range(args.seeds)]
                row[f"{budget} labels"] = f"{np.mean(accs):.3f} ± {np.std(accs):.3f}"
            rows.append(row)
            print(row, flush=True)
    table = pd.DataFrame(rows).to_markdown(index=False)
    print(table)
    if args.no_doc:
        return
    command = "HF_HUB_OFFLINE=1 nice .venv/bin/python benchmarks/bench_input_size.py"
    if len(sys.argv) > 1:
        command += " " + " ".join(sys.argv[1:])
    body = (
        f"Machine: {machine()}, torch {torch.__version__} with {args.threads} threads "
        f"(shared with other jobs while it ran). Date: {date.today().isoformat()}.\n\n"
        f"Command: `{command}`\n\n"
        "Frozen EfficientNet-Lite0 (packaged ImageNet weights, native size 224 px) embeds every pool and eval "
        "image once per input size (images/s: decoding, resizing and the backbone on the CPU, batch 64); a "
        f"logistic-regression head is then fitted on random label budgets of the pool ({args.seeds} seeds, "
        'mean ± sd of eval accuracy). "(rule)" marks the size `choose_input_size` picks '
        '(docs/models.md, "Input size").\n\n'
        f"{table}\n"
    )
    write_section("Input size", body)


if __name__ == "__main__":
    main()
