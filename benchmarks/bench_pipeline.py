"""Label efficiency of the default pipeline against the baseline, with an ablation of its parts (issue 16).

Baseline: random labels, a logistic-regression head on frozen EfficientNet-Lite0 features at the
default input size (64 px for 28-px images). The pipeline is the project defaults: the ``auto``
strategy, the representation chosen among candidate feature extractors
(:mod:`activelab.loop.representation`: leave-one-out 3-NN accuracy on the labeled images, the
configured model kept unless another beats it by two standard errors, re-chosen whenever the labels
have doubled) and a supervised head (``--semi`` adds a semi-supervised one; off by default, as in a
project, because neither method gained at every budget on every set). Each arm changes one part of the
baseline, so the table says which part earns what:

- ``baseline``: random, fixed first candidate (Lite0@64), supervised;
- ``strategy``: ``auto`` instead of random;
- ``representation``: the chosen representation instead of the fixed one;
- ``label_spreading`` / ``self_training``: the semi-supervised head instead of the supervised one;
- ``pipeline``: all three together; ``strategy+semi`` / ``strategy+representation``: all but one;
- ``fixed:<candidate>`` (e.g. ``fixed:pixels@28``): random labels on one fixed candidate.

Every arm runs the loop's own round (:func:`activelab.loop.round.play_round`: fit on the labeled pool
rows, the unlabeled ones too for a semi-supervised head, evaluate, select) on the data, initial sets
(20 balanced) and embedding cache of :mod:`activelab.simulate`. It drives the rounds itself rather than
through ``Experiment`` because labels are added on a growing schedule (``--levels``: 20, 40, ..., 1,000)
that ``SimulationConfig`` (one ``k`` per round) cannot express, and because the representation may
change between rounds. Finished (dataset, arm, seed) runs are cached under
``.bench-cache/pipeline/``; the report (tables, plots in docs/img/pipeline_*) is rebuilt from every
finished run into docs/benchmarks.md, section "Label efficiency: the default pipeline", between its
generated-part markers (hand-written notes after them are kept).

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_pipeline.py --threads 1
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from _report import machine

from activelab._io import atomic_write_text
from activelab.data.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist
from activelab.loop.representation import Candidate, compare_representations, should_rechoose
from activelab.loop.round import EvalSet, Images, Pool, play_round
from activelab.models import ModelAdapter, create_model
from activelab.models.base import torch_threads
from activelab.simulate.data import from_arrays, load_dataset
from activelab.simulate.metrics import normalised_auc
from activelab.tasks import get_task

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".bench-cache"
RUNS = CACHE / "pipeline"
DOC = ROOT / "docs" / "benchmarks.md"
IMG = ROOT / "docs" / "img"
TITLE = "Label efficiency: the default pipeline"
START, END = "<!-- pipeline:start -->", "<!-- pipeline:end -->"
#: labeled-set sizes per dataset (labels added between them by the strategy); the pools hold 60,000 / 1,397 / 500
LEVELS = {
    "fashion-mnist": [20, 40, 60, 80, 100, 150, 200, 300, 500, 700, 1000],
    "digits": [20, 40, 60, 80, 100, 150, 200, 300, 500],
    "sample": [20, 40, 60, 80, 100, 150, 200, 300],
}
#: the baseline levels whose accuracy the pipeline must reach with at most half the labels
GOAL_LEVELS = (100, 200, 500, 1000)
#: compared representations per dataset, the fixed (baseline) one first: Lite0 at the default input size (64 px
#: for images under 64 px), at 32 px, and raw pixels at the images' own side. Lite0 at its native 224 px is left
#: out: embedding the 70k Fashion-MNIST images at 224 px takes hours on this CPU
CANDIDATES = {
    "fashion-mnist": "efficientnet_lite0@64,efficientnet_lite0@32,pixels@28",
    "digits": "efficientnet_lite0@64,efficientnet_lite0@32,pixels@8",
    "sample": "efficientnet_lite0@64,efficientnet_lite0@32,pixels@28",
}


@dataclass(frozen=True)
class Arm:
    """One configuration: a strategy, a representation (``auto`` or a fixed candidate) and a semi-supervised head."""

    strategy: str
    representation: str  # "fixed" (the first candidate), "auto", or a candidate such as "pixels@28"
    semi: str  # "none" | "label_spreading" | "self_training"


def arms(strategy: str, semi: str) -> dict[str, Arm]:
    return {
        "baseline": Arm("random", "fixed", "none"),
        "strategy": Arm(strategy, "fixed", "none"),
        "representation": Arm("random", "auto", "none"),
        "label_spreading": Arm("random", "fixed", "label_spreading"),
        "self_training": Arm("random", "fixed", "self_training"),
        "pipeline": Arm(strategy, "auto", semi),
        "strategy+semi": Arm(strategy, "fixed", semi),  # the pipeline without the representation choice
        "strategy+representation": Arm(strategy, "auto", "none"),  # ... without the semi-supervised head
    }


def arm_for(name: str, table: dict[str, Arm]) -> Arm:
    if name.startswith("fixed:"):
        return Arm("random", name.split(":", 1)[1], "none")
    return table[name]


def dataset_key(dataset: str, first: tuple[int, int] | None) -> str:
    """The name runs are stored and reported under: ``fashion-mnist-first25000-2000`` for a slice."""
    return dataset if first is None else f"{dataset}-first{first[0]}-{first[1]}"


class Bench:
    """One dataset (loaded as ``activelab.simulate`` loads it), its initial sets and the arms' runs."""

    def __init__(
        self, dataset: str, candidates: list[Candidate], levels: list[int], *, first: tuple[int, int] | None = None
    ) -> None:
        self.name = dataset_key(dataset, first)
        self.candidates = candidates
        self.levels = levels
        if first is None:
            self.ds = load_dataset(dataset, CACHE / "images")
        else:  # the first pool / eval images of Fashion-MNIST's train / test files (embedded first, so cached)
            x, y, xt, yt = load_fashion_mnist()
            (n_pool, n_eval), classes = first, FASHION_MNIST_CLASSES
            self.ds = from_arrays(dataset, x[:n_pool], y[:n_pool], xt[:n_eval], yt[:n_eval], classes, CACHE / "images")
        self.task = get_task("classification")
        self.models: dict[tuple[str, str], ModelAdapter] = {}

    def initial_set(self, seed: int) -> np.ndarray:
        """``levels[0]`` pool positions, as balanced over the classes as possible, drawn with ``seed``."""
        rng = np.random.default_rng([seed, 1])
        y = self.ds.y_pool
        per_class = [rng.permutation(np.flatnonzero(y == c)) for c in range(len(self.ds.classes))]
        order = rng.permutation(len(per_class))
        picks = [
            int(per_class[c][depth]) for depth in range(self.levels[0]) for c in order if depth < len(per_class[c])
        ]
        return np.array(picks[: self.levels[0]], dtype=np.int64)

    def model(self, cand: Candidate, semi: str) -> ModelAdapter:
        key = (cand.label, semi)
        if key not in self.models:
            options: dict[str, Any] = {"batch_size": 256, "chunk_size": 2048}
            if semi != "none":
                options["semi_supervised"] = semi
            self.models[key] = create_model(
                cand.name,
                classes=self.ds.classes,
                mode="frozen",
                head="logreg",
                image_size=cand.image_size,
                cache_dir=CACHE / "embeddings",
                **options,
            )
        return self.models[key]

    def run_path(self, arm: str, seed: int) -> Path:
        return RUNS / self.name / f"{arm.replace(':', '_').replace('@', '-')}__seed{seed}.json"

    def run(self, arm_name: str, arm: Arm, seed: int) -> dict[str, Any]:
        """One (arm, seed) run over the levels; cached."""
        path = self.run_path(arm_name, seed)
        if path.exists():
            return dict(json.loads(path.read_text()))
        ds = self.ds
        pool_images = Images(ds.pool_paths, ds.pool_keys)
        evaluation = EvalSet(Images(ds.eval_paths, ds.eval_keys), ds.y_eval)
        labeled = np.zeros(ds.n_pool, dtype=bool)
        labeled[self.initial_set(seed)] = True
        fixed = self.candidates[0] if arm.representation in ("fixed", "auto") else Candidate.parse(arm.representation)
        current, chosen_at = fixed, None
        rounds: list[dict[str, Any]] = []
        t_run = time.perf_counter()
        for i, level in enumerate(self.levels):
            n = int(labeled.sum())
            assert n == level, (n, level)
            record: dict[str, Any] = {"n_labeled": n}
            if arm.representation == "auto" and should_rechoose(n, chosen_at, len(ds.classes)):
                rows = np.flatnonzero(labeled)
                t0 = time.perf_counter()
                choice = compare_representations(
                    self.candidates,
                    [ds.pool_paths[j] for j in rows],
                    ds.y_pool[rows],
                    keys=[ds.pool_keys[j] for j in rows],
                    cache_dir=CACHE / "embeddings",
                    seed=seed,
                )
                current, chosen_at = choice.chosen, n
                record["choice"] = {c.candidate.label: round(c.score, 4) for c in choice.comparisons}
                record["choice_seconds"] = time.perf_counter() - t0
            k = self.levels[i + 1] - n if i + 1 < len(self.levels) else 0
            t0 = time.perf_counter()
            out = play_round(
                self.task,
                self.model(current, arm.semi),
                Pool(pool_images, ds.y_pool, labeled.copy()),
                arm.strategy,
                k,
                classes=ds.classes,
                seed=seed * 1000 + i,
                rng=np.random.default_rng([seed, i, 2]),
                evaluation=evaluation,
            )
            picked = np.asarray(out.positions, dtype=np.int64)
            assert len(picked) == k and not labeled[picked].any()
            labeled[picked] = True
            record.update(
                accuracy=float(out.metrics["accuracy"]),
                representation=current.label,
                n_unlabeled=int(getattr(out.fit, "n_unlabeled", 0) or 0),
                seconds=round(time.perf_counter() - t0, 2),
            )
            rounds.append(record)
            print(f"  {self.name} {arm_name} seed {seed}: {n} labels, acc {record['accuracy']:.4f} "
                  f"({current.label}, {record['n_unlabeled']} pseudo, {record['seconds']:.1f} s)", flush=True)  # fmt: skip
        result = {
            "dataset": self.name,
            "arm": arm_name,
            "strategy": arm.strategy,
            "representation": arm.representation,
            "semi_supervised": arm.semi,
            "seed": seed,
            "candidates": [c.label for c in self.candidates],
            "seconds": round(time.perf_counter() - t_run, 1),
            "rounds": rounds,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(result))
        return result


