"""Multi-label active learning on the bundled fashion-pairs set: which strategies beat random.

fashion-pairs (``activelab datasets fetch fashion-pairs``) puts two Fashion-MNIST sample
items side by side, so each image carries one or two of ten classes. The simulation
embeds every image once with a frozen EfficientNet-Lite0 (packaged ImageNet weights),
trains a one-vs-rest logistic-regression head (``output="sigmoid"``) each round, and lets
each strategy pick the next ``k`` images from the whole unlabeled pool; the oracle
answers from the set's label sets. Every strategy starts from the same initial set per seed.

Reported per strategy: final micro-F1, macro-F1 and mAP (mean ± sd over seeds), the
normalised area under the micro-F1 curve, the labels needed to reach random's final
micro-F1 (on the seed-mean curve, and as a ratio to random's), and the seconds one
round takes (fit + score + select). F1 is scored at the 0.5 decision per class, never at
thresholds tuned on the eval images. Images, embeddings and finished (strategy, seed)
runs are cached under ``.bench-cache/multilabel/`` (gitignored), so a re-run only
rebuilds the table, the plot and the "Multi-label" section of docs/benchmarks.md.

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_multilabel.py
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _report import machine, write_section

from activelab.data.datasets import fetch_dataset
from activelab.loop.input_size import choose_input_size
from activelab.simulate import Experiment, SimulationConfig
from activelab.simulate.metrics import normalised_auc, summarise, target_name
from activelab.simulate.reports import plot_learning_curves

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".bench-cache" / "multilabel"
PLOT = ROOT / "docs" / "img" / "multilabel_fashion_pairs_micro_f1.png"
STRATEGIES = ["random", "multilabel_uncertainty", "cvirs", "badge", "typiclust"]
FINAL_METRICS = ("micro_f1", "macro_f1", "map")
#: fashion-pairs images are 56x28; EfficientNet-Lite0's native input is 224 px
PAIR_SIDE, LITE0_NATIVE = 56, 224


def make_config(args: argparse.Namespace, dataset: Path) -> SimulationConfig:
    """The simulation: frozen Lite0 embeddings, a sigmoid logistic-regression head, the whole pool scored."""
    return SimulationConfig(
        task="multilabel",
        dataset=str(dataset),
        strategies=args.strategies,
        strategy_params={"multilabel_uncertainty": {"agg": "mean"}},
        initial="balanced",
        initial_size=args.initial,
        k=args.k,
        budget=args.initial + args.k * args.rounds,
        seeds=args.seeds,
        model="efficientnet_lite0",
        mode="frozen",
        head="logreg",
        image_size=args.image_size,
        threads=1,
        output=str(CACHE / "results"),
        cache_dir=str(CACHE),
        plots=False,
        tsne=False,
    )


def rounds_frame(results: dict[str, dict[int, dict[str, Any]]]) -> pd.DataFrame:
    """One row per (strategy, seed, round): labels, the multi-label metrics and the round's seconds."""
    rows = [
        {
            "strategy": strategy,
            "seed": seed,
            "n_labeled": r["n_labeled"],
            **{m: r["metrics"].get(m, np.nan) for m in FINAL_METRICS},
            "seconds": r["seconds"]["total"],
            "select_seconds": r["seconds"]["select"],
        }
        for strategy, by_seed in results.items()
        for seed, run in sorted(by_seed.items())
        for r in run["rounds"]
    ]
    return pd.DataFrame(rows)


def summary_rows(frame: pd.DataFrame) -> tuple[list[dict[str, Any]], float]:
    """Per strategy: finals (mean, sd over seeds), micro-F1 AUC and labels to random's final micro-F1.

    Returns the rows and that target (random's seed-mean final micro-F1).
    """
    curves = {
        strategy: {
            int(seed): (g["n_labeled"].tolist(), g["micro_f1"].tolist()) for seed, g in df.groupby("seed", sort=True)
        }
        for strategy, df in frame.groupby("strategy", sort=False)
    }
    random_final = frame[frame["strategy"] == "random"]
    last = random_final["n_labeled"].max()
    target = float(random_final.loc[random_final["n_labeled"] == last, "micro_f1"].mean())
    rows = summarise(curves, [target])
    for row in rows:
        df = frame[frame["strategy"] == row["strategy"]]
        finals = df[df["n_labeled"] == df["n_labeled"].max()]
        for m in FINAL_METRICS:
            row[m] = float(finals[m].mean())
            row[f"{m}_sd"] = float(finals[m].std(ddof=0))
        row["labels_to_random_final"] = row.pop(f"labels_to_{target_name(target)}")
        row["ratio_to_random"] = row.pop(f"ratio_to_{target_name(target)}")
        row["seconds_per_round"] = float(df["seconds"].mean())
        row["select_seconds"] = float(df["select_seconds"].mean())
    return rows, target


