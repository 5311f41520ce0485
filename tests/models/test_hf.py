"""Hugging Face image models (``hf/<hub id or folder>``), offline.

No hub downloads here: tiny models are built from configs, saved with
``save_pretrained`` (with their image processor) and loaded through activelab as
``hf/<folder>``, the same code path as a hub id once its files are in the cache.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch

from activelab.exceptions import InputError, NotFoundError, OfflineError
from activelab.models import create_model, load_model
from activelab.models.base import seeded, torch_threads

from .conftest import accuracy

if os.environ.get("CI"):
    import transformers  # the hf extra is installed in CI: a missing package is a failure
else:
    transformers = pytest.importorskip("transformers", reason="needs pip install 'activelab[hf]'")


@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):  # tiny models: threads cost more than they give on a loaded machine
        yield


def _save(model, processor, folder):
    model.save_pretrained(folder)
    if processor is not None:
        processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Folders of tiny saved models, built once: ``vit`` and ``convnext`` are image
    classifiers (``...ForImageClassification``), ``vit_base`` a bare ``ViTModel`` with its
    pooler, ``clip`` a CLIP model (image features through ``get_image_features``)."""
    root = tmp_path_factory.mktemp("hf")
    T = transformers
    vit = dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
               intermediate_size=64)  # fmt: skip
    with seeded(0):
        folders = {
            "vit": _save(
                T.ViTForImageClassification(T.ViTConfig(**vit, num_labels=5)),
                T.ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=[0.5] * 3, image_std=[0.5] * 3),
                root / "vit",
            ),
            "convnext": _save(
                T.ConvNextForImageClassification(
                    T.ConvNextConfig(hidden_sizes=[16, 32], depths=[1, 1], num_stages=2, num_labels=4)
                ),
                T.ConvNextImageProcessor(
                    size={"shortest_edge": 32},
                    image_mean=[0.485, 0.456, 0.406],
                    image_std=[0.229, 0.224, 0.225],
                    resample=3,
                ),
                root / "convnext",
            ),
            "vit_base": _save(T.ViTModel(T.ViTConfig(**vit)), None, root / "vit_base"),
            "clip": _save(
                T.CLIPModel(
                    T.CLIPConfig(
                        vision_config=dict(vit, projection_dim=16),
                        text_config=dict(
                            hidden_size=32,
                            num_hidden_layers=1,
                            num_attention_heads=2,
                            intermediate_size=64,
                            vocab_size=99,
                            bos_token_id=0,
                            eos_token_id=1,
                            pad_token_id=1,
                        ),
                        projection_dim=16,
                    )
                ),
                None,
                root / "clip",
            ),
        }
    return folders


def _reference(folder, kind):
    """The saved model, loaded by transformers itself (no activelab involved)."""
    T = transformers
    cls = {"vit": T.ViTForImageClassification, "convnext": T.ConvNextForImageClassification,
           "vit_base": T.ViTModel, "clip": T.CLIPModel}[kind]  # fmt: skip
    return cls.from_pretrained(folder).eval()


