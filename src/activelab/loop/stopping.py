"""When to stop labeling: rules over the recorded learning curve.

Each rule reads only what rounds record (labels used, eval accuracy, agreement
with the previous round's predictions), so the CLI, the web app and a
simulation all decide the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from activelab.exceptions import InputError


@dataclass(frozen=True)
class CurvePoint:
    """One finished round: labels it trained on, its eval score (the task's headline metric: accuracy, or
    micro-F1 for multi-label), agreement with the round before."""

    n_labeled: int
    accuracy: float | None
    agreement: float | None = None


@dataclass(frozen=True)
class StoppingRules:
    """Stop when any set rule fires.

    - ``budget``: at least this many labels used.
    - ``target_accuracy``: eval accuracy reached this value.
    - ``plateau_rounds`` / ``plateau_delta``: the best accuracy of the last
      ``plateau_rounds`` rounds beat the best before them by less than ``plateau_delta``.
    - ``stable_agreement`` / ``stable_rounds``: Cohen's kappa between successive
      rounds' eval predictions stayed at or above ``stable_agreement`` for
      ``stable_rounds`` rounds (Bloodgood & Vijay-Shanker, 2009).
    """

    budget: int | None = None
    target_accuracy: float | None = None
    plateau_rounds: int | None = None
    plateau_delta: float = 0.005
    stable_agreement: float | None = None
    stable_rounds: int = 3

    def __post_init__(self) -> None:
        if self.budget is not None and self.budget < 1:
            raise InputError(f"budget must be at least 1 label, got {self.budget}")
        if self.target_accuracy is not None and not 0 < self.target_accuracy <= 1:
            raise InputError(f"target_accuracy is a fraction in (0, 1], got {self.target_accuracy}")
        if self.plateau_rounds is not None and self.plateau_rounds < 1:
            raise InputError(f"plateau_rounds must be at least 1, got {self.plateau_rounds}")
        if self.stable_agreement is not None and not -1 <= self.stable_agreement <= 1:
            raise InputError(f"stable_agreement is a kappa in [-1, 1], got {self.stable_agreement}")


def stop_reason(curve: Sequence[CurvePoint], rules: StoppingRules) -> str | None:
    """Why labeling should stop now, or None to go on. ``curve`` is oldest round first."""
    if not curve:
        return None
    last = curve[-1]
    if rules.budget is not None and last.n_labeled >= rules.budget:
        return f"label budget reached: {last.n_labeled} >= {rules.budget}"
    if rules.target_accuracy is not None and last.accuracy is not None and last.accuracy >= rules.target_accuracy:
        return f"target accuracy reached: {last.accuracy:.4f} >= {rules.target_accuracy}"
    accs = [p.accuracy for p in curve if p.accuracy is not None]
    m = rules.plateau_rounds
    if m is not None and len(accs) > m:
        before, recent = max(accs[:-m]), max(accs[-m:])
        if recent - before < rules.plateau_delta:
            return (
                f"accuracy plateau: best of the last {m} rounds ({recent:.4f}) is less than "
                f"{rules.plateau_delta} above the best before ({before:.4f})"
            )
    if rules.stable_agreement is not None:
        recent_agreement = [p.agreement for p in curve[-rules.stable_rounds :]]
        if len(recent_agreement) == rules.stable_rounds and all(
            a is not None and a >= rules.stable_agreement for a in recent_agreement
        ):
            return f"predictions stable: kappa >= {rules.stable_agreement} for {rules.stable_rounds} rounds"
    return None
