"""Choosing the representation (feature extractor and input size) that fits a project's images.

Why: on small grayscale images the representation decides more than the strategy (a
frozen ImageNet backbone fed 32-px inputs lost 18 points to the same backbone at 64 px,
and to a logistic regression on raw pixels; docs/benchmarks.md, "Input size"). Which
one fits a set cannot be known in advance, so a few candidates are embedded and scored
on the labeled images with a criterion that needs few labels, and the best is kept.

The criterion (:data:`DEFAULT_CRITERION`) is the leave-one-out 3-nearest-neighbour
accuracy of the labeled images under cosine similarity of standardised features
(:func:`knn_loo_accuracy`). It needs no training, only the labeled images' embeddings.
docs/representation.md measures how often it picks the candidate whose
logistic-regression head tests best on held-out images: on Fashion-MNIST and digits with
50-200 labels it did so as often as 5-fold cross-validated logistic regression
(:func:`cv_logreg_accuracy`) and lost as little, in milliseconds instead of a second,
and more often than k = 1 or 5.

:func:`default_candidates` lists what is compared, :func:`compare_representations`
embeds (through the embedding cache) and scores them, :func:`should_rechoose` says when a
growing labeled set is worth a new comparison, and :func:`compare_project` runs it all on
a project's labeled pool images (``activelab embed PROJECT --compare``).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from activelab.exceptions import InputError
from activelab.loop.input_size import MIN_INPUT_SIZE, pool_native_side
from activelab.loop.project import Project
from activelab.models import create_model
from activelab.models.pixels import PIXELS_SIZE
from activelab.models.registry import find_model

#: a criterion scores embeddings ``(n, d)`` of labeled images with labels ``(n,)``: higher is better
Criterion = Callable[..., float]


@dataclass(frozen=True)
class Candidate:
    """A frozen feature extractor to compare: a model name, its input size, optional backbone weights.

    ``image_size`` None: the model's own default size. ``backbone_weights``: a state-dict
    file loaded over the backbone (a self-supervised backbone from ``activelab pretrain``).
    """

    name: str
    image_size: int | None = None
    backbone_weights: str | None = None

    @property
    def label(self) -> str:
        """``name@size`` plus ``+ssl`` with backbone weights, e.g. ``efficientnet_lite0@64+ssl``."""
        size = f"@{self.image_size}" if self.image_size is not None else ""
        return f"{self.name}{size}{'+ssl' if self.backbone_weights else ''}"

    @classmethod
    def parse(cls, text: str) -> Candidate:
        """A candidate from ``NAME`` or ``NAME@SIZE`` (the CLI's ``--candidate``)."""
        name, _, size = text.strip().partition("@")
        if not name or (size and not size.isdigit()):
            raise InputError(f"a candidate is NAME or NAME@SIZE (e.g. pixels@28, efficientnet_lite0@64), got {text!r}")
        find_model(name)
        return cls(name, int(size) if size else None)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "image_size": self.image_size, "backbone_weights": self.backbone_weights}


@dataclass(frozen=True)
class Comparison:
    """One candidate's result: the criterion's ``score``, embedding + scoring ``seconds``, embedding ``dim``."""

    candidate: Candidate
    score: float
    seconds: float
    dim: int

    def to_dict(self) -> dict[str, Any]:
        return {"candidate": self.candidate.to_dict(), "label": self.candidate.label, "score": self.score,
                "seconds": self.seconds, "dim": self.dim}  # fmt: skip


@dataclass(frozen=True)
class RepresentationChoice:
    """The chosen candidate, every comparison (in candidate order), how many labels and which criterion."""

    chosen: Candidate
    comparisons: tuple[Comparison, ...]
    n_labels: int
    criterion: str

    @property
    def reason(self) -> str:
        """One line saying why ``chosen`` won."""
        best = next(c for c in self.comparisons if c.candidate == self.chosen)
        others = [c for c in self.comparisons if c.candidate != self.chosen]
        runner = max(others, key=lambda c: c.score, default=None)
        versus = f", next {runner.candidate.label} at {runner.score:.3f}" if runner is not None else ""
        if runner is not None and runner.score > best.score:
            return (f"the configured model is kept: {CRITERIA_TEXT[self.criterion]} on {self.n_labels} labeled "
                    f"images {best.score:.3f}; {runner.candidate.label}'s {runner.score:.3f} is within two "
                    "standard errors")  # fmt: skip
        return (f"highest {CRITERIA_TEXT[self.criterion]} on {self.n_labels} labeled images: "
                f"{best.score:.3f}{versus}")  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen.to_dict(),
            "label": self.chosen.label,
            "comparisons": [c.to_dict() for c in self.comparisons],
            "n_labels": self.n_labels,
            "criterion": self.criterion,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RepresentationChoice:
        comparisons = tuple(
            Comparison(Candidate(**c["candidate"]), float(c["score"]), float(c["seconds"]), int(c["dim"]))
            for c in d["comparisons"]
        )
        return cls(Candidate(**d["chosen"]), comparisons, int(d["n_labels"]), str(d["criterion"]))


