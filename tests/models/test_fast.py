"""The fast path: frozen EfficientNet-Lite0 embeddings (cached) + a light head."""

from __future__ import annotations

import numpy as np
import pytest

from activelab.exceptions import InputError, NotFittedError, UnsupportedError
from activelab.models import EmbeddingCache, create_model, file_key, load_model

from .conftest import accuracy

SIZE = 64  # small input size keeps the backbone at ~500 images/s on 2 CPU cores


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory):
    return tmp_path_factory.mktemp("embcache")


def test_logreg_head_beats_chance_on_fashion_mnist(fashion, shared_cache) -> None:
    model = create_model("efficientnet_lite0", classes=fashion.classes, image_size=SIZE, cache_dir=shared_cache)
    report = model.fit(fashion.train_paths, fashion.train_labels, seed=0, progress=True)
    assert report.n_train == 210 and report.cache_misses == 210
    probs = model.predict_proba(fashion.test_paths)
    assert probs.shape == (90, 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert accuracy(probs, fashion.test_labels) >= 0.85  # chance is 1/3


def test_mlp_head_beats_chance_and_samples_mc_dropout(fashion, shared_cache) -> None:
    model = create_model("efficientnet_lite0", num_classes=3, image_size=SIZE, cache_dir=shared_cache,
                         head="mlp", epochs=40)  # fmt: skip
    assert "mc_probs" in model.supports
    report = model.fit(fashion.train_paths, fashion.train_labels, seed=0)
    assert report.epochs == report.best_epoch == 40  # the head's epochs, though one history row summarises them
    assert accuracy(model.predict_proba(fashion.test_paths), fashion.test_labels) >= 0.85
    mc = model.mc_predict(fashion.test_paths, n_samples=6, seed=1)
    assert mc.shape == (6, 90, 3) and mc.dtype == np.float32
    np.testing.assert_allclose(mc.sum(-1), 1.0, atol=1e-5)
    assert np.abs(mc - mc[0]).max() > 1e-4  # samples differ
    np.testing.assert_array_equal(mc, model.mc_predict(fashion.test_paths, n_samples=6, seed=1))


def test_second_call_is_all_cache_hits_with_no_backbone_forward(fashion, tmp_path) -> None:
    paths = fashion.train_paths[:40]
    keys = [file_key(p) for p in paths]
    model = create_model("efficientnet_lite0", num_classes=3, image_size=SIZE, cache_dir=tmp_path)
    first = model.embed(paths, keys=keys)
    assert model.forward_count == 40 and model.last_cache_stats.misses == 40
    again = model.embed(paths, keys=keys)
    assert model.forward_count == 40  # no backbone forward
    assert model.last_cache_stats.hits == 40 and model.last_cache_stats.misses == 0
    np.testing.assert_array_equal(first, again)

    # another adapter (think: another process, next round) reuses the files on disk
    other = create_model("efficientnet_lite0", num_classes=3, image_size=SIZE, cache_dir=tmp_path, build=False)
    report = other.fit(paths, fashion.train_labels[:40], keys=keys)
    assert (report.cache_hits, report.cache_misses) == (40, 0)
    assert other.forward_count == 0
    other.predict_proba(paths, keys=keys)
    assert other.forward_count == 0

    # a different preprocessing is a different cache entry
    bigger = create_model("efficientnet_lite0", num_classes=3, image_size=SIZE + 32, cache_dir=tmp_path)
    bigger.embed(paths[:4], keys=keys[:4])
    assert bigger.last_cache_stats.misses == 4


def test_keys_default_to_file_hashes(fashion) -> None:
    model = create_model("efficientnet_lite0", num_classes=3, image_size=32)
    a = model.embed(fashion.train_paths[:5])
    b = model.embed(fashion.train_paths[:5], keys=[file_key(p) for p in fashion.train_paths[:5]])
    assert model.forward_count == 5 and a.shape == (5, 1280)
    np.testing.assert_array_equal(a, b)


def test_deterministic_with_seed(fashion, shared_cache) -> None:
    def run(seed: int) -> np.ndarray:
        m = create_model("efficientnet_lite0", num_classes=3, image_size=SIZE, cache_dir=shared_cache,
                         head="mlp", epochs=5)  # fmt: skip
        m.fit(fashion.train_paths[:60], fashion.train_labels[:60], seed=seed)
        return m.predict_proba(fashion.test_paths[:20])

    np.testing.assert_array_equal(run(3), run(3))
    assert not np.array_equal(run(3), run(4))


def test_save_load_round_trip(fashion, shared_cache, tmp_path) -> None:
    model = create_model("efficientnet_lite0", classes=fashion.classes, image_size=SIZE, cache_dir=shared_cache)
    model.fit(fashion.train_paths[:60], fashion.train_labels[:60])
    before = model.predict_proba(fashion.test_paths[:20])
    model.save(tmp_path / "m.pt")
    assert (tmp_path / "m.pt").stat().st_size < 2_000_000  # packaged backbone not duplicated
    loaded = load_model(tmp_path / "m.pt")  # reuses the cache folder recorded at save time
    assert loaded.classes == fashion.classes and loaded.config == model.config
    np.testing.assert_array_equal(loaded.predict_proba(fashion.test_paths[:20]), before)
    assert loaded.model_id == model.model_id and loaded.forward_count == 0
    fresh = load_model(tmp_path / "m.pt", cache=EmbeddingCache())  # recomputes embeddings
    np.testing.assert_allclose(fresh.predict_proba(fashion.test_paths[:20]), before, atol=1e-5)
    assert fresh.forward_count == 20


def test_grad_embeddings_shapes(fashion, shared_cache) -> None:
    for head, width in (("logreg", 1280), ("mlp", 32)):
        m = create_model("efficientnet_lite0", num_classes=3, image_size=SIZE, cache_dir=shared_cache,
                         head=head, hidden=32, epochs=3)  # fmt: skip
        m.fit(fashion.train_paths[:30], fashion.train_labels[:30])
        g = m.grad_embed(fashion.test_paths[:7])
        assert g.shape == (7, 3 * width) and g.dtype == np.float32 and np.isfinite(g).all()


def test_logreg_has_no_mc_dropout_and_unfitted_raises(fashion) -> None:
    m = create_model("efficientnet_lite0", num_classes=3, image_size=32)
    assert "mc_probs" not in m.supports
    with pytest.raises(NotFittedError, match="fit"):
        m.predict_proba(fashion.test_paths[:2])
    m.fit(fashion.train_paths[:12], fashion.train_labels[:12])
    with pytest.raises(UnsupportedError, match="head='mlp'") as e:
        m.mc_predict(fashion.test_paths[:2])
    assert isinstance(e.value, NotImplementedError)


def test_classes_without_labeled_examples_still_get_a_column(fashion) -> None:
    m = create_model("efficientnet_lite0", classes=["a", "b", "c", "d"], image_size=32)
    m.fit(fashion.train_paths[:20], fashion.train_labels[:20])
    assert m.predict_proba(fashion.test_paths[:3]).shape == (3, 4)


def test_bad_inputs_raise_clear_errors(fashion, tmp_path) -> None:
    m = create_model("efficientnet_lite0", num_classes=3, image_size=32, build=False)
    with pytest.raises(InputError, match="out of range"):
        m.fit(fashion.train_paths[:3], [0, 1, 5])
    with pytest.raises(InputError, match="one label per path"):
        m.fit(fashion.train_paths[:3], [0, 1])
    with pytest.raises(InputError, match="one entry per path"):
        m.embed(fashion.train_paths[:3], keys=["a"])
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(InputError, match="broken.png"):
        m.embed([str(bad)])
    with pytest.raises(FileNotFoundError, match="missing.png"):
        m.embed([str(tmp_path / "missing.png")], keys=["k"])
    with pytest.raises(InputError, match="unknown option"):
        create_model("efficientnet_lite0", hed="mlp")


def test_shared_cache_object_counts_stats(fashion) -> None:
    cache = EmbeddingCache()
    m = create_model("efficientnet_lite0", num_classes=3, image_size=32, cache=cache)
    m.embed(fashion.train_paths[:6])
    m.embed(fashion.train_paths[:6])
    assert (cache.stats.hits, cache.stats.misses) == (6, 6)


def test_last_layer_features_factor_the_gradient_embedding(fashion, shared_cache) -> None:  # type: ignore[no-untyped-def]
    """probs and last_layer_features give exactly grad_embed's (p - onehot(argmax p)) ⊗ h."""
    paths, labels = fashion.train_paths[:40], fashion.train_labels[:40]
    model = create_model("efficientnet_lite0", classes=fashion.classes, image_size=SIZE, cache_dir=shared_cache)
    model.fit(paths, labels)
    p = model.predict_proba(paths)
    h = model.last_layer_features(paths)
    a = p - np.eye(p.shape[1], dtype=np.float32)[p.argmax(axis=1)]
    expected = (a[:, :, None] * h[:, None, :]).reshape(len(paths), -1)
    assert np.allclose(np.abs(model.grad_embed(paths)), np.abs(expected), atol=1e-5)
