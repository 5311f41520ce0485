"""Checking and reading image files.

:func:`inspect_image` checks the size and the header before reading a file,
then hashes it in a stream and fully decodes it, so that huge, truncated,
corrupt and non-image files are caught at import time rather than in the middle
of a training run. :func:`load_rgb` is the one way pixels are read: every model,
embedding and training path goes through it, so EXIF orientation and 16-bit
scaling are applied the same way everywhere.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from activelab.exceptions import ImageRejected, InputError, NotFoundError

# Pillow's own default limit (about 89.5 megapixels); larger images are refused
# as possible decompression bombs unless the caller raises the limit.
DEFAULT_MAX_PIXELS = 89_478_485
#: Files larger than this (in MB of 1,000,000 bytes) are refused before any byte is read.
DEFAULT_MAX_FILE_MB = 200.0

REJECTION_REASONS = {
    "missing_path": "the row has no file path",
    "missing_file": "no file at this path",
    "symlink_loop": "the path is a loop of symbolic links",
    "not_a_file": "the path is a folder or a special file",
    "unreadable": "the file exists but cannot be read (permissions?)",
    "empty_file": "the file has zero bytes",
    "too_large": "the file is larger than the file-size limit",
    "not_an_image": "not an image format Pillow can read",
    "corrupt_image": "the image is truncated or its data is damaged",
    "decompression_bomb": "the image is larger than the pixel limit (possible decompression bomb)",
    "changed_file": "the file changed since it was imported (size or content differ)",
    "unknown_class": "the label is not one of the project's classes",
}

#: Pillow format name -> MIME type, for the raster formats browsers display as
#: images. Never SVG or HTML: those run script. MPO is a JPEG with extra frames.
RASTER_MEDIA_TYPES: dict[str, str] = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "GIF": "image/gif",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
}

_HEADER_BYTES = 16  # what Pillow's format plugins look at to recognise a file
_CHUNK_BYTES = 1 << 20
_ORIENTATION_TAG = 0x0112
_SWAPS_AXES = {5, 6, 7, 8}  # EXIF orientations that rotate by 90 or 270 degrees
_MB = 1_000_000


@dataclass(frozen=True)
class ImageInfo:
    """What an import needs to know about a readable image file.

    ``width`` and ``height`` are as displayed, after the EXIF orientation.
    """

    sha256: str
    width: int
    height: int
    n_bytes: int
    format: str


def media_type(fmt: str | None) -> str | None:
    """The MIME type to serve a file of Pillow format ``fmt`` with; None if it is not a safe raster format."""
    return RASTER_MEDIA_TYPES.get(fmt.upper()) if fmt else None


def sniff_format(header: bytes) -> str | None:
    """The Pillow format whose magic bytes start ``header``, or None.

    Only plugins that recognise a signature are asked, so a file named ``.jpg``
    holding text is not mistaken for an image, and a file that starts like a
    JPEG but does not decode is known to be a damaged JPEG.
    """
    Image.init()
    for name, (_, accept) in Image.OPEN.items():
        if accept is None:
            continue
        try:
            result = accept(header)
        except Exception:  # a plugin's check may fail on a short header; it did not match
            continue
        if result and not isinstance(result, str):
            return name
    return None


def detect_format(path: str | Path) -> str | None:
    """The Pillow format of the file at ``path`` from its header (no pixels decoded), or None."""
    try:
        with open(path, "rb") as fh, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(fh) as im:
                return im.format
    except (OSError, SyntaxError, ValueError, EOFError, UnidentifiedImageError, Image.DecompressionBombError):
        return None


def read_verified(path: str | Path, *, n_bytes: int, sha256: str) -> bytes:
    """The bytes of the file at ``path`` if it is still the regular file that was imported.

    The file is opened once and checked on that descriptor, so a file swapped
    for a symlink to another file (``/etc/passwd``) fails the size or hash
    check; at most ``n_bytes + 1`` bytes are read. Raises
    :class:`ImageRejected` (``changed_file``, ``missing_file``, ``not_a_file``,
    ``unreadable``, ``symlink_loop``).
    """
    path = Path(path)
    with _open_regular(path) as fh:
        size = os.fstat(fh.fileno()).st_size
        if size != n_bytes:
            raise ImageRejected("changed_file", f"{path} has {size} bytes, {n_bytes} were imported")
        try:
            data = fh.read(n_bytes + 1)
        except OSError as exc:
            raise ImageRejected("unreadable", f"{path}: {exc.strerror or exc}") from exc
    if len(data) != n_bytes or hashlib.sha256(data).hexdigest() != sha256:
        raise ImageRejected("changed_file", f"{path} no longer has the content that was imported; re-import it")
    return data


def inspect_image(
    path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_file_mb: float = DEFAULT_MAX_FILE_MB
) -> ImageInfo:
    """Check, hash and fully decode one image file, or raise :class:`ImageRejected` saying why.

    Cheap checks come first so that a huge or non-image file is refused without
    being read: the file size (``max_file_mb``), then the header. Only then is
    the file hashed (in chunks) and decoded from the file itself.
    """
    path = Path(path)
    with _open_regular(path) as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > max_file_mb * _MB:
            raise ImageRejected(
                "too_large",
                f"{path} is {size / _MB:,.1f} MB, over the limit of {max_file_mb:g} MB; "
                "raise it with --max-file-mb (max_file_mb=) if the file is a real image",
            )
        header = _read(fh, path, _HEADER_BYTES)
        if not header:
            raise ImageRejected("empty_file", f"{path} has zero bytes")
        fmt = _identify(fh, path, header)
        sha256, n_bytes = _hash_stream(fh, path)
        width, height = _decode(fh, path, max_pixels)
    return ImageInfo(sha256, width, height, n_bytes, fmt)


def to_rgb(im: Image.Image) -> Image.Image:
    """``im`` upright (EXIF orientation applied) as 8-bit RGB.

    16-bit and 32-bit integer images are scaled to 8 bits (a plain
    ``convert("RGB")`` clips them, so they come out nearly white); grayscale is
    replicated to 3 channels and alpha dropped.
    """
    if im.getexif().get(_ORIENTATION_TAG, 1) != 1:
        im = ImageOps.exif_transpose(im)
    if im.mode.startswith("I") or im.mode == "F":
        im = Image.fromarray(_scale_to_uint8(np.asarray(im)))
    return im if im.mode == "RGB" else im.convert("RGB")


def load_rgb(path: str | Path) -> Image.Image:
    """Open an image file as upright 8-bit RGB; see :func:`to_rgb`."""
    try:
        with Image.open(path) as im:
            im.load()
            return to_rgb(im)
    except FileNotFoundError as e:
        raise NotFoundError(f"image file not found: {path}") from e
    except (UnidentifiedImageError, OSError) as e:
        raise InputError(
            f"cannot read {path} as an image ({e}); remove it from the set or re-export it as PNG/JPEG"
        ) from e


def _scale_to_uint8(a: np.ndarray) -> np.ndarray:
    """A single-channel integer or float array mapped to 0-255 by its real range.

    Integers within 0-65535 are 16-bit samples (``round(v / 257)``); floats
    within 0-1 are fractions; anything else is stretched from its minimum to its
    maximum.
    """
    is_float = a.dtype.kind == "f"
    a = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if is_float and lo >= 0 and hi <= 1:
        scaled = a * 255.0
    elif not is_float and lo >= 0 and hi <= 65535:
        scaled = a / 257.0
    elif hi > lo:
        scaled = (a - lo) * (255.0 / (hi - lo))
    else:
        scaled = np.zeros_like(a)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _open_regular(path: Path) -> BinaryIO:
    """``path`` opened for reading, checked on the open descriptor to be a regular file.

    Non-blocking, so that a FIFO put in an image's place cannot hang the caller.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise _open_error(path, exc) from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ImageRejected("not_a_file", f"{path} is not a regular file")
    return open(fd, "rb")


