"""Names, options and offline behaviour of create_model."""

from __future__ import annotations

import time

import numpy as np
import pytest

from activelab.exceptions import InputError, OfflineError
from activelab.models import FastAdapter, FullAdapter, create_model, hub, list_models, parse_name


def test_names_resolve() -> None:
    assert parse_name("efficientnet_lite0") == ("efficientnet_lite0", "efficientnet_lite0")
    assert parse_name("small_cnn") == ("small_cnn", "small_cnn")
    assert parse_name("resnet18") == ("timm", "resnet18")
    assert parse_name("timm/convnext_tiny") == ("timm", "convnext_tiny")
    assert parse_name("timm/efficientnet_lite0") == ("timm", "efficientnet_lite0")
    assert parse_name("torchvision/resnet18") == ("torchvision", "resnet18")
    assert parse_name("hf/google/vit-base-patch16-224") == ("hf", "google/vit-base-patch16-224")


def test_unknown_name_lists_the_options() -> None:
    with pytest.raises(InputError) as e:
        create_model("resnet_eighteen")
    msg = str(e.value)
    for option in ("efficientnet_lite0", "small_cnn", "timm/", "torchvision/", "hf/"):
        assert option in msg
    with pytest.raises(InputError, match="Did you mean.*timm/resnet18"):
        create_model("timm/resnet181")
    with pytest.raises(InputError, match="torchvision"):
        create_model("torchvision/not_a_net")


def test_list_models() -> None:
    names = list_models()
    assert names[:2] == ["efficientnet_lite0", "small_cnn"]
    assert "timm/resnet18" in names and "torchvision/resnet18" in names
    assert set(list_models("resnet18")) >= {"timm/resnet18", "torchvision/resnet18"}
    assert all(n.startswith("timm/convnext") for n in list_models("timm/convnext*"))


def test_default_paths_and_path_errors() -> None:
    assert isinstance(create_model(build=False), FastAdapter)
    assert isinstance(create_model("small_cnn", build=False), FullAdapter)
    assert isinstance(create_model("efficientnet_lite0", path="full", build=False), FullAdapter)
    with pytest.raises(InputError, match="full path"):
        create_model("small_cnn", path="fast")
    with pytest.raises(InputError, match="no pretrained weights"):
        create_model("small_cnn", pretrained=True)
    with pytest.raises(InputError, match="'fast' or 'full'"):
        create_model("small_cnn", path="quick")
    with pytest.raises(InputError, match="unknown option.*known"):
        create_model("small_cnn", epoch=3)


