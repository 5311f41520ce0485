"""Label efficiency of query strategies, with published anchors.

Parts (``--parts``, all by default; each can run in its own process):

- ``fashion_linear``: Fashion-MNIST (60k pool / 10k test), frozen EfficientNet-Lite0
  embeddings (packaged ImageNet weights) + logistic regression; random, entropy,
  margin, core-set, BADGE, TypiClust.
- ``fashion_mlp``: the same embeddings with an MC-dropout MLP head; random vs BALD.
- ``fashion_cnn``: the small CNN trained from scratch every round (full path, 28 px);
  all seven strategies; each round the strategy sees the labeled set plus a random
  ``--cnn-pool-subset`` of the unlabeled pool.
- ``gal_digits``: the Gal, Islam & Ghahramani (ICML 2017) protocol on scikit-learn's
  digits, the MNIST-like data that ships here: their CNN (``gal_cnn``, 28 px, its default
  options are the paper's recipe) trained from scratch every round, 20 balanced initial
  labels, 10 acquired per round from a random 2,000 of the unlabeled pool, T = 20
  MC-dropout samples; random, BALD, variation ratios; labels to reach 80% / 90% / 95%
  test accuracy beside the paper's MNIST figures.
- ``gal_fashion``: the same protocol on Fashion-MNIST (60k pool; ``--gal-eval-limit``
  stratified test images score each round).

Images, embeddings and finished (strategy, seed) runs are cached under ``.bench-cache/``
(gitignored), so a re-run skips finished work. Each part writes its section to
``.bench-cache/<part>.section.md``; every run then rebuilds the "Label efficiency"
section of docs/benchmarks.md from all finished parts, with the plots in docs/img/.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_label_efficiency.py --threads 1
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from activelab.simulate import Experiment, SimulationConfig, environment
from activelab.simulate.reports import summary_markdown

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".bench-cache"
DOC = ROOT / "docs" / "benchmarks.md"
IMG = ROOT / "docs" / "img"
START, END = "<!-- label-efficiency:start -->", "<!-- label-efficiency:end -->"
PARTS = ("fashion_linear", "fashion_mlp", "fashion_cnn", "gal_digits", "gal_fashion")
GAL_PARTS = ("gal_digits", "gal_fashion")
SEVEN = ["random", "entropy", "margin", "bald", "coreset", "badge", "typiclust"]
#: Gal et al. 2017, Table 1 (MNIST): labels to reach 10% / 5% test error
GAL_PAPER = {"random": (255, 835), "bald": (145, 335), "variation_ratios": (120, 335)}


def configs(args: argparse.Namespace) -> dict[str, SimulationConfig]:
    common: dict[str, Any] = {
        "output": str(CACHE / "results"),
        "cache_dir": str(CACHE),
        "seeds": args.seeds,
        "threads": args.threads,
        "tsne_points": 2000,
        "initial": "balanced",
        "initial_size": 20,
    }
    fast = dict(
        common,
        dataset="fashion-mnist",
        pool_limit=args.pool_limit,
        image_size=args.image_size,
        model_options={"batch_size": 256, "chunk_size": 2048},
        k=args.batch_size,
        budget=args.budget,
        targets=args.targets,
    )
    cnn_options = {"epochs": 50, "patience": 10, "batch_size": 32}
    # Gal et al. 2017: their CNN with its own recipe (gal_cnn's default options), 10 labels a round
    # from a random 2,000 of the pool, T = 20 MC-dropout samples
    gal = dict(
        common,
        model="gal_cnn",
        image_size=28,
        k=10,
        pool_subset=2000,
        mc_samples=20,
        strategies=args.gal_strategies,
        tsne=False,
    )
    return {
        "fashion_linear": SimulationConfig(**fast, head="logreg", strategies=[s for s in SEVEN if s != "bald"]),
        "fashion_mlp": SimulationConfig(**fast, head="mlp", strategies=["random", "bald"], tsne=False),
        "fashion_cnn": SimulationConfig(
            **dict(
                common,
                dataset="fashion-mnist",
                pool_limit=args.pool_limit,
                model="small_cnn",
                image_size=28,
                model_options=cnn_options,
                pool_subset=args.cnn_pool_subset,
                k=args.cnn_batch_size,
                budget=args.cnn_budget,
                targets=args.cnn_targets,
                strategies=SEVEN,
            )
        ),
        "gal_digits": SimulationConfig(**dict(gal, dataset="digits", budget=args.gal_budget, targets=[0.8, 0.9, 0.95])),
        "gal_fashion": SimulationConfig(
            **dict(
                gal,
                dataset="fashion-mnist",
                pool_limit=args.pool_limit,
                eval_limit=args.gal_eval_limit,
                budget=args.gal_fashion_budget,
                targets=args.gal_fashion_targets,
            )
        ),
    }


def gal_table(rows: list[dict[str, Any]], dataset: str, targets: list[float]) -> str:
    """Labels to each target here beside Gal et al.'s MNIST labels to 90% / 95%."""
    keys = [f"labels_to_{round(t * 100)}%" for t in targets]
    lines = [
        "| strategy | " + " | ".join(f"{k[10:]} ({dataset}, here)" for k in keys)
        + " | paper, MNIST 90% | paper, MNIST 95% |",
        "|---|" + "---|" * (len(keys) + 2),
    ]  # fmt: skip
    for r in rows:
        pa = GAL_PAPER.get(r["strategy"], ("-", "-"))
        here = " | ".join(str(r.get(k) or "-") for k in keys)
        lines.append(f"| {r['strategy']} | {here} | {pa[0]} | {pa[1]} |")
    return "\n".join(lines) + "\n"


