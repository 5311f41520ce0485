"""Sigmoid (multi-label) outputs: fit on (N, C) 0/1 targets, independent per-class probabilities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from activelab.exceptions import InputError, UnsupportedError
from activelab.models import create_model, load_model
from activelab.models.base import grad_embedding
from activelab.models.heads import Head, train_head

CLASSES = ["blue", "red"]
#: every combination of the two labels, "none of them" included
COMBOS = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=np.int64)


def _shapes(folder: Path, n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """``n`` 32x32 grey noise images with a blue square (left) and/or a red square (right); targets (n, 2)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    targets = COMBOS[np.arange(n) % 4]
    paths = []
    for i, (blue, red) in enumerate(targets):
        im = rng.integers(100, 156, size=(32, 32, 3)).astype(np.uint8)
        dy, dx = rng.integers(0, 6, size=2)
        if blue:
            im[8 + dy : 18 + dy, 2 + dx : 12 + dx] = (20, 30, 230)
        if red:
            im[8 + dy : 18 + dy, 18 + dx : 28 + dx] = (230, 30, 20)
        p = folder / f"s{i:03d}.png"
        Image.fromarray(im).save(p)
        paths.append(str(p))
    return paths, targets


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    root = tmp_path_factory.mktemp("shapes")
    train = _shapes(root / "train", 48, seed=0)
    test = _shapes(root / "test", 16, seed=1)
    return train[0], train[1], test[0], test[1]


# --- heads on synthetic embeddings ---------------------------------------------------


