"""Optional self-supervised pretraining of a backbone on the unlabeled pool (needs ``lightly``).

Where no pretrained weights suit the images (microscopy, X-ray, ...), the backbone can
first learn from the unlabeled pool itself with SimSiam (Chen & He, 2021, "Exploring
Simple Siamese Representation Learning"), SimCLR (Chen et al., 2020, "A Simple
Framework for Contrastive Learning of Visual Representations") or DINO (Caron et al.,
ICCV 2021, "Emerging Properties in Self-Supervised Vision Transformers"), implemented
with the ``lightly`` library. The result is a state-dict file; pass it to
``create_model(name, backbone_weights=file)`` so its embeddings feed the fast path (the
file's hash is part of the embedding-cache key).

Pretraining is resumable: after every epoch the whole state (body, heads, DINO's
teacher, optimizer, learning-rate schedule, the loss's state, the epoch, the RNG states
and the settings that must match) is written atomically to :func:`checkpoint_path`, so
an interrupted run (Ctrl-C) keeps its last finished epoch and ``resume=True`` goes on
from there, giving the same weights as an uninterrupted run on the same device.

``lightly`` is not a dependency: ``pip install 'activelab[ssl]'`` (or ``pip install lightly``) first.
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
import random
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from activelab._io import atomic_path
from activelab.exceptions import InputError, MissingDependencyError
from activelab.models.backbones import BackboneSpec, Body, build_body
from activelab.models.base import PathLike, check_paths, pick_device, seeded
from activelab.models.images import ImageDataset
from activelab.models.registry import find_model
from activelab.progress import progress_task

METHODS = ("simsiam", "simclr", "dino")
#: the learning rate when none is given: SGD for SimSiam / SimCLR, AdamW for DINO (lightly's examples)
DEFAULT_LR = {"simsiam": 0.05, "simclr": 0.05, "dino": 1e-3}
#: DINO's multi-crop: two global views at the input size and this many local ones at 3/7 of it (96 of 224 px)
DINO_LOCAL_VIEWS = 6
CHECKPOINT_VERSION = 1


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


def checkpoint_path(out: PathLike) -> Path:
    """Where pretraining into ``out`` keeps its resumable state: ``out`` with the suffix ``.ckpt``."""
    return Path(os.fspath(out)).with_suffix(".ckpt")


@dataclass(frozen=True)
class EpochDone:
    """What one finished epoch reports to ``on_epoch``: losses are the mean over its batches."""

    epoch: int
    epochs: int
    loss: float
    seconds: float  # training time so far, earlier (resumed) runs included


def checkpoint_summary(out: PathLike) -> dict[str, Any]:
    """``{"epoch", "losses", "seconds", "config"}`` of the checkpoint beside ``out`` (memory-mapped, cheap)."""
    ckpt = torch.load(checkpoint_path(out), map_location="cpu", weights_only=True, mmap=True)
    return {k: ckpt[k] for k in ("epoch", "losses", "seconds", "config")}


def _takes_size(body: Body, size: int) -> bool:
    """Whether ``body`` runs on ``size``-px inputs (a forward pass of zeros in eval mode: no RNG drawn)."""
    was = body.module.training
    body.module.eval()
    try:
        with torch.no_grad():
            body(torch.zeros(1, 3, size, size))
        return True
    except RuntimeError:
        return False
    finally:
        body.module.train(was)


# --- the methods --------------------------------------------------------------------


class _Method:
    """One method's augmentation, heads, loss and step: ``loss(views)`` for a batch of views."""

    def __init__(self, method: str, body: Body, epochs_hint: int) -> None:
        from lightly.loss import DINOLoss, NegativeCosineSimilarity, NTXentLoss
        from lightly.models.modules import (
            DINOProjectionHead,
            SimCLRProjectionHead,
            SimSiamPredictionHead,
            SimSiamProjectionHead,
        )
        from lightly.models.utils import deactivate_requires_grad
        from lightly.transforms import DINOTransform, SimCLRTransform, SimSiamTransform

        self.method, self.body = method, body
        pre = body.preprocess
        norm = {"mean": list(pre.mean), "std": list(pre.std)}
        self.teacher: torch.nn.Module | None = None
        self.transform: Any  # PIL image -> list of views
        if method == "simsiam":
            self.transform = SimSiamTransform(input_size=pre.size, normalize=norm)
            self.proj: torch.nn.Module = SimSiamProjectionHead(body.dim, 512, 128)
            self.pred: torch.nn.Module = SimSiamPredictionHead(128, 64, 128)
            self.criterion: torch.nn.Module = NegativeCosineSimilarity()
        elif method == "simclr":
            self.transform = SimCLRTransform(input_size=pre.size, normalize=norm)
            self.proj = SimCLRProjectionHead(body.dim, 512, 128)
            self.pred = torch.nn.Identity()
            self.criterion = NTXentLoss()
        else:  # dino: a student (body + head) and its momentum teacher; the teacher sees the global views only
            local = max(8, pre.size * 3 // 7)
            if not _takes_size(body, local):  # e.g. efficientnet_lite0: its "same" padding is fixed to the input size
                local = pre.size  # local crops still cover 5-40 % of the image, at the global resolution
            self.transform = DINOTransform(
                global_crop_size=pre.size, local_crop_size=local, n_local_views=DINO_LOCAL_VIEWS, normalize=norm
            )
            with warnings.catch_warnings():  # lightly's head uses torch's deprecated weight_norm: not ours to fix
                warnings.filterwarnings("ignore", message=".*weight_norm.*", category=FutureWarning)
                self.proj = DINOProjectionHead(body.dim, 512, 64, 2048, freeze_last_layer=1)
                t_head = DINOProjectionHead(body.dim, 512, 64, 2048)
            self.teacher = torch.nn.ModuleList([copy.deepcopy(body.module), t_head])
            self.teacher[1].load_state_dict(self.proj.state_dict())
            deactivate_requires_grad(self.teacher)
            self.pred = torch.nn.Identity()
            self.criterion = DINOLoss(output_dim=2048, warmup_teacher_temp_epochs=min(5, epochs_hint))
        parts = [body.module, self.proj, self.pred] + ([self.teacher] if self.teacher is not None else [])
        self.modules = torch.nn.ModuleList(parts)

    def optimizer(self, lr: float) -> torch.optim.Optimizer:
        params = [p for p in self.modules.parameters() if p.requires_grad]
        if self.method == "dino":
            return torch.optim.AdamW(params, lr=lr, weight_decay=0.04)
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=5e-4)

    def loss(self, views: list[torch.Tensor], epoch: int) -> torch.Tensor:
        """The batch's loss; ``epoch`` counts from 0 (DINO's teacher-temperature warm-up reads it)."""
        body, proj = self.body, self.proj
        if self.method == "simsiam":
            z0, z1 = proj(body(views[0])), proj(body(views[1]))
            return 0.5 * (self.criterion(self.pred(z0), z1.detach()) + self.criterion(self.pred(z1), z0.detach()))
        if self.method == "simclr":
            return self.criterion(proj(body(views[0])), proj(body(views[1])))
        assert self.teacher is not None
        t_body, t_head = self.teacher[0], self.teacher[1]
        with torch.no_grad():
            teacher_out = [t_head(body.features(t_body, v)) for v in views[:2]]
        student_out = [proj(body(v)) for v in views]
        return self.criterion(teacher_out, student_out, epoch=epoch)

    def after_backward(self, epoch: int) -> None:
        if self.method == "dino":  # DINO keeps the head's last layer fixed during the first epoch
            self.proj.cancel_last_layer_gradients(current_epoch=epoch)

    def after_step(self, step: int, total: int) -> None:
        """DINO: move the teacher towards the student, momentum 0.996 -> 1 on a cosine schedule (per step)."""
        if self.teacher is None:
            return
        from lightly.models.utils import update_momentum
        from lightly.utils.scheduler import cosine_schedule

        m = cosine_schedule(step - 1, total, 0.996, 1.0)  # step counts from 1; lightly's from 0
        update_momentum(self.body.module, self.teacher[0], m=m)
        update_momentum(self.proj, self.teacher[1], m=m)

    def backbone_state(self) -> dict[str, torch.Tensor]:
        """The weights to write: the body's, or for DINO the teacher's (the paper evaluates the teacher)."""
        module = self.teacher[0] if self.teacher is not None else self.body.module
        return {k: v.detach().cpu() for k, v in module.state_dict().items()}


