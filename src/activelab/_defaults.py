"""Defaults shared across layers, in a module that imports nothing.

The default model's name lives here rather than in :mod:`activelab.models.registry`
(which re-exports it) so torch-free modules — project settings, the CLI — can use it
without importing the models package and torch.
"""

from __future__ import annotations

#: the model a project, a simulation or a label-error ranking uses when none is named
DEFAULT_MODEL = "efficientnet_lite0"

#: the detector a ``task: detection`` project uses when none is named (see docs/models.md, "Detectors")
DEFAULT_DETECTION_MODEL = "fcos_small"

#: the segmenter a ``task: segmentation`` project uses when none is named (see docs/models.md, "Segmenters")
DEFAULT_SEGMENTATION_MODEL = "unet_small"
