"""Real image datasets that ship on the machine, written out as PNG files plus tables.

``fetch_dataset(name, dest)`` writes ``dest/pool/*.png`` and ``dest/eval/*.png``
with ``dest/pool.csv`` and ``dest/eval.csv`` (columns ``filepath``, ``label``;
paths relative to ``dest``), ready for ``activelab import``.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from activelab.exceptions import InputError, NotFoundError
from activelab.progress import Progress, track

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = [
    "t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot",
]
DIGITS_CLASSES = [str(d) for d in range(10)]


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset activelab can write out without a network."""

    name: str
    classes: list[str]
    n_pool: int
    n_eval: int
    source: str
    available: bool
    how_to_get: str


def _read_idx(path: Path) -> np.ndarray:
    """Read an idx file (the MNIST family's format), gzip-compressed."""
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion_mnist(root: Path = FASHION_MNIST_DIR) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fashion-MNIST as arrays: ``(x_train (60000,28,28) uint8, y_train, x_test (10000,28,28), y_test)``."""
    files = {
        "xtr": root / "train-images-idx3-ubyte.gz",
        "ytr": root / "train-labels-idx1-ubyte.gz",
        "xte": root / "t10k-images-idx3-ubyte.gz",
        "yte": root / "t10k-labels-idx1-ubyte.gz",
    }
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise NotFoundError(
            f"Fashion-MNIST files not found ({missing[0]}); install them with "
            "`sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu)"
        )
    return tuple(_read_idx(files[k]) for k in ("xtr", "ytr", "xte", "yte"))  # type: ignore[return-value]


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits scaled to uint8, split 1,397 pool / 400 eval (fixed, stratified)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = np.clip(digits.images * (255.0 / 16.0), 0, 255).astype(np.uint8)
    x_pool, x_eval, y_pool, y_eval = train_test_split(
        images, digits.target, test_size=400, stratify=digits.target, random_state=0
    )
    return x_pool, y_pool, x_eval, y_eval


def sample_dir() -> Path:
    """The bundled sample of real Fashion-MNIST images inside the package."""
    return Path(str(resources.files("activelab") / "sample_data" / "fashion-mnist-sample"))


_LOADERS: dict[str, Callable[[], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]] = {
    "fashion-mnist": load_fashion_mnist,
    "digits": load_digits_arrays,
}
_CLASSES = {"fashion-mnist": FASHION_MNIST_CLASSES, "digits": DIGITS_CLASSES}


def list_datasets() -> list[DatasetInfo]:
    """The datasets ``fetch_dataset`` can write, and whether each is available here."""
    fm_ok = all((FASHION_MNIST_DIR / f).is_file() for f in ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"))
    sample = sample_dir()
    return [
        DatasetInfo(
            "fashion-mnist", FASHION_MNIST_CLASSES, 60000, 10000, f"Debian package dataset-fashion-mnist ({FASHION_MNIST_DIR})",
            fm_ok, "sudo apt-get install dataset-fashion-mnist",
        ),
        DatasetInfo("digits", DIGITS_CLASSES, 1397, 400, "scikit-learn load_digits (8x8)", True, "ships with scikit-learn"),
        DatasetInfo(
            "sample", FASHION_MNIST_CLASSES, _count_rows(sample / "pool.csv"), _count_rows(sample / "eval.csv"),
            "bundled with activelab (a Fashion-MNIST sample)", (sample / "pool.csv").is_file(), "ships with activelab",
        ),
    ]


def _count_rows(path: Path) -> int:
    return len(pd.read_csv(path)) if path.is_file() else 0


def fetch_dataset(
    name: str,
    dest: str | Path,
    *,
    limit: int | None = None,
    eval_limit: int | None = None,
    seed: int = 0,
    progress: Progress = False,
) -> Path:
    """Write dataset ``name`` to ``dest`` as PNGs plus ``pool.csv`` and ``eval.csv``.

    ``limit`` / ``eval_limit`` keep a class-stratified random subset of that many
    pool / eval images (``eval_limit`` defaults to ``limit``). Existing files
    with the same name are overwritten with the same bytes, so a re-fetch is harmless.
    """
    dest = Path(dest)
    if name == "sample":
        return _copy_sample(dest)
    if name not in _LOADERS:
        known = ", ".join([*_LOADERS, "sample"])
        raise InputError(f"unknown dataset {name!r}; known: {known} (see `activelab datasets list`)")
    x_pool, y_pool, x_eval, y_eval = _LOADERS[name]()
    rng = np.random.default_rng(seed)
    classes = _CLASSES[name]
    eval_limit = limit if eval_limit is None else eval_limit
    for split, x, y, lim in (("pool", x_pool, y_pool, limit), ("eval", x_eval, y_eval, eval_limit)):
        keep = _stratified_subset(y, lim, rng)
        _write_split(dest, split, x[keep], y[keep], keep, classes, progress)
    return dest


def _stratified_subset(y: np.ndarray, limit: int | None, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``limit`` items with classes as balanced as the data allows, in index order."""
    if limit is None or limit >= len(y):
        return np.arange(len(y))
    if limit < 1:
        raise InputError(f"limit must be at least 1, got {limit}")
    per_class = {c: rng.permutation(np.flatnonzero(y == c)) for c in np.unique(y)}
    chosen: list[int] = []
    depth = 0
    while len(chosen) < limit:
        for c in sorted(per_class):
            if depth < len(per_class[c]) and len(chosen) < limit:
                chosen.append(int(per_class[c][depth]))
        depth += 1
    return np.sort(np.array(chosen))


def _write_split(
    dest: Path, split: str, x: np.ndarray, y: np.ndarray, index: np.ndarray, classes: list[str], progress: Progress
) -> None:
    folder = dest / split
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for img, label, idx in track(zip(x, y, index), progress, f"writing {split} images", total=len(x), unit="img"):
        rel = f"{split}/{int(idx):05d}.png"
        Image.fromarray(img, mode="L").save(dest / rel, optimize=True)
        rows.append((rel, classes[int(label)]))
    pd.DataFrame(rows, columns=["filepath", "label"]).to_csv(dest / f"{split}.csv", index=False)


def _copy_sample(dest: Path) -> Path:
    import shutil

    src = sample_dir()
    if not (src / "pool.csv").is_file():
        raise NotFoundError(f"the bundled sample is missing from {src}; reinstall activelab")
    shutil.copytree(src, dest, dirs_exist_ok=True)
    return dest