# --- criteria -------------------------------------------------------------------------


def _standardise(x: np.ndarray) -> np.ndarray:
    """Each feature to mean 0, sd 1 over the rows (constant features to 0), then each row to unit length."""
    x = np.asarray(x, dtype=np.float64)
    sd = x.std(axis=0)
    z = (x - x.mean(axis=0)) / np.where(sd > 1e-12, sd, 1.0)
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    return z / np.where(norms > 0, norms, 1.0)


def _check_xy(x: np.ndarray, y: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x)
    labels = np.asarray(y)
    if x.ndim != 2 or labels.shape != (len(x),):
        raise InputError(f"embeddings must be (n, d) with labels (n,), got {x.shape} and {labels.shape}")
    if len(x) < 2 or not np.isfinite(x).all():
        raise InputError("a representation criterion needs at least 2 labeled images with finite embeddings")
    return x, labels


def knn_loo_accuracy(
    x: np.ndarray, y: Sequence[int] | np.ndarray, *, k: int = 3, seed: int = 0, block: int = 1024
) -> float:
    """Leave-one-out k-nearest-neighbour accuracy of labeled embeddings.

    ``x``: (n, d) embeddings; ``y``: (n,) labels. Features are standardised over the n
    rows and compared by cosine similarity; each image is classified by the majority of
    its ``k`` nearest other images (a tied vote goes to the class of the nearest tied
    neighbour; neighbours at the same similarity are ordered by a permutation seeded with
    ``seed``). ``k`` larger than the other images is cut to them. Returns the fraction
    classified right. Memory is ``block * n`` floats.
    """
    x, labels = _check_xy(x, y)
    n = len(x)
    if k < 1:
        raise InputError(f"k must be at least 1, got {k}")
    k = min(k, n - 1)
    _, codes = np.unique(labels, return_inverse=True)
    z = _standardise(x)
    perm = np.random.default_rng(seed).permutation(n)
    zp, cp = z[perm], codes[perm]
    right = 0
    for start in range(0, n, block):
        rows = np.arange(start, min(start + block, n))
        sim = z[perm[rows]] @ zp.T  # (b, n): columns in permuted order
        sim[np.arange(len(rows)), rows] = -np.inf  # row r of the block is zp[r] itself
        nearest = np.argsort(-sim, axis=1, kind="stable")[:, :k]  # ties: the permutation's order
        near_codes = cp[nearest]  # (b, k)
        votes = np.zeros((len(rows), int(codes.max()) + 1), dtype=np.int64)
        np.add.at(votes, (np.repeat(np.arange(len(rows)), k), near_codes.ravel()), 1)
        tied = votes[np.arange(len(rows))[:, None], near_codes] == votes.max(axis=1, keepdims=True)
        predicted = near_codes[np.arange(len(rows)), tied.argmax(axis=1)]
        right += int((predicted == cp[rows]).sum())
    return right / n


def cv_logreg_accuracy(x: np.ndarray, y: Sequence[int] | np.ndarray, *, folds: int = 5, seed: int = 0) -> float:
    """Stratified ``folds``-fold cross-validated accuracy of a logistic regression (C=1) on standardised features.

    ``x``: (n, d); ``y``: (n,). With fewer images in a class than folds, some folds lack it.
    Slower than :func:`knn_loo_accuracy` (``folds`` fits), kept as the alternative it was measured against.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    x, labels = _check_xy(x, y)
    n_folds = min(folds, int(np.unique(labels, return_counts=True)[1].max()))
    if n_folds < 2:
        raise InputError("cross-validation needs 2 labeled images of some class")
    right = 0
    with warnings.catch_warnings():  # a class with fewer images than folds is missing from some folds: so be it
        warnings.simplefilter("ignore", UserWarning)
        splits = list(StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(x, labels))
    for train, test in splits:
        mu, sd = x[train].mean(axis=0), x[train].std(axis=0)
        sd = np.where(sd > 1e-12, sd, 1.0)
        clf = LogisticRegression(C=1.0, max_iter=200).fit((x[train] - mu) / sd, labels[train])
        right += int((clf.predict((x[test] - mu) / sd) == labels[test]).sum())
    return right / len(x)


#: the criteria by name; docs/representation.md measures them
CRITERIA: dict[str, Criterion] = {"knn_loo": knn_loo_accuracy, "logreg_cv": cv_logreg_accuracy}
CRITERIA_TEXT: dict[str, str] = {
    "knn_loo": "leave-one-out 3-NN accuracy",
    "logreg_cv": "5-fold cross-validated logistic-regression accuracy",
}
DEFAULT_CRITERION = "knn_loo"


# --- candidates and the choice --------------------------------------------------------------


def _model_native_size(name: str) -> int | None:
    """The input size of ``name``'s pretrained weights (None: no pretrained weights, or unknown offline)."""
    from activelab.loop.input_size import native_input_size
    from activelab.loop.round import model_settings

    entry, _ = find_model(name)
    if not entry.pretrained or "frozen" not in entry.modes:
        return None
    return native_input_size(model_settings(name, mode="frozen"))


