"""Reading image files for the models: PIL -> RGB -> resized, normalised tensors."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from activelab.data.images import load_rgb

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocess:
    """How images are turned into a model's input tensor.

    Evaluation: resize the whole image to ``size x size`` (no crop, so small objects
    near the border are kept), scale to [0, 1], normalise with ``mean`` / ``std``.
    Training (full path, ``augment=True``): random resized crop (scale 0.7-1) and, if
    ``hflip``, a random horizontal flip, then the same normalisation. FixMatch's strong
    view (:meth:`strong_transform`) adds RandAugment and Cutout to that.
    """

    size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"

    @property
    def id(self) -> str:
        """A string naming this preprocessing, part of the embedding-cache key."""
        m = ",".join(f"{v:.4f}" for v in self.mean)
        s = ",".join(f"{v:.4f}" for v in self.std)
        return f"size={self.size};mean={m};std={s};interp={self.interpolation}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocess:
        return cls(
            size=int(d["size"]),
            mean=tuple(float(v) for v in d["mean"]),  # type: ignore[arg-type]
            std=tuple(float(v) for v in d["std"]),  # type: ignore[arg-type]
            interpolation=str(d.get("interpolation", "bilinear")),
        )

    def _interp(self) -> Any:
        from torchvision.transforms import InterpolationMode

        return {
            "bilinear": InterpolationMode.BILINEAR,
            "bicubic": InterpolationMode.BICUBIC,
            "nearest": InterpolationMode.NEAREST,
        }.get(self.interpolation, InterpolationMode.BILINEAR)

    def eval_transform(self) -> Callable[[Image.Image], torch.Tensor]:
        from torchvision import transforms as T

        return T.Compose(
            [
                T.Resize((self.size, self.size), interpolation=self._interp(), antialias=True),
                T.ToTensor(),
                T.Normalize(self.mean, self.std),
            ]
        )

    def train_transform(self, *, augment: bool = True, hflip: bool = True) -> Callable[[Image.Image], torch.Tensor]:
        from torchvision import transforms as T

        if not augment:
            return self.eval_transform()
        steps: list[Any] = [
            T.RandomResizedCrop(
                (self.size, self.size),
                scale=(0.7, 1.0),
                ratio=(0.85, 1.18),
                interpolation=self._interp(),
                antialias=True,
            )
        ]
        if hflip:
            steps.append(T.RandomHorizontalFlip())
        steps += [T.ToTensor(), T.Normalize(self.mean, self.std)]
        return T.Compose(steps)

    def strong_transform(
        self, *, hflip: bool = True, num_ops: int = 2, magnitude: int = 10
    ) -> Callable[[Image.Image], torch.Tensor]:
        """FixMatch's strong augmentation (Sohn et al., NeurIPS 2020): the weak view's crop
        (and flip), then RandAugment (``num_ops`` random operations at ``magnitude`` of 31
        levels), normalisation, and Cutout (one erased square of 2-25 % of the image, set
        to the mean). Returns a (3, size, size) float tensor; randomness from torch's RNG."""
        from torchvision import transforms as T

        weak = self.train_transform(augment=True, hflip=hflip)
        assert isinstance(weak, T.Compose)
        geometric = weak.transforms[:-2]  # crop (+ flip), before ToTensor / Normalize
        return T.Compose(
            [
                *geometric,
                T.RandAugment(num_ops=num_ops, magnitude=magnitude, interpolation=self._interp()),
                T.ToTensor(),
                T.Normalize(self.mean, self.std),
                T.RandomErasing(p=1.0, scale=(0.02, 0.25), ratio=(1.0, 1.0), value=0),
            ]
        )


class TwoViews:
    """A transform giving ``(weak(image), strong(image))``: FixMatch's pair of views of one unlabeled image."""

    def __init__(
        self, weak: Callable[[Image.Image], torch.Tensor], strong: Callable[[Image.Image], torch.Tensor]
    ) -> None:
        self.weak = weak
        self.strong = strong

    def __call__(self, image: Image.Image) -> tuple[torch.Tensor, torch.Tensor]:
        return self.weak(image), self.strong(image)


class ImageDataset(Dataset):  # type: ignore[type-arg]
    """A torch Dataset over image paths; items are ``transform(image)`` or ``(transform(image), label)``
    (a tensor, or a pair of views with :class:`TwoViews`).

    ``labels``: (N,) class positions, or an (N, C) 0/1 matrix (multi-label), whose rows
    are the items' float32 target vectors.
    """

    def __init__(
        self,
        paths: Sequence[str],
        labels: Sequence[int] | np.ndarray | None = None,
        transform: Callable[[Image.Image], Any] | None = None,
    ) -> None:
        self.paths = list(paths)
        self.labels: torch.Tensor | None = None
        if labels is not None:
            arr = np.asarray(labels)
            self.labels = torch.from_numpy(arr.astype(np.float32) if arr.ndim == 2 else arr.astype(np.int64))
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> Any:
        im = load_rgb(self.paths[i])
        x = self.transform(im) if self.transform is not None else im
        if self.labels is None:
            return x
        return x, self.labels[i]


def make_loader(
    dataset: Dataset,  # type: ignore[type-arg]
    *,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    num_workers: int = 0,
    device: str = "cpu",
) -> torch.utils.data.DataLoader:  # type: ignore[type-arg]
    """A DataLoader with an explicit, seeded generator for shuffling."""
    g = torch.Generator()
    g.manual_seed(int(seed))
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=g if shuffle else None,
        num_workers=num_workers,
        pin_memory=device.startswith("cuda"),
        persistent_workers=False,
    )
