"""A fastai ``Learner`` behind the model-adapter interface (optional: ``pip install 'activelab[fastai]'``).

Two ways in:

- ``create_model("fastai/<arch>")`` builds ``vision_learner(dls, arch, pretrained=...)``
  on each ``fit``: ``<arch>`` is a timm name (fastai's own convention for a string arch,
  e.g. ``fastai/resnet18``, ``fastai/convnext_tiny``) or ``torchvision/<name>``
  (``fastai/torchvision/resnet18``: the torchvision builder, with fastai's cut, splitter
  and normalisation where fastai knows the architecture).
- ``FastaiAdapter.from_learner(learn, classes=...)`` wraps a user's existing
  ``Learner`` (a single-label image classifier whose DataLoaders take image paths, as
  ``ImageDataLoaders.from_folder`` / ``from_lists`` / ``from_df`` and ``DataBlock`` with
  ``ImageBlock`` build them). Each ``fit`` restarts from the weights the learner had when
  it was wrapped (``warm_start=True`` keeps training the current ones) and trains on new
  DataLoaders that reuse the learner's own item and batch transforms.

Images are read with :func:`activelab.data.images.load_rgb` (EXIF orientation, 16-bit
scaling), like every other model, not with fastai's ``PILImage.create`` on a path. Only
``output="softmax"`` (single-label) is supported. fastai is imported lazily: without it,
:class:`MissingDependencyError`.

Shapes (see :mod:`activelab.models.base`): ``predict_proba`` (N, C) softmax of the
logits; ``embed`` / ``last_layer_features`` (N, h) the input of the final linear layer
(fastai heads: the 512-d output of the head's hidden block); ``mc_predict`` (T, N, C) with
the model's dropout layers on and BatchNorm frozen (Gal & Ghahramani, 2016);
``grad_embed`` (N, C * h) BADGE gradient embeddings (Ash et al., 2020).

``save`` writes one file: the activelab header (format, kind ``"fastai"``, classes,
config) around ``learn.export()``'s bytes (fastai's own pickle of model and transforms,
without data), plus the restart weights of a wrapped learner. Loading unpickles the
learner like ``fastai.learner.load_learner``: load only files you trust.
"""

from __future__ import annotations

import io
import os
import random
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from activelab.data.images import load_rgb
from activelab.exceptions import InputError, MissingDependencyError, NotFoundError, UnsupportedError
from activelab.models._adapter import AdapterBase, fit_report, init_classes, split_validation
from activelab.models.backbones import BackboneSpec
from activelab.models.base import FitReport, ModelAdapter, PathLike, check_n_samples, check_paths, pick_device, seeded
from activelab.progress import ProgressTask, progress_task, track

INSTALL_HINT = "pip install 'activelab[fastai]'"

#: options of the fastai adapter and their defaults
FASTAI_DEFAULTS: dict[str, Any] = {
    "epochs": 5,  # epochs with the whole network trainable (fine_tune's `epochs`)
    "lr": 2e-3,  # fine_tune's base_lr / fit_one_cycle's lr_max
    "method": "auto",  # "fine_tune" | "fit_one_cycle" | "auto" (see FastaiAdapter.fit)
    "freeze_epochs": 1,  # fine_tune: epochs with the pretrained body frozen first
    "batch_size": 32,
    "val_fraction": 0.1,  # held out for the reported validation loss/accuracy
    "min_val_size": 8,  # no validation split when fewer images would be held out
    "augment": True,  # fastai aug_transforms on built learners (wrapped ones keep their own)
    "hflip": True,
    "ps": 0.5,  # dropout of the fastai head (vision_learner's `ps`); > 0 gives MC dropout
    "num_workers": 0,
    "warm_start": False,  # wrapped learners: keep training the current weights instead of restarting
}

SOURCES = ("timm", "torchvision", "learner")


def import_fastai() -> Any:
    """``fastai.vision.all``, or :class:`MissingDependencyError` with the install command."""
    try:
        import fastai  # noqa: F401
        from fastai.vision import all as fv
    except ImportError as e:
        raise MissingDependencyError(
            f"the fastai model adapter needs the fastai package, which is not installed ({e}); "
            f"install it with: {INSTALL_HINT}"
        ) from e
    return fv