def default_candidates(
    name: str, image_size: int | None, *, native_size: int | None = None, ssl_weights: str | None = None
) -> list[Candidate]:
    """What :func:`compare_representations` compares for a project, the configured model first.

    - ``name`` at ``image_size`` (the project's chosen input size);
    - ``name`` at the other sensible size: :data:`~activelab.loop.input_size.MIN_INPUT_SIZE`
      (64 px) when ``image_size`` is another, else the model's native size (224 for
      efficientnet_lite0); only for a model with pretrained weights;
    - ``pixels`` at the images' ``native_size`` (their median longer side), at most 64 px
      (28 px when unknown);
    - ``name`` at ``image_size`` with ``ssl_weights`` (a self-supervised backbone of that model), when given.

    A model that has no frozen mode or no pretrained weights (``small_cnn``) is replaced by
    efficientnet_lite0, the backbone ``activelab embed`` caches for such projects: the
    candidates are fixed embeddings. Duplicates are dropped.
    """
    from activelab.loop.embed import FALLBACK_EMBEDDING_MODEL

    entry, _ = find_model(name)
    configured = name
    if "frozen" not in entry.modes or (not entry.pretrained and name != "pixels"):
        name = FALLBACK_EMBEDDING_MODEL
        entry, _ = find_model(name)
    out: list[Candidate] = []
    out.append(Candidate(name, image_size))
    if entry.pretrained:
        native = _model_native_size(name)
        other = MIN_INPUT_SIZE if image_size != MIN_INPUT_SIZE else native
        if other is not None and other != image_size:
            out.append(Candidate(name, other))
    side = PIXELS_SIZE if native_size is None else max(8, min(int(native_size), MIN_INPUT_SIZE))
    out.append(Candidate("pixels", side))
    if ssl_weights is not None and entry.pretrained and name == configured:  # weights of the configured model
        out.append(Candidate(name, image_size, str(ssl_weights)))
    return list(dict.fromkeys(out))


def compare_representations(
    candidates: Sequence[Candidate],
    paths: Sequence[str],
    labels: Sequence[int] | np.ndarray,
    *,
    keys: Sequence[str] | None = None,
    cache_dir: str | Path | None = None,
    device: str | None = None,
    seed: int = 0,
    progress: bool = False,
    criterion: str = DEFAULT_CRITERION,
) -> RepresentationChoice:
    """Embed the labeled images with each candidate (frozen, through the embedding cache in
    ``cache_dir``) and keep the one the ``criterion`` scores highest.

    ``paths``: (n,) labeled image files, ``labels``: (n,) class positions, ``keys``: their
    sha256 (None: hashed on read). The first candidate (the configured model, first in
    :func:`default_candidates`) is kept unless another beats it by more than two standard errors of
    the difference (:func:`_keep_first_unless_clearly_beaten`). ``seed`` feeds the criterion's tie-break.
    """
    if not candidates:
        raise InputError("no candidates to compare; pass at least one Candidate")
    if criterion not in CRITERIA:
        raise InputError(f"unknown criterion {criterion!r}; expected one of {', '.join(CRITERIA)}")
    y = np.asarray(labels)
    if y.ndim != 1 or len(y) != len(paths):
        raise InputError(f"labels must be one class position per image: {len(paths)} images, labels shaped {y.shape}")
    if len(np.unique(y)) < 2:
        raise InputError("comparing representations needs labeled images of at least 2 classes; label more first")
    comparisons = []
    for cand in candidates:
        t0 = time.perf_counter()
        model = create_model(cand.name, mode="frozen", image_size=cand.image_size,
                             backbone_weights=cand.backbone_weights, cache_dir=cache_dir, device=device)  # fmt: skip
        x = model.embed(list(paths), keys=keys, progress=progress)
        score = CRITERIA[criterion](x, y, seed=seed)
        comparisons.append(Comparison(cand, float(score), time.perf_counter() - t0, int(x.shape[1])))
    best = _keep_first_unless_clearly_beaten(comparisons, len(y))
    return RepresentationChoice(best.candidate, tuple(comparisons), len(y), criterion)


