"""Scale: similar-image queries (flat vs IVF) and core-set / BADGE selection on synthetic pools.

Synthetic clustered embeddings (N x 512 float32, 1,000 Gaussian clusters) stand in
for a cached pool. For each N it times: building and querying an exact
``IndexFlatIP`` and the IVF + 8-bit index that ``activelab.loop.similar`` uses
above its threshold (with recall@10 of IVF against exact), and core-set and BADGE
selecting ``k`` with the chunked strategies; peak resident memory is read from
``getrusage`` after each step (it only grows, so each row shows the peak so far).

    .venv/bin/python benchmarks/bench_scale.py                        # 100k and 1M, k=1,000; writes docs
    .venv/bin/python benchmarks/bench_scale.py --sizes 20000 --no-write   # a quick look
"""

from __future__ import annotations

import argparse
import math
import resource
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine, write_section


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pool(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    centres = rng.standard_normal((1000, d), dtype=np.float32)
    x = np.empty((n, d), dtype=np.float32)
    step = 100_000
    for s in range(0, n, step):  # chunked: no float64 temporaries of the whole pool
        m = min(step, n - s)
        x[s:s + m] = centres[rng.integers(0, 1000, m)] + 0.5 * rng.standard_normal((m, d), dtype=np.float32)
    return x


def normalise(x: np.ndarray) -> np.ndarray:
    for s in range(0, len(x), 100_000):
        x[s:s + 100_000] /= np.linalg.norm(x[s:s + 100_000], axis=1, keepdims=True)
    return x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="Comma-separated pool sizes.")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("-k", type=int, default=1000, help="Selection budget for core-set and BADGE.")
    parser.add_argument("--queries", type=int, default=200, help="Similar-image queries timed per index.")
    parser.add_argument("--nprobe", type=int, default=16)
    parser.add_argument("--no-select", action="store_true", help="Skip core-set and BADGE.")
    parser.add_argument("--no-write", action="store_true", help="Print only; leave docs/benchmarks.md alone.")
    args = parser.parse_args()

    import faiss

    from activelab.strategies import get_strategy

    rng = np.random.default_rng(0)
    sizes = [int(s) for s in args.sizes.split(",")]
    rows: list[tuple[str, str, str, str]] = []

    def row(n: int, what: str, value: str) -> None:
        rows.append((f"{n:,}", what, value, f"{peak_mib():,.0f}"))
        print(f"{n:>10,}  {what:<48} {value:>16}  peak {peak_mib():>8,.0f} MiB", flush=True)

    for n in sizes:
        x = normalise(pool(n, args.dim, rng))
        q = x[rng.choice(n, args.queries, replace=False)]
        row(n, f"pool {n:,} x {args.dim} float32 in memory", f"{x.nbytes / 2**20:,.0f} MiB")

        t0 = time.perf_counter()
        flat = faiss.IndexFlatIP(args.dim)
        flat.add(x)
        row(n, "flat index: build", f"{time.perf_counter() - t0:.2f} s")
        t0 = time.perf_counter()
        for i in range(len(q)):  # one query at a time, as the web app asks
            _, _exact_i = flat.search(q[i:i + 1], 11)
        per = (time.perf_counter() - t0) / len(q)
        row(n, "flat index: similar(k=10), one query", f"{per * 1000:.1f} ms")
        _, exact = flat.search(q, 11)
        del flat

        t0 = time.perf_counter()
        nlist = int(min(65_536, max(16, math.sqrt(n))))
        ivf = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(args.dim), args.dim, nlist,
                                            faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
        ivf.train(x[rng.choice(n, min(n, 40 * nlist), replace=False)])
        ivf.add(x)
        ivf.nprobe = args.nprobe
        row(n, f"IVF-SQ8 index (nlist {nlist}): train + add", f"{time.perf_counter() - t0:.2f} s")
        t0 = time.perf_counter()
        for i in range(len(q)):
            ivf.search(q[i:i + 1], 11)
        per = (time.perf_counter() - t0) / len(q)
        row(n, f"IVF-SQ8 index: similar(k=10), one query, nprobe {args.nprobe}", f"{per * 1000:.2f} ms")
        _, approx = ivf.search(q, 11)
        recall = np.mean([len(set(a[1:]) & set(e[1:])) / 10 for a, e in zip(approx, exact)])
        row(n, "IVF-SQ8 index: recall@10 against flat", f"{recall:.3f}")
        del ivf

        if not args.no_select:
            t0 = time.perf_counter()
            picked = get_strategy("coreset").fn(x, args.k, rng=np.random.default_rng(0))
            row(n, f"coreset: select {args.k:,}", f"{time.perf_counter() - t0:.2f} s")
            assert len(set(picked.tolist())) == args.k
            logits = rng.standard_normal((n, 10), dtype=np.float32)
            probs = np.exp(logits - logits.max(1, keepdims=True))
            probs /= probs.sum(1, keepdims=True)
            t0 = time.perf_counter()
            picked = get_strategy("badge").fn(probs, x, args.k, rng=np.random.default_rng(0))
            row(n, f"badge: select {args.k:,} (10 classes)", f"{time.perf_counter() - t0:.2f} s")
            del probs, logits
        del x, q

    table = ["| N | step | result | peak RSS so far (MiB) |", "|---:|---|---:|---:|"]
    table += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    body = (
        f"`benchmarks/bench_scale.py --sizes {args.sizes} -k {args.k}` on {machine()}, no GPU, "
        f"{date.today().isoformat()}. Synthetic clustered embeddings (1,000 Gaussian clusters, L2-normalised), "
        f"d = {args.dim}; similar-image queries are single-image searches as the web app sends them "
        f"({args.queries} timed); core-set and BADGE run the registered (chunked) strategies on CPU.\n\n"
        + "\n".join(table)
    )
    print()
    print(body)
    if not args.no_write:
        write_section("Scale", body)


if __name__ == "__main__":
    main()
