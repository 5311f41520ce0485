"""The detector adapter: fit on boxes, predict scored boxes with class distributions and RoI features.

Shapes (see the detection task's contract): training targets and predictions are numpy
object arrays of N dicts. A target holds ``boxes`` float32 (M, 4) xyxy pixels and
``labels`` int64 (M,) class positions; a prediction adds ``scores`` (M,), ``probs``
(M, C) (each box's distribution over the object classes, rows sum to 1) and
``features`` (M, d) (RoI-aligned features of the finest feature map). Images with no
box are valid: an empty target is a negative example, an empty prediction "nothing found".
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from activelab.data.images import load_rgb
from activelab.exceptions import InputError
from activelab.models._adapter import AdapterBase, fit_report
from activelab.models.backbones import BackboneSpec
from activelab.models.base import FitReport, PathLike, check_paths, pick_device, seeded
from activelab.models.detection.architectures import BACKGROUND_FAMILIES, DETECTORS, DetectorArch, set_input_size
from activelab.models.detection.augment import hflip, rescale
from activelab.models.detection.decode import dense_candidates, roi_features, select_boxes
from activelab.progress import progress_task

#: the detector options (``create_model(..., **options)``) and their defaults
DETECTION_DEFAULTS: dict[str, Any] = {
    "output": "boxes",
    "epochs": 10,
    "min_steps": 300,
    "batch_size": 8,
    "lr": 2e-3,
    "weight_decay": 1e-4,
    "hflip": True,
    "scale_jitter": (0.7, 1.3),
    "score_threshold": 0.05,
    "nms_threshold": 0.5,
    "max_detections": 100,
    "noise_levels": (8, 16, 32),
    "predict_batch_size": 16,
}

#: the views ``predict_views`` knows
VIEWS: tuple[str, ...] = ("hflip", "noise")


def check_targets(targets: Any, n: int, n_classes: int) -> list[dict[str, torch.Tensor]]:
    """Training targets as torch dicts; InputError naming the image and the problem otherwise."""
    if len(targets) != n:
        raise InputError(f"targets must have one entry per path: got {len(targets)} for {n} paths")
    if n == 0:
        raise InputError("fit needs at least one labeled image; got none")
    out = []
    for i, t in enumerate(targets):
        if not isinstance(t, dict) or "boxes" not in t or "labels" not in t:
            raise InputError(f"targets[{i}] must be a dict with 'boxes' (M, 4) xyxy and 'labels' (M,); got {t!r}")
        boxes = np.asarray(t["boxes"], dtype=np.float32).reshape(-1, 4)
        labels = np.asarray(t["labels"]).reshape(-1)
        if len(labels) != len(boxes):
            raise InputError(f"targets[{i}] has {len(boxes)} boxes but {len(labels)} labels; give one label per box")
        if not np.isfinite(boxes).all() or (boxes[:, 2:] <= boxes[:, :2]).any():
            raise InputError(f"targets[{i}] has a box that is not finite xyxy with x2 > x1 and y2 > y1: {boxes}")
        if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
            raise InputError(f"targets[{i}] has a label outside 0..{n_classes - 1}: {labels.tolist()}")
        out.append({"boxes": torch.from_numpy(boxes), "labels": torch.from_numpy(labels.astype(np.int64))})
    return out


def _to_tensor(path: str) -> torch.Tensor:
    """(3, H, W) float32 in [0, 1]: what torchvision detectors take (they normalise inside)."""
    arr = np.asarray(load_rgb(path), dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


def _object_array(items: list[dict[str, np.ndarray]]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


class DetectorAdapter(AdapterBase):
    """A torchvision detector behind the adapter interface (``finetune`` only; warm-started across fits).

    ``fit`` trains ``max(epochs * ceil(N / batch_size), min_steps)`` steps of AdamW with a
    short warm-up and cosine decay, flipping images (and boxes) at random with ``hflip``;
    ``min_steps`` keeps a handful of labels from being undertrained, the lesson the
    classifiers taught. A second ``fit`` starts from the current weights.
    """

    kind: ClassVar[str] = "detector"
    mode: ClassVar[str] = "finetune"
    defaults: ClassVar[dict[str, Any]] = DETECTION_DEFAULTS
    supports: frozenset[str] = frozenset({"probs", "embeddings", "views"})

    def __init__(
        self,
        arch: str,
        *,
        classes: Sequence[str] | None,
        num_classes: int | None = None,
        pretrained: bool = False,
        image_size: int | None = None,
        device: str | None = None,
        **options: Any,
    ) -> None:
        if arch not in DETECTORS:
            raise InputError(f"unknown detector {arch!r}; known: {', '.join(DETECTORS)}")
        self.arch: DetectorArch = DETECTORS[arch]
        size = image_size if image_size is not None else self.arch.image_size
        spec = BackboneSpec(source="detection", name=arch, pretrained=bool(pretrained), image_size=size)
        super().__init__(spec, classes=classes, num_classes=num_classes, device=device, options=options)
        if self.output != "boxes":
            raise InputError(f"{arch!r} is a detector: its output is 'boxes', not {self.output!r}; drop output=")
        if not self.classes:
            raise InputError(f"detector {arch!r} needs its object classes: pass classes=[...] to create_model")
        self.options["noise_levels"] = tuple(float(v) for v in self.options["noise_levels"])
        jitter = self.options["scale_jitter"]
        if jitter is not None:
            if len(jitter) != 2 or not 0 < float(jitter[0]) <= float(jitter[1]):
                raise InputError(f"scale_jitter must be None or (low, high) with 0 < low <= high, got {jitter!r}")
            self.options["scale_jitter"] = (float(jitter[0]), float(jitter[1]))
        self.name = arch
        self.fitted = False
        self._model: nn.Module | None = None

    # --- building ------------------------------------------------------------------

    def build(self) -> DetectorAdapter:
        """Build the network (loading torchvision's weights when pretrained); seeded, so repeatable."""
        if self._model is None:
            self.device = pick_device(self._device_arg)
            with seeded(0, self.device):
                model = self.arch.build(self.n_classes, self.spec.pretrained)
            if self.spec.image_size is not None:
                set_input_size(model, self.spec.image_size)
            self._model = model.to(self.device).eval()
        return self

    @property
    def model(self) -> nn.Module:
        """The torchvision detection model (built on first use)."""
        self.build()
        assert self._model is not None
        return self._model

    @property
    def _label_offset(self) -> int:
        return 1 if self.arch.family in BACKGROUND_FAMILIES else 0

    # --- fitting -------------------------------------------------------------------

    def fit(
        self,
        paths: Sequence[PathLike],
        targets: Any,
        *,
        keys: Sequence[str] | None = None,
        seed: int = 0,
        progress: bool = False,
    ) -> FitReport:
        """Train on ``targets`` (object array of {boxes, labels} dicts), from the current weights."""
        ps = check_paths(paths, keys)
        tg = check_targets(targets, len(ps), self.n_classes)
        model = self.model
        o = self.options
        per_epoch = math.ceil(len(ps) / o["batch_size"])
        steps = max(int(o["epochs"]) * per_epoch, int(o["min_steps"]))
        images = [_to_tensor(p) for p in ps]
        rng = np.random.default_rng(seed)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=o["lr"], weight_decay=o["weight_decay"])
        warmup = min(50, steps // 5 + 1)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
        )
        history: list[dict[str, float]] = []
        losses: list[float] = []
        start = time.perf_counter()
        model.train()
        try:
            with seeded(seed, self.device), progress_task(progress, f"training {self.name}", total=steps,
                                                          unit="step") as task:  # fmt: skip
                order = rng.permutation(len(ps))
                for step in range(steps):
                    pos = (step * o["batch_size"]) % len(ps)
                    if pos < o["batch_size"] and step > 0:
                        order = rng.permutation(len(ps))
                    batch = order[pos : pos + o["batch_size"]]
                    xs, ts = self._batch(images, tg, batch, rng)
                    loss_dict = model(xs, ts)
                    loss = sum(loss_dict.values())
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    nn.utils.clip_grad_norm_(params, 10.0)
                    opt.step()
                    sched.step()
                    losses.append(float(loss.detach()))
                    if (step + 1) % per_epoch == 0 or step + 1 == steps:
                        history.append({"epoch": float(len(history) + 1), "train_loss": float(np.mean(losses))})
                        losses = []
                    task.advance(1)
        finally:
            model.eval()
        self.fitted = True
        return fit_report(n_train=len(ps), n_val=0, history=history, best_epoch=len(history),
                          seconds=time.perf_counter() - start, device=self.device)  # fmt: skip

    def _batch(
        self, images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]], rows: np.ndarray,
        rng: np.random.Generator,
    ) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:  # fmt: skip
        """The batch's images and targets on the device, each flipped left-right with probability 1/2 (``hflip``)
        and zoomed by a factor drawn from ``scale_jitter`` (a (low, high) range; None: never)."""
        xs, ts = [], []
        jitter = self.options["scale_jitter"]
        for r in rows:
            x, boxes, labels = images[r], targets[r]["boxes"], targets[r]["labels"]
            if self.options["hflip"] and rng.random() < 0.5:
                x, boxes = hflip(x, boxes)
            if jitter is not None:
                x, boxes, labels = rescale(x, boxes, labels, float(rng.uniform(*jitter)), rng)
            xs.append(x.to(self.device))
            ts.append({"boxes": boxes.to(self.device), "labels": (labels + self._label_offset).to(self.device)})
        return xs, ts

    # --- predicting ----------------------------------------------------------------

    def predict_proba(
        self, paths: Sequence[PathLike], *, keys: Sequence[str] | None = None, progress: bool = False
    ) -> np.ndarray:
        """(N,) object array of {boxes, scores, labels, probs, features} dicts (see the module docstring)."""
        return self._predict(check_paths(paths, keys), progress=progress)

    def predict_views(
        self,
        paths: Sequence[PathLike],
        views: Sequence[str],
        *,
        seed: int = 0,
        keys: Sequence[str] | None = None,
        progress: bool = False,
    ) -> dict[str, list[np.ndarray]]:
        """Predictions on altered copies, boxes in the original image's coordinates.

        ``"hflip"``: one prediction set on the mirrored images (CALD, Yu et al. 2021);
        ``"noise"``: one per level of ``noise_levels`` (std on the 0-255 scale), Gaussian
        pixel noise seeded per (seed, level, image) (Kao et al., ACCV 2018).
        """
        ps = check_paths(paths, keys)
        unknown = [v for v in views if v not in VIEWS]
        if unknown:
            raise InputError(f"unknown view(s) {unknown}; known views: {', '.join(VIEWS)}")
        out: dict[str, list[np.ndarray]] = {}
        for view in dict.fromkeys(views):
            if view == "hflip":
                out[view] = [self._predict(ps, progress=progress, flip=True)]
            else:
                out[view] = [self._predict(ps, progress=progress, noise=(level, seed))
                             for level in self.options["noise_levels"]]  # fmt: skip
        return out

    def embed(
        self, paths: Sequence[PathLike], *, keys: Sequence[str] | None = None, progress: bool = False
    ) -> np.ndarray:
        """(N, d) float32: each feature-pyramid level average-pooled over space, concatenated."""
        ps = check_paths(paths, keys)
        model = self.model
        rows = []
        with torch.no_grad():
            for xs in self._batches(ps, progress, "embedding", flip=False, noise=None):
                images, _ = model.transform(xs)  # type: ignore[operator]
                feats = self._features(images.tensors)
                rows.append(torch.cat([f.mean(dim=(2, 3)) for f in feats.values()], dim=1).cpu())
        return torch.cat(rows).numpy().astype(np.float32) if rows else np.zeros((0, 0), np.float32)

    def _features(self, x: torch.Tensor) -> Any:
        from collections import OrderedDict

        feats = self.model.backbone(x)  # type: ignore[operator]
        return OrderedDict([("0", feats)]) if isinstance(feats, torch.Tensor) else feats

    def _batches(
        self, paths: list[str], progress: bool, desc: str, *, flip: bool, noise: tuple[float, int] | None
    ) -> Any:
        """Yields batches of images (lists of (3, H, W) tensors on the device), altered as asked."""
        bs = int(self.options["predict_batch_size"])
        with progress_task(progress, desc, total=len(paths), unit="img") as task:
            for start in range(0, len(paths), bs):
                xs = []
                for i in range(start, min(start + bs, len(paths))):
                    x = _to_tensor(paths[i])
                    if flip:
                        x = x.flip(-1)
                    if noise is not None:
                        level, seed = noise
                        rng = np.random.default_rng([int(seed), round(level * 1000), i])
                        x = (x + torch.from_numpy(rng.normal(0.0, level / 255.0, x.shape).astype(np.float32))).clamp(
                            0, 1
                        )
                    xs.append(x.to(self.device))
                yield xs
                task.advance(len(xs))

    def _predict(
        self, paths: list[str], *, progress: bool, flip: bool = False, noise: tuple[float, int] | None = None
    ) -> np.ndarray:
        self._require_fitted(self.fitted)
        model = self.model
        family = self.arch.family
        o = self.options
        items: list[dict[str, np.ndarray]] = []
        with torch.no_grad():
            for xs in self._batches(paths, progress, f"predicting with {self.name}", flip=flip, noise=noise):
                originals = [(int(x.shape[-2]), int(x.shape[-1])) for x in xs]
                images, _ = model.transform(xs)  # type: ignore[operator]
                feats = self._features(images.tensors)
                kept = [select_boxes(c, score_threshold=o["score_threshold"], nms_threshold=o["nms_threshold"],
                                     max_detections=o["max_detections"])
                        for c in dense_candidates(model, family, images, feats)]  # fmt: skip
                first = next(iter(feats.values()))
                roi = roi_features(first, [k[0] for k in kept], int(images.tensors.shape[-1]))
                roi_rows = roi.split([len(k[0]) for k in kept])
                for (boxes, scores, labels, dist), f, (h, w), (th, tw) in zip(
                    kept, roi_rows, originals, images.image_sizes
                ):
                    scale = boxes.new_tensor([w / tw, h / th, w / tw, h / th])
                    b = boxes * scale
                    if flip:
                        b = torch.stack([w - b[:, 2], b[:, 1], w - b[:, 0], b[:, 3]], dim=1)
                    items.append({
                        "boxes": b.cpu().numpy().astype(np.float32).reshape(-1, 4),
                        "scores": scores.cpu().numpy().astype(np.float32),
                        "labels": labels.cpu().numpy().astype(np.int64),
                        "probs": dist.cpu().numpy().astype(np.float32).reshape(-1, self.n_classes),
                        "features": f.cpu().numpy().astype(np.float32),
                    })  # fmt: skip
        return _object_array(items)

    # --- persistence ---------------------------------------------------------------

    @property
    def config(self) -> dict[str, Any]:
        cfg = super().config
        cfg["options"]["noise_levels"] = list(self.options["noise_levels"])
        cfg["family"] = self.arch.family
        return cfg

    def save(self, path: PathLike) -> None:
        """Write the weights, classes and options (the project's model file format, kind ``detector``)."""
        payload = self._payload()
        payload["options"]["noise_levels"] = list(self.options["noise_levels"])
        self._save_weights(path, self.model, payload)

    @classmethod
    def load(cls, path: PathLike, *, device: str | None = None) -> DetectorAdapter:
        """An adapter saved with :meth:`save`, ready to predict (and to fit on, warm)."""
        adapter: DetectorAdapter = cls._load_weights(path, device=device, module=lambda a: a.model)
        return adapter
