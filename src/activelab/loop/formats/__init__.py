"""Formats other tools use: Label Studio, Hugging Face ``datasets``, FiftyOne, COCO/YOLO/VOC boxes and
segmentation masks (VOC mask folders, COCO segmentations, mask tables), both ways.

``IMPORT_FORMATS`` and ``EXPORT_FORMATS`` are the names ``activelab import/export
--format`` accepts for them; each module's functions are the Python side.
"""

from __future__ import annotations

from activelab.loop.formats.boxes import BOX_FORMATS, export_boxes, import_boxes
from activelab.loop.formats.fiftyone import export_fiftyone, import_fiftyone
from activelab.loop.formats.hf_datasets import export_hf_imagefolder, import_hf
from activelab.loop.formats.labelstudio import export_labelstudio, import_labelstudio
from activelab.loop.formats.masks import MASK_FORMATS, export_masks, import_masks

_ONLY_MASKS = tuple(fmt for fmt in MASK_FORMATS if fmt not in ("labelstudio", *BOX_FORMATS))
IMPORT_FORMATS = ("labelstudio", "hf", "fiftyone", *BOX_FORMATS, *_ONLY_MASKS)
EXPORT_FORMATS = ("labelstudio", "hf-imagefolder", "fiftyone", *BOX_FORMATS, *_ONLY_MASKS)

__all__ = [
    "BOX_FORMATS",
    "EXPORT_FORMATS",
    "IMPORT_FORMATS",
    "MASK_FORMATS",
    "export_boxes",
    "export_fiftyone",
    "export_hf_imagefolder",
    "export_labelstudio",
    "export_masks",
    "import_boxes",
    "import_fiftyone",
    "import_hf",
    "import_labelstudio",
    "import_masks",
]
