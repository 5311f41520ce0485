"""Label efficiency of query strategies, with published anchors.

1. Fashion-MNIST, fast path: frozen EfficientNet-Lite0 embeddings (packaged ImageNet
   weights) + a light head; strategies random, entropy, margin, coreset, badge,
   typiclust with a linear (logreg) head, and random vs bald with an MC-dropout (mlp)
   head; several seeds, every strategy from the same balanced initial set per seed.
2. The Gal, Islam & Ghahramani (ICML 2017) protocol (20 balanced initial labels,
   10 acquired per round, MC dropout) on scikit-learn's digits (the MNIST-like data that
   ships here), reporting labels needed to reach 90% / 95% test accuracy beside the
   paper's MNIST figures.

Embeddings are cached under ``.bench-cache/`` (gitignored); re-running skips finished
(strategy, seed) runs. Prints one table and writes the "Label efficiency" section of
docs/benchmarks.md plus plots under docs/img/.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_label_efficiency.py
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from activelab.simulate import Experiment, SimulationConfig, environment
from activelab.simulate.reports import summary_markdown

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".bench-cache"
DOC = ROOT / "docs" / "benchmarks.md"
IMG = ROOT / "docs" / "img"
START, END = "<!-- label-efficiency:start -->", "<!-- label-efficiency:end -->"
GAL_PAPER = {"random": (255, 835), "bald": (145, 335), "variation_ratios": (120, 335)}


def configs(args: argparse.Namespace) -> dict[str, SimulationConfig]:
    common = {
        "output": str(CACHE / "results"),
        "cache_dir": str(CACHE),
        "image_size": args.image_size,
        "model_options": {"batch_size": 256, "chunk_size": 2048},
        "seeds": args.seeds,
        "threads": args.threads,
        "tsne_points": 2000,
    }
    fm = dict(
        common,
        dataset="fashion-mnist",
        pool_limit=args.pool_limit,
        initial="balanced",
        initial_size=20,
        batch_size=args.batch_size,
        budget=args.budget,
        targets=[0.6, 0.65, 0.7],
    )
    return {
        "fashion_linear": SimulationConfig(
            **fm,
            head="logreg",
            strategies=["random", "entropy", "margin", "coreset", "badge", "typiclust"],
        ),
        "fashion_mlp": SimulationConfig(
            **fm, head="mlp", strategies=["random", "bald"], tsne=False
        ),
        "gal_digits": SimulationConfig(
            **dict(
                common,
                dataset="digits",
                initial="balanced",
                initial_size=20,
                batch_size=10,
                budget=args.gal_budget,
                head="mlp",
                targets=[0.9, 0.95],
                strategies=["random", "bald", "variation_ratios"],
            )
        ),
    }


def write_doc(
    sections: dict[str, str], command: str, env: dict, minutes: float
) -> None:
    body = "\n".join(
        [
            START,
            "## Label efficiency",
            "",
            f"Command: `{command}`  ",
            (
                f"Machine: {env['cpu']} ({env['cpu_count']} cores, no GPU), Python {env['python']}, "
                f"torch {env['versions'].get('torch')}  "
            ),
            f"Date: {env['date'][:10]}; wall time {minutes:.1f} min (embeddings cached in `.bench-cache/`).",
            "",
            *sections.values(),
            END,
        ]
    )
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + body + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + body + "\n"
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--seeds", type=lambda s: [int(v) for v in s.split(",")], default=[0, 1, 2]
    )
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument(
        "--pool-limit",
        type=int,
        default=20000,
        help="stratified subset of the 60k training images",
    )
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument("--budget", type=int, default=200)
    p.add_argument("--gal-budget", type=int, default=300)
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (1 when sharing the CPU)",
    )
    p.add_argument("--parts", default="fashion_linear,fashion_mlp,gal_digits")
    p.add_argument(
        "--no-doc", action="store_true", help="do not write docs/benchmarks.md"
    )
    args = p.parse_args()
    t0 = time.time()
    sections: dict[str, str] = {}
    IMG.mkdir(parents=True, exist_ok=True)
    for name, cfg in configs(args).items():
        if name not in args.parts.split(","):
            continue
        exp = Experiment(cfg, progress=True)
        t = time.time()
        exp.run()
        paths = exp.report()
        rows = exp.summary()
        table = summary_markdown(rows, cfg.targets)
        print(
            f"\n== {name} ({time.time() - t:.0f} s) -> {exp.results_dir}\n{table}",
            flush=True,
        )
        for key in ("learning_curves", "class_histogram", "tsne"):
            if key in paths:
                shutil.copyfile(paths[key], IMG / f"label_efficiency_{name}_{key}.png")
        ds = exp.dataset
        desc = (
            f"{cfg.dataset}: pool {ds.n_pool}, eval {ds.n_eval}; {cfg.model} at {cfg.image_size} px, "
            f"head {cfg.head}; initial {cfg.initial_size} ({cfg.initial}), {cfg.batch_size} per round, "
            f"budget {cfg.budget}; seeds {cfg.seeds}; results `{exp.results_dir.relative_to(ROOT)}`"
        )
        extra = ""
        if name == "gal_digits":
            lines = [
                "",
                "| strategy | labels to 90% (here, digits) | labels to 95% (here) | paper MNIST 90% | paper MNIST 95% |",
                "|---|---|---|---|---|",
            ]
            for r in rows:
                pa = GAL_PAPER.get(r["strategy"], ("-", "-"))
                lines.append(
                    f"| {r['strategy']} | {r['labels_to_90%'] or '-'} | {r['labels_to_95%'] or '-'} | "
                    f"{pa[0]} | {pa[1]} |"
                )
            extra = "\n".join(lines) + "\n"
        imgs = "\n".join(
            f"![{name} {k}](img/label_efficiency_{name}_{k}.png)"
            for k in ("learning_curves", "class_histogram", "tsne")
            if k in paths
        )
        sections[name] = f"### {name}\n\n{desc}\n\n{table}{extra}\n{imgs}\n"
        (CACHE / f"{name}.summary.json").write_text(json.dumps(rows, indent=2))
    minutes = (time.time() - t0) / 60
    print(f"total {minutes:.1f} min")
    if not args.no_doc and sections:
        write_doc(
            sections,
            "HF_HUB_OFFLINE=1 .venv/bin/python "
            + " ".join(["benchmarks/bench_label_efficiency.py", *sys.argv[1:]]),
            environment(),
            minutes,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
