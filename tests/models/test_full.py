"""The full path: fine-tuning whole networks (small_cnn here: fast on CPU)."""

from __future__ import annotations

import numpy as np
import pytest

from activelab.exceptions import InputError
from activelab.models import FullAdapter, create_model, load_model

from .conftest import accuracy

OPTS = dict(epochs=12, batch_size=16, lr=1e-3, hflip=False)  # stable at 1 or 2 torch threads


@pytest.fixture(scope="module")
def trained(digits):
    model = create_model("small_cnn", classes=digits.classes, image_size=32, **OPTS)
    report = model.fit(digits.train_paths, digits.train_labels, seed=0, progress=True)
    return model, report


def test_small_cnn_learns_digits_well_above_chance(trained, digits) -> None:
    model, report = trained
    assert isinstance(model, FullAdapter) and model.path == "full"
    probs = model.predict_proba(digits.test_paths)
    assert probs.shape == (80, 4) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert accuracy(probs, digits.test_labels) >= 0.75  # chance is 0.25
    # early stopping bookkeeping on the 10% validation split
    assert report.n_train == 216 and report.n_val == 24
    assert 1 <= report.best_epoch <= report.epochs <= 12
    assert report.val_accuracy is not None and len(report.history) == report.epochs


def test_same_seed_same_probabilities_on_cpu(digits) -> None:
    def run(seed: int) -> np.ndarray:
        m = create_model("small_cnn", num_classes=4, image_size=28, device="cpu", epochs=2, batch_size=32)
        m.fit(digits.train_paths[:80], digits.train_labels[:80], seed=seed)
        return m.predict_proba(digits.test_paths[:16])

    a = run(7)
    np.testing.assert_array_equal(a, run(7))
    assert not np.array_equal(a, run(8))


def test_mc_dropout_samples_vary_and_are_reproducible(trained, digits) -> None:
    model, _ = trained
    assert "mc_probs" in model.supports
    mc = model.mc_predict(digits.test_paths[:10], n_samples=5, seed=0)
    assert mc.shape == (5, 10, 4) and mc.dtype == np.float32
    np.testing.assert_allclose(mc.sum(-1), 1.0, atol=1e-5)
    assert np.abs(mc - mc[0]).max() > 1e-4
    np.testing.assert_array_equal(mc, model.mc_predict(digits.test_paths[:10], n_samples=5, seed=0))


def test_embed_and_grad_embed(trained, digits) -> None:
    model, _ = trained
    e = model.embed(digits.test_paths[:6])
    assert e.shape == (6, 128) and e.dtype == np.float32
    g = model.grad_embed(digits.test_paths[:6])
    assert g.shape == (6, 4 * 128) and np.isfinite(g).all()


def test_save_load_round_trip_and_checkpoint(digits, tmp_path) -> None:
    ckpt = tmp_path / "ckpt"
    model = create_model("small_cnn", classes=digits.classes, image_size=28, epochs=2, checkpoint_dir=ckpt)
    model.fit(digits.train_paths[:100], digits.train_labels[:100])
    before = model.predict_proba(digits.test_paths[:12])
    model.save(tmp_path / "m.pt")
    loaded = load_model(tmp_path / "m.pt")
    assert loaded.classes == digits.classes and loaded.config == model.config
    np.testing.assert_array_equal(loaded.predict_proba(digits.test_paths[:12]), before)
    np.testing.assert_array_equal(loaded.embed(digits.test_paths[:3]), model.embed(digits.test_paths[:3]))
    best = load_model(ckpt / "best.pt")  # the best epoch was checkpointed
    np.testing.assert_array_equal(best.predict_proba(digits.test_paths[:12]), before)


def test_no_validation_split_when_too_few_images(digits) -> None:
    m = create_model("small_cnn", num_classes=4, image_size=28, epochs=2)
    r = m.fit(digits.train_paths[:20], digits.train_labels[:20])
    assert r.n_val == 0 and r.val_loss is None and r.best_epoch == r.epochs == 2


def test_min_steps_adds_epochs_for_tiny_labeled_sets(digits) -> None:
    m = create_model("small_cnn", num_classes=4, image_size=28, epochs=2, batch_size=16, min_steps=9, patience=1)
    r = m.fit(digits.train_paths[:20], digits.train_labels[:20])  # no val split: 2 batches an epoch
    assert r.epochs == 5 and len(r.history) == 5
    with pytest.raises(InputError, match="min_steps"):
        create_model("small_cnn", num_classes=4, image_size=28, min_steps=-1).fit(
            digits.train_paths[:20], digits.train_labels[:20]
        )
