"""The frozen mode (the "fast path"): a frozen pretrained backbone embeds each image once
(cached on disk), then a light head (logistic regression or small MLP) trains on the
embeddings in seconds. With ``output="sigmoid"`` the head is one-vs-rest (multi-label).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from activelab.exceptions import InputError, UnsupportedError
from activelab.models._adapter import AdapterBase, fit_report, forward_images
from activelab.models.backbones import BackboneSpec, Body, build_body
from activelab.models.base import FitReport, PathLike, check_n_samples, check_paths, pick_device, resolve_keys, seeded
from activelab.models.cache import CacheStats, EmbeddingCache
from activelab.models.heads import HEADS, Head, train_head
from activelab.models.images import Preprocess

#: options of the frozen mode and their defaults (plus ``output``: "softmax" | "sigmoid")
FAST_DEFAULTS: dict[str, Any] = {
    "head": "logreg",  # "logreg" | "mlp"
    "l2": 1.0,  # logreg: L2 penalty (scikit-learn's 1/C)
    "max_iter": 200,  # logreg: L-BFGS iterations
    "hidden": 256,  # mlp: hidden units
    "dropout": 0.3,  # mlp: dropout before the last layer (MC dropout)
    "epochs": 50,  # mlp: epochs
    "lr": 1e-3,  # mlp: Adam learning rate
    "weight_decay": 1e-4,  # mlp
    "head_batch_size": 64,  # mlp
    "batch_size": 64,  # backbone forward batch
    "chunk_size": 256,  # images per cache shard
    "num_workers": 0,
    "amp": True,  # float16 backbone forward on CUDA
    "save_backbone": None,  # None: only when it cannot be rebuilt offline
}


class FastAdapter(AdapterBase):
    """Frozen backbone + embedding cache + light head.

    ``embed`` returns the *backbone* embeddings (the head's input, before the head's
    standardisation): available before ``fit``, identical across rounds, cached.
    ``grad_embed`` uses the head's penultimate layer: the standardised embedding for
    ``head="logreg"``, the hidden layer for ``head="mlp"``. ``mc_predict`` needs
    ``head="mlp"`` (dropout). ``forward_count`` counts images the backbone has embedded
    (i.e. cache misses) by this adapter.
    """

    kind = "fast"
    mode = "frozen"
    defaults = FAST_DEFAULTS

    def __init__(
        self,
        spec: BackboneSpec,
        *,
        classes: Sequence[str] | None = None,
        num_classes: int | None = None,
        cache_dir: PathLike | None = None,
        cache: EmbeddingCache | None = None,
        device: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(spec, classes=classes, num_classes=num_classes, device=device, options=options)
        if self.options["head"] not in HEADS:
            raise InputError(f"unknown head {self.options['head']!r}; expected one of {', '.join(HEADS)}")
        self.cache = cache if cache is not None else EmbeddingCache(cache_dir)
        self.forward_count = 0
        self.last_cache_stats = CacheStats()
        self._body: Body | None = None
        self._body_state: dict[str, torch.Tensor] | None = None  # from load(), applied lazily
        self._preprocess: Preprocess | None = None
        self._model_id: str | None = None
        self._dim: int | None = None
        self._head: Head | None = None

    # --- backbone ------------------------------------------------------------

    @property
    def supports(self) -> frozenset[str]:  # type: ignore[override]
        base = {"probs", "embeddings", "grad_embeddings"}
        if self.options["head"] == "mlp":
            base.add("mc_probs")
        return frozenset(base)

    def build(self) -> FastAdapter:
        """Load the backbone (downloading pretrained weights if needed); returns self."""
        if self._body is not None:
            return self
        self.device = pick_device(self._device_arg)
        restoring = self._body_state is not None or self._model_id is not None
        body = build_body(self.spec, load_weights=not restoring)
        if self._body_state is not None:
            body.module.load_state_dict(self._body_state)
            self._body_state = None
        elif restoring and self.spec.pretrained:
            # saved without backbone weights: rebuild them from the (offline) source
            body = build_body(self.spec, load_weights=True)
        body.module.eval().requires_grad_(False).to(self.device)
        self._body = body
        if self._model_id is None:
            self._preprocess = body.preprocess
            self._dim = body.dim
            self._model_id = f"{self.spec.display_name};weights={body.weights_id};{body.preprocess.id}"
        return self

    def backbone(self) -> tuple[Body, Preprocess]:
        """The built frozen body and its preprocessing (builds them on first use).

        For streaming passes (:func:`activelab.models.stream.stream_embed`) that batch
        images themselves; ``fit`` / ``predict_proba`` / ``embed`` need none of this.
        """
        self.build()
        assert self._body is not None and self._preprocess is not None
        return self._body, self._preprocess

    @property
    def model_id(self) -> str:
        """The embedding-cache key: backbone name, weights and preprocessing."""
        if self._model_id is None:
            self.build()
        assert self._model_id is not None
        return self._model_id

    def _forward(self, paths: Sequence[str], progress: bool) -> np.ndarray:
        self.build()
        assert self._body is not None and self._preprocess is not None
        body = self._body
        outs = forward_images(
            lambda x: body(x).float().cpu(),
            paths,
            self._preprocess,
            device=self.device,
            batch_size=int(self.options["batch_size"]),
            num_workers=int(self.options["num_workers"]),
            progress=False,  # the cache reports these images as they are stored
            desc="backbone",
            amp=bool(self.options["amp"]),
        )
        self.forward_count += len(paths)
        return torch.cat(outs).numpy().astype(np.float32) if outs else np.zeros((0, self._dim or 0), np.float32)

    def _embeddings(self, paths: Sequence[PathLike], keys: Sequence[str] | None, progress: bool) -> np.ndarray:
        ps = check_paths(paths, keys)
        if not ps:
            return np.zeros((0, self._dim or self.build()._dim or 0), dtype=np.float32)
        ks = resolve_keys(ps, keys)
        out = self.cache.get_or_compute(
            self.model_id,
            ks,
            lambda pos: self._forward([ps[i] for i in pos], progress),
            chunk_size=int(self.options["chunk_size"]),
            progress=progress,
            desc=f"embedding with {self.name}",
        )
        self.last_cache_stats = self.cache.last_stats
        return out

    # --- the interface ---------------------------------------------------------

    def fit(
        self,
        paths: Sequence[PathLike],
        labels: Sequence[int] | np.ndarray,
        *,
        keys: Sequence[str] | None = None,
        seed: int = 0,
        progress: bool = False,
    ) -> FitReport:
        """Embed ``paths`` (cached) and train a new head on them.

        ``labels``: positions into ``classes`` (softmax), or an (N, C) 0/1 array (sigmoid).
        """
        t0 = time.perf_counter()
        ps, y = self._fit_inputs(paths, labels, keys)
        x = self._embeddings(ps, keys, progress)
        stats = self.last_cache_stats
        o = self.options
        with seeded(seed):
            head = Head(o["head"], x.shape[1], self.n_classes, hidden=int(o["hidden"]), dropout=float(o["dropout"]))
            summary = train_head(
                head, x, y, l2=float(o["l2"]), epochs=int(o["epochs"]), lr=float(o["lr"]),
                batch_size=int(o["head_batch_size"]), weight_decay=float(o["weight_decay"]),
                max_iter=int(o["max_iter"]), seed=seed, progress=progress,
            )  # fmt: skip
        self._head = head
        history = [{"epoch": float(summary["epochs"]), "train_loss": summary["train_loss"],
                    "train_accuracy": summary["train_accuracy"]}]  # fmt: skip
        report = fit_report(n_train=len(ps), n_val=0, history=history, best_epoch=1, seconds=time.perf_counter() - t0,
                            device=self.device, cache_hits=stats.hits, cache_misses=stats.misses)  # fmt: skip
        # one history row summarises the whole fit: the head trained summary["epochs"] epochs, the last kept
        return dataclasses.replace(report, epochs=summary["epochs"], best_epoch=summary["epochs"])

    def _fitted_head(self) -> Head:
        self._require_fitted(self._head is not None)
        assert self._head is not None
        return self._head

    def predict_proba(
        self, paths: Sequence[PathLike], *, keys: Sequence[str] | None = None, progress: bool = False
    ) -> np.ndarray:
        """(N, C) float32 probabilities: rows sum to 1 (softmax), or one independent probability per class (sigmoid)."""
        head = self._fitted_head()
        x = torch.from_numpy(self._embeddings(paths, keys, progress))
        with torch.no_grad():
            p = self._activate(head(x)).numpy()
        return self._finish(p)

    def embed(
        self, paths: Sequence[PathLike], *, keys: Sequence[str] | None = None, progress: bool = False
    ) -> np.ndarray:
        """(N, d) float32 backbone embeddings (the head's input; d=1280 for efficientnet_lite0)."""
        return self._embeddings(paths, keys, progress)

    def last_layer_features(
        self, paths: Sequence[PathLike], *, keys: Sequence[str] | None = None, progress: bool = False
    ) -> np.ndarray:
        """(N, h) float32 input of the head's last linear layer: with ``probs``, the factored BADGE gradients."""
        head = self._fitted_head()
        x = torch.from_numpy(self._embeddings(paths, keys, progress))
        with torch.no_grad():
            return head.penultimate(x).numpy().astype(np.float32)

    def mc_predict(
        self,
        paths: Sequence[PathLike],
        *,
        n_samples: int = 10,
        seed: int = 0,
        keys: Sequence[str] | None = None,
        progress: bool = False,
    ) -> np.ndarray:
        """(T, N, C) float32 MC-dropout probabilities (head="mlp" only), shaped like ``predict_proba``'s."""
        t = check_n_samples(n_samples)
        if self.options["head"] != "mlp":
            raise UnsupportedError(
                f"{self.name} with head={self.options['head']!r} has no dropout, so no MC-dropout samples; "
                "create the model with head='mlp' (or use a strategy that needs only probabilities)"
            )
        head = self._fitted_head()
        x = torch.from_numpy(self._embeddings(paths, keys, progress))
        with torch.no_grad(), seeded(seed):
            hidden = head.penultimate(x)
            out = self._mc_samples(head, lambda: head.out(head.dropout(hidden)), t)
        return self._finish(out.numpy())

    def grad_embed(
        self, paths: Sequence[PathLike], *, keys: Sequence[str] | None = None, progress: bool = False
    ) -> np.ndarray:
        """(N, C * h) float32 BADGE gradient embeddings of the head's last layer."""
        head = self._fitted_head()
        x = torch.from_numpy(self._embeddings(paths, keys, progress))
        with torch.no_grad():
            h = head.penultimate(x)
            p = self._activate(head.out(h))
        return self._grad_embed(p.numpy(), h.numpy())

    # --- persistence -------------------------------------------------------------

    def _save_backbone(self) -> bool:
        flag = self.options.get("save_backbone")
        if flag is not None:
            return bool(flag)
        # the packaged Lite0 weights can be rebuilt offline; others may need a download
        return not (self.spec.source == "efficientnet_lite0" and self.spec.pretrained and not self.spec.weights_file)

    def save(self, path: PathLike) -> None:
        """Write head, class map, config and (when needed) backbone weights to one file."""
        payload = self._payload()
        head = self._fitted_head()
        _ = self.model_id
        assert self._preprocess is not None
        payload.update(
            model_id=self.model_id,
            dim=int(self._dim or 0),
            preprocess=self._preprocess.to_dict(),
            head_state=head.state_dict(),
            cache_dir=str(self.cache.cache_dir.resolve()) if self.cache.cache_dir is not None else None,
        )
        if self._save_backbone():
            if self._body_state is not None:
                payload["body_state"] = self._body_state
            else:
                self.build()
                assert self._body is not None
                payload["body_state"] = {k: v.detach().cpu() for k, v in self._body.module.state_dict().items()}
        self._write(path, payload)

    @classmethod
    def load(cls, path: PathLike, *, device: str | None = None, cache_dir: PathLike | None = None,
             cache: EmbeddingCache | None = None) -> FastAdapter:  # fmt: skip
        """Restore a saved fast-path model; the backbone is only rebuilt on a cache miss.

        Without ``cache_dir`` / ``cache``, the embedding cache folder recorded at save time
        is reused when it still exists (else the cache is in memory).
        """
        obj = cls._read(path, "fast")
        if cache is None and cache_dir is None and obj.get("cache_dir") and os.path.isdir(obj["cache_dir"]):
            cache_dir = obj["cache_dir"]
        spec = BackboneSpec.from_dict(obj["spec"])
        m = cls(spec, classes=obj["classes"], cache_dir=cache_dir, cache=cache, device=device, **obj["options"])
        m._model_id = str(obj["model_id"])
        m._dim = int(obj["dim"])
        m._preprocess = Preprocess.from_dict(obj["preprocess"])
        m._body_state = obj.get("body_state")
        o = m.options
        head = Head(o["head"], m._dim, len(m.classes), hidden=int(o["hidden"]), dropout=float(o["dropout"]))
        head.load_state_dict(obj["head_state"])
        head.eval()
        m._head = head
        return m
