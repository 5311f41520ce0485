"""Semantic masks as files: the canonical PNG, its content address, reading and checking, and stores.

A mask is an ``(H, W) uint8`` array whose pixel value is a class position of the project's
class list; :data:`IGNORE` (255) marks pixels nobody labeled, so a partly labeled image is a
valid annotation. Masks are large, so a label event does not hold one: it holds the sha256 of
the mask's canonical PNG (:func:`mask_key`), and a :class:`MaskStore` keeps the file under
that name. The same mask always gives the same bytes and the same key, and a stored key is
never written again: an event's mask cannot change under it.

The PNG is palette-mode with the Pascal VOC colour map, the layout VOC, Cityscapes-style
tools and most labeling tools read and write, so a project's ``masks/`` folder opens in any
image viewer with the classes in distinct colours.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from activelab._io import atomic_write_bytes
from activelab.exceptions import InputError

#: the pixel value of "not labeled" (VOC's void label)
IGNORE = 255
#: the colour VOC gives its void label, which the palette gives :data:`IGNORE`
VOID_COLOUR = (224, 224, 192)
#: the most classes a mask can hold: positions 0..254, 255 being :data:`IGNORE`
MAX_CLASSES = 255


def voc_palette() -> np.ndarray:
    """``(256, 3) uint8``: the Pascal VOC colour map (bit-interleaved class index), 255 -> :data:`VOID_COLOUR`."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for index in range(256):
        value, r, g, b = index, 0, 0, 0
        for bit in range(8):
            r |= ((value >> 0) & 1) << (7 - bit)
            g |= ((value >> 1) & 1) << (7 - bit)
            b |= ((value >> 2) & 1) << (7 - bit)
            value >>= 3
        palette[index] = (r, g, b)
    palette[IGNORE] = VOID_COLOUR
    return palette


def check_mask(mask: np.ndarray, *, n_classes: int | None = None, size: tuple[int, int] | None = None) -> np.ndarray:
    """``mask`` as ``(H, W) uint8``, checked: 2-D, ``size == (W, H)`` when given, values < n_classes or IGNORE."""
    array = np.asarray(mask)
    if array.ndim != 2:
        raise InputError(f"a mask is a 2-D (height, width) array of class positions, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer) and array.dtype != np.bool_:
        raise InputError(f"a mask holds integer class positions, got dtype {array.dtype}")
    if size is not None and (array.shape[1], array.shape[0]) != tuple(size):
        raise InputError(
            f"the mask is {array.shape[1]}x{array.shape[0]} px but the image is {size[0]}x{size[1]} px; "
            "a mask must have the image's size (resize it with nearest-neighbour sampling)"
        )
    if array.size and (array.min() < 0 or array.max() > IGNORE):
        raise InputError(f"mask values must be class positions 0..{MAX_CLASSES - 1} or {IGNORE} (not labeled)")
    out = array.astype(np.uint8)
    if n_classes is not None:
        bad = (out >= n_classes) & (out != IGNORE)
        if bad.any():
            values = ", ".join(str(v) for v in np.unique(out[bad])[:5])
            raise InputError(
                f"mask values {values} ({int(bad.sum())} px) are not classes: the project has {n_classes} "
                f"(positions 0..{n_classes - 1}) and {IGNORE} means not labeled"
            )
    return out


def encode_png(mask: np.ndarray) -> bytes:
    """The canonical PNG bytes of ``mask`` (palette mode, VOC colours): the same mask, the same bytes."""
    from PIL import Image

    image = Image.fromarray(check_mask(mask), mode="P")
    image.putpalette(voc_palette().tobytes())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False, compress_level=9)
    return buffer.getvalue()


def mask_key(mask: np.ndarray) -> str:
    """The content address of ``mask``: sha256 hex of :func:`encode_png`."""
    return hashlib.sha256(encode_png(mask)).hexdigest()


def _from_colours(rgb: np.ndarray, where: str) -> np.ndarray:
    """Class positions of an RGB mask through the VOC palette; an unknown colour is an InputError."""
    palette = voc_palette().astype(np.int64)
    codes = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    lookup = {int(r) << 16 | int(g) << 8 | int(b): i for i, (r, g, b) in enumerate(palette)}
    colours, inverse = np.unique(codes, return_inverse=True)
    unknown = [int(c) for c in colours if int(c) not in lookup]
    if unknown:
        first = unknown[0]
        count = int(np.isin(codes, unknown).sum())
        raise InputError(
            f"{where}: colour ({first >> 16}, {(first >> 8) & 255}, {first & 255}) and {len(unknown) - 1} other(s) "
            f"({count} px) are not in the VOC palette; save the mask as a palette or grayscale PNG of class "
            f"positions, or colour it with the VOC colour map ({IGNORE} = {VOID_COLOUR} not labeled)"
        )
    return np.array([lookup[int(c)] for c in colours], dtype=np.uint8)[inverse].reshape(codes.shape)


