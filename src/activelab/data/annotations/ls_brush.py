"""Label Studio's brush RLE: the bit-packed run-length code of a ``BrushLabels`` region, read and written.

Label Studio stores a brush stroke as the RGBA image of the region, flattened row by row
(``height * width * 4`` bytes), run-length coded by thi.ng's ``rle-pack`` and sent as a list of
byte values (``value.rle`` of a ``brushlabels`` result). The bit stream, most significant bit
first, is:

- 32 bits: how many values follow (``height * width * 4``);
- 5 bits: the word size in bits, minus 1 (8 for bytes);
- 4 x 4 bits: four run-length field sizes, each minus 1 (Label Studio writes 3, 4, 8 and 16);
- then chunks until every value is read: 1 bit *repeat*, 2 bits choosing one of the four field
  sizes, that many bits holding the chunk length minus 1, then one word repeated that many
  times (*repeat* = 1) or that many words one after another (*repeat* = 0);
- zero bits up to a whole byte.

A pixel belongs to the region where its alpha byte is above 0 (label-studio-converter's
``brush.py`` reads the fourth channel the same way). Written regions are opaque white
(R = G = B = A = 255) on transparent black, the layout Label Studio's own pre-annotation
helpers write.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from activelab.exceptions import InputError

#: the run-length field sizes (bits) written; Label Studio's brush writes the same four
RUN_BITS = (3, 4, 8, 16)
WORD_BITS = 8
_HEADER_BITS = 32 + 5 + 4 * 4


class _Bits:
    """Reads unsigned big-endian integers of any width from a bit array, failing clearly at its end."""

    def __init__(self, data: bytes) -> None:
        self.bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
        self.pos = 0

    def read(self, width: int) -> int:
        end = self.pos + width
        if end > len(self.bits):
            raise InputError("the brush RLE ends before its last run; export the annotation from Label Studio again")
        value = 0
        for bit in self.bits[self.pos : end]:
            value = (value << 1) | int(bit)
        self.pos = end
        return value


def decode_brush(rle: Sequence[int], width: int, height: int) -> np.ndarray:
    """The ``(height, width)`` bool region of a brush RLE (its alpha channel above 0).

    Raises InputError when the list is not bytes, the stream is cut short, or it holds a
    different number of values than ``height * width * 4``.
    """
    try:
        data = bytes(int(v) for v in rle)
    except (TypeError, ValueError) as exc:
        raise InputError(f"a brush RLE is a list of byte values 0..255 ({exc})") from exc
    stream = _Bits(data)
    if len(stream.bits) < _HEADER_BITS:
        raise InputError("the brush RLE is shorter than its header; export the annotation from Label Studio again")
    count = stream.read(32)
    word = stream.read(5) + 1
    sizes = [stream.read(4) + 1 for _ in range(4)]
    if count != width * height * 4:
        raise InputError(
            f"the brush RLE holds {count} values but a {width}x{height} RGBA image has {width * height * 4}; "
            "original_width and original_height must be the size the brush was painted on"
        )
    out = np.zeros(count, dtype=np.uint32)
    i = 0
    while i < count:
        repeat = stream.read(1)
        end = min(count, i + 1 + stream.read(sizes[stream.read(2)]))
        if repeat:
            out[i:end] = stream.read(word)
        else:
            out[i:end] = [stream.read(word) for _ in range(end - i)]
        i = end
    return out.reshape(height, width, 4)[..., 3] > 0


def encode_brush(region: np.ndarray) -> list[int]:
    """The brush RLE (a list of byte values) of an ``(H, W)`` bool region, as :func:`decode_brush` reads it."""
    values = np.repeat(np.where(np.asarray(region, dtype=bool).ravel(), 255, 0).astype(np.int64), 4)
    fields = [f"{len(values):032b}", f"{WORD_BITS - 1:05b}", *(f"{size - 1:04b}" for size in RUN_BITS)]
    if len(values):
        starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
        lengths = np.diff(np.r_[starts, len(values)])
        longest = 1 << RUN_BITS[-1]
        for start, length in zip(starts.tolist(), lengths.tolist()):
            value = int(values[start])
            while length > 0:
                chunk = min(length, longest)
                index = next(k for k, size in enumerate(RUN_BITS) if chunk - 1 < 1 << size)
                fields.append(f"1{index:02b}{chunk - 1:0{RUN_BITS[index]}b}{value:0{WORD_BITS}b}")
                length -= chunk
    bits = "".join(fields)
    bits += "0" * (-len(bits) % 8)
    return list(int(bits, 2).to_bytes(len(bits) // 8, "big"))
