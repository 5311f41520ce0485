"""Training-time augmentation of an image together with its boxes (left-right flip, scale jitter).

From-scratch detectors on a hundred labeled images overfit the exact sizes and places of
the objects they saw; moving and rescaling them (with their boxes) is the cheapest remedy.
"""

from __future__ import annotations

import numpy as np
import torch

#: a box cut by the image border is kept while at least this share of its area stays visible
MIN_VISIBLE = 0.5


def hflip(x: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The image (3, H, W) mirrored left-right, and its xyxy boxes (M, 4) mirrored with it."""
    flipped = boxes.clone()
    flipped[:, [0, 2]] = x.shape[-1] - boxes[:, [2, 0]]
    return x.flip(-1), flipped


def rescale(
    x: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor, scale: float, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Zoom the image by ``scale`` at a random place, keeping its size; boxes and labels follow.

    ``scale > 1`` crops a random window of the enlarged image (boxes cut to the window are
    kept while :data:`MIN_VISIBLE` of them shows); ``scale < 1`` pastes the shrunk image at
    a random place on a canvas of its mean colour.
    """
    _, h, w = x.shape
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    small = torch.nn.functional.interpolate(x[None], size=(nh, nw), mode="bilinear", align_corners=False)[0]
    moved = boxes * torch.tensor([nw / w, nh / h, nw / w, nh / h])
    if scale >= 1:
        oy, ox = int(rng.integers(0, nh - h + 1)), int(rng.integers(0, nw - w + 1))
        out = small[:, oy : oy + h, ox : ox + w]
        moved = moved - torch.tensor([ox, oy, ox, oy], dtype=moved.dtype)
    else:
        oy, ox = int(rng.integers(0, h - nh + 1)), int(rng.integers(0, w - nw + 1))
        out = x.mean(dim=(1, 2), keepdim=True).expand(-1, h, w).clone()
        out[:, oy : oy + nh, ox : ox + nw] = small
        moved = moved + torch.tensor([ox, oy, ox, oy], dtype=moved.dtype)
    clipped = torch.stack([moved[:, 0].clamp(0, w), moved[:, 1].clamp(0, h),
                           moved[:, 2].clamp(0, w), moved[:, 3].clamp(0, h)], dim=1)  # fmt: skip
    area = (moved[:, 2] - moved[:, 0]) * (moved[:, 3] - moved[:, 1])
    visible = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    keep = (visible >= MIN_VISIBLE * area) & (clipped[:, 2] - clipped[:, 0] >= 1) & (clipped[:, 3] - clipped[:, 1] >= 1)
    return out, clipped[keep], labels[keep]