# --- RNG state in a checkpoint (tensors and numbers only, so torch.load(weights_only=True) reads it) --------


def _rng_state(loader_rng: torch.Generator, dev: str) -> dict[str, Any]:
    _kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if dev.startswith("cuda") else [],
        "loader": loader_rng.get_state(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "python": {
            "version": int(version),
            "internal": torch.tensor(internal, dtype=torch.int64),
            "gauss_next": gauss_next,
        },
    }


def _set_rng_state(state: dict[str, Any], loader_rng: torch.Generator, dev: str) -> None:
    torch.set_rng_state(state["torch"])
    if dev.startswith("cuda") and state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])
    loader_rng.set_state(state["loader"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["internal"].tolist()), p["gauss_next"]))


def _check_config(saved: dict[str, Any], now: dict[str, Any], where: Path) -> None:
    diffs = [f"{k}: {saved.get(k)!r} then, {now[k]!r} now" for k in now if saved.get(k) != now[k]]
    if diffs:
        raise InputError(
            f"cannot resume from {where}: it was made with other settings ({'; '.join(diffs)}); "
            "run with the same settings, or start over with --restart (resume=False)"
        )


def _images_digest(paths: Sequence[str]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(os.fspath(p).encode() + b"\n")
    return h.hexdigest()[:16]


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
    lr: float | None = None,
    device: str | None = None,
    seed: int = 0,
    progress: bool = False,
    resume: bool = False,
    on_epoch: Callable[[EpochDone], None] | None = None,
) -> Path:
    """Train ``name``'s backbone self-supervised on ``paths``; write its state dict to ``out``.

    Starts from the pretrained weights when ``pretrained`` (else random; ``small_cnn`` is
    always random). SimSiam / SimCLR: each image gives two augmented views (lightly's
    transforms at the body's input size and normalisation), SGD with momentum. DINO: two
    global and :data:`DINO_LOCAL_VIEWS` local views, a momentum teacher (0.996 -> 1,
    cosine), AdamW; the teacher's backbone is written. All use a cosine learning-rate
    schedule over ``epochs`` (``lr`` None: :data:`DEFAULT_LR`). Batches are of
    ``min(batch_size, len(paths))`` images; a last, smaller batch is dropped (a batch of
    one breaks BatchNorm and contrastive losses want large batches).

    After every epoch the state goes to :func:`checkpoint_path` (atomically). With
    ``resume`` and a checkpoint there, training goes on from its epoch to ``epochs``
    (the schedule stretched to the new total); its settings (model, method, input size,
    batch size, lr, seed, images) must match, else InputError names the difference.
    ``on_epoch`` runs after each finished epoch. Returns ``out``, written atomically, which
    ``create_model(name, image_size=..., backbone_weights=out)`` loads over the body.
    Raises InputError for an unknown method or name, fewer than 2 images, a checkpoint
    already past ``epochs``, or a loss that became NaN/inf (lower ``lr``).
    """
    _require_lightly()
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
    lr = float(DEFAULT_LR[method] if lr is None else lr)
    epochs = int(epochs)
    spec = BackboneSpec(source=entry.source, name=arch, pretrained=pretrained and entry.pretrained,
                        image_size=image_size)  # fmt: skip
    dev = pick_device(device)
    bs = min(int(batch_size), len(ps))
    ckpt_file = checkpoint_path(out)
    if not resume:  # a fresh start: an interrupted one must not leave the old run to resume
        ckpt_file.unlink(missing_ok=True)
    ckpt = torch.load(ckpt_file, map_location="cpu", weights_only=True) if ckpt_file.exists() else None
    with seeded(seed, dev), _global_rngs_seeded(seed):
        body = build_body(spec)
        if not any(p.requires_grad for p in body.module.parameters()):
            raise InputError(f"{name!r} has no weights to learn (e.g. raw pixels): pretrain a network instead")
        config = {
            "model": name,
            "method": method,
            "pretrained": spec.pretrained,
            "image_size": body.preprocess.size,
            "batch_size": bs,
            "lr": lr,
            "seed": int(seed),
            "images": len(ps),
            "images_digest": _images_digest(ps),
        }
        if ckpt is not None:
            _check_config(ckpt["config"], config, ckpt_file)
            if ckpt["epoch"] > epochs:
                raise InputError(
                    f"{ckpt_file} has {ckpt['epoch']} epochs already, more than the {epochs} asked; "
                    f"ask for at least {ckpt['epoch']} epochs, or start over with --restart (resume=False)"
                )
        m = _Method(method, body, epochs)
        m.modules.to(dev)
        g = torch.Generator()
        g.manual_seed(int(seed))
        loader = torch.utils.data.DataLoader(
            ImageDataset(ps, transform=m.transform), batch_size=bs, shuffle=True, generator=g, drop_last=True,
            pin_memory=dev.startswith("cuda"))  # fmt: skip
        total = max(1, epochs * len(loader))
        opt = m.optimizer(lr)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
        )
        done, seconds, losses = 0, 0.0, []
        if ckpt is not None:
            m.modules.load_state_dict(ckpt["modules"])
            m.criterion.load_state_dict(ckpt["criterion"])
            opt.load_state_dict(ckpt["optimizer"])
            sched.load_state_dict(ckpt["scheduler"])
            done, seconds, losses = int(ckpt["epoch"]), float(ckpt["seconds"]), list(ckpt["losses"])
            _set_rng_state(ckpt["rng"], g, dev)
        del ckpt
        m.modules.train()  # DINO's teacher too: its BatchNorm statistics come from its own forward passes
        shown = ExitStack()
        bar = shown.enter_context(
            progress_task(progress, f"{method} pretraining {name}", total=(epochs - done) * len(loader), unit="batch")
        )
        try:
            for epoch in range(done + 1, epochs + 1):
                start, running = time.perf_counter(), 0.0
                for views in loader:
                    views = [v.to(dev, non_blocking=True) for v in views]
                    loss = m.loss(views, epoch - 1)
                    if not torch.isfinite(loss):
                        raise InputError(
                            f"{method} pretraining of {name} diverged (loss {float(loss)} in epoch {epoch}); "
                            f"lower lr (now {lr})"
                        )
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    m.after_backward(epoch - 1)
                    opt.step()
                    sched.step()
                    m.after_step(sched.last_epoch, total)
                    running += float(loss.detach())
                    bar.advance(1)
                    bar.describe(
                        f"{method} pretraining {name}: epoch {epoch}/{epochs}, loss {float(loss.detach()):.4f}"
                    )
                seconds += time.perf_counter() - start
                losses.append(running / max(1, len(loader)))
                state = {
                    "version": CHECKPOINT_VERSION,
                    "config": config,
                    "epoch": epoch,
                    "epochs": epochs,
                    "seconds": seconds,
                    "losses": losses,
                    "modules": m.modules.state_dict(),
                    "criterion": m.criterion.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "rng": _rng_state(g, dev),
                }
                with atomic_path(ckpt_file) as tmp:
                    torch.save(state, tmp)
                if on_epoch is not None:
                    on_epoch(EpochDone(epoch, epochs, losses[-1], seconds))
        finally:
            shown.close()
        weights = m.backbone_state()
    with atomic_path(out) as tmp:
        torch.save(weights, tmp)
    return Path(os.fspath(out))