def test_offline_pretrained_timm_fails_fast_with_a_clear_message(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(OfflineError) as e:
        create_model("resnet18", num_classes=3)
    assert time.perf_counter() - t0 < 5
    msg = str(e.value)
    assert "resnet18" in msg and "efficientnet_lite0" in msg and "pretrained=False" in msg


def test_offline_without_env_var_is_detected_quickly(monkeypatch) -> None:
    """No HF_HUB_OFFLINE: a quick reachability probe replaces the hub's ~47 s of retries."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "host_reachable", lambda host, *a, **k: False)
    t0 = time.perf_counter()
    with pytest.raises(OfflineError, match="no network"):
        create_model("timm/resnet18", num_classes=3)
    with pytest.raises(OfflineError, match="torchvision/resnet18"):
        create_model("torchvision/resnet18", num_classes=3, path="full")
    assert time.perf_counter() - t0 < 5


def test_probe_of_an_unresolvable_host_returns_quickly() -> None:
    t0 = time.perf_counter()
    assert hub.host_reachable("no-such-host.invalid", timeout=1.0) is False
    assert time.perf_counter() - t0 < 2


def test_pretrained_false_timm_and_torchvision_build_offline() -> None:
    m = create_model("resnet18", num_classes=2, pretrained=False, image_size=32, path="full")
    assert m.config["backbone"] == {"source": "timm", "name": "resnet18", "pretrained": False,
                                    "image_size": 32, "weights_file": None}  # fmt: skip
    create_model("torchvision/resnet18", num_classes=2, pretrained=False, image_size=32)


def test_hf_without_transformers_says_how_to_install() -> None:
    pytest.importorskip("PIL")
    try:
        import transformers  # noqa: F401
    except ImportError:
        from activelab.exceptions import MissingDependencyError

        with pytest.raises(MissingDependencyError, match="pip install"):
            create_model("hf/google/vit-base-patch16-224")
    else:  # pragma: no cover - transformers installed: offline error instead
        with pytest.raises(OfflineError):
            create_model("hf/google/vit-base-patch16-224")


def test_weights_already_in_the_torch_cache_load_offline(monkeypatch, tmp_path) -> None:
    """Pre-downloaded weights are used without any network access (HF_HUB_OFFLINE=1)."""
    import os
    from urllib.parse import urlparse

    import timm
    import torch

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cfg = timm.models.get_pretrained_cfg("resnet18")
    ckpt = tmp_path / "hub" / "checkpoints" / os.path.basename(urlparse(cfg.url).path)
    ckpt.parent.mkdir(parents=True)
    source = timm.create_model("resnet18", pretrained=False)
    torch.save(source.state_dict(), ckpt)
    t0 = time.perf_counter()
    model = create_model("resnet18", num_classes=2, image_size=32)
    assert time.perf_counter() - t0 < 5
    loaded = model._body.module.state_dict()
    torch.testing.assert_close(loaded["conv1.weight"], source.state_dict()["conv1.weight"])


# --- the model table ---------------------------------------------------------------------


@pytest.fixture
def table(monkeypatch):
    """The registry's table, restored after the test (rows registered here do not leak)."""
    from activelab.models import registry

    monkeypatch.setattr(registry, "_TABLE", dict(registry._TABLE))
    return registry


def _toy_body(spec, load_weights, options):
    """A 4-feature body on 16 px inputs: the per-channel mean and the overall spread."""
    import torch

    from activelab.models.backbones import Body
    from activelab.models.images import Preprocess

    def features(module, x):
        return torch.cat([x.mean((2, 3)), x.std((1, 2, 3))[:, None]], dim=1)

    return Body(torch.nn.Identity(), 4, Preprocess(size=16), features, f"toy:{spec.name}")


def test_register_model_adds_a_row_that_create_and_list_models_use(table, tmp_path) -> None:
    from PIL import Image

    entry = table.register_model("toy/", description="toy bodies for tests", body=_toy_body, offline=True,
                                 names=lambda: ["mean", "spread"])  # fmt: skip
    assert entry.is_prefix and entry.source == "toy" and table.model_entries()[-1] is entry
    assert list_models("toy/*") == ["toy/mean", "toy/spread"]
    assert list_models("spread") == ["toy/spread"]
    assert parse_name("toy/mean") == ("toy", "mean")
    paths = []
    for i, colour in enumerate([(250, 0, 0), (0, 0, 250)] * 4):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.new("RGB", (20, 20), colour).save(paths[-1])
    model = create_model("toy/mean", classes=["red", "blue"], device="cpu")
    assert isinstance(model, FastAdapter) and model.config["backbone"]["source"] == "toy"
    model.fit(paths, [0, 1] * 4)
    np.testing.assert_array_equal(model.predict_proba(paths).argmax(1), [0, 1] * 4)
    with pytest.raises(InputError, match=r"toy/<name>"):  # unknown names list the registered rows
        create_model("toy_mean")


def test_register_model_refuses_duplicates_and_half_rows(table) -> None:
    with pytest.raises(InputError, match="already registered"):
        table.register_model("small_cnn", description="again", body=_toy_body)
    with pytest.raises(InputError, match="exactly one of body="):
        table.register_model("both", description="x", body=_toy_body, create=lambda arch, **kw: None)
    with pytest.raises(InputError, match="exactly one of body="):
        table.register_model("neither", description="x")
    with pytest.raises(InputError, match="prefix ending in '/'"):
        table.register_model("a/b", description="x", body=_toy_body)
    with pytest.raises(InputError, match="modes"):
        table.register_model("fastest", description="x", body=_toy_body, modes=("fast",))
    with pytest.raises(InputError, match="unknown backbone source 'nowhere'"):
        table.body_builder("nowhere")


def test_the_table_says_what_each_row_needs_and_whether_it_is_offline() -> None:
    from activelab.models import model_entries

    rows = {e.name: e for e in model_entries()}
    assert list(rows)[:2] == ["efficientnet_lite0", "small_cnn"]
    assert rows["efficientnet_lite0"].offline and rows["small_cnn"].offline and not rows["timm/"].offline
    assert rows["hf/"].requires == ("transformers",) and rows["fastai/"].requires == ("fastai",)
    assert rows["small_cnn"].modes == ("finetune",) and not rows["small_cnn"].pretrained
    assert rows["fastai/"].create is not None and rows["fastai/"].body is None


def test_mode_is_the_name_of_path() -> None:
    frozen = create_model(mode="frozen", build=False)
    finetune = create_model(mode="finetune", build=False)
    assert isinstance(frozen, FastAdapter) and isinstance(finetune, FullAdapter)
    assert (frozen.mode, frozen.path, finetune.mode, finetune.path) == ("frozen", "fast", "finetune", "full")
    assert finetune.config["mode"] == "finetune" and "path" not in finetune.config
    assert isinstance(create_model(path="full", mode="finetune", build=False), FullAdapter)
    with pytest.raises(InputError, match="disagree"):
        create_model(mode="frozen", path="full", build=False)
    with pytest.raises(InputError, match="'frozen' or 'finetune'"):
        create_model(mode="fast", build=False)
    with pytest.raises(InputError, match=r"mode='finetune' \(the full path\)"):
        create_model("small_cnn", mode="frozen")
