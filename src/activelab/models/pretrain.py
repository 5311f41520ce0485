"""Optional self-supervised pretraining of a backbone on the unlabeled pool (needs ``lightly``).

Where no pretrained weights suit the images (microscopy, X-ray, ...), the backbone can
first learn from the unlabeled pool itself with SimSiam (Chen & He, 2021, "Exploring
Simple Siamese Representation Learning") or SimCLR (Chen et al., 2020, "A Simple
Framework for Contrastive Learning of Visual Representations"), implemented with the
``lightly`` library. The result is a state-dict file; pass it to
``create_model(name, backbone_weights=file)`` so its embeddings feed the fast path (the
file's hash is part of the embedding-cache key).

``lightly`` is not a dependency: ``pip install lightly`` first.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from activelab.exceptions import InputError
from activelab.models.backbones import BackboneSpec, build_body
from activelab.models.base import MissingDependencyError, PathLike, check_paths, pick_device, seeded
from activelab.models.images import ImageDataset, make_loader
from activelab.models.registry import parse_name

METHODS = ("simsiam", "simclr")


def _require_lightly() -> Any:
    try:
        import lightly
    except ImportError as e:
        raise MissingDependencyError(
            "self-supervised pretraining needs the `lightly` package: pip install lightly "
            "(or skip pretraining and use the packaged efficientnet_lite0 ImageNet weights)"
        ) from e
    return lightly


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

    Starts from the pretrained weights when ``pretrained`` (else random). Returns ``out``.
    """
    _require_lightly()
    from lightly.loss import NegativeCosineSimilarity, NTXentLoss
    from lightly.models.modules import SimCLRProjectionHead, SimSiamPredictionHead, SimSiamProjectionHead
    from lightly.transforms import SimCLRTransform, SimSiamTransform
    from tqdm.auto import tqdm

    if method not in METHODS:
        raise InputError(f"unknown pretraining method {method!r}; expected one of {', '.join(METHODS)}")
    ps = check_paths(paths)
    if len(ps) < 2:
        raise InputError("self-supervised pretraining needs at least 2 images")
    source, arch = parse_name(name)
    if source == "small_cnn":
        pretrained = False
    spec = BackboneSpec(source=source, name=arch, pretrained=pretrained, image_size=image_size)
    dev = pick_device(device)
    with seeded(seed, dev):
        body = build_body(spec)
        pre = body.preprocess
        norm = {"mean": list(pre.mean), "std": list(pre.std)}
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
        loader = make_loader(ImageDataset(ps, transform=transform), batch_size=batch_size, shuffle=True, seed=seed)
        opt = torch.optim.SGD(modules.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
        modules.train()
        for _ in tqdm(range(epochs), desc=f"{method} pretraining", disable=not progress):
            for views in loader:
                x0, x1 = views[0].to(dev), views[1].to(dev)
                z0, z1 = proj(body(x0)), proj(body(x1))
                if method == "simsiam":
                    loss = 0.5 * (criterion(pred(z0), z1.detach()) + criterion(pred(z1), z0.detach()))
                else:
                    loss = criterion(z0, z1)
                opt.zero_grad()
                loss.backward()
                opt.step()
    target = Path(os.fspath(out))
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in body.module.state_dict().items()}, target)
    return target