@pytest.mark.parametrize("kind", ["vit", "convnext"])
def test_fast_path_fit_predict_embed_save_load(kind, tiny, fashion, tmp_path) -> None:
    m = create_model("hf/" + str(tiny[kind]), classes=fashion.classes, path="fast", pretrained=True, image_size=32,
                     cache_dir=tmp_path / "cache")  # fmt: skip
    assert m.name == f"hf/{tiny[kind]}" and ";weights=hf:" in m.model_id
    report = m.fit(fashion.train_paths, fashion.train_labels)
    assert report.n_train == 210 and report.cache_misses == 210
    probs = m.predict_proba(fashion.test_paths)
    assert probs.shape == (90, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
    # random tiny weights, yet linear probes on their features separate these 3 classes
    assert accuracy(probs, fashion.test_labels) > 0.6
    emb = m.embed(fashion.test_paths[:6])
    assert emb.shape == (6, {"vit": 32, "convnext": 32}[kind]) and emb.dtype == np.float32
    assert m.last_cache_stats.hits == 6  # embedded once, by predict_proba

    m.save(tmp_path / "m.pt")
    back = load_model(tmp_path / "m.pt", cache_dir=tmp_path / "other-cache")  # forces the backbone to run again
    assert back.model_id == m.model_id
    np.testing.assert_allclose(back.predict_proba(fashion.test_paths), probs, atol=1e-5)
    assert back.last_cache_stats.misses == 90  # really recomputed from the saved backbone weights
    np.testing.assert_allclose(back.embed(fashion.test_paths[:6]), emb, atol=1e-5)


def test_full_path_fine_tunes_and_round_trips(tiny, digits, tmp_path) -> None:
    m = create_model("hf/" + str(tiny["convnext"]), classes=digits.classes, path="full", pretrained=True,
                     image_size=32, epochs=15, lr=1e-2, batch_size=32, augment=False)  # fmt: skip
    before = {k: v.clone() for k, v in m.build()._template.module.state_dict().items()}
    report = m.fit(digits.train_paths, digits.train_labels)
    assert report.epochs >= 1 and report.device == "cpu"
    tuned = m._net.body.state_dict()
    assert any(not torch.equal(before[k], tuned[k]) for k in before if before[k].is_floating_point())
    probs = m.predict_proba(digits.test_paths)
    assert probs.shape == (80, 4) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert accuracy(probs, digits.test_labels) > 0.6  # chance: 0.25
    emb = m.embed(digits.test_paths[:5])
    assert emb.shape == (5, 32)
    assert m.mc_predict(digits.test_paths[:5], n_samples=3).shape == (3, 5, 4)

    m.save(tmp_path / "full.pt")
    back = load_model(tmp_path / "full.pt")
    np.testing.assert_allclose(back.predict_proba(digits.test_paths), probs, atol=1e-5)
    np.testing.assert_allclose(back.embed(digits.test_paths[:5]), emb, atol=1e-5)


def test_features_are_what_the_pretrained_model_computes(tiny, fashion) -> None:
    """Classifier checkpoints: embed() is the input of the checkpoint's own classifier (so
    classifier(embed(x)) reproduces its logits), not a freshly initialised pooler; the
    preprocessing comes from the saved image processor (transformers 5's ``SizeDict``)."""
    paths = fashion.test_paths[:4]
    for kind in ("vit", "convnext"):
        m = create_model("hf/" + str(tiny[kind]), num_classes=3, image_size=32)
        ref = _reference(tiny[kind], kind)
        x = torch.stack([m._preprocess.eval_transform()(_rgb(p)) for p in paths])
        with torch.no_grad():
            logits = ref(pixel_values=x).logits
            again = ref.classifier(torch.from_numpy(m.embed(paths)))
        torch.testing.assert_close(again, logits, atol=1e-4, rtol=1e-4)
    vit = create_model("hf/" + str(tiny["vit"]), num_classes=3)
    assert (vit._preprocess.size, vit._preprocess.mean, vit._preprocess.std) == (32, (0.5,) * 3, (0.5,) * 3)
    cnx = create_model("hf/" + str(tiny["convnext"]), num_classes=3)
    assert cnx._preprocess.mean == (0.485, 0.456, 0.406) and cnx._preprocess.interpolation == "bicubic"

    # a bare ViTModel keeps its own (checkpointed) pooler; CLIP gives its projected image features
    for kind, expected in (("vit_base", lambda r, x: r(pixel_values=x).pooler_output),
                           ("clip", lambda r, x: _tensor(r.get_image_features(pixel_values=x)))):  # fmt: skip
        m = create_model("hf/" + str(tiny[kind]), num_classes=3, image_size=32)
        assert m._preprocess.mean == (0.485, 0.456, 0.406)  # no processor saved: ImageNet's
        x = torch.stack([m._preprocess.eval_transform()(_rgb(p)) for p in paths])
        with torch.no_grad():
            ref = expected(_reference(tiny[kind], kind), x)
        np.testing.assert_allclose(m.embed(paths), ref.numpy(), atol=1e-4)
        assert m.embed(paths).shape == (4, 16 if kind == "clip" else 32)


def test_other_image_sizes_interpolate_position_embeddings(tiny, fashion) -> None:
    m = create_model("hf/" + str(tiny["vit"]), num_classes=3, image_size=48)  # trained at 32
    assert m.embed(fashion.test_paths[:2]).shape == (2, 32)


def test_cache_key_follows_the_weights_and_random_init(tiny, tmp_path) -> None:
    folder = tmp_path / "vit"
    T = transformers
    cfg = T.ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=64)  # fmt: skip
    with seeded(1):
        T.ViTModel(cfg).save_pretrained(folder)
    first = create_model("hf/" + str(folder), num_classes=2, image_size=32).model_id
    with seeded(2):
        T.ViTModel(cfg).save_pretrained(folder)  # new weights in the same folder
    second = create_model("hf/" + str(folder), num_classes=2, image_size=32).model_id
    assert first != second, "re-saved weights must not reuse cached embeddings"
    scratch = create_model("hf/" + str(folder), num_classes=2, image_size=32, pretrained=False)
    assert "weights=random" in scratch.model_id


def test_offline_hub_id_fails_fast_with_the_fixes(monkeypatch) -> None:
    assert os.environ.get("HF_HUB_OFFLINE") == "1"  # set by conftest
    t0 = time.perf_counter()
    with pytest.raises(OfflineError, match="HF_HUB_OFFLINE is set") as e:
        create_model("hf/google/vit-base-patch16-224", num_classes=3)
    assert time.perf_counter() - t0 < 15
    assert "efficientnet_lite0" in str(e.value) and "pretrained=False" in str(e.value)

    # without the variable, an unreachable huggingface.co is probed once, then the cache only is used
    import activelab.models.hub as hub

    probes = []
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(hub, "host_reachable", lambda host, *a, **k: probes.append(host) or False)
    with pytest.raises(OfflineError, match="no network is reachable"):
        create_model("hf/google/vit-base-patch16-224", num_classes=3, path="full")
    assert probes == ["huggingface.co"]


def test_bad_names_and_folders_say_what_is_wrong(tmp_path) -> None:
    with pytest.raises(NotFoundError, match="no such folder"):
        create_model("hf/" + str(tmp_path / "missing" / "model"))
    with pytest.raises(InputError, match="not a Hugging Face hub id"):
        create_model("hf/not a valid id!")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="save_pretrained"):
        create_model("hf/" + str(tmp_path / "empty"))


def _rgb(path):
    from activelab.data.images import load_rgb

    return load_rgb(path)


def _tensor(out):
    return out if isinstance(out, torch.Tensor) else out.pooler_output
