"""Self-supervised pretraining is optional: a clear error without lightly; weights files plug in."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from activelab.exceptions import NotFoundError
from activelab.models import MissingDependencyError, create_model


@pytest.mark.skipif(importlib.util.find_spec("lightly") is not None, reason="lightly is installed")
def test_pretraining_without_lightly_says_how_to_install(fashion, tmp_path) -> None:
    from activelab.models.pretrain import pretrain_backbone

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