def _open_error(path: Path, exc: OSError) -> ImageRejected:
    """The rejection for a file that cannot be stat-ed or opened."""
    if exc.errno == errno.ELOOP:
        return ImageRejected("symlink_loop", f"{path} is a loop of symbolic links")
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return ImageRejected("missing_file", f"{path} does not exist")
    if exc.errno == errno.EISDIR:
        return ImageRejected("not_a_file", f"{path} is not a regular file")
    return ImageRejected("unreadable", f"{path}: {exc.strerror or exc}")


def _read(fh: BinaryIO, path: Path, n: int) -> bytes:
    try:
        return fh.read(n)
    except OSError as exc:
        raise ImageRejected("unreadable", f"{path}: {exc.strerror or exc}") from exc


def _identify(fh: BinaryIO, path: Path, header: bytes) -> str:
    """The file's Pillow format from its header alone; a recognised signature that fails to parse is corrupt."""
    fh.seek(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(fh) as im:
                return im.format or "unknown"
    except Image.DecompressionBombError as exc:
        raise ImageRejected("decompression_bomb", f"{path}: {exc}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        signature = sniff_format(header)
        if signature is not None:
            raise ImageRejected(
                "corrupt_image", f"{path} starts like a {signature} file but its header is damaged"
            ) from exc
        raise ImageRejected("not_an_image", f"{path} is not an image Pillow can read") from exc


def _hash_stream(fh: BinaryIO, path: Path) -> tuple[str, int]:
    """SHA-256 and size of the whole file, read in chunks (never the whole file in memory)."""
    fh.seek(0)
    digest = hashlib.sha256()
    n_bytes = 0
    while chunk := _read(fh, path, _CHUNK_BYTES):
        digest.update(chunk)
        n_bytes += len(chunk)
    return digest.hexdigest(), n_bytes


def _decode(fh: BinaryIO, path: Path, max_pixels: int) -> tuple[int, int]:
    """Decode every pixel from the file; the displayed (EXIF-oriented) width and height."""
    fh.seek(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(fh) as im:
                width, height = im.size
                if width * height > max_pixels:
                    raise ImageRejected(
                        "decompression_bomb",
                        f"{path} is {width}x{height} = {width * height:,} pixels, over the limit of {max_pixels:,}",
                    )
                im.load()
                if im.getexif().get(_ORIENTATION_TAG, 1) in _SWAPS_AXES:
                    width, height = height, width
        except ImageRejected:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageRejected("decompression_bomb", f"{path}: {exc}") from exc
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageRejected("corrupt_image", f"{path}: {exc}") from exc
    return width, height
