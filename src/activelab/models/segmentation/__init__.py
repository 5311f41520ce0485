"""Semantic segmenters: a small U-Net of ours (the default), torchvision's and smp's, behind the adapter interface.

>>> from activelab.models import create_model
>>> seg = create_model("unet_small", classes=["background", "bag", "shoe"], output="masks")
>>> seg.fit(paths, masks, seed=0)           # doctest: +SKIP
>>> probs = seg.predict_proba(pool_paths)   # doctest: +SKIP

See docs/models.md ("Segmenters") for the names, the default and the outputs.
"""

from activelab.models.segmentation.adapter import IGNORE, SEGMENTATION_DEFAULTS, SegmenterAdapter, check_masks
from activelab.models.segmentation.architectures import SEGMENTERS, SegmenterArch, SegNet, smp_available

__all__ = [
    "IGNORE",
    "SEGMENTATION_DEFAULTS",
    "SEGMENTERS",
    "SegNet",
    "SegmenterAdapter",
    "SegmenterArch",
    "check_masks",
    "smp_available",
]
