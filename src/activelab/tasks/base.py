"""The task interface: everything that differs between kinds of annotation lives behind it.

A task (single-label classification, multi-label classification; detection and
segmentation later) owns:

- the **annotation payload** and its validation: a class name for single-label, a
  sorted list of class names for multi-label (an empty list is a valid "none of
  these"); payloads are plain JSON values so the store can keep them as they are;
- how a payload is read from and written to a **table cell** (imports, exports);
- the **model output** it trains (``softmax``: one class per image; ``sigmoid``:
  independent classes) and the **training targets** built from payloads;
- how model outputs become the **per-image arrays strategies read** (the strategy
  registry's vocabulary: ``probs``, ``marginals``, ``grad_factors``, ``labels``...);
- how outputs become a **predicted payload** with a confidence (the app's hint);
- its **metrics**, computed with scikit-learn.

The store, the loop, ``simulate``, ``label_errors`` and the server call this
interface and never branch on a task's name. Tasks are registered by name like
strategies (:func:`activelab.tasks.register_task`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import numpy as np

#: A JSON value: a class name, a list of class names; boxes and masks later.
Payload = Any


class Task(ABC):
    """One kind of annotation. Subclasses set the class attributes and implement the methods."""

    #: registry name, also the ``task:`` value in ``activelab.yaml`` and ``--task`` on the CLI
    name: ClassVar[str]
    #: what a model trained for this task outputs: ``"softmax"`` or ``"sigmoid"``
    output: ClassVar[str]
    #: strategy inputs (registry vocabulary) this task can compute from a model's outputs
    provides: ClassVar[frozenset[str]]
    #: the eval metric that learning curves, stopping rules and the round line lead with
    headline: ClassVar[str] = "accuracy"

    @abstractmethod
    def validate(self, payload: Payload, classes: Sequence[str]) -> Payload:
        """``payload`` in canonical form; raises InputError naming the problem and the fix."""

    @abstractmethod
    def parse(self, text: str, *, sep: str = "|") -> Payload:
        """A payload from a table cell (``sep`` separates several classes where the task allows them)."""

    @abstractmethod
    def format(self, payload: Payload, *, sep: str = "|") -> str:
        """The table-cell text of ``payload``; :meth:`parse` reads it back."""

    @abstractmethod
    def targets(self, payloads: Sequence[Payload], classes: Sequence[str]) -> np.ndarray:
        """Training targets: ``(N,)`` int class positions (softmax) or ``(N, C)`` 0/1 (sigmoid)."""

    @abstractmethod
    def decode(
        self, outputs: np.ndarray, classes: Sequence[str], *, thresholds: np.ndarray | None = None
    ) -> list[tuple[Payload, float]]:
        """The predicted payload and its confidence in [0, 1] for each row of ``outputs`` ``(N, C)``."""

    @abstractmethod
    def strategy_arrays(
        self,
        needed: frozenset[str],
        outputs: np.ndarray,
        *,
        targets: np.ndarray | None = None,
        labeled: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """The arrays in ``needed`` that derive from model ``outputs`` ``(N, C)``.

        ``targets`` are the pool's training targets where labeled (rows of unlabeled
        items are ignored) and ``labeled`` the ``(N,)`` bool mask of labeled items.
        Embeddings and MC samples come from the model itself, not from here.
        """

    @abstractmethod
    def metrics(
        self, targets: np.ndarray, outputs: np.ndarray, classes: Sequence[str], *, thresholds: np.ndarray | None = None
    ) -> dict[str, Any]:
        """Evaluation metrics of ``outputs`` ``(N, C)`` against ``targets``, JSON-serialisable.

        ``thresholds`` are the per-class decision thresholds of :meth:`choose_thresholds`
        (ignored by tasks that decide by arg-max). Every task reports ``n``, ``accuracy``
        and ``macro_f1``, the keys learning curves read.
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
