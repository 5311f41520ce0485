"""One contract every model adapter passes, parametrised over the registry.

Every built-in name on each of its paths, plus one timm and two torchvision
architectures (pretrained=False: offline-constructible), on 32 px Fashion-MNIST.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from activelab.exceptions import UnsupportedError
from activelab.models import BUILTIN_MODELS, CAPABILITIES, FitReport, ModelAdapter, create_model, load_model

CASES: list[tuple[str, dict]] = [
    ("efficientnet_lite0", {"path": "fast"}),
    ("efficientnet_lite0", {"path": "fast", "head": "mlp", "epochs": 5}),
    ("efficientnet_lite0", {"path": "full", "epochs": 1}),
    ("small_cnn", {"path": "full", "epochs": 1}),
    ("gal_cnn", {"path": "full", "epochs": 1, "min_steps": 0}),
    ("pixels", {"path": "fast"}),
    ("timm/resnet18", {"pretrained": False, "path": "full", "epochs": 1}),
    ("timm/resnet18", {"pretrained": False, "path": "fast"}),
    ("torchvision/resnet18", {"pretrained": False, "path": "full", "epochs": 1}),
    ("torchvision/mobilenet_v3_small", {"pretrained": False, "path": "full", "epochs": 1}),
]


def test_every_builtin_is_covered() -> None:
    assert set(BUILTIN_MODELS) | {"pixels"} <= {name for name, _ in CASES}


@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{k['path']}-{k.get('head', '')}" for n, k in CASES])
def test_adapter_contract(name: str, kwargs: dict, fashion, tmp_path) -> None:
    train, y = fashion.train_paths[:36], fashion.train_labels[:36]
    test = fashion.test_paths[:9]
    model = create_model(name, num_classes=3, image_size=32, device="cpu", **kwargs)
    assert isinstance(model, ModelAdapter)
    assert {"probs", "embeddings"} <= model.supports <= CAPABILITIES
    json.dumps(model.config)

    report = model.fit(train, y, seed=0)
    assert isinstance(report, FitReport) and report.n_train + report.n_val == 36
    json.dumps(report.to_dict())
    assert model.classes == ["0", "1", "2"]

    p = model.predict_proba(test)
    assert p.shape == (9, 3) and p.dtype == np.float32 and np.isfinite(p).all()
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
    assert model.predict_proba([]).shape == (0, 3)

    e = model.embed(test)
    assert e.ndim == 2 and e.shape[0] == 9 and e.dtype == np.float32 and np.isfinite(e).all()
    np.testing.assert_array_equal(e, model.embed(test))

    if "mc_probs" in model.supports:
        mc = model.mc_predict(test, n_samples=3, seed=0)
        assert mc.shape == (3, 9, 3) and mc.dtype == np.float32
        np.testing.assert_allclose(mc.sum(-1), 1.0, atol=1e-5)
    else:
        with pytest.raises(NotImplementedError):
            model.mc_predict(test, n_samples=3)
        with pytest.raises(UnsupportedError):
            model.mc_predict(test, n_samples=3)

    if "grad_embeddings" in model.supports:
        g = model.grad_embed(test)
        assert g.ndim == 2 and g.shape[0] == 9 and g.shape[1] % 3 == 0 and g.dtype == np.float32

    model.save(tmp_path / "model.pt")
    loaded = load_model(tmp_path / "model.pt")
    assert type(loaded) is type(model) and loaded.classes == model.classes
    assert type(model).load(tmp_path / "model.pt").classes == model.classes
    np.testing.assert_allclose(loaded.predict_proba(test), p, atol=1e-6)
