"""Names, options and offline behaviour of create_model."""

from __future__ import annotations

import time

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
        from activelab.models import MissingDependencyError

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
