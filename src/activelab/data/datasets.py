"""Real image datasets that ship on the machine, written out as PNG files plus tables.

``fetch_dataset(name, dest)`` writes what a new project starts from, paths relative to ``dest``:

- ``pool/*.png`` and ``pool.csv`` (column ``filepath`` only): the unlabeled images to label;
- ``seed.csv`` (``filepath``, ``label``): the first ``seed_per_class`` pool images of each class,
  a few labels to train a first model on;
- ``answers.csv`` (``filepath``, ``label``): every pool image's true label, the oracle that
  ``activelab simulate`` answers from (importing it would label the whole pool);
- ``eval/*.png`` and ``eval.csv`` (``filepath``, ``label``): held out for evaluation.

The pool's labels live apart from ``pool.csv`` so that importing the pool leaves something
to label, which is the point of active learning.

``fashion-pairs`` is the multi-label set, built offline from the bundled sample: each
56x28 image puts two sample items side by side (pool pairs from the sample's pool, eval
pairs from its eval split, so no eval item is seen in training) and is labeled with both
classes, or one when both items share it. Its tables hold a ``labels`` column instead of
``label``, the class names sorted and joined by ``|`` (``bag|shirt``); ``seed.csv`` holds the
first ``seed_per_class`` pool images containing each class.

``fashion-scenes`` is the object-detection and segmentation set, generated from Fashion-MNIST
items by :mod:`activelab.data.scenes` with boxes, masks and COCO / YOLO files; its tables hold the
columns ``image`` and ``boxes``, and its segmentation tables (``*_masks.csv``, with
``classes_masks.txt``) the columns ``image`` and ``mask`` (docs/detection_data.md).
"""

from __future__ import annotations

import gzip
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from activelab.exceptions import InputError, NotFoundError
from activelab.progress import Progress, track

#: the environment variable that points at another Fashion-MNIST folder (idx gzip files)
FASHION_MNIST_ENV = "ACTIVELAB_FASHION_MNIST_DIR"
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
FASHION_MNIST_CLASSES = [
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle-boot",
]
DIGITS_CLASSES = [str(d) for d in range(10)]
SAMPLE = "fashion-mnist-sample"
PAIRS = "fashion-pairs"
#: pool and eval images ``fashion-pairs`` writes unless ``limit`` / ``eval_limit`` say otherwise
PAIRS_SIZES = {"pool": 1000, "eval": 300}
SCENES = "fashion-scenes"
#: pool and eval scenes ``fashion-scenes`` writes unless ``limit`` / ``eval_limit`` say otherwise
SCENES_SIZES = {"pool": 2000, "eval": 500}
#: pool images per class ``fashion-scenes``' seed.csv gathers unless asked otherwise
SCENES_SEED_PER_CLASS = 2
#: the separator of the class names in a ``fashion-pairs`` ``labels`` cell
LABEL_SEP = "|"
#: old names still accepted by ``fetch_dataset``
ALIASES = {"sample": SAMPLE}
#: labeled pool images per class written to ``seed.csv`` unless asked otherwise
SEED_PER_CLASS = 5
TABLES = ("pool.csv", "seed.csv", "answers.csv", "eval.csv")


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
    #: the task its labels are for (``activelab.tasks``): one class per image, or a set of classes
    task: str = "classification"


def fashion_mnist_dir() -> Path:
    """Where the Fashion-MNIST idx files are: ``$ACTIVELAB_FASHION_MNIST_DIR`` or the Debian package's folder."""
    return Path(os.environ.get(FASHION_MNIST_ENV) or FASHION_MNIST_DIR)


