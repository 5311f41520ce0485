"""FixMatch against its supervised twin on the full path (small_cnn): few labels, same steps.

For each seed: ``--labels`` labeled images drawn at random (seeded, at least one per class)
from a pool, the rest of the pool unlabeled; the same small_cnn recipe fitted with
``semi_supervised="none"`` and ``"fixmatch"``; accuracy on a held-out test split and seconds.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_fixmatch.py --dataset digits --labels 40 --steps 300
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from activelab.models import create_model


def load(dataset: str, n_pool: int, n_test: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(N, H, W) uint8 images and (N,) labels, pool first then test."""
    if dataset == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        images, labels = (d.images * (255.0 / 16.0)).round().astype(np.uint8), d.target
    else:
        from activelab.data.datasets import load_fashion_mnist

        _, _, images, labels = load_fashion_mnist(Path("/usr/share/datasets/fashion-mnist"))
    idx = rng.permutation(len(labels))[: n_pool + n_test]
    return images[idx], labels[idx]


def write(folder: Path, images: np.ndarray) -> list[str]:
    paths = []
    for i, im in enumerate(images):
        p = folder / f"{i:05d}.png"
        Image.fromarray(im, mode="L").save(p)
        paths.append(str(p))
    return paths


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", choices=("digits", "fashion"), default="digits")
    ap.add_argument("--labels", type=int, default=40)
    ap.add_argument("--pool", type=int, default=1297)
    ap.add_argument("--test", type=int, default=500)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--image-size", type=int, default=16)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--mu", type=int, default=3)
    ap.add_argument("--threshold", type=float, default=0.95)
    ap.add_argument("--max-unlabeled", type=int, default=10000)
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    print(f"| seed | method | accuracy | seconds | n_unlabeled | last mask rate |  ({vars(args)})")
    results: dict[str, list[float]] = {"none": [], "fixmatch": []}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            rng = np.random.default_rng(seed)
            images, labels = load(args.dataset, args.pool, args.test, rng)
            folder = Path(tmp) / f"s{seed}"
            folder.mkdir()
            paths = write(folder, images)
            pool, test = paths[: args.pool], paths[args.pool :]
            y_pool, y_test = labels[: args.pool], labels[args.pool :]
            classes = sorted(set(labels.tolist()))
            first = [int(rng.choice(np.flatnonzero(y_pool == c))) for c in classes]
            rest = rng.permutation(np.setdiff1d(np.arange(args.pool), first))[: args.labels - len(first)]
            lab = np.concatenate([first, rest])
            unl = np.setdiff1d(np.arange(args.pool), lab)
            for method in ("none", "fixmatch"):
                m = create_model(
                    "small_cnn", num_classes=len(classes), image_size=args.image_size, width=args.width,
                    epochs=1, min_steps=args.steps, batch_size=args.batch_size, hflip=False, device="cpu",
                    semi_supervised=method, unlabeled_ratio=args.mu, semi_threshold=args.threshold,
                    semi_max_unlabeled=args.max_unlabeled,
                )  # fmt: skip
                t0 = time.perf_counter()
                rep = m.fit([pool[i] for i in lab], y_pool[lab], seed=seed, unlabeled=[pool[i] for i in unl])
                secs = time.perf_counter() - t0
                acc = float((m.predict_proba(test).argmax(1) == y_test).mean())
                results[method].append(acc)
                mask = rep.history[-1].get("mask_rate", float("nan"))
                print(f"| {seed} | {method} | {acc:.3f} | {secs:.0f} | {rep.n_unlabeled} | {mask:.2f} |", flush=True)
    for method, accs in results.items():
        print(f"{method}: mean accuracy {np.mean(accs):.3f} (+- {np.std(accs):.3f}) over {len(accs)} seeds")


if __name__ == "__main__":
    main()