@contextmanager
def _python_random(seed: int) -> Iterator[None]:
    """Seed Python's ``random`` (fastai's augmentations and DataLoader shuffles draw from
    it) for a block, restoring the caller's state after."""
    state = random.getstate()
    random.seed(int(seed))
    try:
        yield
    finally:
        random.setstate(state)


def open_rgb(path):  # type: ignore[no-untyped-def]
    """An image file as fastai's ``PILImage``, read with :func:`load_rgb` (a module-level
    function, so ``learn.export`` can pickle the pipeline that uses it). Unannotated on
    purpose: fastai dispatches a function transform on its annotations."""
    fv = import_fastai()
    return fv.PILImage.create(load_rgb(os.fspath(path)))


def create_fastai(
    arch: str,
    *,
    mode: str,
    pretrained: bool,
    classes: Sequence[str] | None,
    num_classes: int | None,
    image_size: int | None,
    device: str | None,
    backbone_weights: PathLike | None,
    build: bool,
    **options: Any,
) -> ModelAdapter:
    """The model table's builder of ``fastai/<arch>`` names (``arch`` checked by the registry)."""
    if backbone_weights is not None:
        raise InputError(
            "backbone_weights is not supported for fastai/ models; wrap your own Learner with from_learner"
        )
    source, name = ("torchvision", arch[len("torchvision/") :]) if arch.startswith("torchvision/") else ("timm", arch)
    adapter = FastaiAdapter(name, source=source, pretrained=pretrained, classes=classes, num_classes=num_classes,
                            image_size=image_size, device=device, **options)  # fmt: skip
    if build:
        adapter.build()
    return adapter  # type: ignore[return-value]


def _final_linear(model: nn.Module) -> nn.Linear | None:
    """The last ``nn.Linear`` registered in ``model`` (the classifier of a fastai head)."""
    found = None
    for m in model.modules():
        if isinstance(m, nn.Linear):
            found = m
    return found


def _plain(t: torch.Tensor) -> torch.Tensor:
    """A plain float32 CPU tensor (fastai hands out TensorBase subclasses)."""
    return t.detach().as_subclass(torch.Tensor).float().cpu()


def _progress_callback(task: ProgressTask, description: str | None = None) -> Any:
    """A fastai Callback that advances an :mod:`activelab.progress` task by one per batch (training batches
    while fitting, every batch while predicting) and, given ``description``, shows each epoch's losses."""
    fv = import_fastai()

    class Report(fv.Callback):  # type: ignore[misc,name-defined]
        order = 65

        def after_batch(self) -> None:
            if self.training or description is None:
                task.advance(1)

        def after_epoch(self) -> None:
            if description is not None:
                names = self.learn.recorder.metric_names[1:-1]
                values = self.learn.recorder.values[-1]
                task.describe(
                    f"{description}: "
                    + ", ".join(f"{n} {float(v):.4f}" for n, v in zip(names, values) if v is not None)
                )

    return Report()


def _history_callback() -> Any:
    """A fastai Callback that keeps every epoch's recorder row (``fine_tune`` runs two
    ``fit`` calls and the Recorder forgets the first)."""
    fv = import_fastai()

    class History(fv.Callback):  # type: ignore[misc,name-defined]
        order = 60  # after the Recorder (50) has written the epoch's row

        def __init__(self) -> None:
            self.rows: list[list[Any]] = []

        def after_epoch(self) -> None:
            self.rows.append(list(self.learn.recorder.values[-1]))

    return History()


