"""How well does ``activelab.label_errors`` find planted label errors? Fashion-MNIST and digits.

Run on demand (not part of the tests)::

    HF_HUB_OFFLINE=1 python benchmarks/bench_label_errors.py                 # both datasets
    HF_HUB_OFFLINE=1 python benchmarks/bench_label_errors.py --datasets digits --rates 0.1

Data: a class-stratified subset of Fashion-MNIST (``--fmnist-train`` train images,
default 10,000, and ``--fmnist-eval`` test images, default 2,000, seed 0, written as
PNGs by ``activelab.data.datasets.fetch_dataset``) and scikit-learn's digits
(1,397 pool / 400 eval). Everything lives in ``.bench-cache/`` (gitignored): the PNGs
and the EfficientNet-Lite0 embeddings at ``--image-size`` px (default 64), so a
re-run only fits heads.

For each noise rate (5/10/20%) and kind, a fraction of the pool labels is flipped:

- ``uniform``: to a class drawn uniformly among the other classes;
- ``confusable``: to the class each class is most often confused with by an
  out-of-fold model trained on the true labels (e.g. shirt -> t-shirt).

The fast path (frozen Lite0 + logistic-regression head) gives ``--folds``-fold
out-of-fold probabilities on the noisy labels; cleanlab ranks them
(``self_confidence``) and flags issues (``prune_by_noise_rate``). Reported:
precision = recall of the top-n ranked labels where n is the true number of flips
("at the true noise rate"), precision and recall of cleanlab's flagged set,
precision in the top 100, and eval accuracy of a head trained on noisy labels,
on auto-cleaned labels (flagged images dropped) and on the true labels. Prints one
table and replaces the "Label errors" section of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from _report import machine, write_section  # noqa: E402  (benchmarks/ is on sys.path when run)

from activelab.data.datasets import DIGITS_CLASSES, FASHION_MNIST_CLASSES, fetch_dataset  # noqa: E402
from activelab.label_errors import out_of_fold_probs, rank_label_issues  # noqa: E402
from activelab.models import EmbeddingCache, create_model  # noqa: E402

CACHE = ROOT / ".bench-cache"


def load(name: str, n_train: int | None, n_eval: int | None) -> dict[str, object]:
    folder = CACHE / f"{name}-{n_train or 'all'}"
    if not (folder / "eval.csv").exists():
        fetch_dataset(name, folder, limit=n_train, eval_limit=n_eval, seed=0, progress=True)
    pool = pd.read_csv(folder / "pool.csv")
    ev = pd.read_csv(folder / "eval.csv")
    classes = DIGITS_CLASSES if name == "digits" else FASHION_MNIST_CLASSES
    idx = {c: i for i, c in enumerate(classes)}
    return {
        "classes": classes,
        "pool_paths": [str(folder / p) for p in pool.filepath],
        "y": np.array([idx[str(c)] for c in pool.label]),
        "eval_paths": [str(folder / p) for p in ev.filepath],
        "y_eval": np.array([idx[str(c)] for c in ev.label]),
    }


def flip(
    y: np.ndarray, rate: float, kind: str, confusable: np.ndarray, n_classes: int, rng: np.random.Generator
) -> np.ndarray:
    """Flip ``round(rate * N)`` labels chosen uniformly at random."""
    noisy = y.copy()
    chosen = rng.choice(len(y), size=round(rate * len(y)), replace=False)
    for i in chosen:
        if kind == "uniform":
            others = [c for c in range(n_classes) if c != y[i]]
            noisy[i] = others[int(rng.integers(len(others)))]
        else:
            noisy[i] = confusable[y[i]]
    return noisy


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="fashion-mnist,digits")
    ap.add_argument("--rates", default="0.05,0.1,0.2")
    ap.add_argument("--kinds", default="uniform,confusable")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--fmnist-train", type=int, default=10000)
    ap.add_argument("--fmnist-eval", type=int, default=2000)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (1: fastest on a shared 2-core machine; head fits oversubscribe badly)",
    )
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    ap.add_argument("--no-write", action="store_true", help="print the table only")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    cache = EmbeddingCache(CACHE / "embeddings")
    rows = []
    embed_notes = []
    started = time.perf_counter()
    for name in args.datasets.split(","):
        data = load(
            name,
            args.fmnist_train if name == "fashion-mnist" else None,
            args.fmnist_eval if name == "fashion-mnist" else None,
        )
        classes: list[str] = data["classes"]  # type: ignore[assignment]
        c = len(classes)
        y: np.ndarray = data["y"]  # type: ignore[assignment]
        paths: list[str] = data["pool_paths"]  # type: ignore[assignment]
        eval_paths: list[str] = data["eval_paths"]  # type: ignore[assignment]
        y_eval: np.ndarray = data["y_eval"]  # type: ignore[assignment]

        def factory(classes: list[str] = classes) -> object:
            return create_model("efficientnet_lite0", classes=classes, image_size=args.image_size, cache=cache)

        t0 = time.perf_counter()
        m = factory()
        m.embed(paths)  # type: ignore[attr-defined]
        m.embed(eval_paths)  # type: ignore[attr-defined]
        misses = m.forward_count  # type: ignore[attr-defined]
        dt = time.perf_counter() - t0
        embed_notes.append(
            f"{name}: {len(paths)} + {len(eval_paths)} images embedded"
            + (f" in {dt:.0f} s ({misses / dt:.0f} img/s)" if misses else " (cached)")
        )

        def eval_acc(
            train_idx: np.ndarray,
            labels: np.ndarray,
            paths: list[str] = paths,
            eval_paths: list[str] = eval_paths,
            y_eval: np.ndarray = y_eval,
        ) -> float:
            model = factory()
            model.fit([paths[i] for i in train_idx], labels[train_idx].tolist(), seed=args.seed)  # type: ignore[attr-defined]
            p = model.predict_proba(eval_paths)  # type: ignore[attr-defined]
            return float((p.argmax(1) == y_eval).mean())

        every = np.arange(len(y))
        acc_true = eval_acc(every, y)
        clean_probs, _ = out_of_fold_probs(factory, paths, y, n_classes=c, folds=args.folds, seed=args.seed)  # type: ignore[arg-type]
        conf = np.zeros((c, c))
        np.add.at(conf, (y, clean_probs.argmax(1)), 1)
        np.fill_diagonal(conf, -1)
        confusable = conf.argmax(1)
        print(
            f"{name}: true-label eval accuracy {acc_true:.3f}; confusable: "
            + ", ".join(f"{classes[a]}->{classes[b]}" for a, b in enumerate(confusable)),
            flush=True,
        )
        for kind in args.kinds.split(","):
            for rate in (float(r) for r in args.rates.split(",")):
                rng = np.random.default_rng([args.seed, int(rate * 1000), kind == "uniform"])
                noisy = flip(y, rate, kind, confusable, c, rng)
                wrong = noisy != y
                t1 = time.perf_counter()
                probs, _ = out_of_fold_probs(factory, paths, noisy, n_classes=c, folds=args.folds, seed=args.seed)  # type: ignore[arg-type]
                ranking = rank_label_issues(noisy, probs, classes=classes, image_ids=list(range(len(y))))
                t_rank = time.perf_counter() - t1
                order = ranking["image_id"].to_numpy()
                n_wrong = int(wrong.sum())
                at_rate = float(wrong[order[:n_wrong]].mean())
                p100 = float(wrong[order[:100]].mean())
                flagged = np.zeros(len(y), dtype=bool)
                flagged[ranking.loc[ranking.is_issue, "image_id"].to_numpy()] = True
                prec_f = float(wrong[flagged].mean()) if flagged.any() else float("nan")
                rec_f = float(flagged[wrong].mean())
                acc_noisy = eval_acc(every, noisy)
                acc_clean = eval_acc(np.flatnonzero(~flagged), noisy)
                row = {
                    "dataset": name,
                    "n_train": len(y),
                    "noise": kind,
                    "rate": rate,
                    "n_flipped": n_wrong,
                    "P=R@noise": at_rate,
                    "flagged": int(flagged.sum()),
                    "P flagged": prec_f,
                    "R flagged": rec_f,
                    "P@100": p100,
                    "acc noisy": acc_noisy,
                    "acc cleaned": acc_clean,
                    "acc true": acc_true,
                    "oof+rank s": t_rank,
                }
                rows.append(row)
                print(
                    " ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True
                )
    table = pd.DataFrame(rows)
    text = table.to_markdown(index=False, floatfmt=".3f")
    print(text)
    if not args.no_write:
        cmd = "HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_label_errors.py " + " ".join(argv or sys.argv[1:])
        body = (
            f"Planted label flips found by `activelab.label_errors` (fast path: frozen EfficientNet-Lite0 at "
            f"{args.image_size} px + logistic-regression head, {args.folds}-fold out-of-fold probabilities, "
            f"cleanlab `self_confidence` ranking, `prune_by_noise_rate` flags). Fashion-MNIST: a class-stratified "
            f"subset of {args.fmnist_train} train / {args.fmnist_eval} test images (seed 0); digits: scikit-learn's "
            f"8x8 digits, 1,397 pool / 400 eval. `P=R@noise`: precision (= recall) of the n lowest-scored labels, "
            f"n = number of flips; `P/R flagged`: cleanlab's flagged set; `P@100`: precision of the top 100; "
            f"`acc cleaned`: trained without the flagged images. `confusable` flips each class to the class an "
            f"out-of-fold model on the true labels confuses it with most.\n\n"
            f"- command: `{cmd.strip()}`\n"
            f"- machine: {machine()}; torch threads: {args.threads}\n"
            f"- date: {_dt.date.today().isoformat()}; total {time.perf_counter() - started:.0f} s\n"
            + "".join(f"- {n}\n" for n in embed_notes)
            + "\n"
            + text
            + "\n"
        )
        write_section("Label errors", body, Path(args.out))


if __name__ == "__main__":
    main()
