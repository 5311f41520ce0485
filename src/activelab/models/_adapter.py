"""Shared plumbing of the fast- and full-path adapters."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from activelab.exceptions import InputError
from activelab.models.backbones import BackboneSpec
from activelab.models.base import FORMAT_VERSION, NotFittedError, PathLike, check_format
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


class AdapterBase:
    """Classes, config, device, save/load framing; subclasses implement the maths."""

    kind: ClassVar[str] = ""
    path: ClassVar[str] = ""

    name: str
    spec: BackboneSpec
    classes: list[str]
    options: dict[str, Any]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, classes={len(self.classes)}, options={self.options})"

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def config(self) -> dict[str, Any]:
        """JSON-serialisable: ``name``, ``path``, backbone spec and options."""
        return {
            "name": self.name,
            "path": self.path,
            "backbone": self.spec.to_dict(),
            "classes": list(self.classes),
            "options": dict(self.options),
        }

    def _require_fitted(self, fitted: bool) -> None:
        if not fitted:
            raise NotFittedError(f"{self.name}: call fit(paths, labels) before predicting")

    def _classes_for_fit(self, labels: np.ndarray) -> None:
        if not self.classes:
            self.classes = [str(i) for i in range(int(labels.max()) + 1)]

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

    def _write(self, path: PathLike, payload: dict[str, Any]) -> None:
        p = Path(os.fspath(path))
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.tmp")
        torch.save(payload, tmp)
        os.replace(tmp, p)

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
