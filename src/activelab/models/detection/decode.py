"""From a torchvision detector's raw outputs to scored boxes that keep their class distribution.

torchvision's ``postprocess_detections`` keeps one score per box and drops the rest of
the class scores; strategies need the whole distribution (``probs``) of each kept box.
So inference runs the detector's parts here: :func:`dense_candidates` gives, for every
candidate (anchor, location or proposal) of an image, its boxes, its per-class
detection scores and its class distribution; :func:`select_boxes` keeps the best
(score threshold, top-k, per-class NMS, at most ``max_detections``) with the distribution
row of each kept box's candidate.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class Candidates:
    """One image's candidates: ``boxes`` (A, 4) class-agnostic or (A, C, 4) per class, xyxy in the
    transformed image; ``scores`` (A, C) detection scores; ``dist`` (A, C) class distributions."""

    boxes: torch.Tensor
    scores: torch.Tensor
    dist: torch.Tensor


def _rows_to_one(p: torch.Tensor) -> torch.Tensor:
    return p / p.sum(dim=-1, keepdim=True).clamp_min(1e-12)


def dense_candidates(
    model: Any, family: str, images: Any, features: OrderedDict[str, torch.Tensor]
) -> list[Candidates]:
    """Every candidate of every image in ``images`` (a torchvision ``ImageList``), from ``features``.

    - ``fcos``: score ``sqrt(sigmoid(class) * sigmoid(centerness))`` as torchvision's FCOS;
      distribution: the class sigmoids normalised to sum to 1.
    - ``retinanet``: score the class sigmoid; distribution: the sigmoids normalised.
    - ``ssd`` / ``fasterrcnn``: the softmax over background + classes; score the class
      columns, distribution those columns renormalised without the background.
    """
    from torchvision.ops import boxes as box_ops

    sizes = images.image_sizes
    levels = list(features.values())
    out: list[Candidates] = []
    if family == "fasterrcnn":
        proposals, _ = model.rpn(images, features)
        heads = model.roi_heads
        pooled = heads.box_head(heads.box_roi_pool(features, proposals, sizes))
        logits, regression = heads.box_predictor(pooled)
        boxes = heads.box_coder.decode(regression, proposals)
        softmax = torch.softmax(logits.float(), dim=-1)
        counts = [len(p) for p in proposals]
        for b, p, size in zip(boxes.split(counts), softmax.split(counts), sizes):
            b = box_ops.clip_boxes_to_image(b[:, 1:], size)
            out.append(Candidates(b, p[:, 1:], _rows_to_one(p[:, 1:])))
        return out
    head = model.head(levels)
    anchors = model.anchor_generator(images, levels)
    coder = model.box_coder
    for i, size in enumerate(sizes):
        logits = head["cls_logits"][i].float()
        if family == "fcos":
            boxes = coder.decode(head["bbox_regression"][i], anchors[i])
        else:
            boxes = coder.decode_single(head["bbox_regression"][i], anchors[i])
        boxes = box_ops.clip_boxes_to_image(boxes, size)
        if family == "ssd":
            p = torch.softmax(logits, dim=-1)[:, 1:]
            out.append(Candidates(boxes, p, _rows_to_one(p)))
            continue
        sig = torch.sigmoid(logits)
        scores = torch.sqrt(sig * torch.sigmoid(head["bbox_ctrness"][i].float())) if family == "fcos" else sig
        out.append(Candidates(boxes, scores, _rows_to_one(sig)))
    return out


def select_boxes(
    cand: Candidates, *, score_threshold: float, nms_threshold: float, max_detections: int, top_k: int = 1000
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(boxes (M, 4), scores (M,), labels (M,) int64, dist (M, C))`` of the kept detections, best first.

    Each (candidate, class) pair above ``score_threshold`` is a detection; the ``top_k``
    best go through NMS per class (``nms_threshold`` IoU) and the first ``max_detections``
    survivors are kept, each with its candidate's class distribution.
    """
    from torchvision.ops import boxes as box_ops

    n_classes = cand.scores.shape[1]
    flat = cand.scores.flatten()
    idx = torch.nonzero(flat > score_threshold).flatten()
    scores, order = flat[idx].topk(min(top_k, idx.numel()))
    idx = idx[order]
    anchor, labels = idx // n_classes, idx % n_classes
    boxes = cand.boxes[anchor, labels] if cand.boxes.dim() == 3 else cand.boxes[anchor]
    big = box_ops.remove_small_boxes(boxes, 1e-2)
    boxes, scores, labels, anchor = boxes[big], scores[big], labels[big], anchor[big]
    keep = box_ops.batched_nms(boxes, scores, labels, nms_threshold)[:max_detections]
    return boxes[keep], scores[keep], labels[keep], cand.dist[anchor[keep]]


def roi_features(fmap: torch.Tensor, boxes: list[torch.Tensor], image_width: int) -> torch.Tensor:
    """(M, channels) RoI features: ``roi_align`` of each box over ``fmap`` (B, ch, h, w), averaged over 2x2 bins.

    ``boxes``: per image, xyxy in the coordinates of the (transformed) input of width ``image_width``.
    """
    from torchvision.ops import roi_align

    if sum(len(b) for b in boxes) == 0:
        return fmap.new_zeros((0, fmap.shape[1]))
    pooled = roi_align(fmap, [b.float() for b in boxes], output_size=2, spatial_scale=fmap.shape[-1] / image_width,
                       sampling_ratio=2, aligned=True)  # fmt: skip
    return pooled.mean(dim=(2, 3))
