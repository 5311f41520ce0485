"""The segmenter adapter: fit on partly labeled masks, predict per-pixel class probabilities.

Shapes (the segmentation task's contract): training targets are an object array ``(N,)``
of ``(H, W) uint8`` masks, each pixel a class position or ``IGNORE`` (255, not labeled:
left out of the loss, so a partly labeled image trains on what is labeled). ``predict_proba``
returns an object array ``(N,)`` of ``{"probs": (C, H, W) float16}`` softmax at each image's
own size; ``mc_predict`` an object array ``(N,)`` of ``(T, C, ceil(H/4), ceil(W/4))`` float16
MC-dropout samples (Gal & Ghahramani, 2016) average-pooled by 4; ``embed`` ``(N, d)`` float32
globally average-pooled deepest encoder features.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from activelab.data.images import load_rgb
from activelab.exceptions import InputError
from activelab.models._adapter import AdapterBase, fit_report, merge_options
from activelab.models.backbones import BackboneSpec
from activelab.models.base import FitReport, PathLike, check_n_samples, check_paths, pick_device, seeded
from activelab.models.segmentation.architectures import SEGMENTERS, SegmenterArch, SegNet
from activelab.progress import progress_task

#: a mask value meaning "not labeled", left out of the loss: :data:`activelab.tasks.masks.IGNORE`
#: (the layers keep models below tasks, so the value is repeated here)
IGNORE = 255

#: the options every segmenter takes (``create_model(..., **options)``) and their defaults; each
#: architecture adds its own (:attr:`SegmenterArch.options`, e.g. ``unet_small``'s ``width``)
SEGMENTATION_DEFAULTS: dict[str, Any] = {
    "output": "masks",
    "epochs": 10,
    "min_steps": 150,
    "batch_size": 8,
    "optimizer": "adamw",
    "lr": 3e-3,
    "weight_decay": 1e-4,
    "hflip": True,
    "predict_batch_size": 16,
}

#: the optimisers ``optimizer=`` names
OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}

#: the factor ``mc_predict`` average-pools its probabilities by
MC_POOL = 4


def _object_array(items: Sequence[Any]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


def _read(path: str, size: int | None) -> tuple[torch.Tensor, tuple[int, int]]:
    """(3, h, w) uint8 image (resized to ``size`` x ``size`` when given) and the file's own (H, W)."""
    im = load_rgb(path)
    own = (im.height, im.width)
    if size is not None and (im.width, im.height) != (size, size):
        im = im.resize((size, size), Image.Resampling.BILINEAR)
    return torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1), own


def check_masks(targets: Any, paths: Sequence[str], n_classes: int) -> list[np.ndarray]:
    """Training masks as ``(H, W) uint8`` arrays; InputError naming the image and the fix otherwise."""
    if len(targets) != len(paths):
        raise InputError(f"targets must have one mask per path: got {len(targets)} for {len(paths)} paths")
    if not paths:
        raise InputError("fit needs at least one labeled image; got none")
    out = []
    for i, t in enumerate(targets):
        m = np.asarray(t)
        if m.ndim != 2 or m.dtype.kind not in "iu":
            raise InputError(f"targets[{i}] ({paths[i]}) must be an (H, W) integer mask, got {m.dtype} {m.shape}")
        bad = (m != IGNORE) & ((m < 0) | (m >= n_classes))
        if bad.any():
            raise InputError(
                f"targets[{i}] ({paths[i]}) has {int(bad.sum())} pixels with values outside 0..{n_classes - 1} "
                f"(e.g. {int(m[bad][0])}); use class positions, or {IGNORE} for not labeled"
            )
        out.append(m.astype(np.uint8))
    if all((m == IGNORE).all() for m in out):
        raise InputError("every training mask labels no pixel (all 255 = IGNORE); label some pixels first")
    return out


