"""Masks over HTTP (segmentation projects): checking an uploaded PNG before it is decoded, region maps as runs.

An uploaded mask is base64 text of a PNG (``POST /api/labels`` ``{"mask": {"png": ...}}``). Its header is
read before any pixel is: a PNG that is not the image's size is refused without being inflated, so a small
body cannot expand into a huge bitmap (the request body itself is capped by the security middleware,
``--max-body-mb``). The task then reads and checks the pixels (:func:`activelab.tasks.masks.read_mask`).
"""

from __future__ import annotations

import base64
import binascii
import struct

import numpy as np

from activelab.exceptions import InputError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: the signature, then the IHDR chunk's length and type, then its width and height (big-endian uint32)
_IHDR_END = 24


def png_bytes(text: str, *, size: tuple[int, int]) -> bytes:
    """The bytes of a base64 mask PNG whose header says it is ``size`` (width, height); InputError otherwise.

    Only the header is read: the pixels are the task's to check.
    """
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError(f"mask.png is not base64 text ({exc}); send the PNG's bytes base64-encoded") from exc
    if len(data) < _IHDR_END or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        raise InputError("the mask PNG is truncated or not a PNG (no PNG header); export the mask again")
    width, height = struct.unpack(">II", data[16:_IHDR_END])
    if (width, height) != tuple(size):
        raise InputError(
            f"the mask PNG is {width}x{height} px but the image is {size[0]}x{size[1]} px; "
            "a mask must have the image's size"
        )
    return data


def region_runs(regions: np.ndarray) -> list[int]:
    """``(H, W)`` region ids as ``[id, length, id, length, ...]`` runs in row-major order.

    Superpixels and patches are contiguous, so a row crosses few of them: the runs are a few
    per region and row, far fewer numbers than pixels.
    """
    flat = np.asarray(regions).reshape(-1)
    if flat.size == 0:
        return []
    starts = np.flatnonzero(np.concatenate(([True], flat[1:] != flat[:-1])))
    lengths = np.diff(np.append(starts, flat.size))
    return np.column_stack((flat[starts], lengths)).reshape(-1).astype(int).tolist()
