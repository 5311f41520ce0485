"""Checking and reading image files.

:func:`inspect_image` reads a file once, hashes it and fully decodes it, so that
truncated, corrupt and oversized files are caught at import time rather than in
the middle of a training run.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from activelab.exceptions import InputError, NotFoundError

# Pillow's own default limit (about 89.5 megapixels); larger images are refused
# as possible decompression bombs unless the caller raises the limit.
DEFAULT_MAX_PIXELS = 89_478_485

REJECTION_REASONS = {
    "missing_path": "the row has no file path",
    "missing_file": "no file at this path",
    "not_a_file": "the path is a folder or a special file",
    "unreadable": "the file exists but cannot be read (permissions?)",
    "empty_file": "the file has zero bytes",
    "not_an_image": "not an image format Pillow can read",
    "corrupt_image": "the image is truncated or its data is damaged",
    "decompression_bomb": "the image is larger than the pixel limit (possible decompression bomb)",
    "unknown_class": "the label is not one of the project's classes",
}


class ImageRejected(Exception):
    """A file that cannot be used as an image; ``reason`` is a key of REJECTION_REASONS."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class ImageInfo:
    """What an import needs to know about a readable image file."""

    sha256: str
    width: int
    height: int
    n_bytes: int
    format: str


def inspect_image(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Hash and fully decode one image file, or raise :class:`ImageRejected` saying why."""
    path = Path(path)
    if not path.exists():
        raise ImageRejected("missing_file", f"{path} does not exist")
    if not path.is_file():
        raise ImageRejected("not_a_file", f"{path} is not a regular file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageRejected("unreadable", f"{path}: {exc.strerror or exc}") from exc
    if not data:
        raise ImageRejected("empty_file", f"{path} has zero bytes")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
                if width * height > max_pixels:
                    raise ImageRejected(
                        "decompression_bomb",
                        f"{path} is {width}x{height} = {width * height:,} pixels, over the limit of {max_pixels:,}",
                    )
                fmt = im.format or "unknown"
                im.load()
        except ImageRejected:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageRejected("decompression_bomb", f"{path}: {exc}") from exc
        except UnidentifiedImageError as exc:
            raise ImageRejected("not_an_image", f"{path} is not an image Pillow can read") from exc
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageRejected("corrupt_image", f"{path}: {exc}") from exc
    return ImageInfo(hashlib.sha256(data).hexdigest(), width, height, len(data), fmt)


def load_rgb(path: str | Path) -> Image.Image:
    """Open an image file as RGB (grayscale is replicated to 3 channels, alpha dropped)."""
    try:
        with Image.open(path) as im:
            im.load()
            return im if im.mode == "RGB" else im.convert("RGB")
    except FileNotFoundError as e:
        raise NotFoundError(f"image file not found: {path}") from e
    except (UnidentifiedImageError, OSError) as e:
        raise InputError(
            f"cannot read {path} as an image ({e}); remove it from the set or re-export it as PNG/JPEG"
        ) from e
