"""The task interface: everything that differs between kinds of annotation lives behind it.

A task (single-label classification, multi-label classification, detection;
segmentation later) owns:

- the **annotation payload** and its validation: a class name for single-label, a
  sorted list of class names for multi-label (an empty list is a valid "none of
  these"), a list of boxes for detection (``[]`` is "nothing here"); payloads are
  plain JSON values so the store can keep them as they are;
- how a payload is read from and written to a **table cell** (imports, exports);
- the **model output** it trains (``softmax``: one class per image; ``sigmoid``:
  independent classes; ``boxes``: a detector) and the **training targets** built from
  payloads;
- how model outputs become the **arrays strategies read** (the strategy registry's
  vocabulary: ``probs``, ``marginals``, ``grad_factors``, ``labels``, ``box_probs``...),
  and which extra model views (a flipped image, noisy copies) those arrays need;
- how outputs become a **predicted payload** with a confidence (the app's hint), and
  what labeling an image costs (one unit per image, or per box);
- its **metrics**, computed with the field's libraries (scikit-learn, pycocotools).

Model ``outputs`` are an ``(N, C)`` float array for the classification tasks and a
numpy object array ``(N,)`` of per-image dicts for detection; both index by rows
(``outputs[rows]``), which is all the loop does with them.

The store, the loop, ``simulate``, ``label_errors`` and the server call this
interface and never branch on a task's name. Tasks are registered by name like
strategies (:func:`activelab.tasks.register_task`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from activelab._defaults import DEFAULT_MODEL

if TYPE_CHECKING:
    import numpy as np

    from activelab.tasks.masks import MaskStore

#: A JSON value: a class name, a list of class names, a list of box dicts; masks later.
Payload = Any


class Task(ABC):
    """One kind of annotation. Subclasses set the class attributes and implement the methods.

    ``masks`` is where a task whose payloads reference large content-addressed files
    (segmentation masks) keeps them: a project passes its ``masks/`` folder
    (:meth:`~activelab.loop.project.Project.task`); None keeps them in memory (simulations, the
    Python API). Tasks with plain JSON payloads never touch it.
    """

    #: registry name, also the ``task:`` value in ``activelab.yaml`` and ``--task`` on the CLI
    name: ClassVar[str]
    #: what a model trained for this task outputs: ``"softmax"``, ``"sigmoid"`` or ``"boxes"``
    output: ClassVar[str]
    #: the model a project of this task trains when none is named: the default classifier unless a task
    #: needs another kind (detection names its detector); both live in :mod:`activelab._defaults`
    default_model: ClassVar[str] = DEFAULT_MODEL
    #: how many times small pool images are enlarged when a project's input size is chosen: a classifier
    #: reads 28-px items better at 2x; a detector's boxes and anchors are in the image's own pixels (1)
    input_upscale: ClassVar[int] = 2
    #: strategy inputs (registry vocabulary) this task can compute from a model's outputs
    provides: ClassVar[frozenset[str]]
    #: the eval metric that learning curves, stopping rules and the round line lead with
    headline: ClassVar[str] = "accuracy"

    def __init__(self, *, masks: MaskStore | None = None) -> None:
        if masks is None:
            from activelab.tasks.masks import MemoryMasks

            masks = MemoryMasks()
        self.masks = masks

    @abstractmethod
    def validate(self, payload: Payload, classes: Sequence[str], *, size: tuple[int, int] | None = None) -> Payload:
        """``payload`` in canonical form; raises InputError naming the problem and the fix.

        ``size`` is the image's ``(width, height)`` where the payload has coordinates
        (boxes must lie inside it); tasks whose payloads have none ignore it.
        """

    @abstractmethod
    def parse(self, text: str, *, sep: str = "|", base: Path | None = None) -> Payload:
        """A payload from a table cell (``sep`` separates several classes where the task allows them).

        ``base`` is the table's folder: a task whose cells name files (segmentation masks) reads
        relative paths from there; the others ignore it.
        """

    @abstractmethod
    def format(self, payload: Payload, *, sep: str = "|") -> str:
        """The table-cell text of ``payload``; :meth:`parse` reads it back."""

    @abstractmethod
    def targets(self, payloads: Sequence[Payload], classes: Sequence[str]) -> np.ndarray:
        """Training targets indexed by row: ``(N,)`` int class positions (softmax), ``(N, C)`` 0/1
        (sigmoid), or an object array ``(N,)`` of per-image dicts (boxes)."""

    @abstractmethod
    def decode(
        self, outputs: np.ndarray, classes: Sequence[str], *, thresholds: np.ndarray | None = None
    ) -> list[tuple[Payload, float]]:
        """The predicted payload and its confidence in [0, 1] for each row of ``outputs``.

        ``outputs`` is ``(N, C)`` or, for detection, an object array ``(N,)`` of per-image dicts.
        """

    @abstractmethod
    def strategy_arrays(
        self,
        needed: frozenset[str],
        outputs: np.ndarray,
        *,
        targets: np.ndarray | None = None,
        labeled: np.ndarray | None = None,
        views: Mapping[str, list[np.ndarray]] | None = None,
        images: Sequence[str] | None = None,
    ) -> dict[str, np.ndarray]:
        """The arrays in ``needed`` that derive from model ``outputs`` (``(N, C)`` or an object array ``(N,)``).

        ``targets`` are the pool's training targets where labeled (rows of unlabeled
        items are ignored) and ``labeled`` the ``(N,)`` bool mask of labeled items.
        ``views`` holds the model's predictions on the views :meth:`views_for` asked for
        (view name -> one outputs array per variant); tasks without views ignore it.
        ``images`` are the pool's image paths, in the same order, for arrays read from the
        images themselves (segmentation's superpixel regions); the other tasks ignore them.
        Embeddings and MC samples come from the model itself, not from here.
        """

    def views_for(self, needed: frozenset[str]) -> list[str]:
        """The model views (e.g. ``"hflip"``, ``"noise"``) whose predictions the arrays in ``needed`` need.

        The loop asks the model for these (``predict_views``) and hands them to
        :meth:`strategy_arrays`. No view (the default) for tasks that read one prediction.
        """
        return []

    def costs(self, outputs: np.ndarray) -> np.ndarray:
        """The ``(N,)`` float labeling cost (>= 1) of each image, for a budget counted in boxes.

        One unit per image by default; a task whose images take more work to label the
        more objects they hold (detection) estimates that from the model's ``outputs``.
        """
        import numpy as np  # the module stays numpy-free for name checks

        return np.ones(len(outputs), dtype=np.float64)

    @abstractmethod
    def metrics(
        self, targets: np.ndarray, outputs: np.ndarray, classes: Sequence[str], *, thresholds: np.ndarray | None = None
    ) -> dict[str, Any]:
        """Evaluation metrics of ``outputs`` (``(N, C)`` or an object array ``(N,)``) against ``targets``.

        JSON-serialisable. ``thresholds`` are the per-class decision thresholds of
        :meth:`choose_thresholds` (ignored by tasks that decide by arg-max). Every task
        reports ``n`` and its :attr:`headline`, the keys learning curves read.
        """

    def choose_thresholds(self, targets: np.ndarray, outputs: np.ndarray) -> np.ndarray | None:
        """Per-class decision thresholds ``(C,)`` fitted on held-out ``targets`` and ``outputs``.

        The loop calls it after training and passes the result to :meth:`decode` (the hints);
        metrics use the task's default rule. ``None`` (the default) for tasks that decide by arg-max.
        """
        return None

    def model_options(self) -> Mapping[str, Any]:
        """Options the model factory needs for this task's output (e.g. ``{"output": "sigmoid"}``)."""
        return {"output": self.output}
