"""The finetune mode (the "full path"): fine-tune a whole network (timm / torchvision /
small_cnn / efficientnet_lite0 / Hugging Face) with augmentation, mixed precision on
CUDA, early stopping on a validation split and a checkpoint of the best epoch.

The network is the backbone body, then dropout, then a new linear classifier trained
with cross-entropy (``output="softmax"``) or binary cross-entropy per class
(``output="sigmoid"``, multi-label); each
``fit`` starts again from the pretrained (or seeded random) weights, the usual practice
in active learning (no warm-start bias from earlier rounds).

With ``semi_supervised="fixmatch"``, ``fit`` also trains on unlabeled images with
FixMatch (Sohn et al., NeurIPS 2020): a confident prediction on a weakly augmented view
becomes the target of the same image's strongly augmented view.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from activelab.exceptions import InputError, UnsupportedError
from activelab.models._adapter import AdapterBase, fit_report, forward_images, split_validation
from activelab.models.backbones import BackboneSpec, Body, build_body
from activelab.models.base import FitReport, PathLike, check_n_samples, check_paths, pick_device, seeded
from activelab.models.images import ImageDataset, Preprocess, TwoViews, make_loader
from activelab.progress import progress_task

#: options of the finetune mode and their defaults (plus ``output``: "softmax" | "sigmoid")
FULL_DEFAULTS: dict[str, Any] = {
    "epochs": 10,
    "min_steps": 0,  # at least this many optimiser steps: more epochs when the labeled set is tiny
    "lr": 1e-3,
    "batch_size": 32,
    "weight_decay": 1e-4,
    # AdamW's weight decay = this / n_train when set (overrides weight_decay): the penalty shrinks as labels
    # grow, as in Gal et al.'s (ICML 2017) code, which sets the L2 weight to a constant over the train-set size
    "weight_decay_per_label": None,
    "val_fraction": 0.1,  # held out for early stopping when >= min_val_size images result
    "min_val_size": 8,
    "patience": 3,  # epochs without val-loss improvement before stopping
    "augment": True,  # random resized crop (+ flip) during training
    "hflip": True,
    "dropout": 0.2,  # before the classifier: MC-dropout samples
    "label_smoothing": 0.0,
    "amp": True,  # mixed precision on CUDA (ignored on cpu/mps)
    "num_workers": 0,
    "checkpoint_dir": None,  # write best.pt there whenever val loss improves
    "width": 32,  # small_cnn only
    "body_dropout": 0.25,  # small_cnn only
    # semi-supervised training on fit's ``unlabeled`` images: "none" | "fixmatch" (softmax only)
    "semi_supervised": "none",
    "semi_threshold": 0.95,  # FixMatch: a weak view's max probability needed for its pseudo-label
    "unlabeled_ratio": 3,  # FixMatch's mu: unlabeled images per labeled one in a step (paper: 7; 3 costs
    # 7 forward images per labeled one on a CPU instead of 15)
    "unlabeled_weight": 1.0,  # FixMatch's lambda_u: weight of the unlabeled loss
    "semi_max_unlabeled": 10000,  # a seeded subset of at most this many unlabeled images (None: all)
}

#: the values of the finetune mode's ``semi_supervised`` option
SEMI_METHODS: tuple[str, ...] = ("none", "fixmatch")


def weight_decay_for(options: dict[str, Any], n_train: int) -> float:
    """AdamW's weight decay: ``weight_decay_per_label / n_train`` when that option is set, else ``weight_decay``."""
    per_label = options.get("weight_decay_per_label")
    if per_label is None:
        return float(options["weight_decay"])
    if float(per_label) < 0:
        raise InputError(f"weight_decay_per_label must be >= 0 (or None), got {per_label}")
    return float(per_label) / max(1, int(n_train))


