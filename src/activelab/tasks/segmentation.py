"""Semantic segmentation: an annotation is a class per pixel; the model outputs a softmax per pixel.

The canonical payload references a mask file rather than holding one::

    {"mask": "<sha256 of the canonical PNG>", "width": W, "height": H, "labeled": <labeled pixels>}

The mask is an ``(H, W) uint8`` array of class positions (the class list names its
background class, conventionally first), :data:`~activelab.tasks.masks.IGNORE` (255) where
nobody labeled, so a partly labeled image (the regions a round asked for) is valid. The
task's mask store (:mod:`activelab.tasks.masks`) keeps the PNG under its content address and
never rewrites it, so an event's mask cannot change under it. :meth:`Segmentation.validate`
also takes a mask file, a base64 PNG (the app), polygons, instance masks (bool arrays or
COCO RLE) and numpy arrays, and turns each into the canonical payload.

Region selection cuts each image into superpixels or patches (:mod:`activelab.tasks.regions`)
and asks for the regions the model is least sure of (Mackowiak et al., BMVC 2018; Cai et
al., CVPR 2021).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from activelab._defaults import DEFAULT_SEGMENTATION_MODEL
from activelab.exceptions import InputError
from activelab.tasks.base import Payload, Task
from activelab.tasks.masks import (
    FILLS,
    IGNORE,
    MAX_CLASSES,
    MaskStore,
    check_mask,
    rasterise_instances,
    rasterise_polygons,
    read_mask,
)
from activelab.tasks.regions import check_region_settings, region_map
from activelab.tasks.registry import register_task
from activelab.tasks.segmentation_metrics import segmentation_metrics

#: the keys of the canonical payload, in order
CANONICAL_KEYS = ("mask", "width", "height", "labeled")
#: payload forms validate accepts: the key naming the form -> the keys allowed beside it
FORMS: dict[str, frozenset[str]] = {
    "mask": frozenset(CANONICAL_KEYS),
    "mask_file": frozenset({"mask_file"}),
    "png": frozenset({"png"}),
    "polygons": frozenset({"polygons", "fill", "width", "height"}),
    "instances": frozenset({"instances", "fill", "width", "height"}),
}
#: the arrays computed from the pool's region maps (they need the image paths)
REGION_ARRAYS = frozenset({"region_map", "region_owner", "region_pixels", "region_labeled"})
#: a region is labeled when at least this fraction of its pixels is
REGION_LABELED_FRACTION = 0.5

_FORMS_HELP = (
    'a segmentation annotation is {"mask": key, "width", "height", "labeled"}, {"mask_file": path}, '
    '{"png": base64}, {"polygons": [{"class", "points"}], "fill"}, {"instances": [{"class", "mask"}]} '
    "or an (H, W) array of class positions"
)


def _object_array(items: Sequence[Any]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


def _size_of(payload: Mapping[str, Any], size: tuple[int, int] | None, form: str) -> tuple[int, int]:
    """The image's ``(width, height)``: ``size``, else the payload's own width and height."""
    given = (payload.get("width"), payload.get("height"))
    if all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in given):
        own = (int(given[0]), int(given[1]))  # type: ignore[arg-type]
        if size is not None and tuple(size) != own:
            raise InputError(f"the {form} are for a {own[0]}x{own[1]} image, the image is {size[0]}x{size[1]} px")
        return own
    if given != (None, None):
        raise InputError(f"width and height must be whole numbers of pixels > 0, got {given}")
    if size is None:
        raise InputError(f"{form} need the image's size: pass size=(width, height) or give width and height")
    return int(size[0]), int(size[1])


def _probs(output: Any, row: int) -> np.ndarray:
    probs = np.asarray(output["probs"] if isinstance(output, Mapping) else output)
    if probs.ndim != 3:
        raise InputError(f"outputs row {row}: probs must be (n_classes, H, W), got {probs.shape}")
    return probs


@register_task
class Segmentation(Task):
    """A class per pixel (``IGNORE`` where not labeled), masks kept as content-addressed PNGs."""

    name: ClassVar[str] = "segmentation"
    output: ClassVar[str] = "masks"
    default_model: ClassVar[str] = DEFAULT_SEGMENTATION_MODEL
    input_upscale: ClassVar[int] = 1
    provides: ClassVar[frozenset[str]] = frozenset(
        {"pixel_probs", "mc_probs", "embeddings", "pixel_labeled_fraction", *REGION_ARRAYS}
    )
    headline: ClassVar[str] = "miou"

    def __init__(self, *, masks: MaskStore | None = None, region_method: str = "slic", region_size: int = 16) -> None:
        super().__init__(masks=masks)
        check_region_settings(region_method, region_size)
        self.region_method = region_method
        self.region_size = region_size

    # -- annotations -------------------------------------------------------------------------

    def _canonical(self, mask: np.ndarray) -> dict[str, Any]:
        labeled = int((mask != IGNORE).sum())
        if labeled == 0:
            raise InputError(
                "the mask labels no pixel (every pixel is 255, not labeled); paint at least one region, "
                "or skip the image instead of submitting it"
            )
        key = self.masks.put(mask)
        return {"mask": key, "width": int(mask.shape[1]), "height": int(mask.shape[0]), "labeled": labeled}

    def _from_dict(
        self, payload: Mapping[str, Any], classes: Sequence[str], size: tuple[int, int] | None
    ) -> np.ndarray:
        form = next((key for key in FORMS if key in payload), None)
        if form is None:
            raise InputError(f"unknown keys {sorted(map(str, payload))}; {_FORMS_HELP}")
        unknown = sorted(str(key) for key in payload if key not in FORMS[form])
        if unknown:
            raise InputError(f"unknown key(s) {', '.join(unknown)} beside {form!r}; {_FORMS_HELP}")
        n_classes = len(classes)
        if form == "mask":
            key = payload["mask"]
            if not isinstance(key, str) or key not in self.masks:
                raise InputError(
                    f"no stored mask {key!r}: a canonical payload references a mask already in the task's store; "
                    'send the mask itself ({"png": ...} or {"mask_file": ...})'
                )
            own = _size_of(payload, size, "mask")
            return check_mask(self.masks.get(key), n_classes=n_classes, size=own)
        if form == "mask_file":
            path = payload["mask_file"]
            if not isinstance(path, str | os.PathLike):
                raise InputError(f"mask_file must be a path, got {path!r}")
            return read_mask(Path(path), n_classes=n_classes, size=size)
        if form == "png":
            try:
                data = base64.b64decode(str(payload["png"]).split(",", 1)[-1], validate=True)
            except (binascii.Error, ValueError) as exc:
                raise InputError(
                    f"png must be base64 text of a PNG (a data: URL is fine), got an error: {exc}"
                ) from exc
            return read_mask(data, n_classes=n_classes, size=size)
        fill = payload.get("fill", "background")
        if fill not in FILLS:
            raise InputError(f"fill must be one of {', '.join(FILLS)}, got {fill!r}")
        items = payload[form]
        if not isinstance(items, list | tuple):
            raise InputError(f"{form} must be a list, got {type(items).__name__}; {_FORMS_HELP}")
        own = _size_of(payload, size, form)
        if form == "polygons":
            return rasterise_polygons(items, classes, own, fill=fill)
        return rasterise_instances(items, classes, own, fill=fill)

    def validate(
        self, payload: Payload, classes: Sequence[str], *, size: tuple[int, int] | None = None
    ) -> dict[str, Any]:
        """The canonical payload of any accepted form, its mask put in :attr:`masks` (``size`` = (W, H)).

        Raises InputError for a mask of another size than the image, values that are not
        class positions, an unknown palette colour, a truncated PNG, a polygon more than 1 px
        outside the image, an unknown class, an unknown key, or a mask that labels no pixel.
        """
        if len(classes) > MAX_CLASSES:
            raise InputError(f"a segmentation project has at most {MAX_CLASSES} classes, got {len(classes)}")
        if isinstance(payload, np.ndarray):
            mask = check_mask(payload, n_classes=len(classes), size=size)
        elif isinstance(payload, Mapping):
            mask = self._from_dict(payload, classes, size)
        else:
            raise InputError(f"got {type(payload).__name__}; {_FORMS_HELP}; read a table cell with parse()")
        return self._canonical(mask)

    def parse(self, text: str, *, sep: str = "|", base: Path | None = None) -> dict[str, Any]:
        """A cell: the path of a mask PNG (relative to ``base``, the table's folder) or a payload's JSON text."""
        cell = text.strip()
        if not cell:
            raise InputError("an empty mask cell; give the path of a mask PNG (or leave the image unlabeled)")
        if cell.startswith("{"):
            try:
                payload = json.loads(cell)
            except json.JSONDecodeError as exc:
                raise InputError(f"a mask cell starting with '{{' must be JSON, got {cell[:80]!r}: {exc}") from exc
            if not isinstance(payload, dict):
                raise InputError(f"a mask cell's JSON must be an object, got {cell[:80]!r}")
            return payload
        path = Path(cell)
        if not path.is_absolute() and base is not None:
            path = Path(base) / path
        return {"mask_file": os.path.abspath(path)}

    def format(self, payload: Payload, *, sep: str = "|") -> str:
        """Compact JSON of the canonical payload (keys in order mask, width, height, labeled)."""
        if not isinstance(payload, Mapping) or set(payload) != set(CANONICAL_KEYS):
            raise InputError(f"format takes a canonical payload ({', '.join(CANONICAL_KEYS)}); validate it first")
        return json.dumps({key: payload[key] for key in CANONICAL_KEYS}, separators=(",", ":"))

    def targets(self, payloads: Sequence[Payload], classes: Sequence[str]) -> np.ndarray:
        """``(N,)`` object array of ``(H, W) uint8`` masks (IGNORE where not labeled) read from :attr:`masks`.

        Canonical payloads are read from the store; other forms are validated (and stored) first.
        """
        out = []
        for payload in payloads:
            canonical = payload if isinstance(payload, Mapping) and set(payload) == set(CANONICAL_KEYS) else None
            key = (canonical or self.validate(payload, classes))["mask"]
            out.append(check_mask(self.masks.get(key), n_classes=len(classes)))
        return _object_array(out)

    # -- predictions ---------------------------------------------------------------------------

    def decode(
        self, outputs: np.ndarray, classes: Sequence[str], *, thresholds: np.ndarray | None = None
    ) -> list[tuple[Payload, float]]:
        """The arg-max mask of each image (stored in :attr:`masks`) and its mean max-probability."""
        decoded: list[tuple[Payload, float]] = []
        for row, output in enumerate(outputs):
            probs = _probs(output, row)
            if probs.shape[0] != len(classes):
                raise InputError(
                    f"outputs row {row}: {probs.shape[0]} classes in probs, the project has {len(classes)}"
                )
            mask = probs.argmax(axis=0).astype(np.uint8)
            decoded.append((self._canonical(mask), float(probs.max(axis=0).astype(np.float64).mean())))
        return decoded

    def strategy_arrays(
        self,
        needed: frozenset[str],
        outputs: np.ndarray,
        *,
        targets: np.ndarray | None = None,
        labeled: np.ndarray | None = None,
        views: Mapping[str, list[np.ndarray]] | None = None,
        images: Sequence[str] | None = None,
    ) -> dict[str, np.ndarray]:
        """The pixel and region arrays in ``needed`` (the strategy vocabulary of segmentation).

        ``pixel_probs``: ``(N,)`` object of ``(C, H, W)``; ``pixel_labeled_fraction``: ``(N,)``
        float. From the region maps of ``images`` (:func:`~activelab.tasks.regions.region_map`
        with :attr:`region_method` and :attr:`region_size`), flat over the pool's ``R`` regions
        (image by image, then by id): ``region_map`` ``(N,)`` object of ``(H, W)`` int32,
        ``region_owner`` / ``region_pixels`` ``(R,)`` int64, ``region_labeled`` ``(R,)`` bool
        (at least half its pixels labeled in the image's target). A target counts for the rows
        ``labeled`` marks (every row holding a mask when ``labeled`` is None).
        """
        n = len(outputs)
        masks = self._pool_targets(targets, labeled, n)
        arrays: dict[str, np.ndarray] = {}
        if "pixel_probs" in needed:
            arrays["pixel_probs"] = _object_array([_probs(o, row) for row, o in enumerate(outputs)])
        if "pixel_labeled_fraction" in needed:
            arrays["pixel_labeled_fraction"] = np.array(
                [0.0 if m is None else float((m != IGNORE).mean()) if m.size else 0.0 for m in masks], dtype=np.float64
            )
        if needed & REGION_ARRAYS:
            arrays.update(self._region_arrays(needed, outputs, masks, images))
        return arrays

    def _pool_targets(self, targets: np.ndarray | None, labeled: np.ndarray | None, n: int) -> list[np.ndarray | None]:
        if targets is None:
            return [None] * n
        if len(targets) != n or (labeled is not None and len(labeled) != n):
            raise InputError(f"targets and labeled must cover the {n} pool images, got {len(targets)}")
        rows = np.ones(n, bool) if labeled is None else np.asarray(labeled, dtype=bool)
        return [
            np.asarray(t) if rows[i] and isinstance(t, np.ndarray) and t.ndim == 2 else None
            for i, t in enumerate(targets)
        ]

    def _region_arrays(
        self,
        needed: frozenset[str],
        outputs: np.ndarray,
        masks: list[np.ndarray | None],
        images: Sequence[str] | None,
    ) -> dict[str, np.ndarray]:
        if images is None:
            raise InputError(
                f"the strategy inputs {', '.join(sorted(needed & REGION_ARRAYS))} are computed from the pool's "
                "images: pass images=<the pool's image paths, in the outputs' order> to strategy_arrays"
            )
        if len(images) != len(outputs):
            raise InputError(f"images must list the {len(outputs)} pool images, got {len(images)}")
        maps, owner, pixels, labeled = [], [], [], []
        for row, (path, output, mask) in enumerate(zip(images, outputs, masks, strict=True)):
            regions = region_map(path, self.region_method, self.region_size)
            # a model-free round (region_random on a cold start) passes no prediction to compare with
            shape = _probs(output, row).shape[1:] if isinstance(output, Mapping) else regions.shape
            if regions.shape != shape:
                raise InputError(
                    f"image {path} is {regions.shape[1]}x{regions.shape[0]} px but its prediction is "
                    f"{shape[1]}x{shape[0]}; predict at the image's own size"
                )
            n_regions = int(regions.max()) + 1
            counts = np.bincount(regions.ravel(), minlength=n_regions)
            maps.append(regions)
            owner.append(np.full(n_regions, row, dtype=np.int64))
            pixels.append(counts.astype(np.int64))
            if mask is None:
                labeled.append(np.zeros(n_regions, dtype=bool))
                continue
            if mask.shape != regions.shape:
                raise InputError(f"the mask of image {path} is {mask.shape}, the image {regions.shape} (height, width)")
            known = np.bincount(regions.ravel(), weights=(mask != IGNORE).ravel(), minlength=n_regions)
            labeled.append(known >= REGION_LABELED_FRACTION * counts)
        arrays = {
            "region_map": _object_array(maps),
            "region_owner": np.concatenate([np.zeros(0, np.int64), *owner]),
            "region_pixels": np.concatenate([np.zeros(0, np.int64), *pixels]),
            "region_labeled": np.concatenate([np.zeros(0, bool), *labeled]),
        }
        return {key: value for key, value in arrays.items() if key in needed}

    def costs(self, outputs: np.ndarray) -> np.ndarray:
        """``(N,)`` float: the pixels of each image (``H * W``), for a budget counted in pixels."""
        return np.array(
            [float(np.prod(_probs(o, row).shape[1:])) for row, o in enumerate(outputs)], dtype=np.float64
        ).reshape(len(outputs))

    def metrics(
        self, targets: np.ndarray, outputs: np.ndarray, classes: Sequence[str], *, thresholds: np.ndarray | None = None
    ) -> dict[str, Any]:
        """mIoU, per-class IoU and pixel accuracy over labeled pixels (see :func:`segmentation_metrics`)."""
        return segmentation_metrics(targets, outputs, classes)
