"""Object detectors: torchvision's detectors behind the adapter interface, plus a small from-scratch FCOS.

>>> from activelab.models import create_model
>>> det = create_model("fcos_small", classes=["bag", "shoe"], output="boxes")
>>> det.fit(paths, targets, seed=0)        # doctest: +SKIP
>>> preds = det.predict_proba(pool_paths)  # doctest: +SKIP

See docs/models.md ("Detectors") for the names, the default and the outputs.
"""

from activelab.models.detection.adapter import DETECTION_DEFAULTS, VIEWS, DetectorAdapter, check_targets
from activelab.models.detection.architectures import DETECTORS, DetectorArch

__all__ = ["DETECTION_DEFAULTS", "DETECTORS", "VIEWS", "DetectorAdapter", "DetectorArch", "check_targets"]
