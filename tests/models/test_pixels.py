"""The ``pixels`` model: exact embeddings of hand-made PNGs, its table row (the shared contract runs on it in test_contract.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from activelab.exceptions import InputError
from activelab.models import FastAdapter, create_model, find_model, load_model


def _png(path: Path, array: np.ndarray, mode: str) -> str:
    Image.fromarray(array.astype(np.uint8), mode=mode).save(path)
    return str(path)


def test_embedding_is_the_grayscale_pixels_row_by_row_in_0_1(tmp_path: Path) -> None:
    gray = np.arange(64).reshape(8, 8) * 4  # 0, 4, ..., 252
    rgb = np.zeros((8, 8, 3))
    rgb[0, 0] = (255, 0, 0)
    rgb[0, 1] = (0, 255, 0)
    rgb[7, 7] = (0, 0, 255)
    rgb[3, 5] = (51, 102, 204)
    paths = [_png(tmp_path / "gray.png", gray, "L"), _png(tmp_path / "rgb.png", rgb, "RGB")]
    x = create_model("pixels", mode="frozen", image_size=8, device="cpu").embed(paths)
    assert x.shape == (2, 64) and x.dtype == np.float32
    np.testing.assert_allclose(x[0], gray.ravel() / 255.0, atol=1e-6)
    expected = np.zeros(64)
    expected[0], expected[1], expected[63] = 0.299, 0.587, 0.114
    expected[3 * 8 + 5] = (0.299 * 51 + 0.587 * 102 + 0.114 * 204) / 255.0
    np.testing.assert_allclose(x[1], expected, atol=1e-6)


def test_default_size_is_28_and_larger_images_are_resized(tmp_path: Path) -> None:
    white = _png(tmp_path / "white.png", np.full((56, 40), 255), "L")
    model = create_model("pixels", mode="frozen", device="cpu")
    x = model.embed([white])
    assert x.shape == (1, 28 * 28)
    np.testing.assert_allclose(x, 1.0, atol=1e-6)
    other = create_model("pixels", mode="frozen", image_size=14, device="cpu")
    assert model.model_id != other.model_id and "pixels:gray" in model.model_id and "size=28" in model.model_id


def test_the_row_is_frozen_only_offline_and_weightless() -> None:
    entry, arch = find_model("pixels")
    assert (entry.modes, entry.offline, entry.pretrained, arch) == (("frozen",), True, False, "pixels")
    with pytest.raises(InputError, match="frozen"):
        create_model("pixels", mode="finetune")
    with pytest.raises(InputError, match="no pretrained weights"):
        create_model("pixels", pretrained=True)


def test_raw_pixel_logreg_baseline_learns_and_round_trips(fashion, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model = create_model("pixels", mode="frozen", head="logreg", num_classes=3, device="cpu")
    model.fit(fashion.train_paths[:90], fashion.train_labels[:90], seed=0)
    p = model.predict_proba(fashion.test_paths)
    accuracy = float((p.argmax(1) == np.asarray(fashion.test_labels)).mean())
    assert accuracy >= 0.8  # three Fashion-MNIST classes; chance is 1/3
    model.save(tmp_path / "m.pt")
    again = load_model(tmp_path / "m.pt")
    assert isinstance(again, FastAdapter)
    np.testing.assert_allclose(again.predict_proba(fashion.test_paths), p, atol=1e-6)