class FastaiAdapter(AdapterBase):
    """A fastai ``Learner`` (built with ``vision_learner`` or wrapped) as a model adapter."""

    kind = "fastai"
    mode = "finetune"
    defaults = FASTAI_DEFAULTS

    def __init__(
        self,
        arch: str,
        *,
        source: str = "timm",
        pretrained: bool = True,
        classes: Sequence[str] | None = None,
        num_classes: int | None = None,
        image_size: int | None = None,
        device: str | None = None,
        **options: Any,
    ) -> None:
        if source not in SOURCES:
            raise InputError(f"source must be one of {SOURCES}, got {source!r}")
        if image_size is not None and (not isinstance(image_size, int) or image_size < 8):
            raise InputError(f"image_size must be an integer >= 8 pixels, got {image_size!r}")
        spec = BackboneSpec(source=source, name=arch, pretrained=bool(pretrained), image_size=image_size)
        super().__init__(spec, classes=classes, num_classes=num_classes, device=device, options=options)
        if self.output != "softmax":
            raise UnsupportedError(
                "fastai models are single-label (output='softmax'); for multi-label (output='sigmoid') "
                "use a frozen or finetune model, e.g. create_model('efficientnet_lite0', output='sigmoid')"
            )
        if source == "learner":
            self.name = f"fastai/learner:{arch}"
        elif source == "torchvision":
            self.name = f"fastai/torchvision/{arch}"
        else:
            self.name = f"fastai/{arch}"
        if self.options["method"] not in ("auto", "fine_tune", "fit_one_cycle"):
            raise InputError(f"method must be 'auto', 'fine_tune' or 'fit_one_cycle', got {self.options['method']!r}")
        self._built = False
        self._arch_kwargs: dict[str, Any] = {}
        self._learn: Any = None  # the fastai Learner (after fit, or wrapped)
        self._fitted = False
        self._init_state: dict[str, torch.Tensor] | None = None  # wrapped: restart weights

    # --- construction ------------------------------------------------------------------

    @classmethod
    def from_learner(
        cls,
        learner: Any,
        *,
        classes: Sequence[str] | None = None,
        device: str | None = None,
        **options: Any,
    ) -> FastaiAdapter:
        """Wrap an existing fastai ``Learner`` (a single-label image classifier).

        ``classes`` name the model's output columns in order; by default the learner's
        ``dls.vocab``. ``fit`` labels are positions into them. A learner is taken to be
        trained already: ``predict_proba`` works before ``fit``. ``options`` as in
        :data:`FASTAI_DEFAULTS` (``augment``/``hflip``/``ps`` do not apply: the learner's
        own transforms and head are used).
        """
        fv = import_fastai()
        if not isinstance(learner, fv.Learner):
            raise InputError(f"from_learner needs a fastai Learner, got {type(learner).__name__}")
        vocab = getattr(learner.dls, "vocab", None)
        vocab_names = [str(v) for v in vocab] if vocab is not None else None
        if classes is None:
            if vocab_names is None:
                raise InputError("the learner's DataLoaders have no vocab; pass classes= naming its outputs in order")
            names = vocab_names
        else:
            names = init_classes(classes, None)
            if vocab_names is not None:
                if len(names) != len(vocab_names):
                    raise InputError(
                        f"{len(names)} classes were given but the learner's vocab has {len(vocab_names)}: {vocab_names}"
                    )
                if set(names) == set(vocab_names) and names != vocab_names:
                    raise InputError(
                        f"classes {names} name the learner's vocab {vocab_names} in another order; "
                        "classes must follow the model's output columns, i.e. the vocab order"
                    )
        m = cls(type(learner.model).__name__, source="learner", pretrained=False, classes=names,
                device=device, **options)  # fmt: skip
        m._built = True
        m.device = pick_device(device)
        m._learn = learner
        m._learn.model.to(m.device)
        m._learn.dls.to(torch.device(m.device))
        m._init_state = {k: v.detach().to("cpu", copy=True) for k, v in learner.model.state_dict().items()}
        m._fitted = True
        lin = _final_linear(learner.model)
        if lin is not None and lin.out_features != len(names):
            raise InputError(
                f"the learner's final linear layer has {lin.out_features} outputs but {len(names)} classes were given"
            )
        return m

    def build(self) -> FastaiAdapter:
        """Check fastai is installed and the pretrained weights can be had (never hangs
        offline: :class:`~activelab.exceptions.OfflineError` at once); returns self."""
        if self._built:
            return self
        import_fastai()
        self.device = pick_device(self._device_arg)
        src, arch = self.spec.source, self.spec.name
        if src == "timm":
            self._arch_kwargs = _timm_kwargs(arch, self.spec.pretrained)
        elif src == "torchvision":
            from activelab.models.hub import torchvision_weights

            self._arch_kwargs = {"weights": torchvision_weights(arch, self.spec.pretrained)}
        self._built = True
        return self

    @property
    def supports(self) -> frozenset[str]:  # type: ignore[override]
        s = {"probs"}
        if self.spec.source == "learner":
            model = self._learn.model if self._learn is not None else None
            lin = _final_linear(model) if model is not None else None
            if lin is not None:
                s |= {"embeddings", "grad_embeddings"}
            if model is not None and any(isinstance(m, nn.Dropout) and m.p > 0 for m in model.modules()):
                s.add("mc_probs")
        else:
            s |= {"embeddings", "grad_embeddings"}
            if float(self.options["ps"]) > 0:
                s.add("mc_probs")
        return frozenset(s)

    @property
    def config(self) -> dict[str, Any]:
        c = super().config
        c["framework"] = "fastai"
        return c

    @property
    def learner(self) -> Any:
        """The fastai ``Learner`` (None for a built adapter before its first ``fit``)."""
        return self._learn

    # --- training ----------------------------------------------------------------------

    def _frame(self, paths: list[str], y: np.ndarray, vocab: list[Any]) -> Any:
        import pandas as pd

        return pd.DataFrame({"filepath": [Path(p) for p in paths], "label": [vocab[int(i)] for i in y]})

    def _new_learner(self, df: Any, val_idx: np.ndarray, bs: int) -> Any:
        fv = import_fastai()
        o = self.options
        size = self.spec.image_size or 224
        batch_tfms = fv.aug_transforms(do_flip=bool(o["hflip"])) if o["augment"] else None
        image_block = fv.TransformBlock(type_tfms=open_rgb, batch_tfms=fv.IntToFloatTensor)
        block = fv.DataBlock(
            blocks=(image_block, fv.CategoryBlock(vocab=list(self.classes), sort=False)),
            get_x=fv.ColReader("filepath"),
            get_y=fv.ColReader("label"),
            splitter=fv.IndexSplitter(val_idx.tolist()),
            item_tfms=fv.Resize(size, method=fv.ResizeMethod.Squish),
            batch_tfms=batch_tfms,
        )
        dls = block.dataloaders(df, bs=bs, num_workers=int(o["num_workers"]), device=torch.device(self.device))
        arch: Any = self.spec.name
        kwargs = dict(self._arch_kwargs)
        if self.spec.source == "torchvision":
            arch = _torchvision_arch(self.spec.name)
        learn = fv.vision_learner(dls, arch, pretrained=self.spec.pretrained, ps=float(o["ps"]), **kwargs)
        if self.spec.source == "torchvision" and self.spec.pretrained:
            _ensure_imagenet_norm(dls)
        return learn

    def _refit_learner(self, df: Any, tr: np.ndarray, va: np.ndarray, bs: int) -> Any:
        """The wrapped learner with new DataLoaders over ``df`` that reuse its transforms."""
        fv = import_fastai()
        learn = self._learn
        if not self.options["warm_start"]:
            assert self._init_state is not None
            learn.model.load_state_dict(self._init_state)
        vocab = list(df["label"].unique()) if getattr(learn.dls, "vocab", None) is None else list(learn.dls.vocab)
        dsets = fv.Datasets(
            df,
            tfms=[[fv.ColReader("filepath"), open_rgb],
                  [fv.ColReader("label"), fv.Categorize(vocab=vocab, sort=False)]],
            splits=(tr.tolist(), va.tolist()),
        )  # fmt: skip
        old = learn.dls
        nw = int(self.options["num_workers"])
        train = old.train.new(dsets.train, bs=bs, shuffle=True, drop_last=True, num_workers=nw)
        valid = old.valid.new(dsets.valid, bs=bs, shuffle=False, drop_last=False, num_workers=nw)
        learn.dls = fv.DataLoaders(train, valid, path=old.path, device=torch.device(self.device))
        learn.opt = None
        return learn

    def fit(
        self,
        paths: Sequence[PathLike],
        labels: Sequence[int],
        *,
        keys: Sequence[str] | None = None,
        seed: int = 0,
        progress: bool = False,
    ) -> FitReport:
        """Train on ``paths`` / ``labels`` (positions into ``classes``; ``keys`` unused).

        Built adapters create a fresh ``vision_learner`` (pretrained or seeded random
        weights) each call; wrapped ones restart from their wrapped weights unless
        ``warm_start``. ``method="auto"`` runs ``fine_tune(epochs, lr, freeze_epochs)``
        when there is a pretrained body to freeze (a built pretrained learner, or a wrapped
        one whose splitter gives several parameter groups), else ``fit_one_cycle(epochs, lr)``.
        A validation split (``val_fraction``) is only reported, not used to stop early.
        """
        t0 = time.perf_counter()
        ps, y = self._fit_inputs(paths, labels, keys)
        _check_files(ps)
        self.build()
        fv = import_fastai()
        o = self.options
        epochs, freeze_epochs = int(o["epochs"]), int(o["freeze_epochs"])
        if epochs < 1:
            raise InputError(f"epochs must be >= 1, got {epochs}")
        tr, va = split_validation(len(ps), float(o["val_fraction"]), int(o["min_val_size"]), seed)
        if len(tr) < 2:
            raise InputError(f"fit needs at least 2 training images (BatchNorm), got {len(tr)}")
        bs = max(2, min(int(o["batch_size"]), len(tr)))
        wrapped = self.spec.source == "learner"
        with seeded(seed, self.device), _python_random(seed), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            if wrapped:
                vocab = (
                    list(self._learn.dls.vocab) if getattr(self._learn.dls, "vocab", None) is not None else self.classes
                )
                learn = self._refit_learner(self._frame(ps, y, vocab), tr, va, bs)
                groups = learn.splitter(learn.model)  # a list of tensors is one group (fastai's Optimizer)
                pretrained_body = len(groups) > 1 and isinstance(groups[0], (list, tuple, fv.L))
            else:
                learn = self._new_learner(self._frame(ps, y, list(self.classes)), va, bs)
                pretrained_body = self.spec.pretrained
            method = o["method"]
            if method == "auto":
                method = "fine_tune" if pretrained_body else "fit_one_cycle"
            history_cb = _history_callback()
            old_metrics = learn.metrics
            learn.metrics = [fv.accuracy]
            total_epochs = epochs + (freeze_epochs if method == "fine_tune" else 0)
            try:
                with (
                    learn.no_bar(),
                    learn.no_logging(),
                    progress_task(progress, f"fine-tuning {self.name}", total=total_epochs * len(learn.dls.train),
                                  unit="batch") as bar,
                ):  # fmt: skip
                    cbs = [history_cb, _progress_callback(bar, f"fine-tuning {self.name}")]
                    if method == "fine_tune":
                        learn.fine_tune(epochs, base_lr=float(o["lr"]), freeze_epochs=freeze_epochs, cbs=cbs)
                    else:
                        learn.fit_one_cycle(epochs, float(o["lr"]), cbs=cbs)
            finally:
                learn.metrics = old_metrics
        learn.model.eval()
        self._learn = learn
        self._fitted = True
        history: list[dict[str, float]] = []
        for i, row in enumerate(history_cb.rows, start=1):
            rec: dict[str, float] = {"epoch": float(i), "train_loss": float(row[0])}
            if len(va) and len(row) >= 3 and row[1] is not None:
                rec.update(val_loss=float(row[1]), val_accuracy=float(row[2]))
            history.append(rec)
        return fit_report(n_train=len(tr), n_val=len(va), history=history, best_epoch=len(history),
                          seconds=time.perf_counter() - t0, device=self.device)  # fmt: skip

    # --- inference ---------------------------------------------------------------------

    def _fitted_learner(self) -> Any:
        self._require_fitted(self._fitted and self._learn is not None)
        return self._learn

    def _test_dl(self, learn: Any, ps: list[str]) -> Any:
        return learn.dls.test_dl([Path(p) for p in ps], bs=int(self.options["batch_size"]),
                                 num_workers=int(self.options["num_workers"]))  # fmt: skip

    def _batches(self, learn: Any, ps: list[str], fn: Callable[[torch.Tensor], Any], progress: bool,
                 desc: str) -> list[Any]:  # fmt: skip
        """``fn(x)`` on each batch of the learner's test-time inputs for ``ps`` (no grad)."""
        dl = self._test_dl(learn, ps)
        outs = []
        with torch.no_grad():
            for b in track(dl, progress, desc, unit="batch"):
                x = b[0] if isinstance(b, (tuple, list)) else b
                outs.append(fn(x.as_subclass(torch.Tensor)))
        return outs

    def _linear(self, learn: Any) -> nn.Linear:
        lin = _final_linear(learn.model)
        if lin is None:
            raise UnsupportedError(f"{self.name} has no final linear layer, so no embeddings or gradient embeddings")
        return lin

    def predict_proba(
        self, paths: Sequence[PathLike], *, keys: Sequence[str] | None = None, progress: bool = False
    ) -> np.ndarray:
        """(N, C) float32 softmax probabilities (``learn.get_preds`` on a test DataLoader)."""
        ps = check_paths(paths, keys)
        learn = self._fitted_learner()
        if not ps:
            return np.zeros((0, self.n_classes), np.float32)
        _check_files(ps)
        dl = self._test_dl(learn, ps)
        with learn.no_bar(), progress_task(progress, "predicting", total=len(dl), unit="batch") as bar:
            preds, _ = learn.get_preds(dl=dl, act=lambda t: self._activate(_plain(t)), cbs=[_progress_callback(bar)])
        return self._finish(_plain(preds).numpy())

    def _features(self, learn: Any, ps: list[str], progress: bool, desc: str,
                  with_probs: bool) -> tuple[np.ndarray, np.ndarray | None]:  # fmt: skip
        """(N, h) inputs of the final linear layer, and (N, C) probabilities if asked."""
        lin = self._linear(learn)
        model = learn.model.eval()
        captured: list[torch.Tensor] = []
        handle = lin.register_forward_pre_hook(lambda _m, inp: captured.append(_plain(inp[0])))
        try:

            def fn(x: torch.Tensor) -> torch.Tensor:
                return self._activate(_plain(model(x)))

            outs = self._batches(learn, ps, fn, progress, desc)
        finally:
            handle.remove()
        h = torch.cat(captured).numpy().astype(np.float32) if captured else np.zeros((0, lin.in_features), np.float32)
        p = torch.cat(outs).numpy() if outs else np.zeros((0, self.n_classes), np.float32)
        return h, (p if with_probs else None)

    def embed(
        self, paths: Sequence[PathLike], *, keys: Sequence[str] | None = None, progress: bool = False
    ) -> np.ndarray:
        """(N, h) float32: the input of the final linear layer (fastai heads: 512-d)."""
        ps = check_paths(paths, keys)
        learn = self._fitted_learner()
        if ps:
            _check_files(ps)
        if not ps:
            return np.zeros((0, self._linear(learn).in_features), np.float32)
        return self._features(learn, ps, progress, "embedding", with_probs=False)[0]

    def last_layer_features(
        self, paths: Sequence[PathLike], *, keys: Sequence[str] | None = None, progress: bool = False
    ) -> np.ndarray:
        """(N, h) float32 input of the final linear layer (the factored BADGE gradients' ``h``)."""
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
        """(T, N, C) float32 MC-dropout probabilities: dropout on, BatchNorm in eval mode.

        When the model is fastai's ``Sequential(body, head)`` with dropout only in the
        head, the body runs once per batch and the head ``T`` times.
        """
        t = check_n_samples(n_samples)
        ps = check_paths(paths, keys)
        learn = self._fitted_learner()
        if "mc_probs" not in self.supports:
            raise UnsupportedError(f"{self.name} has no dropout layer, so no MC-dropout samples (use ps>0)")
        if not ps:
            return np.zeros((t, 0, self.n_classes), np.float32)
        _check_files(ps)
        model = learn.model.eval()
        split = (
            isinstance(model, nn.Sequential)
            and len(model) == 2
            and not any(isinstance(m, nn.Dropout) and m.p > 0 for m in model[0].modules())
        )

        def fn(x: torch.Tensor) -> torch.Tensor:
            if split:
                f = model[0](x)
                return self._mc_samples(model, lambda: _plain(model[1](f)), t)
            return self._mc_samples(model, lambda: _plain(model(x)), t)

        with seeded(seed, self.device):
            outs = self._batches(learn, ps, fn, progress, "MC dropout")
        return self._finish(torch.cat(outs, dim=1).numpy())

    def grad_embed(
        self, paths: Sequence[PathLike], *, keys: Sequence[str] | None = None, progress: bool = False
    ) -> np.ndarray:
        """(N, C * h) float32 BADGE gradient embeddings of the final linear layer."""
        ps = check_paths(paths, keys)
        learn = self._fitted_learner()
        lin = self._linear(learn)
        if not ps:
            return np.zeros((0, self.n_classes * lin.in_features), np.float32)
        _check_files(ps)
        h, p = self._features(learn, ps, progress, "gradient embeddings", with_probs=True)
        assert p is not None
        return self._grad_embed(p, h)

    # --- persistence -------------------------------------------------------------------

    def save(self, path: PathLike) -> None:
        """Write the learner (``learn.export``), class map and config to one file."""
        learn = self._fitted_learner()
        with tempfile.TemporaryDirectory() as tmp:
            target = Path(tmp) / "export.pkl"
            old_path = learn.path
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    learn.export(target)
            finally:
                learn.path = old_path
            blob = target.read_bytes()
        payload = self._payload()
        payload.update(learner=blob, init_state=self._init_state)
        self._write(path, payload)

    @classmethod
    def load(cls, path: PathLike, *, device: str | None = None) -> FastaiAdapter:
        """Restore a saved fastai model (unpickles the exported learner: trusted files only)."""
        obj = cls._read(path, "fastai")
        fv = import_fastai()
        spec = BackboneSpec.from_dict(obj["spec"])
        m = cls(spec.name, source=spec.source, pretrained=spec.pretrained, classes=obj["classes"],
                image_size=spec.image_size, device=device, **obj["options"])  # fmt: skip
        m.device = pick_device(device)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            learn = fv.load_learner(io.BytesIO(obj["learner"]), cpu=True)
        learn.model.to(m.device).eval()
        learn.dls.to(torch.device(m.device))
        m._learn = learn
        m._fitted = True
        m._init_state = obj.get("init_state")
        # built learners are rebuilt on the next fit (pretrained weights are fetched then)
        m._built = spec.source == "learner"
        return m


