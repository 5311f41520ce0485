"""FixMatch on the full path (Sohn et al., NeurIPS 2020) and the per-label weight decay: the mechanism,
on small_cnn at 16 px over scikit-learn digits written as PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from activelab.exceptions import InputError
from activelab.models import create_model
from activelab.models.images import Preprocess

# 24 labeled images in batches of 8: 3 steps an epoch, each with unlabeled_ratio * 8 = 16 unlabeled images
OPTS = dict(image_size=16, width=8, epochs=1, batch_size=8, hflip=False, device="cpu", unlabeled_ratio=2)


@pytest.fixture(scope="module")
def tiny(digits) -> tuple[list[str], list[int], list[str]]:
    """24 labeled and 40 unlabeled 8x8 digit PNGs (classes 0-3, conftest's ``digits``)."""
    return digits.train_paths[:24], digits.train_labels[:24], digits.train_paths[24:64]


def weights(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model._net.state_dict().items()}


def test_fixmatch_trains_on_every_unlabeled_image_and_reports_the_mask_rate(tiny) -> None:
    paths, labels, unlabeled = tiny
    m = create_model("small_cnn", num_classes=4, semi_supervised="fixmatch", semi_threshold=1e-6, **OPTS)
    report = m.fit(paths, labels, seed=0, unlabeled=unlabeled)
    # 3 steps x 16 draws from a stream of 40 that cycles: every image is drawn
    assert report.semi_supervised == "fixmatch" and report.n_unlabeled == 40
    assert len(report.history) == 1
    for rec in report.history:
        assert rec["mask_rate"] == 1.0  # every weak view clears a threshold of 1e-6
        assert rec["unlabeled_loss"] > 0
    capped = create_model("small_cnn", num_classes=4, semi_supervised="fixmatch", semi_max_unlabeled=10, **OPTS)
    rep = capped.fit(paths, labels, seed=0, unlabeled=unlabeled)
    assert rep.n_unlabeled == 10  # the seeded subset
    assert all(0.0 <= rec["mask_rate"] < 1.0 for rec in rep.history)  # 0.95: not every view of a new network


def test_supervised_fit_does_not_read_the_unlabeled_images(tiny, tmp_path: Path) -> None:
    paths, labels, _ = tiny
    missing = [str(tmp_path / f"missing{i}.png") for i in range(5)]  # reading any of them would raise
    m = create_model("small_cnn", num_classes=4, **OPTS)
    report = m.fit(paths, labels, seed=0, unlabeled=missing)
    assert report.semi_supervised == "none" and report.n_unlabeled == 0
    assert "mask_rate" not in report.history[0]
    fm = create_model("small_cnn", num_classes=4, semi_supervised="fixmatch", **OPTS)
    with pytest.raises(Exception, match=r"missing\d\.png"):
        fm.fit(paths, labels, seed=0, unlabeled=missing)
    # FixMatch with no unlabeled images is the supervised fit, and says so
    assert fm.fit(paths, labels, seed=0).semi_supervised == "none"


def test_fixmatch_same_seed_same_weights(tiny) -> None:
    paths, labels, unlabeled = tiny

    def run(seed: int) -> dict[str, torch.Tensor]:
        m = create_model("small_cnn", num_classes=4, semi_supervised="fixmatch", semi_threshold=0.3, **OPTS)
        m.fit(paths, labels, seed=seed, unlabeled=unlabeled)
        return weights(m)

    a, b, c = run(3), run(3), run(4)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_weight_decay_per_label_sets_the_optimiser(tiny, monkeypatch: pytest.MonkeyPatch) -> None:
    paths, labels, _ = tiny
    seen: list[float] = []

    class Recording(torch.optim.AdamW):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            seen.append(self.param_groups[0]["weight_decay"])

    monkeypatch.setattr(torch.optim, "AdamW", Recording)
    m = create_model("small_cnn", num_classes=4, weight_decay_per_label=3.5, **{**OPTS, "epochs": 1})
    report = m.fit(paths, labels, seed=0)
    assert report.n_train == 24
    assert seen == [3.5 / 24]
    create_model("small_cnn", num_classes=4, weight_decay=0.01, **{**OPTS, "epochs": 1}).fit(paths, labels)
    assert seen[-1] == 0.01  # unset: weight_decay as given
    with pytest.raises(InputError, match="weight_decay_per_label"):
        create_model("small_cnn", num_classes=4, weight_decay_per_label=-1.0, **OPTS).fit(paths, labels)


def test_fixmatch_refuses_sigmoid_and_unknown_methods() -> None:
    with pytest.raises(InputError, match="output='softmax'"):
        create_model("small_cnn", num_classes=4, output="sigmoid", semi_supervised="fixmatch")
    with pytest.raises(InputError, match="'none', 'fixmatch'"):
        create_model("small_cnn", num_classes=4, semi_supervised="label_spreading")


def test_strong_view_differs_from_the_weak_one_and_is_seeded() -> None:
    from activelab.models.images import TwoViews

    pre = Preprocess(size=16, mean=(0.5,) * 3, std=(0.5,) * 3)
    im = Image.fromarray(np.tile(np.arange(16, dtype=np.uint8) * 16, (16, 1)), mode="L").convert("RGB")
    views = TwoViews(pre.train_transform(hflip=False), pre.strong_transform(hflip=False))
    torch.manual_seed(0)
    weak, strong = views(im)
    assert weak.shape == strong.shape == (3, 16, 16)
    assert (strong == 0).float().mean() >= 0.02  # Cutout: at least 2 % of the image set to the mean
    assert not torch.equal(weak, strong)
    torch.manual_seed(0)
    again = views(im)
    assert torch.equal(again[0], weak) and torch.equal(again[1], strong)