def _keep_first_unless_clearly_beaten(comparisons: list[Comparison], n: int) -> Comparison:
    """The first comparison (the configured model), unless another scores higher by more than two standard
    errors of the difference of two accuracies on ``n`` images, ``2 sqrt((p0 (1 - p0) + p1 (1 - p1)) / n)``;
    then the highest-scoring such one (the first of equal scores).

    Why: both criteria are accuracies on at most a few hundred labeled images, so a gap of 1-3 points
    is noise; on Fashion-MNIST (25k pool, random labels, 200-1,000 labels) raw pixels and Lite0@64 tested
    within 1-3 points of each other and either criterion picked the worse one in about half the draws,
    while on digits the better candidate wins by 6+ points (docs/representation.md, "Keeping the
    configured model").
    """
    first = comparisons[0]
    p0 = min(max(first.score, 0.0), 1.0)
    clear = [
        c
        for c in comparisons[1:]
        if c.score - first.score
        > 2 * np.sqrt((p0 * (1 - p0) + min(max(c.score, 0.0), 1.0) * (1 - c.score)) / max(n, 1))
    ]
    return max(clear, key=lambda c: c.score) if clear else first


def should_rechoose(n_labels: int, n_labels_at_last_choice: int | None, n_classes: int) -> bool:
    """Whether to compare representations now.

    The first time once there are 2 labels per class on average (``n_labels >= 2 *
    n_classes``: fewer leave the criterion a coin toss, so the configured model is kept);
    after that, whenever the labeled set has doubled since the last choice.
    """
    if n_labels_at_last_choice is None:
        return n_labels >= 2 * max(n_classes, 1)
    return n_labels >= 2 * max(n_labels_at_last_choice, 1)


# --- on a project ------------------------------------------------------------------------------


def labeled_pool(project: Project) -> tuple[list[str], list[str], np.ndarray, list[str]]:
    """``(paths, sha256 keys, labels (n,), class names)`` of the pool's labeled images (never the eval split).

    Single-label classification only: InputError for other tasks.
    """
    store = project.store
    classes = store.class_names()
    payloads = {iid: a.payload for iid, a in store.current_annotations("pool").items()}
    refs = [img for img in store.image_refs("pool") if img.id in payloads]
    index = {c: i for i, c in enumerate(classes)}
    if any(not isinstance(payloads[img.id], str) or payloads[img.id] not in index for img in refs):
        raise InputError(
            f"comparing representations needs one class per image; this is a {project.settings.task} project"
        )
    labels = np.array([index[str(payloads[img.id])] for img in refs], dtype=np.int64)
    return [img.path for img in refs], [img.sha256 for img in refs], labels, classes


def compare_project(
    project: Project,
    *,
    extra: Sequence[Candidate] = (),
    ssl_weights: str | None = None,
    device: str | None = None,
    progress: bool = False,
) -> RepresentationChoice:
    """:func:`compare_representations` over the project's :func:`default_candidates` (plus ``extra``)
    on its labeled pool images, with its embedding cache (``PROJECT/cache/embeddings``).

    ``ssl_weights`` None: :func:`activelab.loop.pretrain.candidate_weights`, as the rounds use. Refuses (InputError) a
    project with fewer than 2 labels in some class.
    """
    from activelab.loop.input_size import resolve_input_size
    from activelab.loop.pretrain import candidate_weights

    paths, keys, labels, classes = labeled_pool(project)
    counts = np.bincount(labels, minlength=len(classes)) if len(labels) else np.zeros(len(classes), np.int64)
    few = [c for c, n in zip(classes, counts, strict=True) if n < 2]
    if len(classes) < 2 or few:
        raise InputError(
            f"comparing representations needs at least 2 labeled pool images of every class; "
            f"{', '.join(few) or 'the project'} has fewer: label more (`activelab serve` or `activelab import`) first"
        )
    if ssl_weights is None:
        ssl_weights = candidate_weights(project)
    m = project.settings.model
    candidates = default_candidates(m.name, resolve_input_size(project).pixels, native_size=pool_native_side(project),
                                    ssl_weights=ssl_weights)  # fmt: skip
    candidates += [c for c in extra if c not in candidates]
    return compare_representations(
        candidates, paths, labels, keys=keys, cache_dir=project.cache_dir / "embeddings",
        device=device if device is not None else m.device, seed=project.settings.train.seed, progress=progress,
    )  # fmt: skip
