"""Benchmark: how long a fast-path active-learning round takes on Fashion-MNIST.

Times, through the real project store and ``ActiveSession``:
  (i)  embedding the pool + eval images once with the frozen EfficientNet-Lite0
       backbone (the embedding cache is emptied first);
  (ii) one fast-path round (head fit + eval + pool scoring + margin selection of
       100) with 100, 1,000 and 10,000 labels, embeddings cached.

Run:  .venv/bin/python benchmarks/bench_round.py [--limit N] [--image-size 64]
Prints one table and replaces the "Round" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from _report import machine, write_section

from activelab.data.datasets import fetch_dataset
from activelab.loop.ingest import import_images
from activelab.loop.project import init_project
from activelab.loop.session import ActiveSession
from activelab.models import create_model

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="pool images (default: all 60,000)")
    parser.add_argument("--eval-limit", type=int, default=None, help="eval images (default: all 10,000)")
    parser.add_argument("--image-size", type=int, default=64, help="backbone input size in pixels")
    parser.add_argument("--labels", default="100,1000,10000", help="label counts to time a round at")
    parser.add_argument("--work", type=Path, default=ROOT / ".bench-cache" / "bench_round")
    parser.add_argument("--no-doc", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()

    data = args.work / "fashion-mnist"
    if not (data / "eval.csv").exists():
        fetch_dataset("fashion-mnist", data, limit=args.limit, eval_limit=args.eval_limit, progress=True)
    project_dir = args.work / "project"
    shutil.rmtree(project_dir, ignore_errors=True)
    classes = sorted(pd.read_csv(data / "pool.csv")["label"].unique())
    proj = init_project(project_dir, classes)
    proj.settings.model.image_size = args.image_size
    t = time.perf_counter()
    pool_table = pd.read_csv(data / "pool.csv")
    import_images(proj.store, data / "pool", fmt="folder", progress=True)
    import_images(proj.store, data / "eval.csv", split="eval", progress=True)
    t_import = time.perf_counter() - t
    images = proj.store.images()
    n_pool = len(proj.store.images("pool"))

    model = create_model(
        "efficientnet_lite0", classes=classes, image_size=args.image_size, cache_dir=proj.cache_dir / "embeddings"
    )
    t = time.perf_counter()
    model.embed([i.path for i in images], keys=[i.sha256 for i in images], progress=True)
    t_embed = time.perf_counter() - t

    truth = dict(zip(pool_table["filepath"].map(lambda p: Path(p).name), pool_table["label"]))
    pool_images = proj.store.images("pool")
    order = np.random.default_rng(0).permutation(len(pool_images))
    session = ActiveSession(proj)
    rows = []
    labeled = 0
    for target in [int(x) for x in args.labels.split(",")]:
        if target > n_pool:
            continue
        batch = [pool_images[i] for i in order[labeled:target]]
        proj.store.add_labels([(img.id, truth[Path(img.path).name]) for img in batch], author="oracle", source="oracle")
        labeled = target
        t = time.perf_counter()
        result = session.run_round("margin", 100)
        total = time.perf_counter() - t
        sec = result.seconds
        rows.append((target, total, sec["train"], sec["score_pool"], sec["select"], result.metrics["eval"]["accuracy"]))

    header = "| labels | round (s) | train + eval (s) | score pool (s) | select (s) | eval accuracy |"
    lines = [header, "|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {n:,} | {tot:.2f} | {tr:.2f} | {sc:.2f} | {se:.3f} | {acc:.4f} |" for n, tot, tr, sc, se, acc in rows]
    table = "\n".join(lines)
    n_images = len(images)
    body = (
        f"Fast-path rounds through the real store and `ActiveSession` on Fashion-MNIST ({n_pool:,} pool, "
        f"{n_images - n_pool:,} eval images), EfficientNet-Lite0 frozen at {args.image_size} px + logistic "
        f"regression head, margin selection of 100.\n\n"
        f"Machine: {machine()}, no GPU; {date.today().isoformat()}.\n"
        f"Command: `.venv/bin/python benchmarks/bench_round.py {' '.join(sys.argv[1:])}`.\n\n"
        f"- Import (hash + decode every file, store rows): {t_import:.1f} s.\n"
        f"- Embedding all {n_images:,} images once: {t_embed:.1f} s ({n_images / t_embed:.0f} images/s).\n\n"
        f"{table}\n\n"
        "Target (issue 4): a fast-path round under 2 s with 1,000 labels and a 60k pool once embeddings "
        "are cached.\n"
    )
    print(body)
    if not args.no_doc:
        write_section("Round", body)
    proj.close()


if __name__ == "__main__":
    main()