def read_mask(
    source: str | Path | bytes, *, n_classes: int | None = None, size: tuple[int, int] | None = None
) -> np.ndarray:
    """The ``(H, W) uint8`` mask in a PNG file or its bytes, checked as :func:`check_mask` does.

    Palette, grayscale and 16-bit PNGs hold class positions as pixel values; an RGB(A) PNG is read
    through the VOC colour map. Every failure (a missing, truncated or non-image file, an unknown
    colour, a wrong size, a value that is not a class, a file past Pillow's decompression-bomb limit)
    is an InputError naming the file.
    """
    from PIL import Image, UnidentifiedImageError

    where = "mask PNG" if isinstance(source, bytes) else f"mask {source}"
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            image.load()
            mode = image.mode
            if mode == "LA":  # grey class positions with an alpha channel
                image = image.convert("L")
            array = np.asarray(image.convert("RGB") if mode in ("RGBA", "CMYK", "YCbCr") else image)
    except Image.DecompressionBombError as exc:
        raise InputError(f"{where} is too large to decode ({exc}); a mask has its image's size") from exc
    except FileNotFoundError as exc:
        raise InputError(f"{where}: no such file; check the path (relative paths start at the table's folder)") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{where} is truncated or not a PNG ({exc}); export the mask again") from exc
    if array.ndim == 3:
        array = _from_colours(array[..., :3], where)
    try:
        return check_mask(array, n_classes=n_classes, size=size)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from exc


def overlay(base: np.ndarray | None, top: np.ndarray) -> np.ndarray:
    """``top``'s labeled pixels over ``base`` (``(H, W) uint8`` each; None: nothing labeled before).

    How a region answer joins an image's earlier labels: the pixels asked for take the new
    classes, the others keep theirs; IGNORE in ``top`` changes nothing.
    """
    new = check_mask(top)
    if base is None:
        return new
    old = check_mask(base)
    if old.shape != new.shape:
        raise InputError(f"the new mask is {new.shape} but the earlier one {old.shape} (height, width): not one image")
    return np.where(new != IGNORE, new, old).astype(np.uint8)


class MaskStore(Protocol):
    """Content-addressed masks: :meth:`put` writes a mask once under its key and never overwrites."""

    def put(self, mask: np.ndarray) -> str: ...

    def get(self, key: str) -> np.ndarray: ...

    def __contains__(self, key: object) -> bool: ...


def _missing(key: str, where: str) -> InputError:
    return InputError(f"no mask {key!r} in {where}; a label event's mask must be stored before the event")


class MemoryMasks:
    """Masks in a dict: simulations and the Python API, where nothing outlives the process."""

    def __init__(self) -> None:
        self._masks: dict[str, bytes] = {}

    def put(self, mask: np.ndarray) -> str:
        data = encode_png(mask)
        key = hashlib.sha256(data).hexdigest()
        self._masks.setdefault(key, data)
        return key

    def get(self, key: str) -> np.ndarray:
        if key not in self._masks:
            raise _missing(key, "memory")
        return read_mask(self._masks[key])

    def __contains__(self, key: object) -> bool:
        return key in self._masks


class MaskFolder:
    """Masks as ``root/<key[:2]>/<key>.png`` files, written atomically and never overwritten.

    A server killed mid-write leaves at most a stray temporary file, never a half-written mask
    under a key (the rename is atomic); a mask written before its event was committed is an
    unreferenced file, which costs disk and nothing else.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        """Where the mask ``key`` is (or would be) kept."""
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise InputError(f"{key!r} is not a mask key (64 lower-case hex digits, a sha256)")
        return self.root / key[:2] / f"{key}.png"

    def put(self, mask: np.ndarray) -> str:
        data = encode_png(mask)
        key = hashlib.sha256(data).hexdigest()
        path = self.path(key)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, data)
        return key

    def get(self, key: str) -> np.ndarray:
        path = self.path(key)
        if not path.is_file():
            raise _missing(key, str(self.root))
        return read_mask(path)

    def __contains__(self, key: object) -> bool:
        try:
            return isinstance(key, str) and self.path(key).is_file()
        except InputError:
            return False


#: how far (pixels) a polygon point may lie outside the image and be clipped rather than refused
POLYGON_TOLERANCE = 1.0
#: what pixels no polygon covers become: class position 0 (the background class) or not labeled
FILLS = {"background": 0, "ignore": IGNORE}


def _class_position(name: object, classes: Sequence[str], where: str) -> int:
    if not isinstance(name, str) or name not in classes:
        raise InputError(f"{where}: unknown class {name!r}; known: {', '.join(classes)}")
    return list(classes).index(name)


def _polygon_points(polygon: Mapping[str, Any], where: str, size: tuple[int, int]) -> list[float]:
    """The flat ``[x0, y0, x1, y1, ...]`` of a polygon, clipped to the image; InputError past the tolerance."""
    try:
        points = np.asarray(polygon["points"], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: points must be a list of [x, y] numbers ({exc})") from exc
    if points.ndim != 2 or points.shape[1] != 2 or len(points) < 3:
        raise InputError(f"{where}: a polygon needs at least 3 [x, y] points, got shape {points.shape}")
    if not np.isfinite(points).all():
        raise InputError(f"{where}: points must be finite numbers")
    width, height = size
    low, high = points.min(axis=0), points.max(axis=0)
    if (low < -POLYGON_TOLERANCE).any() or high[0] > width + POLYGON_TOLERANCE or high[1] > height + POLYGON_TOLERANCE:
        raise InputError(
            f"{where} lies outside the image: its points span x {low[0]:g}..{high[0]:g}, y {low[1]:g}..{high[1]:g}, "
            f"the image 0..{width} x 0..{height}; points are in image pixels with the origin at the top-left "
            "corner: convert normalised coordinates first"
        )
    return np.clip(points, 0.0, [width, height]).ravel().tolist()


def _decode(rle: Any) -> np.ndarray:
    """``(H, W) bool`` of one COCO RLE (pycocotools' numpy-2 copy-keyword warning silenced: it is harmless)."""
    import warnings

    from pycocotools import mask as coco_mask

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="pycocotools")
        return np.asarray(coco_mask.decode(rle)).astype(bool)


