"""``fashion-scenes``: an object-detection set built offline from real Fashion-MNIST items.

Each RGB canvas (128x128 by default) holds 1 to 6 Fashion-MNIST items, rescaled to sides of
about 16-56 % of the canvas (20-72 px at 128), tinted, and pasted at random positions over a
textured background (smooth noise, stripes or a gradient of random brightness). Later items
cover earlier ones; an item that would leave an earlier one under :data:`MIN_VISIBLE` of its
pixels visible is not drawn, so every drawn item is annotated. An item's pixels are its
upscaled image above :data:`ITEM_THRESHOLD` with holes filled, and its box is tight around the
pixels still visible. Pool scenes use Fashion-MNIST's training items and eval scenes its test
items, so no eval item is seen in training; without Fashion-MNIST scikit-learn's digits stand in.

:func:`write_scenes` writes the layout of docs/detection_data.md: PNG images, COCO JSON (with
RLE segmentations), YOLO labels + ``data.yaml``, 16-bit instance and 8-bit semantic masks, and
``pool.csv`` (the unlabeled pool: ``image`` only, as every fetched set's) and ``answers.csv`` /
``eval.csv`` / ``seed.csv`` with the detection payload in a ``boxes`` column; for segmentation,
:data:`SEGMENTATION_TABLES`: ``classes_masks.txt`` ("background" then the item classes, so a
semantic mask's pixel value is its class position there) and ``answers_masks.csv`` /
``eval_masks.csv`` / ``seed_masks.csv`` with columns ``image`` and ``mask`` (the semantic PNG).
A seed always writes the same bytes.
"""

from __future__ import annotations

import colorsys
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from scipy.ndimage import binary_fill_holes

from activelab._io import atomic_write_text
from activelab.data.annotations import ImageBoxes, write_coco, write_yolo
from activelab.data.datasets import (
    DIGITS_CLASSES,
    FASHION_MNIST_CLASSES,
    SCENES,
    SCENES_SEED_PER_CLASS,
    SCENES_SIZES,
    load_digits_arrays,
    load_fashion_mnist,
)
from activelab.exceptions import InputError, NotFoundError
from activelab.progress import Progress, track

IMAGE_SIZE = 128
MIN_IMAGE_SIZE = 32
MAX_ITEMS = 6
#: item side range as fractions of the canvas side (20-72 px on a 128 px canvas)
ITEM_SIDE = (20 / 128, 72 / 128)
#: an item's pixels: its upscaled grey value above this (0-255), holes filled
ITEM_THRESHOLD = 24
#: the least fraction of an item's pixels that must stay visible when later items cover it
MIN_VISIBLE = 0.4
_SPLIT_YOLO = {"pool": "train", "eval": "val"}
#: the background class of the segmentation tables: position 0, the semantic masks' value 0
BACKGROUND = "background"
#: the segmentation tables at the dataset root (the ``segmentation`` task's classes and mask tables)
SEGMENTATION_TABLES = {
    "classes": "classes_masks.txt",
    "answers": "answers_masks.csv",
    "eval": "eval_masks.csv",
    "seed": "seed_masks.csv",
}
_ATTEMPTS_PER_ITEM = 4
#: tries to find a first item with pixels above the threshold before the items are declared blank
_FIRST_ITEM_ATTEMPTS = 100


@dataclass(frozen=True)
class Scene:
    """One rendered canvas: ``image`` (S, S, 3) uint8; ``instances`` (S, S) uint16, 0 background and k for
    the k-th box; ``labels`` (M,) class positions; ``boxes`` (M, 4) float ``x, y, w, h`` pixels;
    ``visible`` (M,) float, the fraction of each item's pixels not covered by later items."""

    image: np.ndarray
    instances: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray
    visible: np.ndarray

    def semantic(self) -> np.ndarray:
        """(S, S) uint8: 0 background, else the visible item's class position + 1."""
        lut = np.concatenate([[0], self.labels + 1]).astype(np.uint8)
        return lut[self.instances]