# ------------------------------------------------------------------------------------------- report


def load_runs(dataset: str) -> dict[str, list[dict[str, Any]]]:
    """Finished runs of ``dataset`` by arm."""
    out: dict[str, list[dict[str, Any]]] = {}
    for p in sorted((RUNS / dataset).glob("*__seed*.json")):
        run = json.loads(p.read_text())
        out.setdefault(run["arm"], []).append(run)
    return out


def curve(runs: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(levels, seed-mean accuracy, seed sd)`` over the levels every run reached."""
    length = min(len(r["rounds"]) for r in runs)
    n = np.array([rec["n_labeled"] for rec in runs[0]["rounds"][:length]], dtype=float)
    acc = np.array([[rec["accuracy"] for rec in r["rounds"][:length]] for r in runs])
    return n, acc.mean(axis=0), acc.std(axis=0)


def labels_needed(n: np.ndarray, acc: np.ndarray, target: float) -> float | None:
    """Labels at which the curve first reaches ``target``, linear between levels; ``n[0]`` if it starts there."""
    hit = np.flatnonzero(acc >= target - 1e-12)
    if not hit.size:
        return None
    j = int(hit[0])
    if j == 0:
        return float(n[0])
    frac = (target - acc[j - 1]) / (acc[j] - acc[j - 1])
    return float(n[j - 1] + frac * (n[j] - n[j - 1]))


def fmt_needed(value: float | None, n0: float, nmax: float) -> str:
    if value is None:
        return f"> {nmax:.0f}"
    return f"≤ {n0:.0f}" if value <= n0 else f"{value:.0f}"


def dataset_section(dataset: str, order: list[str]) -> tuple[str, dict[str, Any]]:
    """The markdown of one dataset (tables, plot) and its headline numbers."""
    runs = load_runs(dataset)
    if "baseline" not in runs:
        return "", {}
    names = [a for a in order if a in runs] + sorted(set(runs) - set(order))
    curves = {a: curve(runs[a]) for a in names}
    bn, bacc, _ = curves["baseline"]
    show = [lv for lv in (20, 50, 100, 200, 300, 500, 1000) if lv in bn]
    goals = [lv for lv in GOAL_LEVELS if lv in bn]
    ds_runs = runs["baseline"][0]
    lines = [
        f"### {dataset}",
        "",
        f"Candidates: {', '.join(ds_runs['candidates'])} (the first is the fixed representation). "
        f"Levels: {', '.join(str(int(v)) for v in bn)} labels.",
        "",
        "Accuracy on the eval split (mean ± sd over seeds), normalised AUC over the levels, and the labels each arm "
        "needs to reach the baseline's accuracy at " + ", ".join(str(g) for g in goals) + " labels (read on the "
        "seed-mean curve, linear between levels; the ratio divides by the baseline's labels, goal ≤ 0.5).",
        "",
    ]
    head = ["arm", "strategy", "representation", "semi-supervised", "seeds", "AUC"]
    head += [f"acc. @{lv}" for lv in show] + [f"labels to base@{g} (×)" for g in goals]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    summary: dict[str, Any] = {}
    for a in names:
        n, mean, sd = curves[a]
        r0 = runs[a][0]
        accs = {}
        for lv in show:
            j = np.flatnonzero(n == lv)
            accs[lv] = f"{mean[j[0]]:.3f} ± {sd[j[0]]:.3f}" if j.size else "-"
        ratios = []
        for g in goals:
            target = float(bacc[np.flatnonzero(bn == g)[0]])
            need = labels_needed(n, mean, target)
            ratio = "" if need is None else f" ({need / g:.2f}×)"
            ratios.append(fmt_needed(need, n[0], n[-1]) + ratio)
            summary.setdefault(a, {})[g] = need
        auc = normalised_auc(n, mean)
        summary.setdefault(a, {})["auc"] = auc
        summary[a]["acc"] = dict(zip(n.astype(int).tolist(), mean.tolist(), strict=True))
        reps = sorted({rec["representation"] for r in runs[a] for rec in r["rounds"]})
        rep = r0["representation"] if r0["representation"] != "fixed" else reps[0]
        if r0["representation"] == "auto":
            rep = "auto: " + ", ".join(reps)
        row = [a, r0["strategy"], rep, r0["semi_supervised"], str(len(runs[a])), f"{auc:.4f}"]
        lines.append("| " + " | ".join(row + [accs[lv] for lv in show] + ratios) + " |")
    lines += [""]
    if "strategy" in curves:
        ratio = normalised_auc(*curves["strategy"][:2]) / normalised_auc(bn, bacc)
        lines.append(f"- The strategy alone: `{runs['strategy'][0]['strategy']}` AUC / random AUC = {ratio:.3f}.")
    pixels = [a for a in names if a.startswith("fixed:pixels")]
    if "pipeline" in curves and pixels:
        pn, pmean, _ = curves["pipeline"]
        xn, xmean, _ = curves[pixels[0]]
        both = [(int(v), pmean[i], xmean[np.flatnonzero(xn == v)[0]]) for i, v in enumerate(pn) if v in xn]
        lost = [f"{v} ({p:.4f} < {x:.4f})" for v, p, x in both if p < x]
        verdict = "at every level" if not lost else "except at " + ", ".join(lost)
        lines.append(f"- The pipeline is at or above logistic regression on raw pixels ({pixels[0][6:]}) {verdict}.")
    choices = [
        (rec["n_labeled"], rec["choice"])
        for a in ("representation", "pipeline")
        for r in runs.get(a, [])[:1]
        for rec in r["rounds"]
        if "choice" in rec
    ]
    if choices:
        lines += ["", "Representation comparisons (leave-one-out 3-NN accuracy on the labeled images, seed "
                  f"{runs.get('pipeline', runs.get('representation'))[0]['seed']}):", ""]  # fmt: skip
        seen = set()
        for n_lab, scores in choices:
            if n_lab in seen:
                continue
            seen.add(n_lab)
            lines.append(f"- {n_lab} labels: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))
    secs = [r["seconds"] for rs in runs.values() for r in rs]
    lines += ["", f"One (arm, seed) run took {min(secs):.0f}-{max(secs):.0f} s (embeddings cached)."]
    img = plot(dataset, curves)
    if img:
        lines += ["", f"![pipeline {dataset}](img/{img})"]
    return "\n".join(lines) + "\n", summary


def plot(dataset: str, curves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for a, (n, mean, sd) in curves.items():
        bold = a in ("baseline", "pipeline")
        (line,) = ax.plot(n, mean, marker="o", ms=3, lw=2.5 if bold else 1.2, label=a, ls="-" if bold else "--")
        if bold:
            ax.fill_between(n, mean - sd, mean + sd, alpha=0.15, color=line.get_color())
    ax.set_xscale("log")
    levels = next(iter(curves.values()))[0]
    ax.set_xticks(levels, [f"{v:.0f}" for v in levels], fontsize=8)
    ax.minorticks_off()
    ax.set_xlabel("labels (log scale)")
    ax.set_ylabel("eval accuracy")
    ax.set_title(f"{dataset}: baseline vs pipeline (mean ± sd over seeds)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    name = f"pipeline_{dataset}_curves.png"
    IMG.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(IMG / name, dpi=100)
    plt.close(fig)
    return name


def write_doc(datasets: list[str], order: list[str], command: str) -> None:
    """Replace the generated part of the section (between the markers), keeping the notes after it."""
    import datetime

    parts = [dataset_section(d, order)[0] for d in datasets]
    body = "\n".join(
        [
            START,
            f"Machine: {machine()}, no GPU, shared with other jobs (seconds are indicative only). "
            f"Generated {datetime.date.today().isoformat()} by `{command}`.",
            "",
            *[p for p in parts if p],
            END,
        ]
    )
    text = DOC.read_text(encoding="utf-8")
    heading = f"## {TITLE}\n"
    if heading not in text:
        text = text.rstrip("\n") + f"\n\n{heading}\n{body}\n"
    else:
        before, after = text.split(heading, 1)
        if START in after and END in after:
            pre, rest = after.split(START, 1)
            after = pre + body + rest.split(END, 1)[1]
        else:
            after = "\n" + body + "\n" + after
        text = before + heading + after
    DOC.write_text(text, encoding="utf-8")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default="fashion-mnist,digits,sample")
    p.add_argument("--arms", default="baseline,pipeline,strategy,representation,label_spreading,self_training")
    p.add_argument("--seeds", type=lambda s: [int(v) for v in s.split(",")], default=[0, 1, 2])
    p.add_argument("--threads", type=int, default=None, help="torch threads (1 when sharing the CPU)")
    p.add_argument("--strategy", default="auto", help="the pipeline's strategy")
    p.add_argument("--semi", default="none", help="the pipeline's semi-supervised head (none: the default)")
    p.add_argument(
        "--candidates", default=None, help="NAME@SIZE,...; the first is the fixed one (default: per dataset)"
    )
    p.add_argument("--levels", default=None, help="comma-separated labeled-set sizes (default: per dataset)")
    p.add_argument("--fashion-pool", type=int, default=None, help="Fashion-MNIST: the first N training images only")
    p.add_argument("--fashion-eval", type=int, default=10000, help="with --fashion-pool: the first N test images")
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--no-doc", action="store_true")
    args = p.parse_args()
    datasets = args.datasets.split(",")
    table = arms(args.strategy, args.semi)
    arm_names = args.arms.split(",")
    firsts = {d: (args.fashion_pool, args.fashion_eval) if d == "fashion-mnist" and args.fashion_pool else None
              for d in datasets}  # fmt: skip
    if not args.report_only:
        with torch_threads(args.threads):
            for d in datasets:
                levels = [int(v) for v in args.levels.split(",")] if args.levels else LEVELS[d]
                candidates = [Candidate.parse(c) for c in (args.candidates or CANDIDATES[d]).split(",")]
                bench = Bench(d, candidates, levels, first=firsts[d])
                for a in arm_names:  # arm by arm, in the order given: an interrupted run has whole arms
                    for seed in args.seeds:
                        t = time.time()
                        bench.run(a, arm_for(a, table), seed)
                        print(f"{d} {a} seed {seed}: {time.time() - t:.0f} s", flush=True)
    order = list(table) + [a for a in arm_names if a not in table]
    keys = [dataset_key(d, firsts[d]) for d in datasets]
    for d in keys:
        text, _ = dataset_section(d, order)
        print(text)
    if not args.no_doc:
        write_doc(keys, order, " ".join(["OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python", *sys.argv]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
