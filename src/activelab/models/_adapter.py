"""The one base of the adapters (frozen, finetune, fastai) and the plumbing they share."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from activelab._io import atomic_path
from activelab.exceptions import InputError, NotFittedError
from activelab.models.backbones import BackboneSpec
from activelab.models.base import (
    FORMAT_VERSION,
    OUTPUTS,
    FitReport,
    PathLike,
    check_format,
    check_label_matrix,
    check_labels,
    check_paths,
    finish_probs,
    grad_embedding,
)
from activelab.models.images import ImageDataset, Preprocess, make_loader
from activelab.progress import Progress, track


def init_classes(classes: Sequence[str] | None, num_classes: int | None) -> list[str]:
    """Class names from ``classes`` or ``num_classes`` (names "0".."C-1"); [] if neither."""
    if classes is not None:
        if isinstance(classes, str):
            raise InputError("classes must be a sequence of class names, not one string")
        names = [str(c) for c in classes]
        if len(set(names)) != len(names):
            raise InputError(f"class names must be unique, got {names}")
        if num_classes is not None and int(num_classes) != len(names):
            raise InputError(f"num_classes={num_classes} but {len(names)} class names were given")
        return names
    if num_classes is not None:
        if int(num_classes) < 1:
            raise InputError(f"num_classes must be >= 1, got {num_classes}")
        return [str(i) for i in range(int(num_classes))]
    return []


def merge_options(options: dict[str, Any], defaults: dict[str, Any], what: str) -> dict[str, Any]:
    """``defaults`` updated with ``options``; unknown option names raise InputError listing the known ones."""
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise InputError(f"unknown option(s) for {what}: {', '.join(unknown)}; known: {', '.join(sorted(defaults))}")
    return {**defaults, **options}


#: the adapters' two ways of training: a frozen backbone under a light head, or the whole network fine-tuned
MODES: tuple[str, ...] = ("frozen", "finetune")
#: the older names of the modes (``path="fast" | "full"``), still accepted
PATH_OF_MODE: dict[str, str] = {"frozen": "fast", "finetune": "full"}


class AdapterBase:
    """What every adapter shares: construction, output activation, fit checks, MC dropout, save/load framing.

    Subclasses set ``kind``, ``mode`` and ``defaults`` (their options, to which
    ``output`` is added) and implement the maths.
    """

    kind: ClassVar[str] = ""
    mode: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}

    name: str
    spec: BackboneSpec
    classes: list[str]
    options: dict[str, Any]
    #: set by adapters whose model is one module (detectors, segmenters): :meth:`_save_weights` checks it
    fitted: bool

    def __init__(
        self,
        spec: BackboneSpec,
        *,
        classes: Sequence[str] | None,
        num_classes: int | None,
        device: str | None,
        options: dict[str, Any],
    ) -> None:
        self.options = merge_options(options, {"output": "softmax", **self.defaults}, f"the {self.kind} adapter")
        if self.options["output"] not in OUTPUTS:
            raise InputError(
                f"output must be one of {', '.join(map(repr, OUTPUTS))} (sigmoid: multi-label), "
                f"got {self.options['output']!r}"
            )
        self.spec = spec
        self.name = spec.display_name
        self.classes = init_classes(classes, num_classes)
        self._device_arg = device
        self.device = device or "cpu"  # resolved when the network is built

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, classes={len(self.classes)}, options={self.options})"

    @property
    def path(self) -> str:
        """The older name of :attr:`mode`: ``"fast"`` (frozen) or ``"full"`` (finetune)."""
        return PATH_OF_MODE[self.mode]

    @property
    def output(self) -> str:
        """``"softmax"`` (one class per image) or ``"sigmoid"`` (independent classes, multi-label)."""
        return str(self.options["output"])

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def config(self) -> dict[str, Any]:
        """JSON-serialisable: ``name``, ``mode``, ``output``, backbone spec, classes and options."""
        return {
            "name": self.name,
            "mode": self.mode,
            "output": self.output,
            "backbone": self.spec.to_dict(),
            "classes": list(self.classes),
            "options": dict(self.options),
        }

    # --- fitting -----------------------------------------------------------------

    def _fit_inputs(
        self, paths: Sequence[PathLike], labels: Any, keys: Sequence[str] | None
    ) -> tuple[list[str], np.ndarray]:
        """Checked paths and targets: (N,) int64 class positions, or (N, C) float32 0/1 for sigmoid.

        Without classes, they become ``"0".."C-1"`` from the labels.
        """
        ps = check_paths(paths, keys)
        if self.output == "sigmoid":
            y = check_label_matrix(labels, len(ps), self.n_classes or None)
            n = y.shape[1]
        else:
            y = check_labels(labels, len(ps), self.n_classes or None)
            n = int(y.max()) + 1
        if not self.classes:
            self.classes = [str(i) for i in range(n)]
        return ps, y

    def _loss(self, label_smoothing: float = 0.0) -> nn.Module:
        """Cross-entropy for softmax; binary cross-entropy per class (mean over entries) for sigmoid."""
        if self.output == "sigmoid":
            return SmoothedBCE(label_smoothing)
        return nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    # --- outputs -------------------------------------------------------------------

    def _activate(self, logits: torch.Tensor) -> torch.Tensor:
        """Probabilities from logits (float32): softmax over classes, or a sigmoid per class."""
        z = logits.float()
        return torch.sigmoid(z) if self.output == "sigmoid" else torch.softmax(z, dim=-1)

    def _finish(self, p: np.ndarray) -> np.ndarray:
        return finish_probs(p, self.output)

    def _grad_embed(self, probs: np.ndarray, hidden: np.ndarray) -> np.ndarray:
        return grad_embedding(probs, hidden, self.output)

    def _mc_samples(self, module: nn.Module, sample: Callable[[], torch.Tensor], n_samples: int) -> torch.Tensor:
        """(T, B, C) probabilities of ``n_samples`` calls of ``sample()`` (logits) with ``module``'s dropout on.

        BatchNorm and everything else stay in eval mode (Gal & Ghahramani, 2016).
        """
        drops = [m for m in module.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
        for m in drops:
            m.train()
        try:
            return torch.stack([self._activate(sample()) for _ in range(n_samples)]).cpu()
        finally:
            for m in drops:
                m.eval()

    def _require_fitted(self, fitted: bool) -> None:
        if not fitted:
            raise NotFittedError(f"{self.name}: call fit(paths, labels) before predicting")

    # --- persistence ---------------------------------------------------------------

    def _payload(self) -> dict[str, Any]:
        return {
            "format": "activelab-model",
            "version": FORMAT_VERSION,
            "kind": self.kind,
            "name": self.name,
            "classes": list(self.classes),
            "spec": self.spec.to_dict(),
            "options": dict(self.options),
        }

    def _save_weights(self, path: PathLike, module: nn.Module, payload: dict[str, Any] | None = None) -> None:
        """Write the model file: ``payload`` (default :meth:`_payload`) plus ``module``'s weights on the CPU.

        For adapters whose whole model is one module built from the saved options (detectors,
        segmenters); :meth:`_load_weights` reads it back.
        """
        self._require_fitted(self.fitted)
        payload = self._payload() if payload is None else payload
        payload["state_dict"] = {k: v.detach().cpu() for k, v in module.state_dict().items()}
        self._write(path, payload)

    @classmethod
    def _load_weights(cls, path: PathLike, *, device: str | None, module: Callable[[Any], nn.Module]) -> Any:
        """A fitted ``cls`` rebuilt from a :meth:`_save_weights` file; ``module(adapter)`` is where the weights go.

        Built without downloading: the saved weights replace any pretrained ones. Weights that do
        not fit the rebuilt network are an InputError naming the file.
        """
        obj = cls._read(path, cls.kind)
        spec = BackboneSpec.from_dict(obj["spec"])
        adapter = cls(spec.name, classes=obj["classes"], image_size=spec.image_size, device=device,  # type: ignore[call-arg]
                      **obj["options"])  # fmt: skip
        try:
            module(adapter).load_state_dict(obj["state_dict"])
        except RuntimeError as e:
            raise InputError(f"{os.fspath(path)}: its weights do not fit {spec.name!r} ({e})") from e
        adapter.spec = spec
        adapter.fitted = True
        return adapter

    def _write(self, path: PathLike, payload: dict[str, Any]) -> None:
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)

    @staticmethod
    def _read(path: PathLike, kind: str | None) -> dict[str, Any]:
        p = os.fspath(path)
        if not os.path.exists(p):
            from activelab.exceptions import NotFoundError

            raise NotFoundError(f"model file not found: {p}")
        try:
            obj = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:
            raise InputError(f"{p} is not a readable activelab model file ({e})") from e
        return check_format(obj, p, kind)


class SmoothedBCE(nn.Module):
    """Binary cross-entropy on logits, mean over all (image, class) entries; targets pulled towards 0.5
    by ``smoothing`` (the multi-label form of label smoothing)."""

    def __init__(self, smoothing: float = 0.0) -> None:
        super().__init__()
        self.smoothing = float(smoothing)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        t = target.float() * (1 - self.smoothing) + 0.5 * self.smoothing
        return nn.functional.binary_cross_entropy_with_logits(logits.float(), t)


def fit_report(
    *,
    n_train: int,
    n_val: int,
    history: Sequence[dict[str, float]],
    best_epoch: int,
    seconds: float,
    device: str,
    cache_hits: int = 0,
    cache_misses: int = 0,
    n_unlabeled: int = 0,
    semi_supervised: str = "none",
) -> FitReport:
    """A FitReport whose losses and accuracy are those of ``history[best_epoch - 1]``."""
    best = history[best_epoch - 1] if history else {"train_loss": float("nan")}
    return FitReport(
        n_train=n_train,
        n_val=n_val,
        epochs=len(history),
        best_epoch=best_epoch,
        train_loss=best["train_loss"],
        val_loss=best.get("val_loss"),
        val_accuracy=best.get("val_accuracy"),
        seconds=seconds,
        device=device,
        cache_hits=cache_hits,
        cache_misses=cache_misses,
        history=tuple(history),
        n_unlabeled=n_unlabeled,
        semi_supervised=semi_supervised,
    )


def split_validation(n: int, fraction: float, min_val: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, validation) positions: a seeded ``fraction`` held out, or none when under ``min_val``."""
    n_val = round(n * fraction) if fraction > 0 else 0
    if n_val < min_val or n - n_val < 1:
        return np.arange(n), np.arange(0)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def forward_images(
    fn: Any,
    paths: Sequence[str],
    preprocess: Preprocess,
    *,
    device: str,
    batch_size: int,
    num_workers: int,
    progress: Progress,
    desc: str,
    amp: bool = False,
) -> list[Any]:
    """Run ``fn(x)`` on every eval-transformed batch of ``paths``; list of per-batch outputs."""
    ds = ImageDataset(paths, transform=preprocess.eval_transform())
    loader = make_loader(ds, batch_size=batch_size, num_workers=num_workers, device=device)
    outs = []
    with torch.no_grad():
        for x in track(loader, progress, desc, unit="batch"):
            x = x.to(device, non_blocking=True)
            if amp and device.startswith("cuda"):
                with torch.autocast("cuda", dtype=torch.float16):
                    outs.append(fn(x))
            else:
                outs.append(fn(x))
    return outs
