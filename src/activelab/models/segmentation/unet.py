"""``unet_small``: a small U-Net (Ronneberger, Fischer & Brox, MICCAI 2015) that trains from scratch on a CPU.

Sized for 64-256 px images on a CPU: a stride-2 3x3 stem (the U-Net runs at half resolution,
which cuts a training step about fivefold; the logits are upsampled bilinearly), then
``depth`` poolings (default 3, so a 128 px image has an 8 px bottleneck) with channels
``width * 2**level`` (default 16-128), two 3x3 conv + BatchNorm + ReLU per level, bilinear
upsampling (no transposed convolutions: cheaper and free of checkerboard artefacts), and
``Dropout2d`` before the 1x1 classifier so MC dropout (Gal & Ghahramani, 2016) samples only
the head.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class SmallUNet(nn.Module):
    """A U-Net: ``features(x)`` gives the decoder output (head input) and the bottleneck; ``head`` the logits.

    ``x``: (B, 3, H, W) with H and W multiples of ``divisor = 2**(depth + 1)``; logits
    (B, n_classes, H / 2, W / 2).
    """

    def __init__(self, n_classes: int, *, width: int = 16, depth: int = 3, dropout: float = 0.1) -> None:
        super().__init__()
        widths = [width * 2**i for i in range(depth + 1)]
        self.divisor = 2 ** (depth + 1)
        self.stem = nn.Sequential(
            nn.Conv2d(3, widths[0], 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        self.down = nn.ModuleList(
            [_block(widths[0], widths[0])] + [_block(widths[i - 1], widths[i]) for i in range(1, depth + 1)]
        )
        self.up = nn.ModuleList([_block(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(depth))])
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(widths[0], n_classes, 1)
        self.out_channels = widths[-1]

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(decoder output (B, width, H / 2, W / 2), bottleneck (B, width * 2**depth, H / divisor, W / divisor))."""
        x = self.stem(x)
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        bottleneck = x
        for block, skip in zip(self.up, reversed(skips[:-1])):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return x, bottleneck

    def head(self, z: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)[0])
