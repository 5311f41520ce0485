"""Optional self-supervised pretraining of a backbone on the unlabeled pool (needs ``lightly``).

Where no pretrained weights suit the images (microscopy, X-ray, ...), the backbone can
first learn from the unlabeled pool itself with SimSiam (Chen & He, 2021, "Exploring
Simple Siamese Representation Learning") or SimCLR (Chen et al., 2020, "A Simple
Framework for Contrastive Learning of Visual Representations"), implemented with the
``lightly`` library. The result is a state-dict file; pass it to
``create_model(name, backbone_weights=file)`` so its embeddings feed the fast path (the
file's hash is part of the embedding-cache key).

``lightly`` is not a dependency: ``pip install 'activelab[ssl]'`` (or ``pip install lightly``) first.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from activelab._io import atomic_path
from activelab.exceptions import InputError, MissingDependencyError
from activelab.models.backbones import BackboneSpec, build_body
from activelab.models.base import PathLike, check_paths, pick_device, seeded
from activelab.models.images import ImageDataset
from activelab.models.registry import find_model
from activelab.progress import progress_task

METHODS = ("simsiam", "simclr")


def _require_lightly() -> Any:
    try:
        import lightly
    except ImportError as e:
        raise MissingDependencyError(
            "self-supervised pretraining needs the `lightly` package: pip install lightly (the extra 'activelab[ssl]') "
            "(or skip pretraining and use the packaged efficientnet_lite0 ImageNet weights)"
        ) from e
    return lightly


@contextmanager
def _global_rngs_seeded(seed: int) -> Iterator[None]:
    """Seed NumPy's and Python's global RNGs for a block, restoring them after.

    lightly's augmentations (GaussianBlur, RandomSolarization, RandomRotate) draw from
    ``np.random``'s global state, which :func:`~activelab.models.base.seeded` (torch's
    RNG only) does not cover; without this, the same seed gives different weights.
    """
    np_state, py_state = np.random.get_state(), random.getstate()
    np.random.seed(int(seed) % 2**32)
    random.seed(int(seed))
    try:
        yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)


def pretrain_backbone(
    name: str,
    paths: Sequence[PathLike],
    out: PathLike,
    *,
    method: str = "simsiam",
    pretrained: bool = True,
    image_size: int | None = None,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 0.05,
    device: str | None = None,
    seed: int = 0,
    progress: bool = False,
) -> Path:
    """Train ``name``'s backbone self-supervised on ``paths``; write its state dict to ``out``.

    Starts from the pretrained weights when ``pretrained`` (else random; ``small_cnn`` is
    always random). Each image gives two augmented views (lightly's ``SimSiamTransform`` /
    ``SimCLRTransform`` at the body's input size and normalisation); SGD with momentum
    and a cosine learning-rate schedule. Batches are of ``min(batch_size, len(paths))``
    images; a last, smaller batch is dropped (a batch of one breaks BatchNorm and
    contrastive losses want large batches). Returns ``out``, written atomically, which
    ``create_model(name, image_size=..., backbone_weights=out)`` loads over the body.
    Raises InputError for an unknown method or name, fewer than 2 images, or a loss that
    became NaN/inf (lower ``lr``).
    """
    _require_lightly()
    from lightly.loss import NegativeCosineSimilarity, NTXentLoss
    from lightly.models.modules import SimCLRProjectionHead, SimSiamPredictionHead, SimSiamProjectionHead
    from lightly.transforms import SimCLRTransform, SimSiamTransform

    if method not in METHODS:
        raise InputError(f"unknown pretraining method {method!r}; expected one of {', '.join(METHODS)}")
    if int(epochs) < 1 or int(batch_size) < 2:
        raise InputError(f"epochs must be >= 1 and batch_size >= 2, got epochs={epochs}, batch_size={batch_size}")
    ps = check_paths(paths)
    if len(ps) < 2:
        raise InputError("self-supervised pretraining needs at least 2 images")
    entry, arch = find_model(name)
    if entry.body is None:
        raise InputError(
            f"{name!r} has no backbone to pretrain here; use efficientnet_lite0, small_cnn, timm, torchvision or hf"
        )
    spec = BackboneSpec(source=entry.source, name=arch, pretrained=pretrained and entry.pretrained,
                        image_size=image_size)  # fmt: skip
    dev = pick_device(device)
    bs = min(int(batch_size), len(ps))
    with seeded(seed, dev), _global_rngs_seeded(seed):
        body = build_body(spec)
        pre = body.preprocess
        norm = {"mean": list(pre.mean), "std": list(pre.std)}
        transform: Any  # PIL image -> [view0, view1]
        if method == "simsiam":
            transform = SimSiamTransform(input_size=pre.size, normalize=norm)
            proj: torch.nn.Module = SimSiamProjectionHead(body.dim, 512, 128)
            pred: torch.nn.Module = SimSiamPredictionHead(128, 64, 128)
            criterion: torch.nn.Module = NegativeCosineSimilarity()
        else:
            transform = SimCLRTransform(input_size=pre.size, normalize=norm)
            proj = SimCLRProjectionHead(body.dim, 512, 128)
            pred = torch.nn.Identity()
            criterion = NTXentLoss()
        modules = torch.nn.ModuleList([body.module, proj, pred]).to(dev)
        g = torch.Generator()
        g.manual_seed(int(seed))
        loader = torch.utils.data.DataLoader(
            ImageDataset(ps, transform=transform), batch_size=bs, shuffle=True, generator=g, drop_last=True,
            pin_memory=dev.startswith("cuda"))  # fmt: skip
        opt = torch.optim.SGD(modules.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, int(epochs) * len(loader)))
        modules.train()
        shown = ExitStack()
        bar = shown.enter_context(
            progress_task(progress, f"{method} pretraining {name}", total=int(epochs) * len(loader), unit="batch")
        )
        try:
            for epoch in range(1, int(epochs) + 1):
                for views in loader:
                    x0, x1 = views[0].to(dev, non_blocking=True), views[1].to(dev, non_blocking=True)
                    z0, z1 = proj(body(x0)), proj(body(x1))
                    if method == "simsiam":
                        loss = 0.5 * (criterion(pred(z0), z1.detach()) + criterion(pred(z1), z0.detach()))
                    else:
                        loss = criterion(z0, z1)
                    if not torch.isfinite(loss):
                        raise InputError(
                            f"{method} pretraining of {name} diverged (loss {float(loss)} in epoch {epoch}); "
                            f"lower lr (now {lr})"
                        )
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
                    bar.advance(1)
                    bar.describe(f"{method} pretraining {name}: epoch {epoch}, loss {float(loss.detach()):.4f}")
        finally:
            shown.close()
    with atomic_path(out) as tmp:
        torch.save({k: v.detach().cpu() for k, v in body.module.state_dict().items()}, tmp)
    return Path(os.fspath(out))