def test_one_vs_rest_logreg_matches_scikit_learn_per_class() -> None:
    """The sigmoid logreg head is C independent L2-penalised logistic regressions (sklearn's C = 1/l2)."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 5)).astype(np.float32)
    y = np.stack([x[:, 0] + 0.5 * rng.normal(size=80) > 0, x[:, 1] - x[:, 2] > 0.3], axis=1).astype(np.float32)
    head = Head("logreg", 5, 2)
    summary = train_head(head, x, y, l2=2.0, max_iter=500)
    with torch.no_grad():
        ours = torch.sigmoid(head(torch.from_numpy(x))).numpy()
    z = (x - head.mean.numpy()) / float(head.scale)
    for c in range(2):
        ref = LogisticRegression(C=1 / 2.0, tol=1e-10, max_iter=2000).fit(z, y[:, c]).predict_proba(z)[:, 1]
        np.testing.assert_allclose(ours[:, c], ref, atol=1e-3)  # both stop at their optimiser's tolerance
    assert summary["train_accuracy"] == pytest.approx(float(((ours > 0.5) == y).mean()))


def test_mlp_head_learns_two_labels_at_once() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = np.stack([x[:, 0] > 0, x[:, 1] > 0], axis=1).astype(np.float32)
    torch.manual_seed(0)
    head = Head("mlp", 4, 2, hidden=32, dropout=0.0)
    train_head(head, x, y, epochs=150, lr=1e-2, batch_size=16)
    with torch.no_grad():
        p = torch.sigmoid(head(torch.from_numpy(x))).numpy()
    assert ((p > 0.5) == y).all()


def test_grad_embedding_of_a_sigmoid_uses_the_thresholded_prediction_per_class() -> None:
    p = np.array([[0.9, 0.2]], dtype=np.float32)
    h = np.array([[1.0, 2.0]], dtype=np.float32)
    # y_hat = (1, 0): g = y_hat - p = (0.1, -0.2), then g ⊗ h
    np.testing.assert_allclose(grad_embedding(p, h, "sigmoid"), [[0.1, 0.2, -0.2, -0.4]], rtol=1e-6)
    # softmax keeps one-hot(argmax): g = (1 - 0.9, 0 - 0.2)
    np.testing.assert_allclose(grad_embedding(p, h, "softmax"), [[0.1, 0.2, -0.2, -0.4]], rtol=1e-6)
    np.testing.assert_allclose(grad_embedding(np.array([[0.7, 0.6]], np.float32), h, "sigmoid"),
                               [[0.3, 0.6, 0.4, 0.8]], rtol=1e-6)  # fmt: skip


# --- frozen mode ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def frozen(shapes, tmp_path_factory):
    train_paths, train_y, _, _ = shapes
    model = create_model("efficientnet_lite0", classes=CLASSES, output="sigmoid", image_size=64, device="cpu",
                         cache_dir=tmp_path_factory.mktemp("cache"), head="mlp", epochs=200, dropout=0.2)  # fmt: skip
    model.fit(train_paths, train_y, seed=0)
    return model


def test_frozen_sigmoid_model_predicts_each_label_combination(frozen, shapes) -> None:
    _, _, test_paths, test_y = shapes
    p = frozen.predict_proba(test_paths)
    assert p.shape == (16, 2) and p.dtype == np.float32
    assert ((p >= 0) & (p <= 1)).all()
    np.testing.assert_array_equal((p > 0.5).astype(int), test_y)  # none, blue, red and both, all right
    assert not np.allclose(p.sum(1), 1.0)  # independent per-class probabilities, not a distribution


def test_frozen_sigmoid_mc_samples_and_gradients(frozen, shapes) -> None:
    _, _, test_paths, _ = shapes
    mc = frozen.mc_predict(test_paths[:4], n_samples=5, seed=3)
    assert mc.shape == (5, 4, 2) and ((mc >= 0) & (mc <= 1)).all()
    assert mc.std(0).max() > 0  # dropout varies the samples
    np.testing.assert_array_equal(mc, frozen.mc_predict(test_paths[:4], n_samples=5, seed=3))
    g = frozen.grad_embed(test_paths[:4])
    h = frozen.last_layer_features(test_paths[:4])
    assert g.shape == (4, 2 * h.shape[1])
    np.testing.assert_allclose(g, grad_embedding(frozen.predict_proba(test_paths[:4]), h, "sigmoid"), atol=1e-5)


def test_frozen_sigmoid_model_saves_and_loads_its_output(frozen, shapes, tmp_path) -> None:
    _, _, test_paths, _ = shapes
    assert frozen.config["output"] == "sigmoid" and frozen.config["mode"] == "frozen"
    frozen.save(tmp_path / "m.pt")
    loaded = load_model(tmp_path / "m.pt")
    assert loaded.config["output"] == "sigmoid"
    np.testing.assert_allclose(loaded.predict_proba(test_paths), frozen.predict_proba(test_paths), atol=1e-6)


def test_sigmoid_targets_are_checked(shapes) -> None:
    train_paths = shapes[0]
    model = create_model("efficientnet_lite0", classes=CLASSES, output="sigmoid", image_size=64, build=False)
    with pytest.raises(InputError, match=r"\(N, C\) 0/1 array"):
        model.fit(train_paths[:4], [0, 1, 1, 0])
    with pytest.raises(InputError, match="3 columns but the model has 2 classes"):
        model.fit(train_paths[:4], np.ones((4, 3)))
    with pytest.raises(InputError, match=r"0 or 1 \(e\.g\. 2 at row 1, column 0\)"):
        model.fit(train_paths[:4], np.array([[0, 1], [2, 0], [1, 1], [0, 0]]))
    with pytest.raises(InputError, match="output must be one of"):
        create_model("efficientnet_lite0", output="softplus", build=False)


def test_softmax_models_reject_a_label_matrix(shapes) -> None:
    train_paths, train_y, _, _ = shapes
    model = create_model("efficientnet_lite0", classes=CLASSES, image_size=64, build=False)
    assert model.config["output"] == "softmax"
    with pytest.raises(InputError, match="1-d sequence"):
        model.fit(train_paths[:4], train_y[:4])


# --- finetune mode ------------------------------------------------------------------------


def test_finetuned_sigmoid_small_cnn_learns_both_labels(shapes, tmp_path) -> None:
    train_paths, train_y, test_paths, test_y = shapes
    model = create_model("small_cnn", classes=CLASSES, output="sigmoid", device="cpu", epochs=20, lr=1e-2,
                         batch_size=16, augment=False, val_fraction=0.0)  # fmt: skip
    report = model.fit(train_paths, train_y, seed=0)
    assert report.epochs == 20 and report.n_train == 48
    p = model.predict_proba(test_paths)
    assert p.shape == (16, 2)
    np.testing.assert_array_equal((p > 0.5).astype(int), test_y)
    mc = model.mc_predict(test_paths[:3], n_samples=4)
    assert mc.shape == (4, 3, 2) and ((mc >= 0) & (mc <= 1)).all()
    model.save(tmp_path / "cnn.pt")
    loaded = load_model(tmp_path / "cnn.pt")
    assert loaded.output == "sigmoid" and loaded.config["mode"] == "finetune"
    np.testing.assert_allclose(loaded.predict_proba(test_paths), p, atol=1e-5)


def test_fastai_refuses_sigmoid_with_the_alternative() -> None:
    pytest.importorskip("fastai")
    with pytest.raises(UnsupportedError, match="output='sigmoid'"):
        create_model("fastai/resnet18", num_classes=2, pretrained=False, output="sigmoid", build=False)
