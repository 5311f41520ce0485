"""Time every registered query strategy on synthetic pools, and peers where they exist.

Run on demand (not part of the tests)::

    python benchmarks/bench_strategies.py --quick            # N = 10k, 100k (minutes on 2 cores)
    python benchmarks/bench_strategies.py                    # N = 10k, 100k, 1M
    python benchmarks/bench_strategies.py --sizes 100000 --ks 1000 --strategies coreset,badge

Synthetic data, one array per entry of the strategy input vocabulary, built only when a
chosen strategy reads it: ``embeddings`` (N, 512) float32 from a 64-component Gaussian
mixture; ``probs`` softmax of random logits (C = 10 and 1000) and BADGE's
``grad_factors`` from them; ``marginals`` sigmoids of random logits centred at -2 (a
few classes per image, as in multi-label data); ``mc_probs`` (10, N, 10); 1% of the
pool labeled, with ``labels`` (arg-max class) and ``label_matrix`` (0/1 rows drawn from
the marginals, -1 rows elsewhere). Peers (scikit-activeml, modAL) are timed on the same
arrays in a forked subprocess with a time limit and skipped when not installed. Prints
one table and replaces the "Strategies" section of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import multiprocessing as mp
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from _report import machine, write_section  # noqa: E402  (benchmarks/ is on sys.path when run)

from activelab.strategies import get_strategy, gradient_factors, list_strategies, select  # noqa: E402

DIM = 512
MC_T = 10
#: inputs whose width is the class count C: strategies reading one are timed at every C
PER_CLASS_INPUTS = frozenset({"probs", "mc_probs", "marginals", "grad_factors", "label_matrix"})
# strategies whose cost does not depend on C are run once per (N, k), with C = 10 inputs
C_INDEPENDENT_SKIP_1000 = {
    "coreset",
    "cluster",
    "typiclust",
    "probcover",
    "outlier",
    "proximity",
    "random",
    "bald",
    "variation_ratios",
    "mean_std",
    "power_bald",
}


# --------------------------------------------------------------------------- data
def _softmax_rows(logits: np.ndarray) -> np.ndarray:
    logits = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def make_data(n: int, n_classes: int, seed: int, inputs: frozenset[str]) -> dict[str, Any]:
    """The pool's arrays: ``embeddings``, ``probs``, ``labeled`` and ``labels`` always, and
    ``mc_probs``, ``grad_factors``, ``marginals``, ``label_matrix`` when ``inputs`` names them
    (at N = 1M and C = 1000 each (N, C) array is 4-8 GB)."""
    g = np.random.default_rng(seed)
    centres = g.standard_normal((64, DIM)).astype(np.float32) * 2.0
    emb = np.empty((n, DIM), dtype=np.float32)
    step = 65536
    for s in range(0, n, step):
        m = min(step, n - s)
        emb[s : s + m] = centres[g.integers(64, size=m)] + g.standard_normal((m, DIM), dtype=np.float32)
    probs = np.empty((n, n_classes), dtype=np.float32)
    for s in range(0, n, step):
        m = min(step, n - s)
        probs[s : s + m] = _softmax_rows(g.standard_normal((m, n_classes), dtype=np.float32) * 3.0)
    labeled = np.zeros(n, dtype=bool)
    labeled[g.choice(n, size=max(1, n // 100), replace=False)] = True
    labels = np.full(n, -1, dtype=np.int64)
    labels[labeled] = probs[labeled].argmax(axis=1)
    out: dict[str, Any] = {"embeddings": emb, "probs": probs, "labeled": labeled, "labels": labels}
    if "mc_probs" in inputs:
        base = g.standard_normal((n, n_classes), dtype=np.float32) * 2.0
        mc = np.empty((MC_T, n, n_classes), dtype=np.float32)
        for t in range(MC_T):
            mc[t] = _softmax_rows(base + g.standard_normal((n, n_classes), dtype=np.float32))
        out["mc_probs"] = mc
    if "grad_factors" in inputs:
        out["grad_factors"] = gradient_factors(probs)
    if "marginals" in inputs or "label_matrix" in inputs:
        marginals = np.empty((n, n_classes), dtype=np.float32)
        for s in range(0, n, step):
            m = min(step, n - s)
            logits = g.standard_normal((m, n_classes), dtype=np.float32) * 2.0 - 2.0
            marginals[s : s + m] = 1.0 / (1.0 + np.exp(-logits))
        out["marginals"] = marginals
        if "label_matrix" in inputs:
            matrix = np.full((n, n_classes), -1, dtype=np.int64)
            matrix[labeled] = g.random((int(labeled.sum()), n_classes)) < marginals[labeled]
            out["label_matrix"] = matrix
    return out


# --------------------------------------------------------------------------- peers
def _unlabeled(data: dict[str, Any]) -> np.ndarray:
    return np.flatnonzero(~data["labeled"])


def _peer_skal_uncertainty(method: str) -> Callable[[dict[str, Any], int], Any]:
    def run(data: dict[str, Any], k: int) -> Any:
        from skactiveml.pool import uncertainty_scores

        unl = _unlabeled(data)
        s = uncertainty_scores(data["probs"][unl], method=method)
        return unl[np.argsort(-s)[:k]]

    return run


def _peer_modal(fn_name: str) -> Callable[[dict[str, Any], int], Any]:
    def run(data: dict[str, Any], k: int) -> Any:
        import modAL.uncertainty as mu
        from modAL.utils.selection import multi_argmax

        unl = _unlabeled(data)
        s = getattr(mu, fn_name)(data["probs"][unl])
        picked = multi_argmax(s, n_instances=k)
        return unl[np.asarray(picked[0] if isinstance(picked, tuple) else picked, dtype=np.int64)]

    return run


def _peer_skal_coreset(data: dict[str, Any], k: int) -> Any:
    from skactiveml.pool import k_greedy_center

    y = np.where(data["labeled"], 0.0, np.nan)
    return k_greedy_center(data["embeddings"], y, batch_size=k, random_state=0)[0]


def _peer_skal_badge(data: dict[str, Any], k: int) -> Any:
    """scikit-activeml's Badge.query loop on precomputed arrays (dense gradient embeddings)."""
    from skactiveml.pool._badge import _d_2

    unl = _unlabeled(data)
    probas, x = data["probs"][unl], data["embeddings"][unl]
    if probas.shape[0] * probas.shape[1] * x.shape[1] > 6e8:
        raise MemoryError(f"dense gradient embeddings {probas.shape[0]}x{probas.shape[1] * x.shape[1]} too large")
    y_pred = probas.argmax(axis=-1)
    g_x = ((probas - np.eye(probas.shape[1])[y_pred])[:, :, None] * x[:, None, :]).reshape(len(unl), -1)
    rs = np.random.RandomState(0)
    picks: list[int] = []
    idx: Any = []
    d_prev = None
    for i in range(k):
        d_2 = _d_2(g_x, idx if i == 0 else [idx], d_prev)
        d_prev = d_2
        p = d_2 / d_2.sum()
        idx = int(np.argmax(d_2)) if i == 0 else int(rs.choice(len(p), 1, replace=False, p=p)[0])
        picks.append(idx)
    return unl[picks]


