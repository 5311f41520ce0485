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
from pathlib import Path
from typing import Protocol

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
    colour, a wrong size, a value that is not a class) is an InputError naming the file.
    """
    from PIL import Image, UnidentifiedImageError

    where = "mask PNG" if isinstance(source, bytes) else f"mask {source}"
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            image.load()
            mode = image.mode
            array = np.asarray(image.convert("RGB") if mode in ("RGBA", "LA", "CMYK", "YCbCr") else image)
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