def render_scene(items: np.ndarray, labels: np.ndarray, *, size: int = IMAGE_SIZE, rng: np.random.Generator) -> Scene:
    """Render one scene from grey ``items`` (n, h, w) uint8 with class positions ``labels`` (n,).

    Draws 1 to :data:`MAX_ITEMS` target items; a candidate that would hide too much of an earlier
    item is replaced by another, at most a few times per item, so a scene may end with fewer
    (never none: the first item always fits; items too faint to have any pixel raise InputError).
    """
    if size < MIN_IMAGE_SIZE:
        raise InputError(f"scene size must be at least {MIN_IMAGE_SIZE} px, got {size}")
    image = _background(size, rng)
    instances = np.zeros((size, size), dtype=np.uint16)
    full_areas: list[int] = []
    chosen: list[int] = []
    target = int(rng.integers(1, MAX_ITEMS + 1))
    lo, hi = (max(8, round(f * size)) for f in ITEM_SIDE)
    attempts = 0
    while len(chosen) < target and attempts < (target * _ATTEMPTS_PER_ITEM if chosen else _FIRST_ITEM_ATTEMPTS):
        attempts += 1
        index = int(rng.integers(len(items)))
        width, height = (int(np.clip(round(rng.integers(lo, hi + 1) * a), 8, size)) for a in rng.uniform(0.85, 1.15, 2))
        grey = np.asarray(Image.fromarray(items[index]).resize((width, height), Image.Resampling.BILINEAR), np.float32)
        mask = binary_fill_holes(grey > ITEM_THRESHOLD)
        x0, y0 = int(rng.integers(size - width + 1)), int(rng.integers(size - height + 1))
        colour = _item_colour(image[y0 : y0 + height, x0 : x0 + width].mean(), rng)
        if not mask.any() or not _keeps_earlier_visible(instances, mask, x0, y0, full_areas):
            continue
        window = (slice(y0, y0 + height), slice(x0, x0 + width))
        shade = 0.3 + 0.7 * grey[mask] / 255.0
        image[window][mask] = shade[:, None] * colour
        instances[window][mask] = len(chosen) + 1
        full_areas.append(int(mask.sum()))
        chosen.append(index)
    if not chosen:
        raise InputError(
            f"no item drawn in {_FIRST_ITEM_ATTEMPTS} tries has a pixel above {ITEM_THRESHOLD}: "
            "give items with a bright object on a black background, as Fashion-MNIST's are"
        )
    noisy = image + rng.standard_normal(image.shape, dtype=np.float32) * np.float32(rng.uniform(2.0, 6.0))
    pixels = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    visible = np.bincount(instances.ravel(), minlength=len(chosen) + 1)[1:] / np.asarray(full_areas)
    return Scene(pixels, instances, labels[chosen].astype(np.int64), _visible_boxes(instances, len(chosen)), visible)


def _keeps_earlier_visible(instances: np.ndarray, mask: np.ndarray, x0: int, y0: int, full_areas: list[int]) -> bool:
    """Whether every drawn item keeps :data:`MIN_VISIBLE` of its pixels once ``mask`` is pasted at (x0, y0)."""
    if not full_areas:
        return True
    n = len(full_areas) + 1
    height, width = mask.shape
    covered = np.bincount(instances[y0 : y0 + height, x0 : x0 + width][mask], minlength=n)
    visible = np.bincount(instances.ravel(), minlength=n)
    return bool(np.all(visible[1:] - covered[1:] >= MIN_VISIBLE * np.asarray(full_areas)))


def _visible_boxes(instances: np.ndarray, n: int) -> np.ndarray:
    """(n, 4) float ``x, y, w, h`` around each instance's visible pixels (pixel edges: a 1-px item is 1 wide)."""
    boxes = np.zeros((n, 4), dtype=np.float64)
    for k in range(n):
        mask = instances == k + 1
        cols, rows = np.flatnonzero(mask.any(axis=0)), np.flatnonzero(mask.any(axis=1))
        boxes[k] = (cols[0], rows[0], cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1)
    return boxes


def _background(size: int, rng: np.random.Generator) -> np.ndarray:
    """(size, size, 3) float32 in 0-255: smooth noise, stripes or a gradient around a random brightness."""
    brightness = rng.uniform(25.0, 230.0)
    low, high = (np.clip(brightness + rng.uniform(-45.0, 45.0, 3), 0, 255).astype(np.float32) for _ in range(2))
    kind = rng.integers(3)
    if kind == 0:
        cells = int(rng.integers(3, 9))
        coarse = (rng.random((cells, cells, 3)) * 255).astype(np.uint8)
        t = np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC), np.float32) / 255.0
    else:
        angle = rng.uniform(0.0, np.pi)
        steps = np.arange(size, dtype=np.float32) / size
        along = steps[None, :] * np.float32(np.cos(angle)) + steps[:, None] * np.float32(np.sin(angle))
        if kind == 1:
            phase = np.float32(rng.uniform(0, 2 * np.pi))
            along = 0.5 + 0.5 * np.sin(np.float32(2 * np.pi * rng.uniform(2.0, 10.0)) * along + phase)
        else:
            along = (along - along.min()) / (np.ptp(along) or 1.0)
        t = along[..., None]
    return low + (high - low) * t


