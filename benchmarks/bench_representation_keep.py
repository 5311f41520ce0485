"""Is a gap in the representation criterion signal or noise? (docs/representation.md, "Keeping the configured model")

For random labeled sets of n images, prints each candidate's logistic-regression test accuracy beside
its leave-one-out 3-NN and 5-fold logistic-regression criterion scores, so one can count how often the
plain arg-max of a criterion picks the candidate that tests worse. Uses the embedding cache of
benchmarks/bench_pipeline.py (run that first, or expect the embeddings to be computed here).

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_representation_keep.py fashion 200,500,1000
    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_representation_keep.py fashion-mnist-sample 50,100,200
"""

import sys
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from activelab.data.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist
from activelab.loop.representation import cv_logreg_accuracy, knn_loo_accuracy
from activelab.models import create_model
from activelab.simulate.data import from_arrays, load_dataset

CACHE = Path(__file__).resolve().parents[1] / ".bench-cache"
which = sys.argv[1]
if which == "fashion":
    x, y, xt, yt = load_fashion_mnist()
    ds = from_arrays(
        "fashion-mnist", x[:25000], y[:25000], xt[:2000], yt[:2000], FASHION_MNIST_CLASSES, CACHE / "images"
    )
else:
    ds = load_dataset(which, CACHE / "images")
cands = [("efficientnet_lite0", 64), ("pixels", 28 if which != "digits" else 8)]
feats = {}
for name, size in cands:
    m = create_model(
        name,
        classes=ds.classes,
        mode="frozen",
        image_size=size,
        cache_dir=CACHE / "embeddings",
        batch_size=256,
        chunk_size=2048,
    )
    feats[name] = (m.embed(ds.pool_paths, keys=ds.pool_keys), m.embed(ds.eval_paths, keys=ds.eval_keys))
    print(name, feats[name][0].shape, flush=True)
levels = [int(v) for v in sys.argv[2].split(",")]
for n in levels:
    for seed in range(3):
        idx = np.random.default_rng(seed).choice(len(ds.y_pool), n, replace=False)
        row = []
        for name in feats:
            xp, xe = feats[name]
            sc = StandardScaler().fit(xp[idx])
            acc = (
                LogisticRegression(C=1.0, max_iter=300)
                .fit(sc.transform(xp[idx]), ds.y_pool[idx])
                .score(sc.transform(xe), ds.y_eval)
            )
            t = time.time()
            k3 = knn_loo_accuracy(xp[idx], ds.y_pool[idx])
            t1 = time.time()
            cv = cv_logreg_accuracy(xp[idx], ds.y_pool[idx])
            t2 = time.time()
            row.append(f"{name}: test {acc:.3f} knn {k3:.3f} cv {cv:.3f} ({t1 - t:.2f}s/{t2 - t1:.2f}s)")
        print(n, seed, " | ".join(row), flush=True)