def markdown_table(rows: list[dict[str, Any]]) -> str:
    head = [
        "strategy",
        "seeds",
        "final micro-F1",
        "final macro-F1",
        "final mAP",
        "AUC micro-F1",
        "AUC / random",
        "labels to random's final micro-F1",
        "÷ random",
        "s / round (select)",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        labels = r["labels_to_random_final"]
        ratio = r["ratio_to_random"]
        cells = [
            r["strategy"],
            str(r["seeds"]),
            *(f"{r[m]:.3f} ± {r[f'{m}_sd']:.3f}" for m in FINAL_METRICS),
            f"{r['auc']:.3f} ± {r['auc_std']:.3f}",
            f"{r['auc_ratio']:.3f}" if r["auc_ratio"] is not None else "-",
            "not reached" if labels is None else str(labels),
            "-" if ratio is None else f"{ratio:.2f}",
            f"{r['seconds_per_round']:.2f} ({r['select_seconds']:.3f})",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def paired_differences(frame: pd.DataFrame) -> dict[str, dict[str, np.ndarray]]:
    """Per strategy, per seed, its final micro-F1, final mAP and micro-F1 AUC minus random's (same initial set)."""

    def per_seed(df: pd.DataFrame) -> pd.DataFrame:
        rows = {}
        for seed, g in df.groupby("seed", sort=True):
            last = g.iloc[-1]
            auc = normalised_auc(g["n_labeled"].to_numpy(), g["micro_f1"].to_numpy())
            rows[seed] = {"final micro-F1": last["micro_f1"], "final mAP": last["map"], "AUC": auc}
        return pd.DataFrame.from_dict(rows, orient="index")

    base = per_seed(frame[frame["strategy"] == "random"])
    return {
        strategy: {col: (per_seed(df)[col] - base[col]).dropna().to_numpy() for col in base.columns}
        for strategy, df in frame.groupby("strategy", sort=False)
        if strategy != "random"
    }


def random_spread(frame: pd.DataFrame) -> dict[str, float]:
    """Random's seed-to-seed sd of its final micro-F1 and its micro-F1 AUC: the yardstick for a gain."""
    df = frame[frame["strategy"] == "random"]
    finals = [g["micro_f1"].iloc[-1] for _, g in df.groupby("seed")]
    aucs = [normalised_auc(g["n_labeled"].to_numpy(), g["micro_f1"].to_numpy()) for _, g in df.groupby("seed")]
    return {"final micro-F1": float(np.std(finals)), "AUC": float(np.std(aucs))}


def reading(frame: pd.DataFrame) -> str:
    """What the numbers say: each strategy against random seed by seed, and which (if any) beat it on every seed."""
    diffs = paired_differences(frame)
    lines = ["Against random, seed by seed (each seed shares its initial set; mean difference, seeds ahead):", ""]
    for strategy, by_metric in diffs.items():
        parts = [f"{name} {d.mean():+.3f} ({int((d > 0).sum())}/{d.size})" for name, d in by_metric.items()]
        lines.append(f"- {strategy}: " + ", ".join(parts))
    winners = [s for s, d in diffs.items() if (d["final micro-F1"] > 0).all() and (d["AUC"] > 0).all()]
    lines.append("")
    if winners:
        lines.append(f"Ahead of random on every seed in both final micro-F1 and AUC: {', '.join(winners)}.")
    else:
        lines.append("No strategy beats random on every seed in both final micro-F1 and AUC.")
    partial = [
        f"{s} ({', '.join(m for m in ('final micro-F1', 'AUC') if (d[m] > 0).all())} only)"
        for s, d in diffs.items()
        if s not in winners and ((d["final micro-F1"] > 0).all() or (d["AUC"] > 0).all())
    ]
    if partial:
        lines[-1] += f" Ahead on every seed in one of the two: {', '.join(partial)}."
    spread = random_spread(frame)
    for metric, sd in spread.items():
        best = max(diffs, key=lambda name: diffs[name][metric].mean())
        gain = diffs[best][metric].mean()
        if gain > 0:
            lines[-1] += f" The largest mean gain in {metric} is {gain:+.3f} ({best})"
        else:
            lines[-1] += f" No strategy gains on random in {metric} on average; the closest is {best} at {gain:+.3f}"
        within = "within" if abs(gain) <= sd else "beyond"
        lines[-1] += f", {within} random's seed-to-seed sd of {sd:.3f}."
    return "\n".join(lines) + "\n"


def settings_text(cfg: SimulationConfig, exp: Experiment, frame: pd.DataFrame) -> str:
    ds = exp.dataset
    evaluations = int(frame.groupby(["strategy", "seed"]).size().iloc[0])
    rule = choose_input_size(PAIR_SIDE, LITE0_NATIVE)
    size = f"{cfg.image_size} px" + (
        "" if cfg.image_size == rule else f" (the project rule would pick {rule} px; smaller to keep the run short)"
    )
    return (
        f"fashion-pairs (56x28, one or two of {len(ds.classes)} classes per image): pool {ds.n_pool}, "
        f"eval {ds.n_eval}; EfficientNet-Lite0 frozen at {size}, packaged ImageNet weights, one-vs-rest "
        f"logistic-regression head (`output: sigmoid`) refitted each round; initial {cfg.initial_size} "
        f"({cfg.initial}), k = {cfg.k}, {cfg.n_rounds} rounds (budget {cfg.budget}, {evaluations} evaluations "
        f"per run, so *labels to* moves in steps of {cfg.k}); seeds {cfg.seeds}; every strategy scores the "
        "whole unlabeled pool; `multilabel_uncertainty` with `agg: mean`."
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--strategies", type=lambda s: s.split(","), default=STRATEGIES)
    p.add_argument("--seeds", type=lambda s: [int(v) for v in s.split(",")], default=[0, 1, 2, 3, 4])
    p.add_argument("--pool", type=int, default=1000, help="fashion-pairs pool images")
    p.add_argument("--eval", type=int, default=300, help="fashion-pairs eval images")
    p.add_argument("--initial", type=int, default=20, help="initial labeled images (balanced over label sets)")
    p.add_argument("--k", type=int, default=20, help="images picked per round")
    p.add_argument("--rounds", type=int, default=9, help="acquisition rounds after the initial set")
    p.add_argument(
        "--image-size",
        type=int,
        default=64,
        help=f"backbone input size (the project rule picks {choose_input_size(PAIR_SIDE, LITE0_NATIVE)} px here)",
    )
    p.add_argument("--no-doc", action="store_true", help="do not write docs/benchmarks.md or the plot")
    args = p.parse_args()

    started, load_before = time.time(), os.getloadavg()[0]
    dataset = fetch_dataset(
        "fashion-pairs", CACHE / f"fashion-pairs-{args.pool}-{args.eval}", limit=args.pool, eval_limit=args.eval
    )
    cfg = make_config(args, dataset)
    exp = Experiment(cfg, progress=True)
    exp.run()
    minutes, load_after = (time.time() - started) / 60, os.getloadavg()[0]
    frame = rounds_frame(exp.results())
    rows, target = summary_rows(frame)
    table = markdown_table(rows)
    text = reading(frame)
    runs = f"{len(exp.ran)} runs computed, {len(exp.skipped)} read from the cache"
    print(f"\n{machine()}; {minutes:.1f} min ({runs})\n\n{table}\n{text}")
    if args.no_doc:
        return 0

    PLOT.parent.mkdir(parents=True, exist_ok=True)
    plot_learning_curves(
        frame, PLOT, title="fashion-pairs: micro-F1 vs labels (mean ± sd over seeds)", metric="micro_f1"
    )
    command = "OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python " + " ".join(
        ["benchmarks/bench_multilabel.py", *sys.argv[1:]]
    )
    body = "\n".join(
        [
            f"Machine: {machine()}, torch with 1 thread, shared with other jobs while it ran "
            f"(load average {load_before:.1f} at the start, {load_after:.1f} at the end). "
            f"Date: {time.strftime('%Y-%m-%d', time.gmtime())}.",
            "",
            f"Command: `{command}` ({minutes:.1f} min, {runs}; images, embeddings and finished runs "
            "are cached under `.bench-cache/multilabel/`).",
            "",
            settings_text(cfg, exp, frame),
            "",
            "Finals are mean ± sd over seeds at the last round; AUC is the normalised area under the micro-F1 curve "
            f"(the curve's mean micro-F1); *labels to random's final micro-F1* ({target:.3f}) is read on the "
            "seed-mean curve and *÷ random* divides it by random's; *s / round* is fit + score + select, "
            "wall clock on the loaded machine, with select alone in brackets. The F1 figures use the 0.5 "
            "decision per class: thresholds are not tuned on the eval images they are scored on (mAP needs none).",
            "",
            table,
            text,
            "![fashion-pairs micro-F1 learning curves](img/multilabel_fashion_pairs_micro_f1.png)",
        ]
    )
    write_section("Multi-label", body)
    print(f"wrote the 'Multi-label' section of docs/benchmarks.md and {PLOT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
