"""Agreement between rounds' predictions (the stabilising-predictions stopping signal)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import cohen_kappa_score

from activelab.exceptions import InputError


def prediction_agreement(previous: np.ndarray, current: np.ndarray) -> float:
    """Cohen's kappa between two rounds' predictions on the same images.

    ``previous`` / ``current``: ``(N,)`` predicted classes, or for a multi-label task the
    ``(N * C,)`` flattened 0/1 decisions (kappa then measures agreement per image and class).

    The "stabilizing predictions" stopping signal of Bloodgood & Vijay-Shanker
    (2009): when successive models agree (kappa near 1), more labels change little.
    """
    previous, current = np.asarray(previous), np.asarray(current)
    if previous.shape != current.shape:
        raise InputError(f"cannot compare predictions of shapes {previous.shape} and {current.shape}")
    if len(current) == 0:
        return 1.0
    if np.array_equal(previous, current):
        return 1.0
    return float(cohen_kappa_score(previous, current))