def _item_colour(background_mean: float, rng: np.random.Generator) -> np.ndarray:
    """(3,) float: a random hue, light on dark backgrounds and dark on light ones, so items stand out."""
    value = rng.uniform(0.65, 1.0) if background_mean < 128 else rng.uniform(0.2, 0.45)
    rgb = colorsys.hsv_to_rgb(rng.uniform(0.0, 1.0), rng.uniform(0.2, 0.9), value)
    return np.asarray(rgb, dtype=np.float32) * 255.0


def scene_sources() -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str], str]:
    """The items per split (``pool``: training items, ``eval``: test items), the class names, and their provenance."""
    try:
        x_train, y_train, x_test, y_test = load_fashion_mnist()
        return {"pool": (x_train, y_train), "eval": (x_test, y_test)}, FASHION_MNIST_CLASSES, "fashion-mnist"
    except NotFoundError:
        x_pool, y_pool, x_eval, y_eval = load_digits_arrays()
        return {"pool": (x_pool, y_pool), "eval": (x_eval, y_eval)}, DIGITS_CLASSES, "digits"


def write_scenes(
    dest: str | Path,
    *,
    n_pool: int = SCENES_SIZES["pool"],
    n_eval: int = SCENES_SIZES["eval"],
    size: int = IMAGE_SIZE,
    seed: int = 0,
    seed_per_class: int = SCENES_SEED_PER_CLASS,
    progress: Progress = False,
) -> Path:
    """Write ``n_pool`` + ``n_eval`` scenes and every annotation file of the layout to ``dest``; return ``dest``.

    Each split has its own generator derived from ``seed``, so the eval scenes do not change
    with ``n_pool``. ``seed.csv`` holds the first ``seed_per_class`` x C pool images, more when
    needed until every class is in ``seed_per_class`` of them; ``seed_masks.csv`` holds the
    same images with their masks (the rule counts item classes: background is in nearly every image).
    """
    for name, n in (("n_pool", n_pool), ("n_eval", n_eval)):
        if n < 1:
            raise InputError(f"{name} must be at least 1, got {n}")
    if seed_per_class < 0:
        raise InputError(f"seed_per_class must be 0 or more, got {seed_per_class}")
    dest = Path(dest)
    sources, classes, source_name = scene_sources()
    tables = {}
    for number, (split, n) in enumerate((("pool", n_pool), ("eval", n_eval))):
        rng = np.random.default_rng([seed, number])
        tables[split] = _write_split(dest, split, n, sources[split], classes, size, rng, progress)
    atomic_write_text(dest / "classes.txt", "".join(f"{name}\n" for name in classes))
    tables["pool"][["image"]].to_csv(dest / "pool.csv", index=False)  # unlabeled, as every fetched set's pool
    tables["pool"].to_csv(dest / "answers.csv", index=False)
    tables["eval"].to_csv(dest / "eval.csv", index=False)
    seed_rows = _seed_table(tables["pool"], classes, seed_per_class)
    seed_rows.to_csv(dest / "seed.csv", index=False)
    _write_mask_tables(dest, classes, {split: table["image"] for split, table in tables.items()}, len(seed_rows))
    atomic_write_text(dest / "README.md", _readme(source_name, n_pool, n_eval, size, seed))
    return dest