def run_part(name: str, cfg: SimulationConfig, command: str) -> None:
    """Run one part (skipping finished runs), copy its plots, cache its section."""
    exp = Experiment(cfg, progress=True)
    t = time.time()
    exp.run()
    paths = exp.report()
    minutes = (time.time() - t) / 60
    rows = exp.summary()
    table = summary_markdown(rows, cfg.targets)
    print(f"\n== {name} ({minutes:.1f} min) -> {exp.results_dir}\n{table}", flush=True)
    for key in ("learning_curves", "class_histogram", "tsne"):
        if key in paths:
            shutil.copyfile(paths[key], IMG / f"label_efficiency_{name}_{key}.png")
    ds = exp.dataset
    run_seconds = [
        sum(rec["seconds"]["total"] for rec in run["rounds"])
        for per_seed in exp.results().values()
        for run in per_seed.values()
    ]
    subset = f", {cfg.pool_subset} unlabeled scored per round" if cfg.pool_subset else ""
    head = f", head {cfg.head}" if cfg.head else ""
    desc = (
        f"{cfg.dataset}: pool {ds.n_pool}, eval {ds.n_eval}; {cfg.model} at {cfg.image_size} px{head}"
        f"{', options ' + json.dumps(cfg.model_options) if cfg.model == 'small_cnn' else ''}"
        f"{' (its default options, the paper recipe), T = ' + str(cfg.mc_samples) if cfg.model == 'gal_cnn' else ''}; "
        f"initial {cfg.initial_size} ({cfg.initial}), {cfg.k} per round, budget {cfg.budget}"
        f"{subset}; seeds {cfg.seeds}; results `{exp.results_dir.relative_to(ROOT)}`.  \n"
        f"Command: `{command}` (threads {cfg.threads or 'torch default'}); on {time.strftime('%Y-%m-%d')} this "
        f"invocation took {minutes:.1f} min; one (strategy, seed) run takes {min(run_seconds):.0f}-{max(run_seconds):.0f} s "
        "of fit + evaluate + select, images and embeddings cached."
    )
    extra = "\n" + gal_table(rows, cfg.dataset, cfg.targets) if name in GAL_PARTS else ""
    imgs = "\n".join(
        f"![{name} {k}](img/label_efficiency_{name}_{k}.png)"
        for k in ("learning_curves", "class_histogram", "tsne")
        if k in paths
    )
    section = f"### {name}\n\n{desc}\n\n{table}{extra}\n{imgs}\n"
    (CACHE / f"{name}.section.md").write_text(section)
    (CACHE / f"{name}.summary.json").write_text(json.dumps(rows, indent=2))


