from __future__ import annotations

import numpy as np
import pytest

from activelab.exceptions import InputError
from activelab.simulate.metrics import labels_to_reach, normalised_auc, summarise


def test_auc_of_a_hand_made_curve() -> None:
    # trapezoids: (0.5+0.7)/2*10 + (0.7+0.9)/2*20 = 6 + 16 = 22 over a range of 30
    assert normalised_auc([10, 20, 40], [0.5, 0.7, 0.9]) == pytest.approx(22 / 30)
    assert normalised_auc([10, 20], [1.0, 1.0]) == pytest.approx(1.0)
    assert normalised_auc([10], [0.42]) == pytest.approx(0.42)


def test_labels_to_reach() -> None:
    n, acc = [10, 20, 40, 80], [0.5, 0.7, 0.69, 0.9]
    assert labels_to_reach(n, acc, 0.7) == 20
    assert labels_to_reach(n, acc, 0.5) == 10
    assert labels_to_reach(n, acc, 0.85) == 80
    assert labels_to_reach(n, acc, 0.95) is None


def test_curve_must_increase() -> None:
    with pytest.raises(InputError, match="increase"):
        normalised_auc([10, 10], [0.1, 0.2])


def test_summary_ratios_to_random() -> None:
    curves = {
        "random": {
            0: ([10, 20, 30], [0.5, 0.6, 0.8]),
            1: ([10, 20, 30], [0.5, 0.8, 0.8]),
        },  # mean 0.5 0.7 0.8
        "margin": {
            0: ([10, 20, 30], [0.5, 0.8, 0.9]),
            1: ([10, 20, 30], [0.5, 0.8, 0.9]),
        },
    }
    rows = {r["strategy"]: r for r in summarise(curves, [0.7, 0.85])}
    assert rows["random"]["labels_to_70%"] == 20
    assert rows["random"]["labels_to_85%"] is None
    assert rows["margin"]["labels_to_70%"] == 20
    assert rows["margin"]["ratio_to_70%"] == pytest.approx(1.0)
    assert rows["margin"]["labels_to_85%"] == 30
    assert rows["margin"]["ratio_to_85%"] is None  # random never got there
    rand_auc = ((0.5 + 0.7) / 2 * 10 + (0.7 + 0.8) / 2 * 10) / 20
    assert rows["random"]["auc"] == pytest.approx(rand_auc)
    assert rows["random"]["auc_std"] == pytest.approx(0.05)  # per-seed AUCs 0.625 and 0.725
    assert rows["margin"]["auc_ratio"] == pytest.approx(((0.65 + 0.85) / 2) / rand_auc)
    assert rows["random"]["auc_ratio"] == pytest.approx(1.0)


def test_a_summary_in_pixels_averages_the_seeds_counts_and_compares_with_random_s_final() -> None:
    """Counted in labeled pixels, seeds' grids differ: the seed-mean curve sits at the mean counts."""
    curves = {
        "random": {0: ([100, 200, 300], [0.2, 0.3, 0.4]), 1: ([100, 200, 300], [0.2, 0.3, 0.4])},
        "region_entropy": {0: ([100, 140, 180], [0.2, 0.4, 0.5]), 1: ([100, 160, 220], [0.2, 0.4, 0.5])},
    }
    rows = {r["strategy"]: r for r in summarise(curves, [0.35])}
    region = rows["region_entropy"]
    assert region["max_labels"] == 200 and region["labels_to_35%"] == 150  # mean of 140 and 160
    assert region["auc"] == pytest.approx(np.mean([(0.3 * 40 + 0.45 * 40) / 80, (0.3 * 60 + 0.45 * 60) / 120]))
    assert rows["random"]["labels_to_random_final"] == 300 and rows["random"]["ratio_to_random_final"] == 1.0
    assert region["labels_to_random_final"] == 150 and region["ratio_to_random_final"] == pytest.approx(0.5)
