"""Light classifier heads trained on cached embeddings in seconds (the fast path).

- ``logreg``: multinomial logistic regression (one linear layer) fitted with L-BFGS
  on the full batch, L2-penalised like scikit-learn's ``LogisticRegression(C=1/l2)``;
  with multi-label targets, one-vs-rest logistic regression (one independent binary
  problem per class, the same penalty). Its penultimate features are its input (the
  standardised embedding).
- ``mlp``: linear -> ReLU -> dropout -> linear, trained with Adam on cross-entropy, or
  on binary cross-entropy per class for multi-label targets. Its penultimate features
  are the hidden layer (after ReLU); its dropout gives MC-dropout samples.

Inputs are centred with the training mean and divided by one scalar (the training
RMS), which is robust with the handful of labels an active-learning run starts with.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from activelab.exceptions import InputError
from activelab.models.base import torch_threads
from activelab.progress import Progress, progress_task

HEADS = ("logreg", "mlp")
#: training inputs up to this many values (about 1,200 x 1280 embeddings) are fitted on one thread
SINGLE_THREAD_ELEMENTS = 1_500_000


class Head(nn.Module):
    """``forward(x) -> logits``; ``penultimate(x)`` the input of the last linear layer."""

    mean: torch.Tensor
    scale: torch.Tensor

    def __init__(self, kind: str, dim: int, n_classes: int, *, hidden: int = 256, dropout: float = 0.3) -> None:
        super().__init__()
        if kind not in HEADS:
            raise InputError(f"unknown head {kind!r}; expected one of {', '.join(HEADS)}")
        self.kind = kind
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(()))
        if kind == "logreg":
            self.body: nn.Module = nn.Identity()
            self.dropout: nn.Module = nn.Identity()
            self.out = nn.Linear(dim, n_classes)
        else:
            self.body = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU())
            self.dropout = nn.Dropout(dropout)
            self.out = nn.Linear(hidden, n_classes)

    def penultimate(self, x: torch.Tensor) -> torch.Tensor:
        return self.body((x - self.mean) / self.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(self.penultimate(x)))


def train_head(
    head: Head,
    x: np.ndarray,
    y: np.ndarray,
    *,
    l2: float = 1.0,
    epochs: int = 100,
    lr: float = 1e-3,
    batch_size: int = 64,
    weight_decay: float = 1e-4,
    max_iter: int = 200,
    seed: int = 0,
    progress: Progress = False,
    sample_weight: np.ndarray | None = None,
) -> dict[str, Any]:
    """Fit ``head`` on embeddings ``x`` (N, d) with labels ``y``; returns a summary.

    ``y`` is (N,) int class positions (softmax), or an (N, C) 0/1 float matrix
    (multi-label: binary cross-entropy per class, and ``train_accuracy`` is the
    fraction of (image, class) entries right at a 0.5 threshold). ``sample_weight``
    (N,) scales each row's loss as scikit-learn's ``sample_weight`` does (the logreg
    penalty stays ``0.5 * l2 * |W|^2``); None weighs every row 1. Runs on the CPU in
    float32; deterministic for a given ``seed``. ``progress`` shows the mlp's epochs.
    """
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    multilabel = np.ndim(y) == 2
    yt = torch.from_numpy(np.asarray(y, dtype=np.float32 if multilabel else np.int64))
    wt = None
    if sample_weight is not None:
        wt = torch.from_numpy(np.asarray(sample_weight, dtype=np.float32).reshape(-1))
        if wt.shape[0] != xt.shape[0] or not bool(torch.isfinite(wt).all()) or bool((wt < 0).any()):
            raise InputError(f"sample_weight must hold {xt.shape[0]} finite weights >= 0, one per row")
    # a small problem runs several times faster on one thread: thread start-up and contention
    # dominate its tiny matrix products (measured on 2 cores: 50 x 1280 logreg 0.66 s on 2 threads, 0.17 s on 1)
    with torch_threads(1 if xt.numel() <= SINGLE_THREAD_ELEMENTS else None):
        return _fit(
            head,
            xt,
            yt,
            l2=l2,
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            weight_decay=weight_decay,
            max_iter=max_iter,
            seed=seed,
            progress=progress,
            wt=wt,
        )


def _data_loss(multilabel: bool) -> Any:
    """Mean over images of the loss summed over classes: cross-entropy, or binary cross-entropy per class."""
    if not multilabel:
        return nn.CrossEntropyLoss()
    bce = nn.BCEWithLogitsLoss(reduction="sum")
    return lambda logits, y: bce(logits, y) / logits.shape[0]


def _weighted_loss(multilabel: bool) -> Any:
    """``(logits, y, w) ->`` mean over images of ``w`` times the per-image loss (summed over classes)."""

    def loss(logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if multilabel:
            per = nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none").sum(1)
        else:
            per = nn.functional.cross_entropy(logits, y, reduction="none")
        return (w * per).mean()

    return loss


def _fit(
    head: Head,
    xt: torch.Tensor,
    yt: torch.Tensor,
    *,
    l2: float,
    epochs: int,
    lr: float,
    batch_size: int,
    weight_decay: float,
    max_iter: int,
    seed: int,
    progress: Progress,
    wt: torch.Tensor | None = None,
) -> dict[str, Any]:
    n = xt.shape[0]
    multilabel = yt.ndim == 2
    with torch.no_grad():
        mean = xt.mean(0)
        rms = ((xt - mean) ** 2).mean().sqrt() if n > 1 else xt.pow(2).mean().sqrt()
        head.mean.copy_(mean if n > 1 else torch.zeros_like(mean))
        head.scale.fill_(float(rms) if float(rms) > 1e-8 else 1.0)
    loss_fn = _data_loss(multilabel)
    weighted = _weighted_loss(multilabel)

    def data_loss(logits: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        target = yt if idx is None else yt[idx]
        if wt is None:
            return loss_fn(logits, target)
        return weighted(logits, target, wt if idx is None else wt[idx])

    head.train()
    epochs_run = 0
    if head.kind == "logreg":
        opt = torch.optim.LBFGS(
            head.parameters(),
            lr=1.0,
            max_iter=max_iter,
            history_size=20,
            line_search_fn="strong_wolfe",
            tolerance_grad=1e-6,
            tolerance_change=1e-9,
        )
        w = head.out.weight

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = data_loss(head(xt)) + 0.5 * l2 * (w**2).sum() / n
            loss.backward()
            return loss

        opt.step(closure)
        epochs_run = 1
    else:
        g = torch.Generator().manual_seed(int(seed))
        opt2 = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=weight_decay)
        with progress_task(progress, "training the head", total=epochs, unit="epoch") as bar:
            for _ in range(epochs):
                perm = torch.randperm(n, generator=g)
                for s in range(0, n, batch_size):
                    idx = perm[s : s + batch_size]
                    opt2.zero_grad()
                    loss = data_loss(head(xt[idx]), idx)
                    loss.backward()
                    opt2.step()
                epochs_run += 1
                bar.advance(1)
    head.eval()
    with torch.no_grad():
        logits = head(xt)
        if multilabel:
            train_loss = float(nn.functional.binary_cross_entropy_with_logits(logits, yt))
            train_acc = float(((logits > 0).float() == yt).float().mean())
        else:
            train_loss = float(loss_fn(logits, yt))
            train_acc = float((logits.argmax(1) == yt).float().mean())
    return {"epochs": epochs_run, "train_loss": train_loss, "train_accuracy": train_acc}