# --- helpers --------------------------------------------------------------------------


def _check_files(ps: list[str]) -> None:
    for p in ps:
        if not os.path.exists(p):
            raise NotFoundError(f"image file not found: {p}")


def _timm_kwargs(arch: str, pretrained: bool) -> dict[str, Any]:
    """Extra ``timm.create_model`` arguments for ``vision_learner``: the cached weights file
    when there is one; OfflineError at once when the weights cannot be downloaded."""
    if not pretrained:
        return {}
    import timm

    from activelab.exceptions import OfflineError
    from activelab.models.hub import (
        _timm_cached_file,
        host_reachable,
        hub_offline_env,
        offline_error,
    )

    try:
        cfg = timm.models.get_pretrained_cfg(arch)
    except Exception:  # pragma: no cover - defensive
        cfg = None
    if cfg is None:
        raise OfflineError(f"timm model {arch!r} has no pretrained weights; pass pretrained=False")
    local = _timm_cached_file(cfg)
    if local is not None:
        return {"pretrained_cfg_overlay": {"file": local}}
    from urllib.parse import urlparse

    host = "huggingface.co" if getattr(cfg, "hf_hub_id", None) else urlparse(getattr(cfg, "url", "") or "").hostname
    if hub_offline_env() or not host or not host_reachable(host):
        raise offline_error(f"fastai/{arch}", host)
    return {}


class _TorchvisionArch:
    """A torchvision builder in the call form fastai uses for archs it has no metadata for
    (``arch(pretrained=...)``); picklable, so ``learn.export`` works."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, pretrained: bool = False, weights: Any = None) -> nn.Module:
        import torchvision

        if pretrained and weights is None:
            weights = torchvision.models.get_model_weights(self.name).DEFAULT
        return torchvision.models.get_model(self.name, weights=weights)


def _torchvision_arch(name: str) -> Any:
    """fastai's own entry for a torchvision builder it knows (cut, splitter, stats), else a wrapper."""
    import torchvision
    from fastai.vision.learner import model_meta

    builder = torchvision.models.get_model_builder(name)
    if builder in model_meta:
        return builder
    return _TorchvisionArch(name)


def _ensure_imagenet_norm(dls: Any) -> None:
    fv = import_fastai()
    if not dls.after_batch.fs.filter(fv.risinstance(fv.Normalize)):
        dls.add_tfms([fv.Normalize.from_stats(*fv.imagenet_stats)], "after_batch")