class SegmenterAdapter(AdapterBase):
    """A segmentation network behind the adapter interface (``finetune`` only; warm-started across fits).

    ``fit`` runs ``max(epochs * ceil(N / batch_size), min_steps)`` steps of Adam(W) with a short
    warm-up and cosine decay on cross-entropy over the labeled pixels (``IGNORE`` left out; images
    with no labeled pixel are left out, ``n_train`` counts the others),
    flipping images and masks left-right at random (``hflip``). ``min_steps`` keeps five labeled
    images from being undertrained (the classifiers' lesson). A second ``fit`` (the next round)
    starts from the current weights. Images are resized to ``image_size`` x ``image_size`` when
    it is set (masks by nearest neighbour), and used at their own size otherwise; predictions
    come back at each image's own size.
    """

    kind: ClassVar[str] = "segmenter"
    mode: ClassVar[str] = "finetune"
    defaults: ClassVar[dict[str, Any]] = SEGMENTATION_DEFAULTS

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
        if arch not in SEGMENTERS:
            raise InputError(f"unknown segmenter {arch!r}; known: {', '.join(SEGMENTERS)}")
        self.arch: SegmenterArch = SEGMENTERS[arch]
        merge_options(options, {**self.defaults, **self.arch.options}, f"segmenter {arch!r}")  # names every option
        own = merge_options({k: options.pop(k) for k in list(options) if k in self.arch.options},
                            dict(self.arch.options), f"segmenter {arch!r}")  # fmt: skip
        spec = BackboneSpec(source=self.arch.source, name=arch, pretrained=bool(pretrained), image_size=image_size)
        super().__init__(spec, classes=classes, num_classes=num_classes, device=device, options=options)
        if self.output != "masks":
            raise InputError(f"{arch!r} is a segmenter: its output is 'masks', not {self.output!r}; drop output=")
        if len(self.classes) < 2:
            raise InputError(
                f"segmenter {arch!r} needs its classes, background included: pass classes=['background', ...]"
            )
        if self.options["optimizer"] not in OPTIMIZERS:
            raise InputError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.options['optimizer']!r}")
        self.options.update(own)
        self.name = arch
        self.fitted = False
        self._net: SegNet | None = None

    # --- building ------------------------------------------------------------------

    def build(self) -> SegmenterAdapter:
        """Build the network (loading pretrained weights when asked); seeded, so repeatable."""
        if self._net is None:
            self.device = pick_device(self._device_arg)
            own = {k: self.options[k] for k in self.arch.options}
            with seeded(0, self.device):
                net = self.arch.build(self.n_classes, self.spec.pretrained, own)
            self._net = net.to(self.device).eval()
        return self

    @property
    def net(self) -> SegNet:
        """The network (built on first use)."""
        self.build()
        assert self._net is not None
        return self._net

    @property
    def supports(self) -> frozenset[str]:  # type: ignore[override]
        """``probs`` and ``embeddings``; ``mc_probs`` where the network has dropout (in its head)."""
        drops = [m for m in self.net.modules() if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0]
        return frozenset({"probs", "embeddings", "mc_probs"} if drops else {"probs", "embeddings"})

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
        """Train on ``targets`` (object array (N,) of (H, W) uint8 masks, 255 = not labeled), from the current weights."""
        ps = check_paths(paths, keys)
        masks = check_masks(targets, ps, self.n_classes)
        kept = [i for i, m in enumerate(masks) if (m != IGNORE).any()]  # an all-IGNORE image would only shift BatchNorm
        ps, masks = [ps[i] for i in kept], [masks[i] for i in kept]
        images, labels = self._training_set(ps, masks, kept)
        net, o = self.net, self.options
        bs = int(o["batch_size"])
        per_epoch = math.ceil(len(ps) / bs)
        steps = max(int(o["epochs"]) * per_epoch, int(o["min_steps"]))
        opt = OPTIMIZERS[o["optimizer"]](net.parameters(), lr=o["lr"], weight_decay=o["weight_decay"])
        warmup = min(30, steps // 5 + 1)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
        )
        rng = np.random.default_rng(seed)
        loss_fn = nn.CrossEntropyLoss(ignore_index=IGNORE, reduction="sum")
        history: list[dict[str, float]] = []
        losses: list[float] = []
        start = time.perf_counter()
        net.train()
        try:
            with seeded(seed, self.device), progress_task(progress, f"training {self.name}", total=steps,
                                                          unit="step") as task:  # fmt: skip
                order = rng.permutation(len(ps))
                for step in range(steps):
                    pos = (step * bs) % len(ps)
                    if pos < bs and step > 0:
                        order = rng.permutation(len(ps))
                    rows = order[pos : pos + bs]
                    flips = rng.random(len(rows)) < 0.5 if o["hflip"] else np.zeros(len(rows), bool)
                    loss = self._batch_loss(images, labels, rows, flips, loss_fn)
                    opt.zero_grad(set_to_none=True)
                    if loss.requires_grad:
                        loss.backward()
                        nn.utils.clip_grad_norm_(net.parameters(), 10.0)
                        opt.step()
                    sched.step()
                    losses.append(float(loss.detach()))
                    if (step + 1) % per_epoch == 0 or step + 1 == steps:
                        history.append({"epoch": float(len(history) + 1), "train_loss": float(np.mean(losses))})
                        losses = []
                    task.advance(1)
        finally:
            net.eval()
        self.fitted = True
        return fit_report(n_train=len(ps), n_val=0, history=history, best_epoch=len(history),
                          seconds=time.perf_counter() - start, device=self.device)  # fmt: skip

    def _training_set(
        self, paths: list[str], masks: list[np.ndarray], positions: list[int]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Images (3, h, w) uint8 and masks (h, w) int64 at the training size, each mask checked against its
        image (``positions``: their places in ``targets``, for the messages)."""
        size = self.spec.image_size
        images, labels = [], []
        for i, p, m in zip(positions, paths, masks):
            x, (h, w) = _read(p, size)
            if m.shape != (h, w):
                raise InputError(
                    f"targets[{i}] is {m.shape[1]}x{m.shape[0]} (W x H) but image {p} is {w}x{h}; "
                    "give each image a mask of its own size"
                )
            if size is not None and m.shape != (size, size):
                m = np.asarray(Image.fromarray(m).resize((size, size), Image.Resampling.NEAREST))
            images.append(x)
            labels.append(torch.from_numpy(m.astype(np.int64)))
        return images, labels

    def _batch_loss(
        self, images: list[torch.Tensor], labels: list[torch.Tensor], rows: np.ndarray, flips: np.ndarray,
        loss_fn: nn.Module,
    ) -> torch.Tensor:  # fmt: skip
        """Mean cross-entropy over the batch's labeled pixels (images of one size forwarded together)."""
        total = torch.zeros((), device=self.device)
        n_labeled = 0
        for group in _by_shape([images[r].shape for r in rows]):
            xs = [images[rows[g]].flip(-1) if flips[g] else images[rows[g]] for g in group]
            ys = torch.stack([labels[rows[g]].flip(-1) if flips[g] else labels[rows[g]] for g in group])
            labeled = int((ys != IGNORE).sum())
            if labeled == 0:
                continue
            logits = self._logits(torch.stack(xs).to(self.device))
            total = total + loss_fn(logits, ys.to(self.device))
            n_labeled += labeled
        return total / max(n_labeled, 1)

    # --- the network on a batch ----------------------------------------------------

    def _logits(self, x: torch.Tensor, z: Any = None) -> torch.Tensor:
        """Logits (B, C, h, w) of uint8 images ``x`` (B, 3, h, w) at their size (``z``: precomputed features)."""
        h, w = x.shape[-2:]
        padded = self._input(x)
        if z is None:
            z = self.net.features(padded)[0]
        logits = self.net.head(z)
        if logits.shape[-2:] != padded.shape[-2:]:
            logits = F.interpolate(logits, size=padded.shape[-2:], mode="bilinear", align_corners=False)
        return logits[..., :h, :w]

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised float images, padded right and bottom (replicating edges) to multiples of ``divisor``."""
        net = self.net
        d = net.divisor
        mean, std = (torch.tensor(v, device=x.device).view(1, 3, 1, 1) for v in (net.mean, net.std))
        xf = (x.float().div(255.0) - mean) / std
        ph, pw = -x.shape[-2] % d, -x.shape[-1] % d
        return F.pad(xf, (0, pw, 0, ph), mode="replicate") if ph or pw else xf

    def _eval_batches(self, paths: list[str], progress: bool, desc: str) -> Iterator[tuple[list[int], torch.Tensor, list[tuple[int, int]]]]:  # fmt: skip
        """Yields (positions, images (B, 3, h, w) uint8 on the device, each image's own (H, W)), one size a batch."""
        bs = int(self.options["predict_batch_size"])
        with progress_task(progress, desc, total=len(paths), unit="img") as task:
            for start in range(0, len(paths), bs):
                read = [_read(p, self.spec.image_size) for p in paths[start : start + bs]]
                for group in _by_shape([x.shape for x, _ in read]):
                    yield ([start + g for g in group], torch.stack([read[g][0] for g in group]).to(self.device),
                           [read[g][1] for g in group])  # fmt: skip
                task.advance(len(read))

    def _collect(self, paths: list[str], progress: bool, desc: str, fn: Callable[..., list[Any]]) -> list[Any]:
        """``fn(images, own sizes)`` per batch (no gradients, eval mode), results put back in the order of ``paths``."""
        out: list[Any] = [None] * len(paths)
        with torch.no_grad():
            for rows, x, sizes in self._eval_batches(paths, progress, desc):
                for r, item in zip(rows, fn(x, sizes)):
                    out[r] = item
        return out

    # --- predicting ----------------------------------------------------------------

    def predict_proba(
        self, paths: Sequence[PathLike], *, keys: Sequence[str] | None = None, progress: bool = False
    ) -> np.ndarray:
        """(N,) object array of ``{"probs": (C, H, W) float16}``, softmax at each image's own size."""
        ps = check_paths(paths, keys)
        self._require_fitted(self.fitted)

        def probs(x: torch.Tensor, sizes: list[tuple[int, int]]) -> list[dict[str, np.ndarray]]:
            logits = self._logits(x)
            return [{"probs": _softmax_at(logits[i : i + 1], s)[0].half().cpu().numpy()} for i, s in enumerate(sizes)]

        return _object_array(self._collect(ps, progress, f"predicting with {self.name}", probs))

    def mc_predict(
        self,
        paths: Sequence[PathLike],
        *,
        keys: Sequence[str] | None = None,
        n_samples: int = 10,
        seed: int = 0,
        progress: bool = False,
    ) -> np.ndarray:
        """(N,) object array of (T, C, ceil(H/4), ceil(W/4)) float16: softmax with the head's dropout on, pooled by 4.

        The features are computed once per image, in eval mode; only the head is sampled
        (where the networks keep their dropout), with BatchNorm in eval mode throughout.
        """
        ps = check_paths(paths, keys)
        t = check_n_samples(n_samples)
        self._require_fitted(self.fitted)
        if "mc_probs" not in self.supports:
            from activelab.exceptions import UnsupportedError

            raise UnsupportedError(f"{self.name!r} has no dropout, so no MC-dropout samples; pick unet_small")
        drops = [m for m in self.net.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]

        def samples(x: torch.Tensor, sizes: list[tuple[int, int]]) -> list[np.ndarray]:
            z = self.net.features(self._input(x))[0]
            for m in drops:
                m.train()
            try:
                draws = [self._logits(x, z) for _ in range(t)]
            finally:
                for m in drops:
                    m.eval()
            return [torch.stack([F.avg_pool2d(_softmax_at(d[i : i + 1], s), MC_POOL, ceil_mode=True)[0] for d in draws])
                    .half().cpu().numpy() for i, s in enumerate(sizes)]  # fmt: skip

        with seeded(seed, self.device):
            return _object_array(self._collect(ps, progress, f"MC dropout with {self.name}", samples))

    def embed(
        self, paths: Sequence[PathLike], *, keys: Sequence[str] | None = None, progress: bool = False
    ) -> np.ndarray:
        """(N, d) float32: the deepest encoder map (U-Net bottleneck, backbone output) averaged over space."""
        ps = check_paths(paths, keys)

        def pooled(x: torch.Tensor, sizes: list[tuple[int, int]]) -> list[np.ndarray]:
            deep = self.net.features(self._input(x))[1]
            return list(deep.float().mean(dim=(2, 3)).cpu().numpy())

        rows = self._collect(ps, progress, f"embedding with {self.name}", pooled)
        return np.stack(rows).astype(np.float32) if rows else np.zeros((0, 0), np.float32)

    # --- persistence ---------------------------------------------------------------

    def save(self, path: PathLike) -> None:
        """Write the weights, classes and options (the project's model file format, kind ``segmenter``)."""
        self._save_weights(path, self.net)

    @classmethod
    def load(cls, path: PathLike, *, device: str | None = None) -> SegmenterAdapter:
        """An adapter saved with :meth:`save`, ready to predict (and to fit on, warm)."""
        adapter: SegmenterAdapter = cls._load_weights(path, device=device, module=lambda a: a.net)
        return adapter


def _softmax_at(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Softmax over classes of (B, C, h, w) logits, bilinearly upsampled to ``size`` (H, W) first."""
    if tuple(logits.shape[-2:]) != tuple(size):
        logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
    return torch.softmax(logits.float(), dim=1)


def _by_shape(shapes: Sequence[Any]) -> list[list[int]]:
    """Positions grouped by equal shape, groups in order of first appearance."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, s in enumerate(shapes):
        groups.setdefault(tuple(s), []).append(i)
    return list(groups.values())
