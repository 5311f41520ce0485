"""Box annotation files: COCO JSON, YOLO label folders and Pascal VOC XML, read and written.

Pure file formats (no task, no store): every reader returns an :class:`AnnotationSet` of
:class:`ImageBoxes` in the detection payload form (``{"class", "x", "y", "w", "h"}`` in
pixels, top-left origin) and reports each bad image or box as an :class:`AnnotationProblem`
instead of raising. docs/detection_data.md describes the conventions of each format.
"""

from activelab.data.annotations._common import CLIP_TOLERANCE, AnnotationProblem, AnnotationSet, ImageBoxes
from activelab.data.annotations.coco import read_coco, write_coco
from activelab.data.annotations.voc import read_voc, write_voc
from activelab.data.annotations.yolo import read_yolo, write_yolo

__all__ = [
    "CLIP_TOLERANCE",
    "AnnotationProblem",
    "AnnotationSet",
    "ImageBoxes",
    "read_coco",
    "read_voc",
    "read_yolo",
    "write_coco",
    "write_voc",
    "write_yolo",
]