class UnlabeledStream:
    """Endless batches ``(weak, strong)`` of (B, 3, H, W) views from a loader over unlabeled images,
    restarted (reshuffled by the loader's generator) whenever it is spent; ``seen`` holds the
    positions of every image drawn so far."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader
        self._it = iter(loader)
        self.seen: set[int] = set()

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            (weak, strong), idx = next(self._it)
        except StopIteration:
            self._it = iter(self.loader)
            (weak, strong), idx = next(self._it)
        self.seen.update(int(i) for i in idx)
        return weak, strong


class ClassifierNet(nn.Module):
    """``body -> dropout -> linear``; ``features(x)`` is the penultimate layer."""

    def __init__(
        self,
        body: nn.Module,
        features: Callable[[nn.Module, torch.Tensor], torch.Tensor],
        dim: int,
        n_classes: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.body = body
        self._features_fn = features
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(dim, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self._features_fn(self.body, x).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.features(x)))


class FullAdapter(AdapterBase):
    """Fine-tunes the whole network. ``embed`` returns the penultimate layer (the
    classifier's input; before ``fit``, the pretrained body's features)."""

    kind = "full"
    mode = "finetune"
    defaults = FULL_DEFAULTS

    def __init__(
        self,
        spec: BackboneSpec,
        *,
        classes: Sequence[str] | None = None,
        num_classes: int | None = None,
        device: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(spec, classes=classes, num_classes=num_classes, device=device, options=options)
        if self.options["checkpoint_dir"] is not None:
            self.options["checkpoint_dir"] = os.fspath(self.options["checkpoint_dir"])
        self._semi_method()
        self._template: Body | None = None  # pretrained body, as loaded
        self._preprocess: Preprocess | None = None
        self._dim: int | None = None
        self._net: ClassifierNet | None = None

    @property
    def supports(self) -> frozenset[str]:  # type: ignore[override]
        s = {"probs", "embeddings", "grad_embeddings"}
        if float(self.options["dropout"]) > 0 or self.spec.source == "small_cnn":
            s.add("mc_probs")
        return frozenset(s)

    def _body_options(self) -> dict[str, Any]:
        return {"width": self.options["width"], "body_dropout": self.options["body_dropout"]}

    def build(self) -> FullAdapter:
        """Load the pretrained body (downloading if needed); returns self."""
        if self._template is not None:
            return self
        self.device = pick_device(self._device_arg)
        body = build_body(self.spec, load_weights=True, options=self._body_options())
        self._template = body
        self._preprocess = body.preprocess
        self._dim = body.dim
        return self

    def _new_body(self) -> Body:
        """A fresh body: the pretrained weights, or new random ones from torch's RNG."""
        self.build()
        assert self._template is not None
        if self.spec.pretrained or self.spec.weights_file:
            return copy.deepcopy(self._template)
        return build_body(self.spec, load_weights=False, options=self._body_options())

    # --- training ----------------------------------------------------------------

    def _semi_method(self) -> str:
        """The checked ``semi_supervised`` option (FixMatch needs softmax: one pseudo-label per image)."""
        method = str(self.options["semi_supervised"])
        if method not in SEMI_METHODS:
            raise InputError(
                f"semi_supervised must be one of {', '.join(map(repr, SEMI_METHODS))} in the finetune mode, "
                f"got {method!r}"
            )
        if method == "fixmatch" and self.output != "softmax":
            raise InputError(
                "semi_supervised='fixmatch' needs output='softmax' (one pseudo-label per image); "
                "use semi_supervised='none' for a sigmoid (multi-label) model"
            )
        return method

    def _unlabeled_loader(
        self, unlabeled: Sequence[PathLike], keys: Sequence[str] | None, hflip: bool, seed: int
    ) -> Any:
        """A shuffled loader of ``((weak, strong), position)`` over at most ``semi_max_unlabeled`` of
        ``unlabeled`` (a seeded subset), ``unlabeled_ratio * batch_size`` images a batch; None if there are none."""
        o = self.options
        ps = check_paths(unlabeled, keys)
        cap, mu = o["semi_max_unlabeled"], int(o["unlabeled_ratio"])
        if mu < 1:
            raise InputError(f"unlabeled_ratio must be an integer >= 1, got {o['unlabeled_ratio']}")
        if not 0 < float(o["semi_threshold"]) <= 1:
            raise InputError(f"semi_threshold must be in (0, 1], got {o['semi_threshold']}")
        if float(o["unlabeled_weight"]) < 0:
            raise InputError(f"unlabeled_weight must be >= 0, got {o['unlabeled_weight']}")
        if cap is not None:
            if int(cap) < 1:
                raise InputError(f"semi_max_unlabeled must be >= 1 (or None for all), got {cap}")
            if len(ps) > int(cap):
                keep = np.sort(np.random.default_rng(seed).choice(len(ps), int(cap), replace=False))
                ps = [ps[i] for i in keep]
        if not ps:
            return None
        assert self._preprocess is not None
        views = TwoViews(
            self._preprocess.train_transform(augment=bool(o["augment"]), hflip=hflip),
            self._preprocess.strong_transform(hflip=hflip),
        )
        ds = ImageDataset(ps, np.arange(len(ps)), views)
        return make_loader(ds, batch_size=mu * int(o["batch_size"]), shuffle=True, seed=seed + 1,
                           num_workers=int(o["num_workers"]), device=self.device)  # fmt: skip

    def fit(
        self,
        paths: Sequence[PathLike],
        labels: Sequence[int] | np.ndarray,
        *,
        keys: Sequence[str] | None = None,
        seed: int = 0,
        progress: bool = False,
        unlabeled: Sequence[PathLike] | None = None,
        unlabeled_keys: Sequence[str] | None = None,
    ) -> FitReport:
        """Fine-tune a fresh network on ``paths`` / ``labels`` (``keys`` unused).

        ``labels``: positions into ``classes`` (softmax), or an (N, C) 0/1 array (sigmoid).
        ``unlabeled``: image paths without labels (never eval images), used only with
        ``semi_supervised="fixmatch"`` (otherwise not even read). Each step then adds
        ``unlabeled_ratio * batch_size`` unlabeled images (the stream cycles), each as a weak
        and a strong view; the weak view's prediction (no gradient), where its max probability
        is at least ``semi_threshold``, is the pseudo-label of the strong view, and the loss is
        ``CE(labeled) + unlabeled_weight * mean(mask * CE(strong, pseudo-label))`` (Sohn et al.,
        NeurIPS 2020). The labeled loader still sets the epochs; ``history`` then holds each
        epoch's ``unlabeled_loss`` and ``mask_rate`` (the fraction of unlabeled views above the
        threshold) and ``train_loss`` is the labeled loss alone.
        """
        t0 = time.perf_counter()
        ps, y = self._fit_inputs(paths, labels, keys)
        method = self._semi_method()
        self.build()
        assert self._preprocess is not None and self._dim is not None
        o = self.options
        dev = self.device
        use_amp = bool(o["amp"]) and dev.startswith("cuda")
        tr, va = split_validation(len(ps), float(o["val_fraction"]), int(o["min_val_size"]), seed)
        bs = int(o["batch_size"])
        with seeded(seed, dev):
            body = self._new_body()
            net = ClassifierNet(body.module, body.features, self._dim, self.n_classes, float(o["dropout"])).to(dev)
            train_ds = ImageDataset([ps[i] for i in tr], y[tr], self._preprocess.train_transform(
                augment=bool(o["augment"]), hflip=bool(o["hflip"])))  # fmt: skip
            loader = make_loader(train_ds, batch_size=bs, shuffle=True, seed=seed,
                                 num_workers=int(o["num_workers"]), device=dev)  # fmt: skip
            if len(tr) > bs and len(tr) % bs == 1:  # a batch of one breaks BatchNorm
                loader = torch.utils.data.DataLoader(
                    train_ds, batch_size=bs, shuffle=True, generator=loader.generator, drop_last=True,
                    num_workers=int(o["num_workers"]), pin_memory=dev.startswith("cuda"))  # fmt: skip
            val_loader = None
            if len(va):
                val_ds = ImageDataset([ps[i] for i in va], y[va], self._preprocess.eval_transform())
                val_loader = make_loader(val_ds, batch_size=bs, num_workers=int(o["num_workers"]), device=dev)
            stream = None
            if method == "fixmatch" and unlabeled is not None:
                u_loader = self._unlabeled_loader(unlabeled, unlabeled_keys, bool(o["hflip"]), seed)
                stream = UnlabeledStream(u_loader) if u_loader is not None else None
            threshold, lambda_u = float(o["semi_threshold"]), float(o["unlabeled_weight"])
            opt = torch.optim.AdamW(net.parameters(), lr=float(o["lr"]), weight_decay=weight_decay_for(o, len(tr)))
            epochs, min_steps = int(o["epochs"]), int(o["min_steps"])
            if epochs < 1:
                raise InputError(f"epochs must be >= 1, got {epochs}")
            if min_steps < 0:
                raise InputError(f"min_steps must be >= 0, got {min_steps}")
            epochs = max(epochs, math.ceil(min_steps / max(1, len(loader))))
            steps = max(1, epochs * len(loader))
            sched = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
            )
            scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
            loss_fn = self._loss(float(o["label_smoothing"]))
            history: list[dict[str, float]] = []
            best_state: dict[str, torch.Tensor] | None = None
            best_epoch, best_val, bad = 0, math.inf, 0
            shown = ExitStack()
            bar = shown.enter_context(
                progress_task(progress, f"fine-tuning {self.name}", total=epochs * len(loader), unit="batch")
            )
            try:
                for epoch in range(1, epochs + 1):
                    net.train()
                    total, count = 0.0, 0
                    u_total, u_masked, u_count = 0.0, 0.0, 0
                    for xb, yb in loader:
                        xb, yb = xb.to(dev, non_blocking=True), yb.to(dev, non_blocking=True)
                        opt.zero_grad(set_to_none=True)
                        with torch.autocast("cuda", dtype=torch.float16, enabled=use_amp):
                            if stream is None:
                                sup = loss_fn(net(xb), yb)
                                loss = sup
                            else:
                                weak, strong = (v.to(dev, non_blocking=True) for v in stream.next())
                                # one forward pass over all three, so BatchNorm sees them together (as in the paper)
                                logits = net(torch.cat([xb, weak, strong]))
                                n_l, n_u = len(xb), len(weak)
                                sup = loss_fn(logits[:n_l], yb)
                                conf, pseudo = torch.softmax(logits[n_l : n_l + n_u].detach().float(), 1).max(1)
                                mask = (conf >= threshold).float()
                                per_image = nn.functional.cross_entropy(logits[n_l + n_u :].float(), pseudo,
                                                                        reduction="none")  # fmt: skip
                                unsup = (per_image * mask).mean()
                                loss = sup + lambda_u * unsup
                                u_total += float(unsup.detach()) * n_u
                                u_masked += float(mask.sum())
                                u_count += n_u
                        scaler.scale(loss).backward()
                        scaler.step(opt)
                        scaler.update()
                        sched.step()
                        total += float(sup.detach()) * len(yb)
                        count += len(yb)
                        bar.advance(1)
                    rec: dict[str, float] = {"epoch": float(epoch), "train_loss": total / max(count, 1)}
                    if stream is not None:
                        rec.update(unlabeled_loss=u_total / max(u_count, 1), mask_rate=u_masked / max(u_count, 1))
                    if val_loader is not None:
                        vl, vacc = self._evaluate(net, val_loader, loss_fn, use_amp)
                        rec.update(val_loss=vl, val_accuracy=vacc)
                        improved = vl < best_val - 1e-6
                    else:
                        improved = True
                    history.append(rec)
                    bar.describe(
                        f"fine-tuning {self.name}: " + ", ".join(f"{k} {v:.4f}" for k, v in rec.items() if k != "epoch")
                    )
                    if improved:
                        best_val = rec.get("val_loss", math.inf)
                        best_epoch, bad = epoch, 0
                        best_state = {k: v.detach().to("cpu", copy=True) for k, v in net.state_dict().items()}
                        if o["checkpoint_dir"]:
                            self._checkpoint(net, Path(o["checkpoint_dir"]))
                    else:
                        bad += 1
                        if bad >= int(o["patience"]) and epoch * len(loader) >= min_steps:
                            break
            finally:
                shown.close()
        assert best_state is not None
        net.load_state_dict(best_state)
        net.eval()
        self._net = net
        return fit_report(n_train=len(tr), n_val=len(va), history=history, best_epoch=best_epoch,
                          seconds=time.perf_counter() - t0, device=dev,
                          n_unlabeled=len(stream.seen) if stream is not None else 0,
                          semi_supervised="fixmatch" if stream is not None else "none")  # fmt: skip

    def _evaluate(self, net: nn.Module, loader: Any, loss_fn: nn.Module, use_amp: bool) -> tuple[float, float]:
        """Validation loss and accuracy (sigmoid: the fraction of (image, class) entries right at 0.5)."""
        net.eval()
        total, correct, count = 0.0, 0.0, 0
        with torch.no_grad():
            for xb, yb in loader:
                xb, yb = xb.to(self.device), yb.to(self.device)
                with torch.autocast("cuda", dtype=torch.float16, enabled=use_amp):
                    logits = net(xb)
                total += float(loss_fn(logits.float(), yb)) * len(yb)
                if self.output == "sigmoid":
                    correct += float(((logits > 0).float() == yb).float().mean(1).sum())
                else:
                    correct += int((logits.argmax(1) == yb).sum())
                count += len(yb)
        return total / count, correct / count

    def _checkpoint(self, net: ClassifierNet, folder: Path) -> None:
        prev = self._net
        self._net = net
        try:
            self.save(folder / "best.pt")
        finally:
            self._net = prev

    # --- inference ----------------------------------------------------------------

    def _fitted(self) -> ClassifierNet:
        self._require_fitted(self._net is not None)
        assert self._net is not None
        return self._net

    def _run(self, fn: Callable[[torch.Tensor], Any], paths: Sequence[PathLike], keys: Sequence[str] | None,
             progress: bool, desc: str) -> list[Any]:  # fmt: skip
        ps = check_paths(paths, keys)
        if self._preprocess is None:
            self.build()
        assert self._preprocess is not None
        return forward_images(
            fn, ps, self._preprocess, device=self.device, batch_size=int(self.options["batch_size"]),
            num_workers=int(self.options["num_workers"]), progress=progress, desc=desc, amp=bool(self.options["amp"]),
        )  # fmt: skip

    def predict_proba(
        self, paths: Sequence[PathLike], *, keys: Sequence[str] | None = None, progress: bool = False
    ) -> np.ndarray:
        """(N, C) float32 probabilities: rows sum to 1 (softmax), or one independent probability per class (sigmoid)."""
        net = self._fitted().eval()
        outs = self._run(lambda x: self._activate(net(x)).cpu(), paths, keys, progress, "predicting")
        return self._finish(torch.cat(outs).numpy()) if outs else np.zeros((0, self.n_classes), np.float32)

    def embed(
        self, paths: Sequence[PathLike], *, keys: Sequence[str] | None = None, progress: bool = False
    ) -> np.ndarray:
        """(N, d) float32 penultimate features (the classifier's input)."""
        if self._net is not None:
            net = self._net.eval()
            fn: Callable[[torch.Tensor], Any] = lambda x: net.features(x).cpu()  # noqa: E731
        else:
            self.build()
            assert self._template is not None
            body = self._template
            body.module.eval().to(self.device)
            fn = lambda x: body(x).float().cpu()  # noqa: E731
        outs = self._run(fn, paths, keys, progress, "embedding")
        return torch.cat(outs).numpy().astype(np.float32) if outs else np.zeros((0, self._dim or 0), np.float32)

    def last_layer_features(
        self, paths: Sequence[PathLike], *, keys: Sequence[str] | None = None, progress: bool = False
    ) -> np.ndarray:
        """(N, d) float32 input of the trained classifier layer (the factored BADGE gradients' ``h``)."""
        self._fitted()
        return self.embed(paths, keys=keys, progress=progress)

    def mc_predict(
        self,
        paths: Sequence[PathLike],
        *,
        n_samples: int = 10,
        seed: int = 0,
        keys: Sequence[str] | None = None,
        progress: bool = False,
    ) -> np.ndarray:
        """(T, N, C) float32 MC-dropout probabilities (dropout on, BatchNorm frozen), shaped like ``predict_proba``'s."""
        t = check_n_samples(n_samples)
        if "mc_probs" not in self.supports:
            raise UnsupportedError(
                f"{self.name} was created with dropout=0, so it has no MC-dropout samples; create it with dropout>0"
            )
        net = self._fitted().eval()
        body_has_dropout = any(isinstance(m, nn.Dropout) and m.p > 0 for m in net.body.modules())

        def fn(x: torch.Tensor) -> torch.Tensor:
            if body_has_dropout:
                return self._mc_samples(net, lambda: net(x), t)
            h = net.features(x)  # the body runs once; only the head's dropout varies
            return self._mc_samples(net, lambda: net.fc(net.dropout(h)), t)

        with seeded(seed, self.device):
            outs = self._run(fn, paths, keys, progress, "MC dropout")
        if not outs:
            return np.zeros((t, 0, self.n_classes), np.float32)
        return self._finish(torch.cat(outs, dim=1).numpy())

    def grad_embed(
        self, paths: Sequence[PathLike], *, keys: Sequence[str] | None = None, progress: bool = False
    ) -> np.ndarray:
        """(N, C * d) float32 BADGE gradient embeddings of the classifier layer."""
        net = self._fitted().eval()

        def fn(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            h = net.features(x)
            return self._activate(net.fc(h)).cpu(), h.float().cpu()

        outs = self._run(fn, paths, keys, progress, "gradient embeddings")
        if not outs:
            return np.zeros((0, self.n_classes * (self._dim or 0)), np.float32)
        p = torch.cat([o[0] for o in outs]).numpy()
        h = torch.cat([o[1] for o in outs]).numpy()
        return self._grad_embed(p, h)

    # --- persistence -----------------------------------------------------------------

    def save(self, path: PathLike) -> None:
        """Write the fine-tuned network, class map and config to one file."""
        net = self._fitted()
        assert self._preprocess is not None
        payload = self._payload()
        payload.update(
            dim=int(self._dim or 0),
            preprocess=self._preprocess.to_dict(),
            net_state={k: v.detach().cpu() for k, v in net.state_dict().items()},
        )
        self._write(path, payload)

    @classmethod
    def load(cls, path: PathLike, *, device: str | None = None) -> FullAdapter:
        """Restore a saved full-path model (no download: the weights are in the file)."""
        obj = cls._read(path, "full")
        spec = BackboneSpec.from_dict(obj["spec"])
        m = cls(spec, classes=obj["classes"], device=device, **obj["options"])
        m.device = pick_device(device)
        body = build_body(spec, load_weights=False, options=m._body_options())
        m._dim = int(obj["dim"])
        m._preprocess = Preprocess.from_dict(obj["preprocess"])
        net = ClassifierNet(body.module, body.features, m._dim, len(m.classes), float(m.options["dropout"]))
        net.load_state_dict(obj["net_state"])
        m._net = net.to(m.device).eval()
        # embed() before a new fit uses the loaded network; a new fit restarts from the spec
        body.preprocess = m._preprocess
        m._template = body if not (spec.pretrained or spec.weights_file) else None
        return m
