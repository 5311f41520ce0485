"""Where should ``auto`` switch from typicality to uncertainty? A fast array-only simulation.

Features are computed once per set, then every (strategy, seed) run is a loop of
scikit-learn logistic regressions (``C=1`` on standardised features, the frozen ``logreg``
head's model) from 20 class-balanced initial labels, the strategy reading the model's
``probs`` and the same standardised features as ``embeddings`` (what the loop passes
with a frozen backbone). Sets (``--sets``):

- ``sample``: the bundled Fashion-MNIST sample (500 pool / 200 eval) embedded with
  frozen ``efficientnet_lite0`` at 64 px (cached in ``.bench-cache/auto_switch/``);
- ``digits``: scikit-learn's digits, raw 64-d pixels (1,397 pool / 400 eval);
- ``fashion10k``: 10,000 Fashion-MNIST training images as raw pixels (2,000 test images to evaluate);
- ``fashion5k_lite0``: 5,000 Fashion-MNIST training images (1,000 test) embedded with frozen
  ``efficientnet_lite0`` at 64 px, the setting of the "Label efficiency" runs (cached).

Strategies: random, entropy, margin, typiclust, badge, class_balanced(margin) and
``auto`` with switch points of 5, 10 and 20 labels per class (late phase: margin inside
class_balanced), plus ``auto`` with BADGE late and ``auto`` without class balance.
Prints one markdown table per set: normalised AUC (mean accuracy over the labels axis),
final accuracy, and the normalised entropy (1 = uniform) and min/max of the class
histogram of the acquired labels (the 20 initial ones excluded).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_auto_switch.py --sets digits,sample,fashion10k
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from activelab.strategies import gradient_factors, select

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".bench-cache" / "auto_switch"

#: name -> (registered strategy, parameters)
STRATEGIES: dict[str, tuple[str, dict[str, Any]]] = {
    "random": ("random", {}),
    "entropy": ("entropy", {}),
    "margin": ("margin", {}),
    "typiclust": ("typiclust", {}),
    "badge": ("badge", {}),
    "class_balanced(margin)": ("class_balanced", {"strategy": "margin"}),
    "auto(per_class=5)": ("auto", {"per_class": 5}),
    "auto(per_class=10)": ("auto", {"per_class": 10}),
    "auto(per_class=20)": ("auto", {"per_class": 20}),
    "auto(10) late=badge": ("auto", {"per_class": 10, "late": "badge"}),
    "auto(10) unbalanced": ("auto", {"per_class": 10, "balance": False}),
}

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _digits() -> Arrays:
    from activelab.data.datasets import load_digits_arrays

    xp, yp, xe, ye = load_digits_arrays()
    return xp.reshape(len(xp), -1) / 255.0, yp, xe.reshape(len(xe), -1) / 255.0, ye


def _fashion10k() -> Arrays:
    from activelab.data.datasets import load_fashion_mnist

    xt, yt, xs, ys = load_fashion_mnist()
    g = np.random.default_rng(0)
    pool = g.choice(len(xt), 10_000, replace=False)
    ev = g.choice(len(xs), 2_000, replace=False)
    return xt[pool].reshape(10_000, -1) / 255.0, yt[pool], xs[ev].reshape(2_000, -1) / 255.0, ys[ev]


def _sample() -> Arrays:
    from activelab.data.datasets import sample_dir
    from activelab.models import create_model

    CACHE.mkdir(parents=True, exist_ok=True)
    cached = CACHE / "sample_lite0_64.npz"
    if not cached.exists():
        folder = sample_dir()
        tables = {}
        for split in ("pool", "eval"):
            rows = [line.split(",") for line in (folder / f"{split}.csv").read_text().splitlines()[1:]]
            tables[split] = ([str(folder / r[0]) for r in rows], [r[1] for r in rows])
        classes = sorted(set(tables["pool"][1]))
        model = create_model("efficientnet_lite0", mode="frozen", image_size=64, classes=classes)
        out = {}
        for split, (paths, names) in tables.items():
            out[f"x_{split}"] = model.embed(paths)
            out[f"y_{split}"] = np.array([classes.index(n) for n in names])
        np.savez(cached, **out)
    d = np.load(cached)
    return d["x_pool"], d["y_pool"], d["x_eval"], d["y_eval"]


def _fashion5k_lite0() -> Arrays:
    from activelab.data.datasets import load_fashion_mnist
    from activelab.models import create_model
    from activelab.simulate.data import write_images

    cached = CACHE / "fashion5k_lite0_64.npz"
    if not cached.exists():
        xt, yt, xs, ys = load_fashion_mnist()
        g = np.random.default_rng(0)
        pool = g.choice(len(xt), 5_000, replace=False)
        ev = g.choice(len(xs), 1_000, replace=False)
        model = create_model("efficientnet_lite0", mode="frozen", image_size=64, num_classes=10)
        out = {}
        for split, (images, y) in {"pool": (xt[pool], yt[pool]), "eval": (xs[ev], ys[ev])}.items():
            paths, keys = write_images(images, ROOT / ".bench-cache" / "images")
            out[f"x_{split}"] = model.embed(paths, keys=keys)
            out[f"y_{split}"] = y
        CACHE.mkdir(parents=True, exist_ok=True)
        np.savez(cached, **out)
    d = np.load(cached)
    return d["x_pool"], d["y_pool"], d["x_eval"], d["y_eval"]


#: name -> (loader, k per round, label budget)
SETS: dict[str, tuple[Callable[[], Arrays], int, int]] = {
    "sample": (_sample, 10, 250),
    "digits": (_digits, 10, 250),
    "fashion10k": (_fashion10k, 20, 400),
    "fashion5k_lite0": (_fashion5k_lite0, 20, 300),
}


def run(x: np.ndarray, y: np.ndarray, xe: np.ndarray, ye: np.ndarray, name: str, seed: int, k: int, budget: int):
    """One simulated campaign: (labels, accuracies) per round and the acquired labels' classes."""
    strategy, params = STRATEGIES[name]
    n_classes = int(y.max()) + 1
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(y), dtype=bool)
    for c in range(n_classes):
        mask[rng.choice(np.flatnonzero(y == c), 2, replace=False)] = True
    n_init = int(mask.sum())
    curve: list[tuple[int, float]] = []
    while True:
        clf = LogisticRegression(C=1.0, max_iter=1000).fit(x[mask], y[mask])
        curve.append((int(mask.sum()), float((clf.predict(xe) == ye).mean())))
        if mask.sum() >= budget:
            break
        probs = np.zeros((len(y), n_classes))
        probs[:, clf.classes_] = clf.predict_proba(x)
        labels = np.where(mask, y, -1)
        picks = select(
            strategy,
            min(k, budget - int(mask.sum())),
            rng=rng,
            labeled=mask,
            probs=probs,
            embeddings=x,
            labels=labels,
            grad_factors=gradient_factors(probs),
            **params,
        )
        mask[picks] = True
    acquired = np.bincount(y[mask], minlength=n_classes) - n_init // n_classes
    return curve, acquired