def doc_sections(text: str) -> dict[str, str]:
    """The per-part subsections (``### <part>`` to the next) of the doc's current section, by part."""
    if START not in text or END not in text:
        return {}
    inner = text.split(START, 1)[1].split(END, 1)[0]
    chunks = re.split(r"(?m)^### ", inner)[1:]
    return {c.split("\n", 1)[0].strip(): "### " + c.rstrip("\n") + "\n" for c in chunks}


def write_doc(env: dict[str, Any]) -> None:
    """Rebuild the doc section in part order: each part's cached section, or the doc's own
    where this cache has none (a part measured on another machine or cleared cache stays)."""
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    kept = doc_sections(text)
    sections = [
        (CACHE / f"{n}.section.md").read_text() if (CACHE / f"{n}.section.md").exists() else kept[n]
        for n in PARTS
        if (CACHE / f"{n}.section.md").exists() or n in kept
    ]
    body = "\n".join(
        [
            START,
            "## Label efficiency",
            "",
            (
                f"Machine: {env['cpu']} ({env['cpu_count']} cores, no GPU), Python {env['python']}, "
                f"torch {env['versions'].get('torch')}. Date of the last run: {env['date'][:10]} "
                "(each part gives its own date)."
            ),
            (
                "Each part's command and time is under its heading. In the tables, *labels to X* is read "
                "on the seed-mean learning curve ('-': not reached within the budget) and *÷ random* "
                "divides it by random's."
            ),
            "",
            *sections,
            END,
        ]
    )
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + body + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + body + "\n"
    DOC.write_text(text)


def floats(s: str) -> list[float]:
    return [float(v) for v in s.split(",")]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--parts",
        default=",".join(PARTS),
        help=f"comma-separated, from {', '.join(PARTS)}",
    )
    p.add_argument("--seeds", type=lambda s: [int(v) for v in s.split(",")], default=[0, 1, 2])
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (1 when sharing the CPU)",
    )
    p.add_argument(
        "--pool-limit",
        type=int,
        default=None,
        help="stratified subset of the 60k pool (default: all)",
    )
    p.add_argument(
        "--image-size",
        type=int,
        default=64,
        help="fast-path input size (28 px upscaled)",
    )
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument("--budget", type=int, default=200)
    p.add_argument("--targets", type=floats, default=[0.7, 0.75, 0.8])
    p.add_argument("--cnn-batch-size", type=int, default=40)
    p.add_argument("--cnn-budget", type=int, default=420)
    p.add_argument("--cnn-pool-subset", type=int, default=5000)
    p.add_argument("--cnn-targets", type=floats, default=[0.65, 0.7, 0.75])
    p.add_argument("--gal-budget", type=int, default=300, help="gal_digits: labels at the end")
    p.add_argument("--gal-fashion-budget", type=int, default=300)
    p.add_argument("--gal-eval-limit", type=int, default=2000, help="gal_fashion: test images scored a round")
    p.add_argument("--gal-fashion-targets", type=floats, default=[0.65, 0.7, 0.75])
    p.add_argument("--gal-strategies", type=lambda s: s.split(","), default=["random", "bald", "variation_ratios"])
    p.add_argument("--no-doc", action="store_true", help="do not write docs/benchmarks.md")
    args = p.parse_args()
    unknown = set(args.parts.split(",")) - set(PARTS)
    if unknown:
        p.error(f"unknown parts {sorted(unknown)}; choose from {', '.join(PARTS)}")
    command = "HF_HUB_OFFLINE=1 .venv/bin/python " + " ".join(["benchmarks/bench_label_efficiency.py", *sys.argv[1:]])
    IMG.mkdir(parents=True, exist_ok=True)
    for name, cfg in configs(args).items():
        if name in args.parts.split(","):
            run_part(name, cfg, command)
    if not args.no_doc:
        write_doc(environment())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