def _read_idx(path: Path) -> np.ndarray:
    """Read an idx file (the MNIST family's format), gzip-compressed."""
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion_mnist(root: Path | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fashion-MNIST as arrays: ``(x_train (60000,28,28) uint8, y_train, x_test (10000,28,28), y_test)``.

    ``root`` defaults to :func:`fashion_mnist_dir`; without the files the error says how to get
    them and names the sample that ships with activelab.
    """
    root = fashion_mnist_dir() if root is None else Path(root)
    missing = [name for name in FASHION_MNIST_FILES if not (root / name).is_file()]
    if missing:
        raise NotFoundError(
            f"Fashion-MNIST is not installed here: {root} has no {missing[0]}. Install it with "
            f"`sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu; or set {FASHION_MNIST_ENV} to a "
            f"folder holding its four idx .gz files), or use the 700-image sample that ships with activelab: "
            f"`activelab datasets fetch {SAMPLE} DEST`"
        )
    x_train, y_train, x_test, y_test = (_read_idx(root / name) for name in FASHION_MNIST_FILES)
    return x_train, y_train, x_test, y_test


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
    """The bundled sample of real Fashion-MNIST images inside the package (tables with labels)."""
    return Path(str(resources.files("activelab") / "sample_data" / "fashion-mnist-sample"))


_LOADERS: dict[str, Callable[[], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]] = {
    "fashion-mnist": load_fashion_mnist,
    "digits": load_digits_arrays,
}
_CLASSES = {"fashion-mnist": FASHION_MNIST_CLASSES, "digits": DIGITS_CLASSES}
DATASET_NAMES = (*_LOADERS, SAMPLE, PAIRS, SCENES)


def list_datasets() -> list[DatasetInfo]:
    """The datasets ``fetch_dataset`` can write, and whether each is available here."""
    root = fashion_mnist_dir()
    sample = sample_dir()
    has_fashion = all((root / name).is_file() for name in FASHION_MNIST_FILES)
    return [
        DatasetInfo(
            "fashion-mnist",
            FASHION_MNIST_CLASSES,
            60000,
            10000,
            f"Debian package dataset-fashion-mnist ({root})",
            has_fashion,
            f"sudo apt-get install dataset-fashion-mnist, or use {SAMPLE}",
        ),
        DatasetInfo(
            "digits", DIGITS_CLASSES, 1397, 400, "scikit-learn load_digits (8x8)", True, "ships with scikit-learn"
        ),
        DatasetInfo(
            SAMPLE,
            FASHION_MNIST_CLASSES,
            _count_rows(sample / "pool.csv"),
            _count_rows(sample / "eval.csv"),
            "bundled with activelab (a Fashion-MNIST sample)",
            (sample / "pool.csv").is_file(),
            "ships with activelab",
        ),
        DatasetInfo(
            PAIRS,
            FASHION_MNIST_CLASSES,
            PAIRS_SIZES["pool"],
            PAIRS_SIZES["eval"],
            f"built from {SAMPLE}: two items side by side, labeled with both classes",
            (sample / "pool.csv").is_file(),
            "ships with activelab",
            task="multilabel",
        ),
        DatasetInfo(
            SCENES,
            FASHION_MNIST_CLASSES if has_fashion else DIGITS_CLASSES,
            SCENES_SIZES["pool"],
            SCENES_SIZES["eval"],
            f"generated from {'Fashion-MNIST' if has_fashion else 'scikit-learn digits'}: 1-6 items per 128 px scene, "
            "boxes, COCO and YOLO files, semantic mask tables (*_masks.csv) for segmentation",
            True,
            "generated here (from dataset-fashion-mnist when installed, else scikit-learn digits)",
            task="detection",
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
    seed_per_class: int | None = None,
    size: int | None = None,
    progress: Progress = False,
) -> Path:
    """Write dataset ``name`` to ``dest`` as PNGs plus the tables the module docstring lists.

    ``limit`` / ``eval_limit`` keep a class-stratified random subset of that many
    pool / eval images (``eval_limit`` defaults to ``limit``); for the generated sets
    (``fashion-pairs``, ``fashion-scenes``) they are how many to generate. ``seed_per_class``
    defaults to :data:`SEED_PER_CLASS` (:data:`SCENES_SEED_PER_CLASS` for ``fashion-scenes``).
    ``size`` is the side in pixels of ``fashion-scenes``' square images (default 128). Existing
    files with the same name are overwritten with the same bytes, so a re-fetch is harmless.
    """
    name = ALIASES.get(name, name)
    if name not in DATASET_NAMES:
        raise InputError(f"unknown dataset {name!r}; known: {', '.join(DATASET_NAMES)} (see `activelab datasets list`)")
    if seed_per_class is None:
        seed_per_class = SCENES_SEED_PER_CLASS if name == SCENES else SEED_PER_CLASS
    if seed_per_class < 0:
        raise InputError(f"seed_per_class must be 0 or more, got {seed_per_class}")
    if size is not None and name != SCENES:
        raise InputError(f"size applies to {SCENES} only ({name} keeps its images' own size); drop --size")
    dest = Path(dest)
    rng = np.random.default_rng(seed)
    limits = {"pool": limit, "eval": limit if eval_limit is None else eval_limit}
    if name == SCENES:
        from activelab.data.scenes import IMAGE_SIZE, write_scenes

        n_pool, n_eval = (SCENES_SIZES[split] if lim is None else lim for split, lim in limits.items())
        return write_scenes(
            dest,
            n_pool=n_pool,
            n_eval=n_eval,
            size=IMAGE_SIZE if size is None else size,
            seed=seed,
            seed_per_class=seed_per_class,
            progress=progress,
        )
    if name == PAIRS:
        pairs = {split: _write_pairs(dest, split, lim, rng, progress) for split, lim in limits.items()}
        _write_pair_tables(dest, pairs["pool"], pairs["eval"], seed_per_class)
        return dest
    if name == SAMPLE:
        tables = {split: _copy_sample_split(dest, split, lim, rng, progress) for split, lim in limits.items()}
    else:
        x_pool, y_pool, x_eval, y_eval = _LOADERS[name]()
        arrays = {"pool": (x_pool, y_pool), "eval": (x_eval, y_eval)}
        tables = {
            split: _write_split(dest, split, *arrays[split], _CLASSES[name], lim, rng, progress)
            for split, lim in limits.items()
        }
    _write_tables(dest, tables["pool"], tables["eval"], seed_per_class)
    return dest


def _write_tables(dest: Path, answers: pd.DataFrame, evals: pd.DataFrame, seed_per_class: int) -> None:
    """Write the unlabeled pool, its seed and answers, and the labeled eval split as CSV."""
    answers[["filepath"]].to_csv(dest / "pool.csv", index=False)
    answers.groupby("label", sort=False).head(seed_per_class).to_csv(dest / "seed.csv", index=False)
    answers.to_csv(dest / "answers.csv", index=False)
    evals.to_csv(dest / "eval.csv", index=False)


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
    dest: Path,
    split: str,
    x: np.ndarray,
    y: np.ndarray,
    classes: list[str],
    limit: int | None,
    rng: np.random.Generator,
    progress: Progress,
) -> pd.DataFrame:
    """Write a subset of the images as ``split/<index in the set>.png``; return its ``filepath``, ``label`` table."""
    keep = _stratified_subset(y, limit, rng)
    (dest / split).mkdir(parents=True, exist_ok=True)
    rows = []
    for idx in track(keep, progress, f"writing {split} images", total=len(keep), unit="img"):
        rel = f"{split}/{int(idx):05d}.png"
        Image.fromarray(x[idx], mode="L").save(dest / rel, optimize=True)
        rows.append((rel, classes[int(y[idx])]))
    return pd.DataFrame(rows, columns=["filepath", "label"])


def _copy_sample_split(
    dest: Path, split: str, limit: int | None, rng: np.random.Generator, progress: Progress
) -> pd.DataFrame:
    """Copy a subset of the bundled sample's ``split`` files; return its ``filepath``, ``label`` table."""
    src = sample_dir()
    if not (src / f"{split}.csv").is_file():
        raise NotFoundError(f"the bundled sample is missing from {src}; reinstall activelab")
    table = pd.read_csv(src / f"{split}.csv")
    codes = table["label"].map({c: i for i, c in enumerate(FASHION_MNIST_CLASSES)}).to_numpy()
    table = table.iloc[_stratified_subset(codes, limit, rng)].reset_index(drop=True)
    (dest / split).mkdir(parents=True, exist_ok=True)
    for rel in track(table["filepath"], progress, f"copying {split} images", total=len(table), unit="img"):
        shutil.copyfile(src / rel, dest / rel)
    return table


def _write_pairs(
    dest: Path, split: str, limit: int | None, rng: np.random.Generator, progress: Progress
) -> pd.DataFrame:
    """Write ``split/<n>.png``: two distinct bundled ``split`` items side by side; return ``filepath``, ``labels``."""
    n = PAIRS_SIZES[split] if limit is None else limit
    if n < 1:
        raise InputError(f"limit must be at least 1, got {n}")
    src = sample_dir()
    if not (src / f"{split}.csv").is_file():
        raise NotFoundError(f"the bundled sample is missing from {src}; reinstall activelab")
    items = pd.read_csv(src / f"{split}.csv")
    pixels = np.stack([np.asarray(Image.open(src / rel).convert("L")) for rel in items["filepath"]])
    classes = items["label"].to_numpy()
    (dest / split).mkdir(parents=True, exist_ok=True)
    rows = []
    for i in track(range(n), progress, f"writing {split} pairs", total=n, unit="img"):
        left, right = rng.choice(len(items), size=2, replace=False)
        rel = f"{split}/{i:05d}.png"
        Image.fromarray(np.hstack([pixels[left], pixels[right]]), mode="L").save(dest / rel, optimize=True)
        rows.append((rel, LABEL_SEP.join(sorted({classes[left], classes[right]}))))
    return pd.DataFrame(rows, columns=["filepath", "labels"])


def _write_pair_tables(dest: Path, answers: pd.DataFrame, evals: pd.DataFrame, seed_per_class: int) -> None:
    """Like :func:`_write_tables` for a ``labels`` column; the seed takes the first images containing each class."""
    answers[["filepath"]].to_csv(dest / "pool.csv", index=False)
    sets = [set(cell.split(LABEL_SEP)) for cell in answers["labels"]]
    seed = np.zeros(len(answers), dtype=bool)
    for name in FASHION_MNIST_CLASSES:
        seed[np.flatnonzero([name in labels for labels in sets])[:seed_per_class]] = True
    answers[seed].to_csv(dest / "seed.csv", index=False)
    answers.to_csv(dest / "answers.csv", index=False)
    evals.to_csv(dest / "eval.csv", index=False)
