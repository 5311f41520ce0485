"""Scale: similar-image queries (flat vs IVF) and core-set / BADGE selection on synthetic pools.

Synthetic clustered embeddings (N x 512 float32, 1,000 Gaussian clusters) stand in
for a cached pool. For each N it times: building and querying an exact
``IndexFlatIP`` and the IVF + 8-bit index that ``activelab.loop.similar`` uses
above its threshold (with recall@10 of IVF against exact), and core-set and BADGE
selecting ``k`` with the chunked strategies, then margin, TypiClust and ProbCover
(the k-NN strategies only up to ``--knn-max``: ProbCover's range search grows
faster than N on a CPU); peak resident memory is read from ``getrusage`` after
each step (it only grows, so each row shows the peak so far).

Then, unless skipped:

- the fast-path round on cached features (``--round-size``, default 100k): the real
  ``FastAdapter`` (EfficientNet-Lite0 id, 1,280-d) with its on-disk embedding cache
  pre-filled with synthetic class-structured features; a logistic-regression head fit
  on 1,000 labels, ``predict_proba`` over the whole pool (read from the cache) and a
  margin selection of ``k``;
- the pool pass on real JPEG files (``--jpegs``, default 2,000 Fashion-MNIST images
  upscaled to ``--jpeg-size`` px): ``stream_embed`` images/s with 0 and 2 DataLoader
  workers, against the backbone's own throughput on pre-decoded tensors.

    .venv/bin/python benchmarks/bench_scale.py                        # 100k and 1M, k=1,000; writes docs
    .venv/bin/python benchmarks/bench_scale.py --sizes 20000 --no-write   # a quick look
"""

from __future__ import annotations

import argparse
import math
import resource
import sys
import tempfile
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
        x[s : s + m] = centres[rng.integers(0, 1000, m)] + 0.5 * rng.standard_normal((m, d), dtype=np.float32)
    return x


def normalise(x: np.ndarray) -> np.ndarray:
    for s in range(0, len(x), 100_000):
        x[s : s + 100_000] /= np.linalg.norm(x[s : s + 100_000], axis=1, keepdims=True)
    return x


def fast_round(n: int, k: int, row) -> None:  # type: ignore[no-untyped-def]
    """Head fit on 1,000 labels + predict_proba over ``n`` cached images + margin select ``k``."""
    from activelab.models import create_model
    from activelab.strategies import get_strategy

    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory(prefix="bench_scale_round_") as tmp:
        model = create_model("efficientnet_lite0", num_classes=10, image_size=64, device="cpu", cache_dir=tmp)
        model_id = model.model_id
        d, n_cls = 1280, 10
        centres = rng.standard_normal((n_cls, d), dtype=np.float32)
        labels = rng.integers(0, n_cls, n)
        keys = [f"{i:064x}" for i in range(n)]
        for s in range(0, n, 8192):  # the cache as `activelab embed` leaves it: shards on disk
            e = min(n, s + 8192)
            feats = np.maximum(centres[labels[s:e]] + 2.0 * rng.standard_normal((e - s, d), dtype=np.float32), 0)
            model.cache.put(model_id, keys[s:e], feats)
        del feats
        paths = [f"/nonexistent/{key}.jpg" for key in keys]  # every key is cached: no file is read
        model.cache = type(model.cache)(tmp)  # a fresh process's view of the cache
        t_all = time.perf_counter()
        train = rng.choice(n, 1000, replace=False)
        t0 = time.perf_counter()
        model.fit([paths[i] for i in train], labels[train].tolist(), keys=[keys[i] for i in train])
        row(n, "fast-path round: head fit, 1,000 labels (logreg, 1,280-d)", f"{time.perf_counter() - t0:.2f} s")
        t0 = time.perf_counter()
        probs = model.predict_proba(paths, keys=keys)
        row(n, f"fast-path round: predict_proba over {n:,} cached", f"{time.perf_counter() - t0:.2f} s")
        t0 = time.perf_counter()
        labeled = np.zeros(n, dtype=bool)
        labeled[train] = True
        picked = get_strategy("margin").fn(probs, k, rng=np.random.default_rng(0), labeled=labeled)
        row(n, f"fast-path round: margin select {k:,}", f"{time.perf_counter() - t0:.2f} s")
        assert len(picked) == k and not labeled[picked].any()
        row(n, "fast-path round: total (fit + score + select)", f"{time.perf_counter() - t_all:.2f} s")
        del probs


