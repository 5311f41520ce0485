"""Segmentation active learning on fashion-scenes masks: does asking for regions save labeled pixels?

fashion-scenes (``activelab datasets fetch fashion-scenes``) draws 1 to 6 real Fashion-MNIST
items on textured canvases; its semantic masks (``answers_masks.csv``, ``eval_masks.csv``,
``classes_masks.txt``: background + 10 item classes) are the oracle. ``simulate`` trains the
default segmenter (``DEFAULT_SEGMENTATION_MODEL``, a small U-Net trained from scratch on CPU)
on the labeled pixels each round, warm-started from the previous round, scores the pool with
each strategy and lets the oracle answer.

Two kinds of arms start from the same random initial images per seed (fully labeled):

- image arms (``budget_unit: images``): ``k`` whole images a round: ``random`` and the image
  strategies (default ``seg_entropy``, mean pixel entropy per image);
- region arms (``budget_unit: pixels``): SLIC superpixels (about 16x16 px each) a round, as many
  as fit in the pixels of ``k`` whole images, so every arm labels the same pixels per round:
  ``region_random`` and the region strategies (default ``region_entropy``, ``region_margin``).
  Only the asked regions get labels; the rest of an image stays "ignore" (255).

Reported per arm: final mIoU and pixel accuracy (mean ± sd over seeds), the normalised area
under mIoU against labeled pixels, the labeled pixels (and images touched) needed to reach
random's final mIoU on the seed-mean curve with the ratio to random's, and the seconds a round
takes (fit, score the pool, select). The issue's goal: a region strategy reaches random's final
mIoU with at most 0.5x random's labeled pixels. ``--full`` also trains once on every pool image
(seed 0) for the full-label mIoU that the published figures are relative to.

Scenes and finished (strategy, seed) runs are cached under ``.bench-cache/segmentation/``
(gitignored), so a re-run only rebuilds the tables, the plot and the "Segmentation" section of
docs/benchmarks.md.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_segmentation.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _report import machine, write_section

from activelab._defaults import DEFAULT_SEGMENTATION_MODEL
from activelab.data.datasets import fetch_dataset
from activelab.simulate import Experiment, SimulationConfig
from activelab.simulate.metrics import normalised_auc

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".bench-cache" / "segmentation"
PLOT = ROOT / "docs" / "img" / "segmentation_fashion_scenes_miou.png"
IMAGE_STRATEGIES = ["random", "seg_entropy"]
REGION_STRATEGIES = ["region_random", "region_entropy", "region_margin"]
#: the issue's goal: a region strategy reaches random's final mIoU with at most this share of its pixels
GOAL_RATIO = 0.5
#: published results to set beside ours (their settings differ: say so with the numbers)
PUBLISHED = [
    (
        "MaskAL (Blok et al., Comput. Electron. Agric. 2022; arXiv 2112.06586)",
        "Mask R-CNN, broccoli images with 5 visually similar classes, 14,000-image pool, whole images, "
        "12 sampling iterations up to 2,500 images",
        "MaskAL after 900 images matched random after 2,300; 93.9 % of the full-set model's performance "
        "with 17.9 % of the images (random: 81.9 % with 16.4 %)",
    ),
    (
        "CEREALS (Mackowiak et al., BMVC 2018)",
        "Cityscapes, regions chosen by uncertainty and a learned annotation-cost model",
        "95 % of the fully supervised mIoU with 17 % of the annotation effort (cost-model clicks, not pixels)",
    ),
    (
        "Spatial diversity (Cai, Xu, Zhang and Foo, IEEE TIP 30, 2021)",
        "Cityscapes and PASCAL VOC, region-based AL with local spatial diversity",
        "95 % of the fully supervised performance with 5-9 % of the labeled pixels",
    ),
    (
        "Superpixels (Cai, Xu, Liew and Foo, CVPR 2021)",
        "Cityscapes and PASCAL VOC, superpixels (one dominant label each) against rectangles + polygons",
        "superpixels win when cost is counted in clicks; counting labeled pixels under-rates them "
        "(no single pixel share in the abstract)",
    ),
]


def make_config(args: argparse.Namespace, dataset: Path, *, regions: bool) -> SimulationConfig:
    """One arm family: image strategies with a budget of images, or region strategies with the same pixels."""
    per_image = args.size * args.size
    return SimulationConfig(
        task="segmentation",
        dataset=str(dataset),
        strategies=args.region_strategies if regions else args.image_strategies,
        initial="random",
        initial_size=args.initial,
        k=args.k * per_image if regions else args.k,
        budget_unit="pixels" if regions else "images",
        rounds=args.rounds,
        budget=None if regions else args.initial + args.k * args.rounds,
        seeds=args.seeds,
        model=args.model,
        image_size=args.size,
        model_options={"min_steps": args.min_steps, "epochs": args.epochs},
        targets=[1.0],
        threads=1,
        output=str(CACHE / ("results-regions" if regions else "results-images")),
        cache_dir=str(CACHE),
        plots=False,
        tsne=False,
    )


def rounds_frame(results: dict[str, dict[int, dict[str, Any]]], pixels_per_image: int) -> pd.DataFrame:
    """One row per (strategy, seed, round): images touched, labeled pixels, mIoU, pixel accuracy, seconds."""
    rows = [
        {
            "strategy": strategy,
            "seed": seed,
            "round": r["round"],
            "n_labeled": r["n_labeled"],
            "n_pixels": r.get("n_pixels", r["n_labeled"] * pixels_per_image),
            "miou": r["metrics"]["miou"],
            "pixel_accuracy": r["metrics"]["pixel_accuracy"],
            "seconds": r["seconds"]["total"],
            "fit_seconds": r["seconds"]["fit"],
            "score_seconds": r["seconds"]["score_pool"],
            "select_seconds": r["seconds"]["select"],
        }
        for strategy, by_seed in results.items()
        for seed, run in sorted(by_seed.items())
        for r in run["rounds"]
    ]
    return pd.DataFrame(rows)


def _reach(df: pd.DataFrame, x: str, target: float) -> float | None:
    """The seed-mean ``x`` of the first round whose seed-mean mIoU reaches ``target``; None if none does.

    Images touched may stay flat from one round to the next (regions in images already touched),
    so this reads rounds rather than :func:`~activelab.simulate.metrics.labels_to_reach`'s strictly
    increasing curve.
    """
    by_round = df.groupby("round")
    hit = np.flatnonzero(by_round["miou"].mean().to_numpy() >= target - 1e-12)
    return float(by_round[x].mean().to_numpy()[hit[0]]) if hit.size else None


def summary_rows(frame: pd.DataFrame) -> tuple[list[dict[str, Any]], float]:
    """Per arm: finals (mean, sd over seeds), AUC against pixels, pixels and images to random's final mIoU.

    Returns the rows and that target (random's seed-mean final mIoU).
    """
    randoms = frame[frame["strategy"] == "random"]
    target = float(randoms.loc[randoms["round"] == randoms["round"].max(), "miou"].mean())
    base_auc = None
    rows = []
    for strategy, df in frame.groupby("strategy", sort=False):
        finals = df[df["round"] == df["round"].max()]
        aucs = [normalised_auc(g["n_pixels"].to_numpy(), g["miou"].to_numpy()) for _, g in df.groupby("seed")]
        row = {
            "strategy": strategy,
            "seeds": int(df["seed"].nunique()),
            "miou": float(finals["miou"].mean()),
            "miou_sd": float(finals["miou"].std(ddof=0)),
            "pixel_accuracy": float(finals["pixel_accuracy"].mean()),
            "pixel_accuracy_sd": float(finals["pixel_accuracy"].std(ddof=0)),
            "auc": float(np.mean(aucs)),
            "auc_sd": float(np.std(aucs)),
            "final_pixels": float(finals["n_pixels"].mean()),
            "final_images": float(finals["n_labeled"].mean()),
            "pixels_to": _reach(df, "n_pixels", target),
            "images_to": _reach(df, "n_labeled", target),
            "fit_seconds": float(df["fit_seconds"].mean()),
            "score_seconds": float(df["score_seconds"].mean()),
            "select_seconds": float(df["select_seconds"].mean()),
            "seconds_per_round": float(df["seconds"].mean()),
        }
        if strategy == "random":
            base_auc = row["auc"]
        rows.append(row)
    base_pixels = next(r["pixels_to"] for r in rows if r["strategy"] == "random")
    for row in rows:
        row["auc_ratio"] = row["auc"] / base_auc if base_auc else None
        row["pixels_ratio"] = row["pixels_to"] / base_pixels if row["pixels_to"] is not None else None
    return rows, target


def markdown_table(rows: list[dict[str, Any]], pixels_per_image: int) -> str:
    head = [
        "arm",
        "seeds",
        "final mIoU",
        "final pixel acc.",
        "AUC mIoU (pixels)",
        "AUC / random",
        "pixels to random's final mIoU (images' worth)",
        "÷ random",
        "images touched then",
        "pixels labeled (final, images' worth)",
        "images touched (final)",
        "s / round: fit + score + select",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def worth(pixels: float | None) -> str:
        return "not reached" if pixels is None else f"{pixels:,.0f} ({pixels / pixels_per_image:.0f})"

    for r in rows:
        cells = [
            r["strategy"],
            str(r["seeds"]),
            f"{r['miou']:.4f} ± {r['miou_sd']:.4f}",
            f"{r['pixel_accuracy']:.4f} ± {r['pixel_accuracy_sd']:.4f}",
            f"{r['auc']:.4f} ± {r['auc_sd']:.4f}",
            "-" if r["auc_ratio"] is None else f"{r['auc_ratio']:.3f}",
            worth(r["pixels_to"]),
            "-" if r["pixels_ratio"] is None else f"{r['pixels_ratio']:.2f}",
            "-" if r["images_to"] is None else f"{r['images_to']:g}",
            worth(r["final_pixels"]),
            f"{r['final_images']:.0f}",
            f"{r['fit_seconds']:.1f} + {r['score_seconds']:.1f} + {r['select_seconds']:.2f} "
            f"= {r['seconds_per_round']:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def paired_differences(frame: pd.DataFrame) -> dict[str, dict[str, np.ndarray]]:
    """Per arm, per seed, its final mIoU and AUC (against pixels) minus random's (same initial images)."""

    def per_seed(df: pd.DataFrame) -> pd.DataFrame:
        rows = {}
        for seed, g in df.groupby("seed", sort=True):
            auc = normalised_auc(g["n_pixels"].to_numpy(), g["miou"].to_numpy())
            rows[seed] = {"final mIoU": g["miou"].iloc[-1], "AUC": auc}
        return pd.DataFrame.from_dict(rows, orient="index")

    base = per_seed(frame[frame["strategy"] == "random"])
    return {
        strategy: {col: (per_seed(df)[col] - base[col]).dropna().to_numpy() for col in base.columns}
        for strategy, df in frame.groupby("strategy", sort=False)
        if strategy != "random"
    }


def reading(frame: pd.DataFrame, rows: list[dict[str, Any]], region_arms: list[str], target: float) -> str:
    """What the numbers say: each arm against random seed by seed, and the issue's 0.5x goal."""
    lines = ["Against random, seed by seed (each seed shares its initial images; mean difference, seeds ahead):", ""]
    for strategy, by_metric in paired_differences(frame).items():
        parts = [f"{name} {d.mean():+.4f} ({int((d > 0).sum())}/{d.size})" for name, d in by_metric.items()]
        lines.append(f"- {strategy}: " + ", ".join(parts))
    finals = [g["miou"].iloc[-1] for _, g in frame[frame["strategy"] == "random"].groupby("seed")]
    lines += ["", f"Random's final mIoU is {target:.4f} (seed-to-seed sd {np.std(finals):.4f})."]
    reached = [r for r in rows if r["strategy"] in region_arms and r["pixels_ratio"] is not None]
    if not reached:
        lines[-1] += " No region arm reached it within the budget: the goal is missed."
    else:
        best = min(reached, key=lambda r: r["pixels_ratio"])
        met = "meets" if best["pixels_ratio"] <= GOAL_RATIO else "misses"
        lines[-1] += (
            f" The region arm that reaches it with the fewest pixels, {best['strategy']}, needs "
            f"{best['pixels_ratio']:.2f}x random's labeled pixels: it {met} the goal of at most {GOAL_RATIO}x "
            "(read on the seed-mean curve, in steps of one round's pixels)."
        )
    return "\n".join(lines) + "\n"


def full_label_miou(exp: Experiment, args: argparse.Namespace) -> dict[str, float]:
    """mIoU of the segmenter trained once from scratch on every pool image (seed 0) for as many steps as an arm
    trains over all its rounds, cached under :data:`CACHE`."""
    steps = args.min_steps * (args.rounds + 1)  # the arms' steps in all
    path = CACHE / f"full-{args.model}-{args.pool}-{args.eval}-{args.size}-{steps}-{args.epochs}.json"
    if path.exists():
        return json.loads(path.read_text())
    from activelab.loop.round import EvalSet, Images, Pool, build_model, model_settings, play_round
    from activelab.models.base import torch_threads

    cfg, ds = exp.config, exp.dataset
    settings = model_settings(cfg.model, mode=cfg.mode, head=cfg.head, device=cfg.device)
    options = {**cfg.model_options, "min_steps": steps}
    model = build_model(settings, ds.classes, task=exp.task, cache_dir=None, image_size=cfg.image_size, **options)
    pool = Pool(Images(ds.pool_paths, ds.pool_keys), ds.y_pool, np.ones(ds.n_pool, dtype=bool))
    started = time.time()
    with torch_threads(1):
        outcome = play_round(
            exp.task,
            model,
            pool,
            "random",
            0,
            classes=ds.classes,
            seed=0,
            evaluation=EvalSet(Images(ds.eval_paths, ds.eval_keys), ds.y_eval),
        )
    out = {
        "miou": float(outcome.metrics["miou"]),
        "pixel_accuracy": float(outcome.metrics["pixel_accuracy"]),
        "seconds": time.time() - started,
    }
    path.write_text(json.dumps(out))
    return out


def published_table() -> str:
    lines = ["| source | setting | reported |", "|---|---|---|"]
    lines += [f"| {who} | {setting} | {what} |" for who, setting, what in PUBLISHED]
    return "\n".join(lines) + "\n"


def plot(frame: pd.DataFrame, path: Path, pixels_per_image: int) -> None:
    """mIoU (mean ± sd over seeds) against labeled pixels and against images touched, one line per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    for ax, x, label in (
        (axes[0], "n_pixels", "labeled pixels (in images' worth)"),
        (axes[1], "n_labeled", "images with labeled pixels"),
    ):
        for strategy, df in frame.groupby("strategy", sort=False):
            by_round = df.groupby("round")
            mean, sd = by_round["miou"].mean(), by_round["miou"].std(ddof=0).fillna(0.0)
            at = by_round[x].mean().to_numpy() / (pixels_per_image if x == "n_pixels" else 1)
            style = "--" if strategy in ("random", "region_random") else "-"
            line = ax.plot(at, mean.to_numpy(), style, lw=1.8, label=strategy)[0]
            ax.fill_between(at, (mean - sd).to_numpy(), (mean + sd).to_numpy(), color=line.get_color(), alpha=0.15)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("eval mIoU")
    axes[0].legend(fontsize=8)
    fig.suptitle("fashion-scenes segmentation: mIoU (mean ± sd over seeds)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def settings_text(args: argparse.Namespace, exp: Experiment) -> str:
    ds = exp.dataset
    per_image = args.size * args.size
    return (
        f"fashion-scenes masks ({args.size}x{args.size}, {len(ds.classes)} classes with background): pool "
        f"{ds.n_pool} images, eval {ds.n_eval}; segmenter `{args.model}` "
        f"({'trained from scratch' if args.model == 'unet_small' else 'its pretrained encoder fine-tuned'}, "
        f"min_steps {args.min_steps} a round), warm-started from the previous round; initial {args.initial} "
        f"random whole images (the same per seed for every arm), then {args.rounds} rounds of {args.k} images "
        f"(image arms) or {args.k * per_image:,} pixels of SLIC regions (region arms, {args.k} images' worth); "
        f"seeds {args.seeds}; the whole unlabeled pool scored every round, every strategy with its defaults."
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--image-strategies", type=lambda s: s.split(","), default=IMAGE_STRATEGIES)
    p.add_argument("--region-strategies", type=lambda s: s.split(","), default=REGION_STRATEGIES)
    p.add_argument("--seeds", type=lambda s: [int(v) for v in s.split(",")], default=[0, 1, 2])
    p.add_argument(
        "--model", default=DEFAULT_SEGMENTATION_MODEL, help="the segmenter (its own doc section when not the default)"
    )
    p.add_argument("--pool", type=int, default=600, help="fashion-scenes pool images")
    p.add_argument("--eval", type=int, default=150, help="fashion-scenes eval images")
    p.add_argument("--size", type=int, default=128, help="scene side in pixels (also the segmenter's input)")
    p.add_argument("--initial", type=int, default=20, help="initial labeled whole images (random)")
    p.add_argument("--k", type=int, default=20, help="images per round (region arms: that many images' pixels)")
    p.add_argument("--rounds", type=int, default=6, help="acquisition rounds after the initial set")
    p.add_argument("--min-steps", type=int, default=150, help="the segmenter's fewest training steps per round")
    p.add_argument(
        "--epochs",
        type=int,
        default=1,
        help="the segmenter's epochs per round when they take more steps (1: every arm trains min_steps steps)",
    )
    p.add_argument("--full", action="store_true", help="also train once on the whole pool (full-label mIoU)")
    p.add_argument("--no-doc", action="store_true", help="do not write docs/benchmarks.md or the plot")
    args = p.parse_args()
    if "random" not in args.image_strategies:
        p.error("--image-strategies must include random: every figure is read against it")

    started, load_before = time.time(), os.getloadavg()[0]
    dataset = fetch_dataset(
        "fashion-scenes",
        CACHE / f"fashion-scenes-{args.pool}-{args.eval}-{args.size}",
        limit=args.pool,
        eval_limit=args.eval,
        size=args.size,
    )
    per_image = args.size * args.size
    ran = skipped = 0
    for seed in args.seeds:  # seed by seed over both families, so an interrupted run leaves whole seeds
        for regions in (False, True):
            one = argparse.Namespace(**{**vars(args), "seeds": [seed]})
            exp = Experiment(make_config(one, dataset, regions=regions), progress=True)
            exp.run()
            ran, skipped = ran + len(exp.ran), skipped + len(exp.skipped)
    experiments = [Experiment(make_config(args, dataset, regions=regions)) for regions in (False, True)]
    results = {**experiments[0].results(), **experiments[1].results()}
    full = full_label_miou(experiments[0], args) if args.full else None
    minutes, load_after = (time.time() - started) / 60, os.getloadavg()[0]
    frame = rounds_frame(results, per_image)
    frame.to_csv(CACHE / f"rounds-{args.model}.csv", index=False)
    rows, target = summary_rows(frame)
    table = markdown_table(rows, per_image)
    text = reading(frame, rows, args.region_strategies, target)
    if full is not None:
        best = max(rows, key=lambda r: r["miou"])
        text += (
            f"\nTrained once from scratch on all {experiments[0].dataset.n_pool} pool images (seed 0, "
            f"{args.min_steps * (args.rounds + 1)} steps, an arm's steps over all its rounds): mIoU {full['miou']:.4f}, "
            f"pixel accuracy {full['pixel_accuracy']:.4f} ({full['seconds']:.0f} s). The best arm's final mIoU "
            f"({best['strategy']}, {best['miou']:.4f}) is {best['miou'] / full['miou']:.0%} of it with "
            f"{best['final_pixels'] / (experiments[0].dataset.n_pool * per_image):.0%} of the pool's pixels.\n"
        )
    runs = f"{ran} runs computed, {skipped} read from the cache"
    print(f"\n{machine()}; {minutes:.1f} min ({runs})\n\n{table}\n{text}")
    if args.no_doc:
        return 0

    default = args.model == DEFAULT_SEGMENTATION_MODEL
    title = "Segmentation" if default else f"Segmentation with {args.model}"
    plot_path = PLOT if default else PLOT.with_name(f"{PLOT.stem}_{args.model}.png")
    plot(frame, plot_path, per_image)
    command = "OMP_NUM_THREADS=1 .venv/bin/python " + " ".join(["benchmarks/bench_segmentation.py", *sys.argv[1:]])
    body = "\n".join(
        [
            f"Machine: {machine()}, torch with 1 thread, shared with other jobs while it ran "
            f"(load average {load_before:.1f} at the start, {load_after:.1f} at the end), so seconds are "
            f"indicative only. Date: {time.strftime('%Y-%m-%d', time.gmtime())}.",
            "",
            f"Command: `{command}` ({minutes:.1f} min, {runs}; scenes and finished runs are cached under "
            "`.bench-cache/segmentation/`).",
            "",
            settings_text(args, experiments[0]),
            "",
            "Finals are mean ± sd over seeds at the last round; AUC is the normalised area under mIoU against "
            "labeled pixels (its mean mIoU); *pixels to random's final mIoU* is read on the seed-mean curve "
            "(the first round whose seed-mean mIoU reaches it) and *÷ random* divides it by random's; "
            "*images touched* counts images with any labeled pixel (a region arm spreads its pixels over more "
            "images). mIoU and pixel accuracy come from torchmetrics on the eval masks. *s / round* is wall "
            "clock on the loaded machine, averaged over every round of the arm.",
            "",
            table,
            text,
            "Published results, in their own (larger, pretrained) settings, to set beside ours:",
            "",
            published_table(),
            f"![fashion-scenes mIoU vs labeled pixels and images](img/{plot_path.name})",
        ]
    )
    write_section(title, body)
    print(f"wrote the '{title}' section of docs/benchmarks.md and {plot_path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
