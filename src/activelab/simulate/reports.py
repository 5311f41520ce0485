"""Reports of an experiment: per-round CSV/JSON, a summary table and PNG plots.

Files written into ``results_dir``:

- ``rounds.csv`` / ``rounds.json``: one row per (strategy, seed, round); for detection
  with the labeled boxes (``n_boxes``), for segmentation the labeled pixels (``n_pixels``)
  beside the labeled images.
- ``summary.csv`` / ``summary.json`` / ``summary.md``: per strategy, normalised AUC
  (mean ± std over seeds), labels to reach each target, ratios to random.
- ``learning_curves.png``: the metric vs labeled images, mean ± std over seeds, random dashed.
- ``learning_curves_boxes.png`` (detection): the metric vs labeled boxes, each round at
  its mean box count over seeds (a strategy that picks crowded images moves right faster).
- ``learning_curves_pixels.png`` (segmentation): the metric vs labeled pixels, each round at
  its mean pixel count over seeds; the summary counts labels in pixels there.
- ``class_histogram.png``: classes of each strategy's picks (mean per seed; boxes per
  class for detection).
- ``tsne.png``: a 2-D t-SNE map of pool embeddings coloured by class, and per strategy
  by picked / initially labeled / unlabeled (first seed); single-label datasets only,
  where one class colours an image. At most ``tsne_points`` images are embedded
  (:func:`tsne_embeddings`).

Curves, targets and plots follow the task's headline metric (accuracy; micro-F1 for
multi-label, where accuracy is subset accuracy; mAP@[.5:.95] for detection; mIoU for
segmentation).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from activelab._io import atomic_path, atomic_write_text
from activelab.simulate.metrics import target_name

if TYPE_CHECKING:
    from activelab.models.base import ModelAdapter
    from activelab.simulate.config import SimulationConfig
    from activelab.simulate.data import SimDataset


class ExperimentResults(Protocol):
    """What the reports read from an experiment (:class:`~activelab.simulate.Experiment` is one);
    a protocol, so reports never import the experiment that calls them."""

    @property
    def config(self) -> SimulationConfig: ...

    @property
    def dataset(self) -> SimDataset: ...

    @property
    def results_dir(self) -> Path: ...

    def results(self) -> dict[str, dict[int, dict[str, Any]]]: ...

    @property
    def headline_metric(self) -> str: ...

    @property
    def curve_x(self) -> str: ...

    def summary(self, metric: str | None = None, x: str | None = None) -> list[dict[str, Any]]: ...

    def pool_embeddings(self) -> np.ndarray: ...

    @property
    def model(self) -> ModelAdapter: ...


def rounds_table(results: dict[str, dict[int, dict[str, Any]]], metric: str = "accuracy") -> pd.DataFrame:
    """One row per round; ``metric`` (the task's headline metric) gets a column beside accuracy and macro-F1
    where the task reports those, and ``n_boxes`` (labeled boxes) or ``n_pixels`` (labeled pixels) follows
    ``n_labeled`` where rounds record it."""
    records = [
        (strategy, seed, r)
        for strategy, by_seed in results.items()
        for seed, run in sorted(by_seed.items())
        for r in run["rounds"]
    ]
    recorded = {key for _, _, r in records for key in r}
    columns = [
        "strategy",
        "seed",
        "round",
        "n_labeled",
        *(name for name in ("n_boxes", "n_pixels") if name in recorded),
        *(name for name in ("accuracy", "macro_f1") if name in recorded or not records),
        *([metric] if metric not in ("accuracy", "macro_f1") else []),
        *(name for name in ("n_unlabeled", "representation") if any(r.get(name) for _, _, r in records)),
        "n_picked",
        "seconds",
    ]
    rows = [
        {
            "strategy": strategy,
            "seed": seed,
            **{key: r.get(key) for key in ("round", "n_labeled", "n_boxes", "n_pixels", "accuracy", "macro_f1")},
            metric: r.get("metrics", r).get(metric),
            "n_unlabeled": r.get("n_unlabeled"),
            "representation": r.get("representation"),
            "n_picked": len(r["picked"]),
            "seconds": r["seconds"]["total"],
        }
        for strategy, seed, r in records
    ]
    return pd.DataFrame(rows, columns=columns)


#: what the labels of a summary are counted in, by the round record's key
LABEL_WORDS = {"n_labeled": "labels", "n_boxes": "boxes", "n_pixels": "pixels"}


def summary_markdown(
    rows: list[dict[str, Any]], targets: list[float], metric: str = "accuracy", x: str = "n_labeled"
) -> str:
    """The summary as a Markdown table (labels to reach: on the seed-mean curve; '-' never reached); ``x``
    names what labels are counted in (``n_labeled``: images; ``n_pixels``: pixels)."""
    word = LABEL_WORDS.get(x, x)
    final = bool(rows) and "labels_to_random_final" in rows[0]
    head = ["strategy", "seeds", "AUC (norm.)", "AUC / random", f"final {metric}"]
    for t in targets:
        head += [f"{word} to {target_name(t)}", f"÷ random ({target_name(t)})"]
    if final:
        head += [f"{word} to random's final", "÷ random (final)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def fmt(v: Any, spec: str = "") -> str:
        return "-" if v is None else format(v, spec)

    for r in rows:
        cells = [
            r["strategy"],
            str(r["seeds"]),
            f"{r['auc']:.4f} ± {r['auc_std']:.4f}",
            fmt(r["auc_ratio"], ".3f"),
            f"{r['final_accuracy']:.4f}",
        ]
        for t in targets:
            n = target_name(t)
            cells += [fmt(r[f"labels_to_{n}"]), fmt(r[f"ratio_to_{n}"], ".2f")]
        if final:
            cells += [fmt(r["labels_to_random_final"]), fmt(r["ratio_to_random_final"], ".2f")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_reports(exp: ExperimentResults, *, plots: bool = True, tsne: bool = True) -> dict[str, Path]:
    out = exp.results_dir
    out.mkdir(parents=True, exist_ok=True)
    results = exp.results()
    paths: dict[str, Path] = {}
    metric = exp.headline_metric
    table = rounds_table(results, metric)
    paths["rounds_csv"] = out / "rounds.csv"
    atomic_write_text(paths["rounds_csv"], table.to_csv(index=False))
    paths["rounds_json"] = out / "rounds.json"
    atomic_write_text(
        paths["rounds_json"],
        json.dumps({s: {str(seed): run for seed, run in by.items()} for s, by in results.items()}),
    )
    rows = exp.summary(metric)
    targets = list(exp.config.targets)
    x = exp.curve_x
    paths["summary_csv"] = out / "summary.csv"
    atomic_write_text(paths["summary_csv"], pd.DataFrame(rows).to_csv(index=False))
    paths["summary_json"] = out / "summary.json"
    atomic_write_text(paths["summary_json"], json.dumps(rows, indent=2))
    paths["summary_md"] = out / "summary.md"
    summary = summary_markdown(rows, targets, metric, x)
    if "n_unlabeled" in table.columns and table["n_unlabeled"].fillna(0).gt(0).any():
        summary += (
            f"\nSemi-supervised ({exp.config.semi_supervised}): the models also trained on up to "
            f"{int(table['n_unlabeled'].max()):,} unlabeled pool images a round (never eval images).\n"
        )
    atomic_write_text(paths["summary_md"], summary)
    if plots and results:
        paths["learning_curves"] = plot_learning_curves(
            table,
            out / "learning_curves.png",
            title=f"{exp.config.dataset}: {metric} vs labels",
            metric=metric,
        )
        for column in ("n_boxes", "n_pixels"):
            if column in table.columns:
                unit = column.removeprefix("n_")
                paths[f"learning_curves_{unit}"] = plot_learning_curves(
                    table,
                    out / f"learning_curves_{unit}.png",
                    title=f"{exp.config.dataset}: {metric} vs labeled {unit}",
                    metric=metric,
                    x=column,
                )
        paths["class_histogram"] = plot_class_histogram(
            results, exp.dataset.classes, out / "class_histogram.png", unit="pixels" if x == "n_pixels" else "images"
        )
        y = np.asarray(exp.dataset.y_pool)
        if tsne and y.ndim == 1 and y.dtype != object:  # one class per image colours the map
            paths["tsne"] = plot_tsne(exp, results, out / "tsne.png")
    return paths


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    return path


def plot_learning_curves(
    table: pd.DataFrame,
    path: Path,
    *,
    title: str = "accuracy vs labels",
    metric: str = "accuracy",
    x: str = "n_labeled",
) -> Path:
    """Mean ± std over seeds of ``metric`` against ``x`` (``n_labeled``: labeled images; ``n_boxes``: labeled
    boxes; ``n_pixels``: labeled pixels), one line per strategy, random dashed; each round sits at its mean ``x`` over seeds (a table
    without a ``round`` column groups equal ``x`` values instead)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for strategy, df in table.groupby("strategy", sort=False):
        by_round = df.groupby("round" if "round" in df.columns else x)
        g = by_round[metric]
        mean, std = g.mean(), g.std(ddof=0).fillna(0.0)
        x_at = by_round[x].mean().to_numpy()
        style = "--" if strategy == "random" else "-"
        color = "black" if strategy == "random" else None
        line = ax.plot(
            x_at,
            mean.to_numpy(),
            style,
            color=color,
            lw=1.8,
            label=f"{strategy} (n={df['seed'].nunique()})",
        )[0]
        ax.fill_between(
            x_at,
            (mean - std).to_numpy(),
            (mean + std).to_numpy(),
            color=line.get_color(),
            alpha=0.15,
        )
    ax.set_xlabel({"n_boxes": "labeled boxes", "n_pixels": "labeled pixels"}.get(x, "labeled images"))
    ax.set_ylabel(f"eval {metric}")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    out = _save(fig, path)
    plt.close(fig)
    return out


def plot_class_histogram(
    results: dict[str, dict[int, dict[str, Any]]], classes: list[str], path: Path, *, unit: str = "images"
) -> Path:
    """Per strategy, how many of its picks fell in each class (mean per seed); ``unit`` says what was counted
    (images; boxes for detection; ``"pixels"``: the labeled pixels of each class, segmentation)."""
    plt = _pyplot()
    names = list(results)
    counts = np.array(
        [
            np.mean(
                [np.sum([r["picked_classes"] for r in run["rounds"]], axis=0) for run in results[s].values()],
                axis=0,
            )
            for s in names
        ]
    )
    fig, ax = plt.subplots(figsize=(max(7.5, 0.6 * len(classes) * max(1, len(names)) / 2), 4.5))
    width = 0.8 / max(1, len(names))
    x = np.arange(len(classes))
    for i, s in enumerate(names):
        ax.bar(
            x + (i - (len(names) - 1) / 2) * width,
            counts[i],
            width,
            label=s,
            color="0.6" if s == "random" else None,
            hatch="//" if s == "random" else None,
        )
    ax.set_xticks(x)
    ax.set_xticklabels(classes, rotation=30, ha="right")
    ax.set_ylabel(f"picked {unit} (mean per seed)")
    ax.set_title("classes of the acquired images")
    ax.legend(fontsize=8, ncol=2)
    out = _save(fig, path)
    plt.close(fig)
    return out


def tsne_embeddings(exp: ExperimentResults, positions: np.ndarray) -> np.ndarray:
    """(len(positions), d) float32 embeddings of the pool ``positions`` a t-SNE map plots.

    Frozen mode: rows of the cached pool embeddings, which the strategies use anyway.
    Finetune mode: only these images go through the network (the whole pool would be
    embedded otherwise: 60,000 Fashion-MNIST images for a map of ``tsne_points``).
    """
    model = exp.model
    if getattr(model, "mode", None) == "frozen":
        return exp.pool_embeddings()[positions].astype(np.float32)
    ds = exp.dataset
    idx = [int(i) for i in positions]
    emb = model.embed([ds.pool_paths[i] for i in idx], keys=[ds.pool_keys[i] for i in idx])
    return np.asarray(emb, dtype=np.float32)


def plot_tsne(exp: ExperimentResults, results: dict[str, dict[int, dict[str, Any]]], path: Path) -> Path:
    """t-SNE of (a sample of) pool embeddings: by class, then per strategy picked / initial / unlabeled."""
    from sklearn.manifold import TSNE

    plt = _pyplot()
    c = exp.config
    seed = c.seeds[0]
    y = exp.dataset.y_pool
    n = len(y)
    runs = {s: by[seed] for s, by in results.items() if seed in by}
    initial = np.array(next(iter(runs.values()))["initial"], dtype=np.int64) if runs else np.zeros(0, np.int64)
    picks = {s: np.array([p for r in run["rounds"] for p in r["picked"]], dtype=np.int64) for s, run in runs.items()}
    rng = np.random.default_rng(0)
    must = np.unique(np.concatenate([initial, *picks.values()])) if picks else initial
    if must.size > c.tsne_points // 2:
        must = np.union1d(initial, rng.choice(must, size=c.tsne_points // 2, replace=False))
    rest = np.setdiff1d(np.arange(n), must)
    fill = rng.choice(rest, size=min(rest.size, max(0, c.tsne_points - must.size)), replace=False)
    sample = np.union1d(must, fill)
    emb = tsne_embeddings(exp, sample)
    if emb.shape[1] > 50:
        from sklearn.decomposition import PCA

        emb = PCA(n_components=50, random_state=0).fit_transform(emb)
    xy = TSNE(
        n_components=2,
        init="pca",
        random_state=0,
        perplexity=min(30.0, max(2.0, (len(sample) - 1) / 3)),
    ).fit_transform(emb)
    pos = {int(p): i for i, p in enumerate(sample)}
    panels = 1 + len(runs)
    cols = min(4, panels)
    rows = int(np.ceil(panels / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 4.0 * rows), squeeze=False)
    ax = axes[0, 0]
    cmap = plt.get_cmap("tab10" if len(exp.dataset.classes) <= 10 else "tab20")
    for k, name in enumerate(exp.dataset.classes):
        sel = y[sample] == k
        ax.scatter(xy[sel, 0], xy[sel, 1], s=4, color=cmap(k % cmap.N), label=name)
    ax.set_title("pool embeddings by class")
    ax.legend(fontsize=6, markerscale=3, loc="best")
    for j, (s, p) in enumerate(picks.items(), start=1):
        ax = axes[j // cols, j % cols]
        ip = np.array([pos[int(v)] for v in initial if int(v) in pos], dtype=np.int64)
        pp = np.array([pos[int(v)] for v in p if int(v) in pos], dtype=np.int64)
        ax.scatter(xy[:, 0], xy[:, 1], s=3, color="0.85", label="unlabeled")
        if pp.size:
            ax.scatter(xy[pp, 0], xy[pp, 1], s=8, color="tab:red", label=f"picked ({p.size})")
        if ip.size:
            ax.scatter(
                xy[ip, 0],
                xy[ip, 1],
                s=18,
                marker="x",
                color="black",
                label=f"initial ({initial.size})",
            )
        ax.set_title(f"{s} (seed {seed})")
        ax.legend(fontsize=6, markerscale=2, loc="best")
    for j in range(panels, rows * cols):
        axes[j // cols, j % cols].axis("off")
    for a in axes.flat:
        a.set_xticks([])
        a.set_yticks([])
    out = _save(fig, path)
    plt.close(fig)
    return out