def rasterise_polygons(
    polygons: Sequence[Any], classes: Sequence[str], size: tuple[int, int], *, fill: str = "background"
) -> np.ndarray:
    """``(H, W) uint8``: each ``{"class": name, "points": [[x, y], ...]}`` painted in order (later on top).

    Points are in pixels, pixel ``(i, j)`` covering ``[i, i + 1) x [j, j + 1)`` (COCO's
    convention, rasterised by pycocotools: a square from (0, 0) to (2, 2) covers 4 pixels).
    ``fill`` says what uncovered pixels are: ``"background"`` (class 0) or ``"ignore"``.
    """
    from pycocotools import mask as coco_mask

    if fill not in FILLS:
        raise InputError(f"fill must be one of {', '.join(FILLS)}, got {fill!r}")
    width, height = size
    out = np.full((height, width), FILLS[fill], dtype=np.uint8)
    for i, polygon in enumerate(polygons):
        where = f"polygon {i}"
        if not isinstance(polygon, Mapping) or "points" not in polygon or "class" not in polygon:
            raise InputError(f'{where} must be {{"class": name, "points": [[x, y], ...]}}, got {polygon!r}')
        value = _class_position(polygon["class"], classes, where)
        rle = coco_mask.frPyObjects([_polygon_points(polygon, where, size)], height, width)
        out[_decode(coco_mask.merge(rle))] = value
    return out


def instance_mask(mask: Any, size: tuple[int, int], where: str) -> np.ndarray:
    """``(H, W) bool`` of one instance: a boolean (or 0/1) array or a COCO RLE ``{"size": [h, w], "counts": ...}``."""
    from pycocotools import mask as coco_mask

    width, height = size
    if isinstance(mask, Mapping):
        if set(mask) != {"size", "counts"}:
            raise InputError(f'{where}: an RLE is {{"size": [height, width], "counts": ...}}, got keys {sorted(mask)}')
        if list(mask["size"]) != [height, width]:
            raise InputError(
                f"{where}: the RLE is for {mask['size']} (height, width), the image is [{height}, {width}]"
            )
        counts = mask["counts"]
        try:
            if isinstance(counts, list):  # uncompressed RLE
                rle = coco_mask.frPyObjects(dict(mask), height, width)
            else:
                rle = {"size": [height, width], "counts": counts.encode() if isinstance(counts, str) else counts}
            out = _decode(rle)
        except (TypeError, ValueError, KeyError) as exc:
            raise InputError(f"{where}: not a COCO RLE ({exc}); encode it with pycocotools.mask.encode") from exc
    else:
        array = np.asarray(mask)
        if array.dtype != np.bool_ and not (np.issubdtype(array.dtype, np.integer) and np.isin(array, (0, 1)).all()):
            raise InputError(f"{where}: an instance mask is a boolean (H, W) array or a COCO RLE, got {array.dtype}")
        out = array.astype(bool)
    if out.shape != (height, width):
        raise InputError(
            f"{where}: the mask is {out.shape[1] if out.ndim == 2 else '?'}x{out.shape[0]} px but the image is "
            f"{width}x{height} px; a mask must have the image's size"
        )
    return out


def rasterise_instances(
    instances: Sequence[Any], classes: Sequence[str], size: tuple[int, int], *, fill: str = "background"
) -> np.ndarray:
    """``(H, W) uint8``: each ``{"class": name, "mask": bool array | RLE}`` painted in order (later on top)."""
    if fill not in FILLS:
        raise InputError(f"fill must be one of {', '.join(FILLS)}, got {fill!r}")
    width, height = size
    out = np.full((height, width), FILLS[fill], dtype=np.uint8)
    for i, instance in enumerate(instances):
        where = f"instance {i}"
        if not isinstance(instance, Mapping) or "mask" not in instance or "class" not in instance:
            raise InputError(f'{where} must be {{"class": name, "mask": (H, W) bool array or COCO RLE}}')
        value = _class_position(instance["class"], classes, where)
        out[instance_mask(instance["mask"], size, where)] = value
    return out