def _peer_skal_query(cls_name: str) -> Callable[[dict[str, Any], int], Any]:
    def run(data: dict[str, Any], k: int) -> Any:
        import skactiveml.pool as sp

        y = np.where(data["labeled"], 0.0, np.nan)
        return getattr(sp, cls_name)(random_state=0).query(data["embeddings"], y, batch_size=k)

    return run


def _peer_skal_variation_ratios(data: dict[str, Any], k: int) -> Any:
    from skactiveml.pool import variation_ratios

    unl = _unlabeled(data)
    s = variation_ratios(data["mc_probs"][:, unl].argmax(axis=2).T)
    return unl[np.argsort(-s)[:k]]


PEERS: dict[str, list[tuple[str, Callable[[dict[str, Any], int], Any]]]] = {
    "least_confidence": [
        ("skactiveml", _peer_skal_uncertainty("least_confident")),
        ("modAL", _peer_modal("_proba_uncertainty")),
    ],
    "margin": [("skactiveml", _peer_skal_uncertainty("margin_sampling")), ("modAL", _peer_modal("_proba_margin"))],
    "entropy": [("skactiveml", _peer_skal_uncertainty("entropy")), ("modAL", _peer_modal("_proba_entropy"))],
    "coreset": [("skactiveml", _peer_skal_coreset)],
    "badge": [("skactiveml", _peer_skal_badge)],
    "typiclust": [("skactiveml", _peer_skal_query("TypiClust"))],
    "probcover": [("skactiveml", _peer_skal_query("ProbCover"))],
    "variation_ratios": [("skactiveml", _peer_skal_variation_ratios)],
}


