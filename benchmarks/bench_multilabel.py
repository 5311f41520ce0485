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
round takes (fit + score + select). Images, embeddings and finished (strategy, seed)
runs are cached under ``.bench-cache/multilabel/`` (gitignored), so a re-run only
rebuilds the table, the plot and the "Multi-label" section of docs/benchmarks.md.

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_multilabel.py
"""

from __future__ import annotations

import argparse
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
from activelab.simulate.metrics import summarise, target_name
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--strategies", type=lambda s: s.split(","), default=STRATEGIES)
    p.add_argument("--seeds", type=lambda s: [int(v) for v in s.split(",")], default=[0, 1, 2])
    p.add_argument("--pool", type=int, default=1000, help="fashion-pairs pool images")
    p.add_argument("--eval", type=int, default=300, help="fashion-pairs eval images")
    p.add_argument("--initial", type=int, default=20, help="initial labeled images (balanced over label sets)")
    p.add_argument("--k", type=int, default=20, help="images picked per round")
    p.add_argument("--rounds", type=int, default=9, help="acquisition rounds after the initial set")
    p.add_argument(
        "--image-size",
        type=int,
        default=64,
        help="backbone input size (the project rule would pick "
        f"{choose_input_size(PAIR_SIDE, LITE0_NATIVE)} px for 56x28 images)",
    )
    p.add_argument("--no-doc", action="store_true", help="do not write docs/benchmarks.md or the plot")
    args = p.parse_args()

    started = time.time()
    dataset = fetch_dataset(
        "fashion-pairs", CACHE / f"fashion-pairs-{args.pool}-{args.eval}", limit=args.pool, eval_limit=args.eval
    )
    cfg = make_config(args, dataset)
    exp = Experiment(cfg, progress=True)
    exp.run()
    minutes = (time.time() - started) / 60
    frame = rounds_frame(exp.results())
    rows, target = summary_rows(frame)
    table = markdown_table(rows)
    ds = exp.dataset
    print(f"\n{machine()}; {minutes:.1f} min (ran {len(exp.ran)} runs, {len(exp.skipped)} cached)\n\n{table}")
    if args.no_doc:
        return 0

    PLOT.parent.mkdir(parents=True, exist_ok=True)
    plot_learning_curves(
        frame, PLOT, title="fashion-pairs: micro-F1 vs labels (mean ± sd over seeds)", metric="micro_f1"
    )
    command = "OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python " + " ".join(
        ["benchmarks/bench_multilabel.py", *sys.argv[1:]]
    )
    per_image = frame.groupby(["strategy", "seed"]).size()
    settings = (
        f"fashion-pairs (56x28, one or two of {len(ds.classes)} classes per image): pool {ds.n_pool}, eval {ds.n_eval}; "
        f"EfficientNet-Lite0 frozen at {cfg.image_size} px (packaged ImageNet weights), one-vs-rest logistic-regression "
        f"head (`output: sigmoid`); initial {cfg.initial_size} ({cfg.initial}), k = {cfg.k}, {cfg.n_rounds} rounds "
        f"(budget {cfg.budget}, {int(per_image.iloc[0])} evaluations per run); seeds {cfg.seeds}; "
        "every strategy scores the whole unlabeled pool; `multilabel_uncertainty` with `agg: mean`."
    )
    body = "\n".join(
        [
            f"Machine: {machine()}, shared with other jobs while it ran (2 cores, 1 torch thread). "
            f"Date: {time.strftime('%Y-%m-%d', time.gmtime())}.",
            "",
            f"Command: `{command}` ({minutes:.1f} min for this invocation; images, embeddings and finished runs "
            "are cached under `.bench-cache/multilabel/`).",
            "",
            settings,
            "",
            "Finals are mean ± sd over seeds at the last round; AUC is the normalised area under the micro-F1 curve "
            f"(the curve's mean micro-F1); *labels to random's final micro-F1* ({target:.3f}) is read on the "
            "seed-mean curve and *÷ random* divides it by random's; *s / round* is fit + score + select, "
            "wall clock on the loaded machine, with select alone in brackets.",
            "",
            table,
            "![fashion-pairs micro-F1 learning curves](img/multilabel_fashion_pairs_micro_f1.png)",
        ]
    )
    write_section("Multi-label", body)
    print(f"wrote the 'Multi-label' section of docs/benchmarks.md and {PLOT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
