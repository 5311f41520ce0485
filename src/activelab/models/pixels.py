"""The ``pixels`` model: an image's own grayscale pixels as its embedding.

``create_model("pixels", mode="frozen", head="logreg")`` is the "logistic regression on
raw pixels" baseline every learned representation has to beat (LeCun et al. 1998 report
it on MNIST; docs/benchmarks.md measured it above a frozen ImageNet backbone fed 32-px
inputs). It is also a candidate of the representation choice
(:mod:`activelab.loop.representation`), so a project whose images a pretrained backbone
does not fit can fall back to it.

The image is resized to ``image_size`` x ``image_size`` (default :data:`PIXELS_SIZE`,
28 px: the side of MNIST and Fashion-MNIST, the sets this baseline is quoted on; 784
features keep the logistic regression fast, and larger photos keep their coarse shape),
converted to grayscale with ITU-R 601 luma weights (PIL's ``"L"`` conversion), flattened
row by row and kept in [0, 1]. Grayscale is the only choice: colour would triple the
features for the sets this baseline is meant for, and whether a set's images are
"grayscale-like" cannot be told reliably from a few files. Frozen mode only, offline,
no weights; its embeddings go through the embedding cache under their own key
(``pixels;weights=pixels:gray;size=...``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from activelab.exceptions import InputError
from activelab.models.backbones import BackboneSpec, Body
from activelab.models.images import Preprocess
from activelab.models.registry import register_model

#: the default side in pixels (MNIST's and Fashion-MNIST's own)
PIXELS_SIZE = 28
#: ITU-R 601-2 luma weights, as PIL's ``Image.convert("L")``
LUMA = (0.299, 0.587, 0.114)


class GrayPixels(nn.Module):
    """``(B, 3, H, W)`` RGB in [0, 1] -> ``(B, H * W)`` grayscale, row-major. No parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("luma", torch.tensor(LUMA).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() * self.luma).sum(dim=1).flatten(1).clamp(0.0, 1.0)


def _call(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return module(x)


def pixels_body(spec: BackboneSpec, load_weights: bool, options: dict[str, Any]) -> Body:
    """The body of ``pixels``: no weights, an identity preprocessing (mean 0, std 1) at ``image_size``."""
    if spec.pretrained:
        raise InputError("'pixels' has no pretrained weights; leave pretrained unset (or False)")
    if spec.weights_file:
        raise InputError("'pixels' has no weights to load; drop backbone_weights")
    size = spec.image_size or PIXELS_SIZE
    pre = Preprocess(size=size, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    return Body(GrayPixels(), size * size, pre, _call, "pixels:gray")


register_model(
    "pixels",
    description="an image's grayscale pixels at 28 px (or image_size), flattened in [0, 1]: the raw-pixel baseline",
    body=pixels_body,
    offline=True,
    modes=("frozen",),
    pretrained=False,
)
