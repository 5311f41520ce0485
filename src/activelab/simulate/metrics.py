"""Learning-curve summaries: normalised area under the curve and labels needed to reach
an accuracy, with ratios to the random baseline.

A curve is ``n_labeled`` (increasing) against ``accuracy`` in [0, 1].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from activelab.exceptions import InputError


def _curve(n_labeled: ArrayLike, accuracy: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    n = np.asarray(n_labeled, dtype=np.float64)
    a = np.asarray(accuracy, dtype=np.float64)
    if n.ndim != 1 or n.shape != a.shape or n.size == 0:
        raise InputError(f"a learning curve needs equal-length 1-d n_labeled and accuracy; got {n.shape}, {a.shape}")
    if np.any(np.diff(n) <= 0):
        raise InputError(f"n_labeled must increase strictly along a curve, got {n.tolist()}")
    return n, a


def normalised_auc(n_labeled: ArrayLike, accuracy: ArrayLike) -> float:
    """Trapezoidal area under accuracy vs labels, divided by the label range.

    The result is the curve's mean accuracy over ``[n_labeled[0], n_labeled[-1]]`` (1.0
    for a perfect model from the first label on); a single point gives its accuracy.
    """
    n, a = _curve(n_labeled, accuracy)
    if n.size == 1:
        return float(a[0])
    area = float(np.sum((a[1:] + a[:-1]) / 2.0 * np.diff(n)))
    return area / float(n[-1] - n[0])


def labels_to_reach(n_labeled: ArrayLike, accuracy: ArrayLike, target: float) -> int | None:
    """The fewest labels at which the curve's accuracy is ``>= target``; None if never."""
    n, a = _curve(n_labeled, accuracy)
    hit = np.flatnonzero(a >= target - 1e-12)
    return round(float(n[hit[0]])) if hit.size else None


def summarise(
    curves: Mapping[str, Mapping[int, tuple[Sequence[float], Sequence[float]]]],
    targets: Sequence[float],
    *,
    baseline: str = "random",
) -> list[dict[str, Any]]:
    """One row per strategy from ``curves[strategy][seed] = (n_labeled, accuracy)``.

    Each row: ``strategy``, ``seeds``, ``auc`` (mean over seeds of :func:`normalised_auc`),
    ``auc_std``, ``final_accuracy`` (mean), ``auc_ratio`` (auc / baseline's auc),
    and per target ``t``: ``labels_to_{t}`` on the seed-mean curve (None: not reached)
    and ``ratio_to_{t}`` = that / the baseline's (< 1: fewer labels than the baseline); with a
    baseline, ``labels_to_random_final`` (where the seed-mean curve first reaches the baseline's
    final mean score) and ``ratio_to_random_final`` (that / the baseline's own).
    Counted in images, the seeds of one strategy share the ``n_labeled`` grid (by construction);
    counted in labeled pixels (segmentation) they need not: each seed's AUC is taken on its own
    grid and the seed-mean curve sits, round by round, at the mean of the seeds' counts.
    """
    rows: list[dict[str, Any]] = []
    for name, by_seed in curves.items():
        if not by_seed:
            continue
        grids = [np.asarray(c[0], dtype=np.float64) for c in by_seed.values()]
        length = min(g.size for g in grids)
        grid = np.mean([g[:length] for g in grids], axis=0)
        accs = np.stack([np.asarray(c[1], dtype=np.float64)[:length] for c in by_seed.values()])
        aucs = [normalised_auc(g[:length], a) for g, a in zip(grids, accs, strict=True)]
        mean = accs.mean(axis=0)
        row: dict[str, Any] = {
            "strategy": name,
            "seeds": len(by_seed),
            "max_labels": round(float(grid[-1])),
            "auc": float(np.mean(aucs)),
            "auc_std": float(np.std(aucs)),
            "final_accuracy": float(mean[-1]),
        }
        for t in targets:
            row[f"labels_to_{target_name(t)}"] = labels_to_reach(grid, mean, t)
        row["_curve"] = (grid, mean)
        rows.append(row)
    base = next((r for r in rows if r["strategy"] == baseline), None)
    if base is not None:  # the goal: the baseline's final score with fewer labels
        for row in rows:
            n, a = row.pop("_curve")
            row["labels_to_random_final"] = labels_to_reach(n, a, base["final_accuracy"])
        reached = base["labels_to_random_final"]
        for row in rows:
            mine = row["labels_to_random_final"]
            row["ratio_to_random_final"] = mine / reached if mine is not None and reached else None
    for row in rows:
        row.pop("_curve", None)
        row["auc_ratio"] = row["auc"] / base["auc"] if base and base["auc"] > 0 else None
        for t in targets:
            key = f"labels_to_{target_name(t)}"
            b = base.get(key) if base else None
            row[f"ratio_to_{target_name(t)}"] = row[key] / b if (b and row[key] is not None) else None
    return rows


def target_name(t: float) -> str:
    """``0.9`` -> ``"90%"``, ``0.875`` -> ``"87.5%"`` (column names)."""
    return f"{t * 100:g}%"
