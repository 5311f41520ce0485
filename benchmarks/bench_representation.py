"""Benchmark: does a few-label criterion pick the representation whose classifier tests best?

For each dataset, each candidate representation (frozen efficientnet_lite0 at several
input sizes, raw ``pixels``) embeds the labeled images and a held-out test set once
(cached). For each seed, random labeled sets of each budget are drawn from the pool
(the smaller budgets are prefixes of the largest; after the first ``--fresh-seeds`` seeds,
from the images those drew, so that no new image needs embedding); on each labeled set we compute the
criteria of :mod:`activelab.loop.representation` (leave-one-out k-NN accuracy for several
k, 5-fold cross-validated logistic regression) and the *true* score: the test accuracy of
the frozen mode's logistic-regression head trained on those labels. A criterion is good
when the candidate it scores highest is the one whose head tests best; the table gives
how often it picks that one and the test accuracy it loses when it does not ("regret").

Datasets: a 10,000-image stratified pool of Fashion-MNIST (/usr/share/datasets/fashion-mnist)
with 1,000 test images, and scikit-learn's digits (1,397 pool / 400 test), written as PNGs.

Run:  HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/bench_representation.py
Prints its tables and replaces the "Measurement" section of docs/representation.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _report import machine, write_section

from activelab.data.datasets import fetch_dataset
from activelab.loop.representation import Candidate, cv_logreg_accuracy, knn_loo_accuracy
from activelab.models import create_model

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "representation.md"
DATASETS = {"fashion-mnist": (10_000, 1_000, 28), "digits": (None, None, 8)}


def load_split(folder: Path, split: str) -> tuple[list[str], np.ndarray, list[str]]:
    """Absolute paths, class indices and class names from ``folder/{split}.csv`` (answers: the pool's)."""
    table = pd.read_csv(folder / f"{split}.csv")
    classes = sorted(table["label"].unique())
    index = {c: i for i, c in enumerate(classes)}
    return [str(folder / p) for p in table["filepath"]], np.array([index[c] for c in table["label"]]), classes


def candidates(side: int) -> list[Candidate]:
    return [
        Candidate("efficientnet_lite0", 32),
        Candidate("efficientnet_lite0", 64),
        Candidate("efficientnet_lite0", 224),
        Candidate("pixels", max(8, min(side, 64))),
    ]


def criteria(x: np.ndarray, y: np.ndarray, seed: int) -> dict[str, float]:
    """Each criterion's score, and its seconds as ``<name>_s``."""
    fns = {f"knn{k}": lambda x, y, k=k: knn_loo_accuracy(x, y, k=k, seed=seed) for k in (1, 3, 5)}
    fns["logreg_cv"] = lambda x, y: cv_logreg_accuracy(x, y, seed=seed)
    out = {}
    for name, fn in fns.items():
        t = time.perf_counter()
        out[name] = fn(x, y)
        out[f"{name}_s"] = time.perf_counter() - t
    return out


def remember_seconds(file: Path, key: str, seconds: float, computed: int) -> float:
    """The seconds of the run that computed ``key``'s embeddings (kept in ``file``; a cached rerun takes ~0 s)."""
    known = json.loads(file.read_text()) if file.exists() else {}
    if computed or key not in known:
        known[key] = seconds
        file.write_text(json.dumps(known, indent=1))
    return float(known[key])


def run_dataset(name: str, work: Path, budgets: list[int], seeds: int, fresh: int) -> pd.DataFrame:
    """One row per (candidate, seed, budget): the criteria, the head's test accuracy and seconds.

    Seeds below ``fresh`` draw their labeled sets from the whole pool; later seeds draw from
    the images those drew, so that they need no new embeddings (224 px is slow on a CPU).
    """
    limit, eval_limit, side = DATASETS[name]
    folder = work / name
    if not (folder / "eval.csv").exists():
        fetch_dataset(name, folder, limit=limit, eval_limit=eval_limit)
    paths, y, classes = load_split(folder, "answers")  # every pool image with its true label
    test_paths, test_y, _ = load_split(folder, "eval")
    picks = {seed: np.random.default_rng(seed).choice(len(paths), size=max(budgets), replace=False)
             for seed in range(min(seeds, fresh))}  # fmt: skip
    needed = sorted(set(np.concatenate(list(picks.values())).tolist()))
    for seed in range(fresh, seeds):
        picks[seed] = np.random.default_rng(seed).choice(needed, size=max(budgets), replace=False)
    rows = []
    for cand in candidates(side):
        model = create_model(cand.name, classes=classes, mode="frozen", image_size=cand.image_size, device="cpu",
                             cache_dir=work / "cache")  # fmt: skip
        t0 = time.perf_counter()
        model.embed([paths[i] for i in needed] + test_paths)
        embed_s = remember_seconds(work / "embed_seconds.json", f"{name} {cand.label}", time.perf_counter() - t0,
                                   model.last_cache_stats.misses)  # fmt: skip
        x_all = dict(zip(needed, model.embed([paths[i] for i in needed]), strict=True))
        for seed, pick in picks.items():
            for budget in budgets:
                sel = pick[:budget]
                x = np.stack([x_all[int(i)] for i in sel])
                crit = criteria(x, y[sel], seed)
                model.fit([paths[i] for i in sel], y[sel].tolist(), seed=seed)
                acc = float((model.predict_proba(test_paths).argmax(axis=1) == test_y).mean())
                rows.append({"dataset": name, "candidate": cand.label, "seed": seed, "budget": budget,
                             "test_acc": acc, "embed_s": embed_s, **crit})  # fmt: skip
        print(f"{name} {cand.label}: {len(needed) + len(test_paths)} images embedded in {embed_s:.0f} s", flush=True)
    return pd.DataFrame(rows)


def agreement(df: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """Per (dataset, budget) and criterion: how often it picks the best-testing candidate, and its regret."""
    out = []
    for (dataset, budget), g in df.groupby(["dataset", "budget"]):
        row: dict[str, object] = {"dataset": dataset, "labels": budget}
        for crit in names:
            hits, regret, corr = [], [], []
            for _, s in g.groupby("seed"):
                best = s["test_acc"].max()
                picked = s.loc[s[crit].idxmax(), "test_acc"]  # first of equal scores, as the choice does
                hits.append(float(np.isclose(picked, best)))
                regret.append(best - picked)
                corr.append(s[crit].corr(s["test_acc"], method="spearman"))
            row[crit] = f"{np.mean(hits) * 100:.0f}% / {np.mean(regret) * 100:.1f} / {np.nanmean(corr):+.2f}"
        out.append(row)
    return pd.DataFrame(out)


def chosen_vs_baselines(df: pd.DataFrame, crit: str, configured: str, exclude: str) -> pd.DataFrame:
    """Test accuracy of the candidate ``crit`` picks among all but ``exclude`` (what default_candidates
    lists), beside the ``configured`` model's, raw pixels' and the best's; and how often the pick tests
    below raw pixels."""
    out = []
    for (dataset, budget), g in df[~df["candidate"].str.fullmatch(exclude)].groupby(["dataset", "budget"]):
        picked, conf, pixels, best, below = [], [], [], [], []
        for _, s in g.groupby("seed"):
            acc = s.set_index("candidate")["test_acc"]
            pick = s.loc[s[crit].idxmax(), "test_acc"]
            pix = acc[acc.index.str.startswith("pixels")].iloc[0]
            picked.append(pick)
            conf.append(acc[configured])
            pixels.append(pix)
            best.append(acc.max())
            below.append(pick < pix)
        out.append({"dataset": dataset, "labels": budget, f"chosen ({crit})": np.mean(picked),
                    configured: np.mean(conf), "pixels": np.mean(pixels), "best": np.mean(best),
                    "chosen below pixels": f"{sum(below)}/{len(below)}"})  # fmt: skip
    return pd.DataFrame(out).round(3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="fashion-mnist,digits")
    parser.add_argument("--budgets", default="50,100,200")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--fresh-seeds", type=int, default=3, help="seeds drawing from the whole pool")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--work", type=Path, default=ROOT / ".bench-cache" / "bench_representation")
    parser.add_argument("--no-doc", action="store_true", help="print only; leave docs/representation.md alone")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    budgets = [int(b) for b in args.budgets.split(",")]
    started = time.perf_counter()
    df = pd.concat([run_dataset(d, args.work, budgets, args.seeds, args.fresh_seeds) for d in args.datasets.split(",")])
    df.to_csv(args.work / "results.csv", index=False)
    names = ["knn1", "knn3", "knn5", "logreg_cv"]
    summary = df.groupby(["dataset", "candidate", "budget"], sort=False)[["test_acc", *names]].mean()
    summary = summary.reset_index().round(3)
    embed = df.groupby(["dataset", "candidate"], sort=False)["embed_s"].first().round(0).reset_index()
    timing = df.groupby(["dataset", "candidate", "budget"], sort=False)[[f"{n}_s" for n in names]].mean()
    timing = (timing * 1000).round(0).astype(int).reset_index()
    picks = agreement(df, names)
    chosen = chosen_vs_baselines(df, "knn3", "efficientnet_lite0@64", r"efficientnet_lite0@32")
    tables = [t.to_markdown(index=False) for t in (summary, picks, embed, timing, chosen)]
    for t in tables:
        print(t, "\n")
    if args.no_doc:
        return
    command = "HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/bench_representation.py"
    if len(sys.argv) > 1:
        command += " " + " ".join(sys.argv[1:])
    minutes = (time.perf_counter() - started) / 60
    body = (
        f"Machine: {machine()}, torch {torch.__version__} with {args.threads} thread(s), shared with other jobs "
        f"while it ran (seconds are indicative only). Date: {date.today().isoformat()}. Took {minutes:.0f} min.\n\n"
        f"Command: `{command}`\n\n"
        f"Mean over {args.seeds} seeds of random labeled sets: seeds 0-{args.fresh_seeds - 1} draw from the whole "
        "pool, later seeds from the images those drew (so that they need no new 224-px embeddings). "
        "`test_acc`: test accuracy of "
        'the frozen mode\'s logistic-regression head (`head="logreg"`) trained on those labels; `knn1/3/5`: '
        "leave-one-out k-NN accuracy (cosine, standardised features); `logreg_cv`: 5-fold cross-validated "
        "logistic regression.\n\n"
        + tables[0]
        + "\n\nDoes the criterion pick the candidate whose head tests best? Each cell: how often it picks it / the "
        "test accuracy it costs against always picking the best (points, mean over all draws) / Spearman "
        "correlation of criterion and test "
        "accuracy across the candidates (mean over seeds).\n\n"
        + tables[1]
        + "\n\nSeconds to embed the labeled images of every seed and the test images once (cached afterwards):\n\n"
        + tables[2]
        + "\n\nMilliseconds to compute each criterion on the labeled embeddings (mean):\n\n"
        + tables[3]
        + "\n\nThe choice among the default candidates of a 64-px project (efficientnet_lite0 at 64 and 224 px, "
        "raw pixels; 32 px left out) with the default criterion (`knn3`): mean test accuracy of the chosen "
        "candidate, of the configured model (efficientnet_lite0@64), of raw pixels and of the best candidate, "
        "and in how many seeds the chosen one tested below raw pixels:\n\n" + tables[4]
    )
    write_section("Measurement", body, DOC)


if __name__ == "__main__":
    main()