def _fmt(t: float) -> str:
    return f"{t:.4f}" if t < 0.01 else f"{t:.3f}" if t < 10 else f"{t:.1f}"


def preload_peers() -> None:
    """Import the peers once in the parent so forked children do not time their imports."""
    for mod in ("skactiveml.pool", "skactiveml.pool._badge", "modAL.uncertainty", "modAL.utils.selection"):
        with contextlib.suppress(Exception):
            __import__(mod)


def _child(fn: Callable[[dict[str, Any], int], Any], data: dict[str, Any], k: int, q: Any) -> None:
    try:
        t = time.perf_counter()
        fn(data, k)
        q.put(("ok", time.perf_counter() - t))
    except Exception as e:  # report, never crash the benchmark
        q.put(("error", f"{type(e).__name__}: {str(e)[:80]}"))


def time_peer(
    fn: Callable[[dict[str, Any], int], Any], data: dict[str, Any], k: int, limit: float
) -> tuple[float | None, str]:
    """Run ``fn`` in a forked child (inherits the arrays) with a wall-clock limit."""
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(fn, data, k, q))
    p.start()
    p.join(limit)
    if p.is_alive():
        p.kill()
        p.join()
        return None, f">{limit:.0f}s"
    try:
        status, val = q.get(timeout=5)
    except Exception:
        return None, "crashed (memory?)"
    return (float(val), _fmt(float(val))) if status == "ok" else (None, str(val))


