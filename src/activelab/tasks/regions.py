"""Regions of an image for region-level selection: superpixels (SLIC) or a grid of square patches.

A region strategy scores each region by the mean score of its pixels and a round asks for
regions rather than whole images (Mackowiak et al., "CEREALS - Cost-Effective REgion-based
Active Learning for Semantic Segmentation", BMVC 2018: patches; Cai et al., "Revisiting
Superpixels for Active Learning in Semantic Segmentation with Realistic Annotation Costs",
CVPR 2021: SLIC superpixels, which follow object edges so one label fits a region).
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np

from activelab.exceptions import InputError

#: how an image is cut into regions
REGION_METHODS = ("slic", "patch")
#: SLIC's balance of colour against space (scikit-image's default for Lab images)
SLIC_COMPACTNESS = 10.0


def check_region_settings(method: str, size: int) -> None:
    """InputError unless ``method`` is one of :data:`REGION_METHODS` and ``size`` a whole number >= 1."""
    if method not in REGION_METHODS:
        raise InputError(f"unknown region method {method!r}; use one of {', '.join(REGION_METHODS)}")
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
        raise InputError(f"the region size must be a whole number of pixels >= 1, got {size!r}")


def _patches(height: int, width: int, size: int) -> np.ndarray:
    """``(H, W) int32``: ``size`` x ``size`` squares numbered row by row (the last row/column may be narrower)."""
    rows = np.arange(height)[:, None] // size
    cols = np.arange(width)[None, :] // size
    return (rows * math.ceil(width / size) + cols).astype(np.int32)


def _slic(image: np.ndarray, size: int) -> np.ndarray:
    """``(H, W) int32`` SLIC superpixels of about ``size**2`` pixels each, ids 0..R-1 in order of first pixel."""
    from skimage.segmentation import slic  # slow to import: only when regions are asked for

    if image.ndim == 2:  # grey as RGB, so SLIC's Lab distances (and compactness 10) hold for it too
        image = np.repeat(image[..., None], 3, axis=2)
    height, width = image.shape[:2]
    n_segments = max(1, round(height * width / size**2))
    labels = slic(image, n_segments=n_segments, compactness=SLIC_COMPACTNESS, start_label=0, channel_axis=-1)
    _, first = np.unique(labels.ravel(), return_index=True)
    order = np.unique(labels.ravel())[np.argsort(first)]  # ids by first pixel in reading order
    relabel = np.zeros(int(labels.max()) + 1, dtype=np.int32)
    relabel[order] = np.arange(len(order), dtype=np.int32)
    return relabel[labels]


def _image_array(source: str | Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(source) as image:
            image.load()
            return np.asarray(image.convert("L") if image.mode in ("L", "I", "I;16", "1") else image.convert("RGB"))
    except FileNotFoundError as exc:
        raise InputError(f"image {source}: no such file; regions are computed from the pool's images") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"image {source} is truncated or not an image ({exc}); replace the file") from exc


class _RegionCache:
    """Region maps of image files by ``(path, mtime, method, size)``, least recently used dropped past a byte budget.

    A round recomputes every pool image's map otherwise (SLIC: ~80 ms for 128 x 128 px); a changed
    file has a new mtime, so a stale map is never served. The maps are read-only: every caller shares them.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._maps: OrderedDict[tuple[str, int, str, int], np.ndarray] = OrderedDict()
        self._bytes = 0

    def get(self, path: str, method: str, size: int) -> np.ndarray:
        try:
            mtime = os.stat(path).st_mtime_ns
        except FileNotFoundError as exc:
            raise InputError(f"image {path}: no such file; regions are computed from the pool's images") from exc
        key = (path, mtime, method, size)
        if key in self._maps:
            self._maps.move_to_end(key)
            return self._maps[key]
        out = _regions(_image_array(path), method, size)
        out.setflags(write=False)
        self._maps[key] = out
        self._bytes += out.nbytes
        while self._bytes > self.max_bytes and len(self._maps) > 1:
            _, dropped = self._maps.popitem(last=False)
            self._bytes -= dropped.nbytes
        return out

    def clear(self) -> None:
        self._maps.clear()
        self._bytes = 0


#: the process's region maps (256 MiB: 4,096 maps of 128 x 128 px)
REGION_CACHE = _RegionCache(256 * 2**20)


def _regions(image: np.ndarray, method: str, size: int) -> np.ndarray:
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise InputError(f"an image is (H, W) grey or (H, W, 3) colour, got shape {image.shape}")
    if method == "patch":
        return _patches(image.shape[0], image.shape[1], size)
    return _slic(image[..., :3] if image.ndim == 3 else image, size)


def region_map(source: str | Path | np.ndarray, method: str = "slic", size: int = 16) -> np.ndarray:
    """``(H, W) int32`` region ids ``0..R-1`` of an image (a path or an ``(H, W[, 3])`` array).

    ``"slic"``: scikit-image SLIC superpixels, ``round(H * W / size**2)`` asked for, compactness
    10, ids renumbered in reading order of their first pixel; deterministic. ``"patch"``: a
    grid of ``size`` x ``size`` squares. Maps of paths are cached in-process (:data:`REGION_CACHE`;
    read-only arrays).
    """
    check_region_settings(method, size)
    if isinstance(source, np.ndarray):
        return _regions(source, method, int(size))
    return REGION_CACHE.get(str(source), method, int(size))


def region_means(values: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """``(R,)`` mean of the ``(H, W)`` pixel map ``values`` over each region of ``regions`` (ids 0..R-1)."""
    values, regions = np.asarray(values, dtype=np.float64), np.asarray(regions)
    if values.shape != regions.shape:
        raise InputError(f"a pixel map {values.shape} and its region map {regions.shape} must have the same shape")
    ids = regions.ravel()
    n_regions = int(ids.max()) + 1 if ids.size else 0
    counts = np.bincount(ids, minlength=n_regions)
    sums = np.bincount(ids, weights=values.ravel(), minlength=n_regions)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