def auc(curve: list[tuple[int, float]]) -> float:
    """Mean accuracy over the labels axis (trapezoid, normalised by the labels range)."""
    n = np.array([c[0] for c in curve], dtype=float)
    a = np.array([c[1] for c in curve])
    return float(np.sum((a[1:] + a[:-1]) / 2 * np.diff(n)) / (n[-1] - n[0]))


def balance(counts: np.ndarray) -> float:
    """Entropy of the class histogram over log C: 1 = uniform."""
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum() / np.log(len(counts)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", default="digits,sample,fashion10k")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument(
        "--strategies", default=",".join(STRATEGIES), help="comma-separated names of STRATEGIES, in table order"
    )
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    names = [s for s in args.strategies.split(",") if s in STRATEGIES]  # in the order given
    for set_name in args.sets.split(","):
        loader, k, budget = SETS[set_name]
        t0 = time.perf_counter()
        xp, yp, xe, ye = loader()
        yp, ye = yp.astype(np.int64), ye.astype(np.int64)  # Fashion-MNIST's are uint8
        scaler = StandardScaler().fit(xp)
        x, xe = scaler.transform(xp).astype(np.float32), scaler.transform(xe).astype(np.float32)
        print(f"\n#### {set_name}: pool {len(yp)}, eval {len(ye)}, d={x.shape[1]}, k={k}, 20 -> {budget} labels")
        print(
            "\n| strategy | AUC (norm.) | AUC − random | final acc. | class balance (entropy) | min / max per class |"
        )
        print("|---|---|---|---|---|---|")
        base = None
        for name in names:
            aucs, finals, bal, lo, hi = [], [], [], [], []
            for seed in seeds:
                curve, acquired = run(x, yp, xe, ye, name, seed, k, budget)
                aucs.append(auc(curve))
                finals.append(curve[-1][1])
                bal.append(balance(acquired))
                lo.append(acquired.min())
                hi.append(acquired.max())
            m = float(np.mean(aucs))
            base = m if name == "random" else base
            diff = "" if base is None else f"{m - base:+.4f}"
            print(
                f"| {name} | {m:.4f} ± {np.std(aucs):.4f} | {diff} | {np.mean(finals):.4f} | "
                f"{np.mean(bal):.3f} | {np.mean(lo):.1f} / {np.mean(hi):.1f} |",
                flush=True,
            )
        print(f"\n({set_name}: {time.perf_counter() - t0:.0f} s, seeds {seeds})", flush=True)


if __name__ == "__main__":
    main()