# --------------------------------------------------------------------------- ours
def time_ours(name: str, data: dict[str, Any], k: int, repeats: int) -> float:
    spec = get_strategy(name)
    inputs = {key: data[key] for key in spec.inputs}
    best = float("inf")
    for r in range(repeats):
        t = time.perf_counter()
        select(name, k, rng=np.random.default_rng(r), labeled=data["labeled"], **inputs)
        best = min(best, time.perf_counter() - t)
        if best > 2.0:
            break
    return best


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="N = 10k and 100k only, peers limited to 60 s")
    ap.add_argument("--sizes", default=None, help="comma-separated pool sizes (default 10000,100000,1000000)")
    ap.add_argument("--ks", default="100,1000", help="comma-separated budgets k")
    ap.add_argument("--classes", default="10,1000", help="class counts for probability-based strategies")
    ap.add_argument("--strategies", default="*", help="comma-separated names or one glob (default: all)")
    ap.add_argument("--no-peers", action="store_true", help="skip the peer implementations")
    ap.add_argument("--peer-limit", type=float, default=None, help="seconds before a peer run is abandoned")
    ap.add_argument(
        "--skip-after",
        type=float,
        default=60.0,
        help="skip larger N for a strategy once one run exceeds this many seconds",
    )
    ap.add_argument(
        "--max-n-probcover",
        type=int,
        default=20000,
        help="ProbCover's radius graph costs O(N^2 d); larger pools are skipped",
    )
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)

    sizes = [int(s) for s in (args.sizes or ("10000,100000" if args.quick else "10000,100000,1000000")).split(",")]
    ks = [int(s) for s in args.ks.split(",")]
    classes = [int(s) for s in args.classes.split(",")]
    peer_limit = args.peer_limit or (60.0 if args.quick else 300.0)
    if "," in args.strategies or args.strategies in list_strategies():
        names = [s for s in args.strategies.split(",") if s]
    else:
        names = list_strategies(args.strategies)
    have_peers = not args.no_peers
    if have_peers:
        preload_peers()
    rows: list[tuple[str, ...]] = []
    too_slow: set[str] = set()
    header = ("strategy", "N", "C", "k", "ours (s)", "peer", "peer (s)", "ours vs peer")
    print(" | ".join(header), flush=True)
    for n in sizes:
        for c in classes:
            inputs = frozenset().union(*(get_strategy(s).inputs for s in names))
            data = make_data(n, c, seed=0, inputs=inputs if c <= 10 else inputs - {"mc_probs"})
            for name in names:
                spec = get_strategy(name)
                uses_c = bool(spec.inputs & PER_CLASS_INPUTS) and name not in C_INDEPENDENT_SKIP_1000
                if c != classes[0] and not uses_c:
                    continue
                if "mc_probs" in spec.inputs and "mc_probs" not in data:
                    continue
                if name == "probcover" and n > args.max_n_probcover:
                    rows.append(
                        (
                            name,
                            f"{n:,}",
                            "-",
                            "all",
                            f"skipped (N > {args.max_n_probcover:,}: O(N^2 d) graph)",
                            "",
                            "",
                            "",
                        )
                    )
                    print(" | ".join(rows[-1]), flush=True)
                    continue
                for k in ks:
                    key = f"{name}/{c if uses_c else '-'}/{k}"
                    if key in too_slow:
                        rows.append(
                            (
                                name,
                                f"{n:,}",
                                str(c) if uses_c else "-",
                                f"{k:,}",
                                f"skipped (> {args.skip_after:.0f} s at smaller N)",
                                "",
                                "",
                                "",
                            )
                        )
                        print(" | ".join(rows[-1]), flush=True)
                        continue
                    ours = time_ours(name, data, k, repeats=3)
                    if ours > args.skip_after:
                        too_slow.add(key)
                    peers = PEERS.get(name, []) if have_peers else []
                    if not peers:
                        rows.append((name, f"{n:,}", str(c) if uses_c else "-", f"{k:,}", _fmt(ours), "", "", ""))
                        print(" | ".join(rows[-1]), flush=True)
                    for peer_name, fn in peers:
                        t, shown = time_peer(fn, data, k, peer_limit)
                        ratio = (
                            f"{t / ours:.1f}x faster"
                            if t is not None and ours > 0
                            else (f">{peer_limit / ours:.0f}x faster" if shown.startswith(">") else "")
                        )
                        rows.append(
                            (name, f"{n:,}", str(c) if uses_c else "-", f"{k:,}", _fmt(ours), peer_name, shown, ratio)
                        )
                        print(" | ".join(rows[-1]), flush=True)
            del data
    cmd = "python benchmarks/bench_strategies.py " + " ".join(argv if argv is not None else sys.argv[1:])
    table = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    table += ["| " + " | ".join(r) + " |" for r in rows]
    body = (
        f"Machine: {machine()}. Date: {_dt.date.today().isoformat()}.\n\n"
        f"Command: `{cmd.strip()}`\n\n"
        "Synthetic pools: embeddings (N, 512) float32 from a 64-component Gaussian mixture, softmax "
        "probabilities (N, C) and BADGE's gradient factors from them, sigmoid marginals (N, C) with a few "
        "likely classes per item, MC predictions (10, N, 10), 1% labeled (class labels, 0/1 label rows). "
        "Times are wall-clock seconds of one "
        "`select(...)` call (best of up to 3), input validation included. Peers run on the same arrays in a "
        f'forked process with a {peer_limit:.0f} s limit; "ours vs peer" = peer time / our time. '
        "C = `-` means the strategy reads no per-class array.\n\n" + "\n".join(table) + "\n"
    )
    if not args.no_write:
        write_section("Strategies", body, Path(args.out))
        print(f"\nwrote the Strategies section of {args.out}")


if __name__ == "__main__":
    main()
