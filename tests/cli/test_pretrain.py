"""``activelab pretrain PROJECT`` on a real project (bundled Fashion-MNIST sample): the weights file, its record,
resuming, friendly errors, and that only pool images are read."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from activelab.cli.main import app
from activelab.loop.ingest import import_images
from activelab.loop.project import init_project, open_project
from activelab.loop.settings import SETTINGS_FILE, ModelSettings, save_settings

if not os.environ.get("CI"):  # the ssl extra is installed in CI: a missing lightly is a failure there
    pytestmark = pytest.mark.skipif(importlib.util.find_spec("lightly") is None, reason="needs lightly")

runner = CliRunner()


@pytest.fixture(autouse=True)
def one_thread():  # type: ignore[no-untyped-def]
    from activelab.models.base import torch_threads

    with torch_threads(1):  # a small CNN at 32 px: more threads cost more than they give on a loaded machine
        yield


def invoke(*args: object):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


def make_project(root: Path, sample: Path, n_pool: int, n_eval: int = 0) -> Path:
    """A small_cnn project at 32 px; its eval images are copied, then overwritten with bytes no reader accepts."""
    pool = pd.read_csv(sample / "pool.csv").head(n_pool)
    pool["filepath"] = [str(sample / p) for p in pool["filepath"]]
    evals = pd.read_csv(sample / "eval.csv").head(n_eval)
    copies = root.parent / f"{root.name}-eval"
    copies.mkdir(parents=True)
    for i, p in enumerate(evals["filepath"]):
        (copies / f"{i}.png").write_bytes((sample / p).read_bytes())
    evals["filepath"] = [str(copies / f"{i}.png") for i in range(len(evals))]
    with init_project(root, sorted(set(pool["label"]) | set(evals["label"]))) as proj:
        import_images(proj.store, pool.assign(label=None))
        if n_eval:
            import_images(proj.store, evals, split="eval")
        proj.settings.model.name, proj.settings.model.pretrained = "small_cnn", False
        proj.settings.model.image_size, proj.settings.model.device = 32, "cpu"
        save_settings(proj.settings, root / SETTINGS_FILE)
    for f in copies.iterdir():  # reading an eval image now fails
        f.write_bytes(b"not an image")
    return root


def test_pretrain_writes_the_backbone_from_pool_images_only_and_resumes(tmp_path: Path, sample: Path) -> None:
    from activelab.loop.pretrain import ssl_backbone
    from activelab.models.integrations.lightly import checkpoint_summary

    project = make_project(tmp_path / "p", sample, n_pool=16, n_eval=10)
    with open_project(project) as proj:
        assert ssl_backbone(proj) is None
    result = invoke("pretrain", project, "--method", "simsiam", "--epochs", "1", "--batch-size", "8", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    weights = project / "models" / "ssl" / "small_cnn-simsiam.pt"
    assert (
        record["path"] == str(weights)
        and weights.is_file()
        and (project / "models/ssl/small_cnn-simsiam.ckpt").is_file()
    )
    assert (record["method"], record["epochs"], record["images"], record["image_size"]) == ("simsiam", 1, 16, 32)
    assert json.loads(weights.with_suffix(".json").read_text())["images"] == 16  # the 10 eval images: never read
    with open_project(project) as proj:
        assert ssl_backbone(proj) == weights and ssl_backbone(proj, "efficientnet_lite0") is None

    again = invoke("pretrain", project, "--method", "simsiam", "--epochs", "2", "--batch-size", "8")
    assert again.exit_code == 0, again.output
    assert "going on from its checkpoint" in again.output and "epoch 1/2" not in again.output
    assert "epoch 2/2: loss" in again.output and f"wrote {weights}" in again.output
    assert "model.backbone_weights: models/ssl/small_cnn-simsiam.pt" in again.output
    assert checkpoint_summary(weights)["epoch"] == 2

    refused = invoke("pretrain", project, "--method", "simsiam", "--epochs", "3", "--batch-size", "4")
    assert refused.exit_code == 2 and "batch_size: 8 then, 4 now" in refused.output and "--restart" in refused.output

    used = invoke("pretrain", project, "--method", "simsiam", "--epochs", "2", "--batch-size", "8", "--use")
    if "backbone_weights" in ModelSettings.model_fields:
        assert used.exit_code == 0, used.output
        with open_project(project) as proj:
            assert proj.settings.model.backbone_weights == "models/ssl/small_cnn-simsiam.pt"  # type: ignore[attr-defined]
    else:
        assert used.exit_code == 2 and "model.backbone_weights setting" in used.output


def test_pretrain_refuses_too_few_images_and_unknown_methods(tmp_path: Path, sample: Path) -> None:
    project = make_project(tmp_path / "p", sample, n_pool=5)
    few = invoke("pretrain", project, "--epochs", "1")
    assert few.exit_code == 2 and "at least 16 pool images" in few.output and "has 5" in few.output
    unknown = invoke("pretrain", project, "--method", "byol")
    assert unknown.exit_code == 2 and "simclr, simsiam, dino" in unknown.output
    assert not (project / "models").exists()


def test_ctrl_c_says_the_finished_epochs_are_kept(tmp_path: Path, sample: Path, monkeypatch) -> None:
    import activelab.loop.pretrain as pretrain

    def interrupted(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    monkeypatch.setattr(pretrain, "pretrain_project", interrupted)
    project = make_project(tmp_path / "p", sample, n_pool=20)
    result = invoke("pretrain", project, "--method", "dino")
    assert result.exit_code == 130 and "interrupted: no epoch had finished" in result.output
