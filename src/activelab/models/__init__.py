"""Model adapters: what query strategies need from a model, and nothing framework-specific.

>>> from activelab.models import create_model
>>> model = create_model("efficientnet_lite0", classes=["cat", "dog"], cache_dir="project/.cache")
>>> report = model.fit(paths, labels, keys=hashes, seed=0)        # doctest: +SKIP
>>> probs = model.predict_proba(pool_paths, keys=pool_hashes)     # doctest: +SKIP

See docs/models.md for names, the fast and full paths, options and offline behaviour.
"""

from activelab.models.backbones import BackboneSpec, SmallCNN
from activelab.models.base import (
    CAPABILITIES,
    FitReport,
    MissingDependencyError,
    ModelAdapter,
    NotFittedError,
    UnsupportedError,
    file_key,
    pick_device,
)
from activelab.models.cache import CacheStats, EmbeddingCache
from activelab.models.fast import FAST_DEFAULTS, FastAdapter
from activelab.models.full import FULL_DEFAULTS, FullAdapter
from activelab.models.images import ImageDataset, Preprocess, load_rgb
from activelab.models.registry import (
    BUILTIN_MODELS,
    DEFAULT_MODEL,
    create_model,
    from_learner,
    list_models,
    load_model,
    parse_name,
)

__all__ = [
    "BUILTIN_MODELS",
    "CAPABILITIES",
    "DEFAULT_MODEL",
    "FAST_DEFAULTS",
    "FULL_DEFAULTS",
    "BackboneSpec",
    "CacheStats",
    "EmbeddingCache",
    "FastAdapter",
    "FitReport",
    "FullAdapter",
    "ImageDataset",
    "MissingDependencyError",
    "ModelAdapter",
    "NotFittedError",
    "Preprocess",
    "SmallCNN",
    "UnsupportedError",
    "create_model",
    "file_key",
    "from_learner",
    "list_models",
    "load_model",
    "load_rgb",
    "parse_name",
    "pick_device",
]