def _write_split(
    dest: Path,
    split: str,
    n: int,
    source: tuple[np.ndarray, np.ndarray],
    classes: list[str],
    size: int,
    rng: np.random.Generator,
    progress: Progress,
) -> pd.DataFrame:
    """Render and write ``n`` scenes of ``split`` with their masks, COCO and YOLO files; return its image/boxes table."""
    from pycocotools import mask as mask_utils

    folder = dest / split
    for sub in ("images", "masks/instance", "masks/semantic"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    items, segmentations, rows = [], [], []
    for i in track(range(n), progress, f"writing {split} scenes", total=n, unit="img"):
        scene = render_scene(*source, size=size, rng=rng)
        name = f"{i:06d}.png"
        Image.fromarray(scene.image).save(folder / "images" / name, compress_level=1)  # noisy pixels hardly compress
        Image.fromarray(scene.instances).save(folder / "masks" / "instance" / name)
        Image.fromarray(scene.semantic()).save(folder / "masks" / "semantic" / name)
        boxes = [
            {"class": classes[label], "x": float(x), "y": float(y), "w": float(w), "h": float(h)}
            for label, (x, y, w, h) in zip(scene.labels, scene.boxes)
        ]
        items.append(ImageBoxes(name, size, size, boxes))
        masks = np.asfortranarray(np.stack([scene.instances == k + 1 for k in range(len(boxes))], axis=-1))
        rles = mask_utils.encode(masks.astype(np.uint8))
        segmentations.append([{"size": r["size"], "counts": r["counts"].decode("ascii")} for r in rles])
        rows.append((f"{split}/images/{name}", json.dumps(boxes, separators=(",", ":"))))
    write_coco(folder / "annotations.json", items, classes, segmentations=segmentations)
    write_yolo(dest, items, classes, split=_SPLIT_YOLO[split], folder=split)
    return pd.DataFrame(rows, columns=["image", "boxes"])


def _seed_table(pool: pd.DataFrame, classes: Sequence[str], per_class: int) -> pd.DataFrame:
    """The first pool rows: ``per_class`` x C of them, more if needed until each class is in ``per_class`` rows.

    The pool is in random order, so a prefix is a random sample; a class too rare for the rule
    makes it take the whole pool.
    """
    seen = np.zeros(len(classes), dtype=np.int64)
    positions = {name: i for i, name in enumerate(classes)}
    n = len(pool)
    for i, cell in enumerate(pool["boxes"]):
        if i >= per_class * len(classes) and seen.min() >= per_class:
            n = i
            break
        for name in {box["class"] for box in json.loads(cell)}:
            seen[positions[name]] += 1
    return pool.head(n)


def _write_mask_tables(dest: Path, classes: Sequence[str], images: dict[str, pd.Series], n_seed: int) -> None:
    """Write :data:`SEGMENTATION_TABLES`: the classes with background first, and ``image``, ``mask`` tables.

    A semantic mask's value is the item's class position + 1, which is its position in
    ``classes_masks.txt``; the seed is the first ``n_seed`` pool rows, the images of ``seed.csv``.
    """
    atomic_write_text(dest / SEGMENTATION_TABLES["classes"], "".join(f"{name}\n" for name in [BACKGROUND, *classes]))
    tables = {
        split: pd.DataFrame({"image": column, "mask": column.str.replace("/images/", "/masks/semantic/", regex=False)})
        for split, column in images.items()
    }
    tables["pool"].to_csv(dest / SEGMENTATION_TABLES["answers"], index=False)
    tables["eval"].to_csv(dest / SEGMENTATION_TABLES["eval"], index=False)
    tables["pool"].head(n_seed).to_csv(dest / SEGMENTATION_TABLES["seed"], index=False)


def _readme(source_name: str, n_pool: int, n_eval: int, size: int, seed: int) -> str:
    """The dataset's README: what it is, how it was made, its layout, and the source's licence."""
    if source_name == "fashion-mnist":
        provenance = (
            "Items are real Fashion-MNIST images (Xiao, Rasul and Vollgraf 2017, Zalando Research,\n"
            "https://github.com/zalandoresearch/fashion-mnist), MIT licence, Copyright (c) 2017 Zalando SE.\n"
            "Pool scenes use its 60,000 training items, eval scenes its 10,000 test items."
        )
    else:
        provenance = (
            "Fashion-MNIST was not installed, so items are scikit-learn's 8x8 digits (the UCI optical\n"
            "recognition of handwritten digits set, CC BY 4.0), split 1,397 pool / 400 eval."
        )
    return f"""# {SCENES}

An object-detection and semantic-segmentation dataset written by `activelab datasets fetch {SCENES}` (seed {seed}):
{n_pool} pool and {n_eval} eval RGB images of {size}x{size} px, each holding 1 to {MAX_ITEMS} tinted items
of the 10 classes in classes.txt over a textured background, later items partly covering earlier ones
(each keeps at least {MIN_VISIBLE:.0%} of its pixels visible). Boxes are tight around the visible pixels.

{provenance}

## Layout

- `pool/images/*.png`, `eval/images/*.png`: the images.
- `pool.csv`: column `image` (path relative to this folder), the unlabeled pool to import;
  `answers.csv`, `eval.csv`: columns `image` and `boxes` (JSON list of `{{"class", "x", "y", "w", "h"}}`
  in pixels, top-left origin), every pool image's boxes (the simulation's oracle) and the held-out
  set's; `seed.csv`: a few pool rows with their boxes to start from.
- `pool/annotations.json`, `eval/annotations.json`: COCO instances (bbox `[x, y, w, h]`, RLE segmentation,
  `file_name` relative to `images/`).
- `pool/labels/*.txt`, `eval/labels/*.txt` and `data.yaml`: YOLO (`class cx cy w h`, fractions of the image).
- `*/masks/instance/*.png`: 16-bit, 0 background, k for the k-th box; `*/masks/semantic/*.png`: 8-bit,
  0 background, class position + 1.
- Segmentation: `classes_masks.txt` ("background" then the classes of classes.txt, so a semantic mask's
  value is its class position here); `answers_masks.csv`, `eval_masks.csv`, `seed_masks.csv`: columns
  `image` and `mask` (the semantic PNG, relative to this folder), the pool's oracle, the held-out set and
  the seed's images (those of `seed.csv`).
"""
