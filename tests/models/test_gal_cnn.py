"""gal_cnn: the MC-dropout CNN of Gal, Islam & Ghahramani (ICML 2017) and its recipe as default options."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from activelab.exceptions import InputError
from activelab.models import create_model
from activelab.models.backbones import GalCNN
from activelab.models.full import weight_decay_for

from .conftest import accuracy


def test_layer_shapes_and_parameter_count_match_the_paper():
    net = GalCNN(size=28)
    shapes = {}
    for name, layer in (("conv1", net.conv[0]), ("conv2", net.conv[2]), ("pool", net.conv[4])):
        layer.register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape)))
    out = net.eval()(torch.rand(2, 3, 28, 28))
    assert shapes == {"conv1": (2, 32, 25, 25), "conv2": (2, 32, 22, 22), "pool": (2, 32, 11, 11)}
    assert out.shape == (2, 128)
    # conv1 1*4*4*32+32 = 544, conv2 32*4*4*32+32 = 16,416, dense 11*11*32*128+128 = 495,744
    assert sum(p.numel() for p in net.parameters()) == 544 + 16_416 + 495_744
    assert [m.p for m in net.modules() if isinstance(m, torch.nn.Dropout)] == [0.25]


def test_create_model_gets_the_paper_recipe_and_user_options_win():
    m = create_model("gal_cnn", num_classes=10, build=False)
    assert m.mode == "finetune" and not m.spec.pretrained
    o = m.options
    recipe = {"dropout": o["dropout"], "body_dropout": o["body_dropout"], "augment": o["augment"],
              "hflip": o["hflip"], "lr": o["lr"], "val_fraction": o["val_fraction"],
              "weight_decay_per_label": o["weight_decay_per_label"], "epochs": o["epochs"]}  # fmt: skip
    assert recipe == {"dropout": 0.5, "body_dropout": 0.25, "augment": False, "hflip": False, "lr": 1e-3,
                      "val_fraction": 0.0, "weight_decay_per_label": 3.5, "epochs": 50}  # fmt: skip
    # weight decay scaled to the labeled-set size: 3.5 / n_train
    assert weight_decay_for(o, 20) == pytest.approx(0.175)
    assert weight_decay_for(o, 350) == pytest.approx(0.01)
    assert create_model("gal_cnn", num_classes=10, build=False, dropout=0.3).options["dropout"] == 0.3
    # the recipe belongs to gal_cnn's row only
    assert create_model("small_cnn", num_classes=10, build=False).options["augment"] is True
    with pytest.raises(InputError, match="finetune"):
        create_model("gal_cnn", mode="frozen", build=False)
    with pytest.raises(InputError, match="no pretrained weights"):
        create_model("gal_cnn", pretrained=True, build=False)


def test_mc_dropout_reuses_the_convolutions_only_for_the_same_unchanged_input():
    net = GalCNN(size=28).eval()
    x = torch.rand(2, 3, 28, 28)
    with torch.no_grad():
        first = net(x)
        assert net._memo is not None and net._memo[0] is x
        assert torch.equal(net(x), first)
        x.mul_(0.5)  # changed in place: recomputed
        assert not torch.allclose(net(x), first)
        assert torch.equal(net(x.clone()), net(x))


def test_tiny_fit_on_digits_learns_and_mc_samples_differ(digits):
    m = create_model("gal_cnn", classes=digits.classes, epochs=1, min_steps=10, batch_size=16, device="cpu")
    report = m.fit(digits.train_paths[:48], digits.train_labels[:48], seed=0)
    assert report.n_train == 48 and report.n_val == 0  # every label trains, as in the paper
    assert accuracy(m.predict_proba(digits.test_paths), digits.test_labels) >= 0.5  # chance: 0.25
    mc = m.mc_predict(digits.test_paths[:8], n_samples=3, seed=0)
    assert mc.shape == (3, 8, 4)
    np.testing.assert_allclose(mc.sum(-1), 1.0, atol=1e-5)
    assert np.abs(mc[0] - mc[1]).max() > 1e-3 and np.abs(mc[1] - mc[2]).max() > 1e-3
    np.testing.assert_array_equal(mc, m.mc_predict(digits.test_paths[:8], n_samples=3, seed=0))
