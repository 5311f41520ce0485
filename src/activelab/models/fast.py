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
from activelab.models.semi import PseudoLabels, check_method, self_train, spread_labels, subsample

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
    # semi-supervised training on the unlabeled images passed to fit (softmax only; docs/models.md)
    "semi_supervised": "none",  # "none" | "self_training" | "label_spreading"
    "semi_threshold": 0.9,  # top probability an unlabeled image needs to become a pseudo-label
    "semi_neighbors": 10,  # label_spreading: k of the k-NN graph
    "semi_max_unlabeled": 5000,  # at most this many unlabeled images (a seeded subset): bounds time and reads
    "semi_iterations": 5,  # self_training: rounds of pseudo-label -> refit
    "semi_weight": 1.0,  # loss weight of a pseudo-labeled image (a labeled one weighs 1)
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
        self._check_semi_options()
        self.cache = cache if cache is not None else EmbeddingCache(cache_dir)
        self.forward_count = 0
        self.last_cache_stats = CacheStats()
        self._body: Body | None = None
        self._body_state: dict[str, torch.Tensor] | None = None  # from load(), applied lazily
        self._preprocess: Preprocess | None = None
        self._model_id: str | None = None
        self._dim: int | None = None
        self._head: Head | None = None

    def _check_semi_options(self) -> None:
        o = self.options
        method = check_method(o["semi_supervised"])
        if method != "none" and self.output == "sigmoid":
            raise InputError(
                f"semi_supervised={method!r} needs output='softmax': multi-label semi-supervision is not "
                "implemented; use semi_supervised='none' with output='sigmoid'"
            )
        if not 0.0 < float(o["semi_threshold"]) <= 1.0:
            raise InputError(f"semi_threshold must be in (0, 1], got {o['semi_threshold']!r}")
        for name in ("semi_neighbors", "semi_iterations"):
            if int(o[name]) < 1:
                raise InputError(f"{name} must be an integer >= 1, got {o[name]!r}")
        cap = o["semi_max_unlabeled"]
        if cap is not None and int(cap) < 1:
            raise InputError(f"semi_max_unlabeled must be an integer >= 1 or None (no cap), got {cap!r}")
        if float(o["semi_weight"]) < 0:
            raise InputError(f"semi_weight must be >= 0, got {o['semi_weight']!r}")

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
        unlabeled: Sequence[PathLike] | None = None,
        unlabeled_keys: Sequence[str] | None = None,
    ) -> FitReport:
        """Embed ``paths`` (cached) and train a new head on them.

        ``labels``: positions into ``classes`` (softmax), or an (N, C) 0/1 array (sigmoid).
        ``unlabeled`` (image paths, never eval images) and ``unlabeled_keys`` feed the
        ``semi_supervised`` method: at most ``semi_max_unlabeled`` of them (a subset drawn
        with ``seed``) are embedded and pseudo-labeled; with ``semi_supervised="none"`` they
        are not read. ``FitReport.n_unlabeled`` counts the pseudo-labeled images trained on.
        """
        t0 = time.perf_counter()
        ps, y = self._fit_inputs(paths, labels, keys)
        x = self._embeddings(ps, keys, progress)
        hits, misses = self.last_cache_stats.hits, self.last_cache_stats.misses
        o = self.options
        method = str(o["semi_supervised"])
        pseudo: PseudoLabels | None = None
        if method != "none" and unlabeled is not None and len(unlabeled) > 0:
            ups = check_paths(unlabeled, unlabeled_keys)
            cap = o["semi_max_unlabeled"]
            pick = subsample(len(ups), None if cap is None else int(cap), seed)
            uks = None if unlabeled_keys is None else [unlabeled_keys[i] for i in pick]
            xu = self._embeddings([ups[i] for i in pick], uks, progress)
            hits, misses = hits + self.last_cache_stats.hits, misses + self.last_cache_stats.misses
            head, summary, pseudo = self._semi_fit(method, x, y, xu, seed, progress)
        else:
            head, summary = self._train(x, y, None, seed, progress)
        self._head = head
        history = [{"epoch": float(summary["epochs"]), "train_loss": summary["train_loss"],
                    "train_accuracy": summary["train_accuracy"]}]  # fmt: skip
        report = fit_report(n_train=len(ps), n_val=0, history=history, best_epoch=1, seconds=time.perf_counter() - t0,
                            device=self.device, cache_hits=hits, cache_misses=misses,
                            n_unlabeled=len(pseudo) if pseudo is not None else 0,
                            semi_supervised=method if pseudo is not None else "none")  # fmt: skip
        # one history row summarises the whole fit: the head trained summary["epochs"] epochs, the last kept
        return dataclasses.replace(report, epochs=summary["epochs"], best_epoch=summary["epochs"])

    def _train(
        self, x: np.ndarray, y: np.ndarray, weight: np.ndarray | None, seed: int, progress: bool
    ) -> tuple[Head, dict[str, Any]]:
        """A new head trained on (N, d) ``x`` and ``y`` (rows weighted by ``weight``), seeded."""
        o = self.options
        with seeded(seed):
            head = Head(o["head"], x.shape[1], self.n_classes, hidden=int(o["hidden"]), dropout=float(o["dropout"]))
            summary = train_head(
                head, x, y, l2=float(o["l2"]), epochs=int(o["epochs"]), lr=float(o["lr"]),
                batch_size=int(o["head_batch_size"]), weight_decay=float(o["weight_decay"]),
                max_iter=int(o["max_iter"]), seed=seed, progress=progress, sample_weight=weight,
            )  # fmt: skip
        return head, summary

    def _semi_fit(
        self, method: str, x: np.ndarray, y: np.ndarray, xu: np.ndarray, seed: int, progress: bool
    ) -> tuple[Head, dict[str, Any], PseudoLabels]:
        """Pseudo-label ``xu`` (U, d) with ``method`` and train the head on labeled + pseudo-labeled rows."""
        o = self.options
        threshold, weight = float(o["semi_threshold"]), float(o["semi_weight"])
        if method == "label_spreading":
            pseudo = spread_labels(x, y, xu, threshold=threshold, neighbors=int(o["semi_neighbors"]))
        else:
            trained: list[tuple[Head, dict[str, Any]]] = []

            def fit(xs: np.ndarray, ys: np.ndarray, ws: np.ndarray) -> Any:
                trained.append(self._train(xs, ys, ws, seed, False))
                head = trained[-1][0]

                def predict(rows: np.ndarray) -> np.ndarray:
                    with torch.no_grad():
                        return self._activate(head(torch.from_numpy(rows))).numpy()

                return predict

            _, pseudo = self_train(fit, x, y, xu, threshold=threshold, iterations=int(o["semi_iterations"]),
                                   weight=weight)  # fmt: skip
            return (*trained[-1], pseudo)
        xs = np.concatenate([x, xu[pseudo.index]])
        ys = np.concatenate([y, pseudo.labels])
        ws = np.concatenate([np.ones(len(y), np.float32), np.full(len(pseudo), weight, np.float32)])
        return (*self._train(xs, ys, ws, seed, progress), pseudo)

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
