"""Model adapters: what query strategies need from a model, and nothing framework-specific.

>>> from activelab.models import create_model
>>> model = create_model("efficientnet_lite0", classes=["cat", "dog"], cache_dir="project/.cache")
>>> report = model.fit(paths, labels, keys=hashes, seed=0)        # doctest: +SKIP
>>> probs = model.predict_proba(pool_paths, keys=pool_hashes)     # doctest: +SKIP

See docs/models.md for names, the frozen and finetune modes, outputs, options and offline
behaviour; ``list_models()`` and ``register_model`` for the model table; optional frameworks
(fastai, Hugging Face, lightly, Ray) live in :mod:`activelab.models.integrations`. Detectors
(``create_model(DEFAULT_DETECTION_MODEL, classes=..., output="boxes")``) live in
:mod:`activelab.models.detection`; segmenters (``create_model(DEFAULT_SEGMENTATION_MODEL, classes=...,
output="masks")``) in :mod:`activelab.models.segmentation`.
"""

from activelab.models._adapter import MODES
from activelab.models.backbones import BackboneSpec, SmallCNN
from activelab.models.base import (
    CAPABILITIES,
    OUTPUTS,
    FitReport,
    ModelAdapter,
    file_key,
    pick_device,
)
from activelab.models.cache import CacheStats, EmbeddingCache
from activelab.models.detection import DETECTION_DEFAULTS, DetectorAdapter
from activelab.models.fast import FAST_DEFAULTS, FastAdapter
from activelab.models.full import FULL_DEFAULTS, FullAdapter
from activelab.models.images import ImageDataset, Preprocess, load_rgb
from activelab.models.pixels import PIXELS_SIZE
from activelab.models.registry import (
    BUILTIN_DETECTORS,
    BUILTIN_MODELS,
    BUILTIN_SEGMENTERS,
    DEFAULT_DETECTION_MODEL,
    DEFAULT_MODEL,
    DEFAULT_SEGMENTATION_MODEL,
    ModelEntry,
    create_model,
    find_model,
    from_learner,
    list_models,
    load_model,
    model_entries,
    parse_name,
    register_model,
)
from activelab.models.segmentation import SEGMENTATION_DEFAULTS, SegmenterAdapter

__all__ = [
    "BUILTIN_DETECTORS",
    "BUILTIN_MODELS",
    "BUILTIN_SEGMENTERS",
    "CAPABILITIES",
    "DEFAULT_DETECTION_MODEL",
    "DEFAULT_MODEL",
    "DEFAULT_SEGMENTATION_MODEL",
    "DETECTION_DEFAULTS",
    "FAST_DEFAULTS",
    "FULL_DEFAULTS",
    "MODES",
    "OUTPUTS",
    "PIXELS_SIZE",
    "SEGMENTATION_DEFAULTS",
    "BackboneSpec",
    "CacheStats",
    "DetectorAdapter",
    "EmbeddingCache",
    "FastAdapter",
    "FitReport",
    "FullAdapter",
    "ImageDataset",
    "ModelAdapter",
    "ModelEntry",
    "Preprocess",
    "SegmenterAdapter",
    "SmallCNN",
    "create_model",
    "file_key",
    "find_model",
    "from_learner",
    "list_models",
    "load_model",
    "load_rgb",
    "model_entries",
    "parse_name",
    "pick_device",
    "register_model",
]