def pool_pass(n: int, size: int, row) -> None:  # type: ignore[no-untyped-def]
    """``stream_embed`` images/s on ``n`` real JPEG files vs the backbone on pre-decoded tensors."""
    import torch
    from PIL import Image

    from activelab.data.datasets import load_fashion_mnist
    from activelab.models import EmbeddingCache, create_model
    from activelab.models.stream import stream_embed

    images = load_fashion_mnist()[0][:n]
    with tempfile.TemporaryDirectory(prefix="bench_scale_jpeg_") as tmp:
        folder = Path(tmp)
        items = []
        for i, im in enumerate(images):
            path = folder / f"f{i:06d}.jpg"
            Image.fromarray(im, mode="L").convert("RGB").resize((size, size), Image.BILINEAR).save(path, quality=90)
            items.append((f"{i:064x}", str(path)))
        model = create_model("efficientnet_lite0", num_classes=10, image_size=size, device="cpu")
        body, pre = model.backbone()
        batch = 64
        x = torch.rand(batch, 3, pre.size, pre.size)

        def model_alone() -> float:
            with torch.inference_mode():
                for _ in range(2):
                    body.features(body.module, x)  # warm up
                reps = max(10, n // batch)
                t0 = time.perf_counter()
                for _ in range(reps):
                    body.features(body.module, x)
                return reps * batch / (time.perf_counter() - t0)

        own = model_alone()
        for workers in (0, 2):
            model.cache = EmbeddingCache(folder / f"cache{workers}")
            rep = stream_embed(model, items, batch_size=batch, num_workers=workers, shard_size=1024)
            assert rep.n_computed == n and rep.n_failed == 0
            ips = rep.images_per_second
            row(n, f"pool pass: stream_embed, JPEG, {workers} DataLoader workers", f"{ips:,.0f} img/s")
        own = max(own, model_alone())  # best of before and after: the machine is shared
        row(n, f"pool pass: model alone on pre-decoded {pre.size} px tensors (best of 2)", f"{own:,.0f} img/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="Comma-separated pool sizes.")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("-k", type=int, default=1000, help="Selection budget for core-set and BADGE.")
    parser.add_argument("--queries", type=int, default=200, help="Similar-image queries timed per index.")
    parser.add_argument("--nprobe", type=int, default=16)
    parser.add_argument("--no-select", action="store_true", help="Skip the selection strategies.")
    parser.add_argument(
        "--knn-max", type=int, default=100_000, help="Largest N at which TypiClust and ProbCover are timed (0: never)."
    )
    parser.add_argument("--round-size", type=int, default=100_000, help="Pool of the fast-path round (0: skip).")
    parser.add_argument("--jpegs", type=int, default=2000, help="JPEG files for the pool pass (0: skip).")
    parser.add_argument("--jpeg-size", type=int, default=96, help="JPEG side and backbone input size, pixels.")
    parser.add_argument("--no-write", action="store_true", help="Print only; leave docs/benchmarks.md alone.")
    args = parser.parse_args()

    import faiss

    from activelab.strategies import get_strategy, gradient_factors

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
            _, _exact_i = flat.search(q[i : i + 1], 11)
        per = (time.perf_counter() - t0) / len(q)
        row(n, "flat index: similar(k=10), one query", f"{per * 1000:.1f} ms")
        _, exact = flat.search(q, 11)
        del flat

        t0 = time.perf_counter()
        nlist = int(min(65_536, max(16, math.sqrt(n))))
        ivf = faiss.IndexIVFScalarQuantizer(
            faiss.IndexFlatIP(args.dim), args.dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        ivf.train(x[rng.choice(n, min(n, 40 * nlist), replace=False)])
        ivf.add(x)
        ivf.nprobe = args.nprobe
        row(n, f"IVF-SQ8 index (nlist {nlist}): train + add", f"{time.perf_counter() - t0:.2f} s")
        t0 = time.perf_counter()
        for i in range(len(q)):
            ivf.search(q[i : i + 1], 11)
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
            picked = get_strategy("badge").fn(gradient_factors(probs), x, args.k, rng=np.random.default_rng(0))
            row(n, f"badge: select {args.k:,} (10 classes)", f"{time.perf_counter() - t0:.2f} s")
            t0 = time.perf_counter()
            picked = get_strategy("margin").fn(probs, args.k, rng=np.random.default_rng(0))
            row(n, f"margin: select {args.k:,} (10 classes)", f"{time.perf_counter() - t0:.2f} s")
            del probs, logits
            for name in ("typiclust", "probcover"):
                if n > args.knn_max:
                    row(n, f"{name}: select {args.k:,}", f"skipped (N > --knn-max {args.knn_max:,})")
                    continue
                t0 = time.perf_counter()
                picked = get_strategy(name).fn(x, args.k, rng=np.random.default_rng(0))
                row(n, f"{name}: select {args.k:,}", f"{time.perf_counter() - t0:.2f} s")
                assert len(set(picked.tolist())) == args.k
        del x, q
    if args.round_size:
        fast_round(args.round_size, args.k, row)
    if args.jpegs:
        pool_pass(args.jpegs, args.jpeg_size, row)

    table = ["| N | step | result | peak RSS so far (MiB) |", "|---:|---|---:|---:|"]
    table += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    body = (
        f"`benchmarks/bench_scale.py --sizes {args.sizes} -k {args.k}` on {machine()}, no GPU, "
        f"{date.today().isoformat()}. Synthetic clustered embeddings (1,000 Gaussian clusters, L2-normalised), "
        f"d = {args.dim}; similar-image queries are single-image searches as the web app sends them "
        f"({args.queries} timed); the strategies run as registered, on CPU. "
        f"Fast-path round: real `FastAdapter` over its on-disk cache pre-filled with {args.round_size:,} synthetic "
        f"1,280-d features (10 classes), logistic-regression head on 1,000 labels. Pool pass: {args.jpegs:,} "
        f"Fashion-MNIST images written as {args.jpeg_size} px JPEG, EfficientNet-Lite0 at {args.jpeg_size} px, "
        f"batch 64, float32 on CPU.\n\n" + "\n".join(table)
    )
    print()
    print(body)
    if not args.no_write:
        write_section("Scale", body)


if __name__ == "__main__":
    main()
