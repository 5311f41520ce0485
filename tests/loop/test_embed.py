"""The streaming, resumable embedding pass on real bundled images (Fashion-MNIST sample)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from activelab.exceptions import InputError, MissingDependencyError
from activelab.loop.embed import embed_project, embedding_model, project_items
from activelab.loop.ingest import import_images
from activelab.loop.project import Project, init_project, open_project
from activelab.models.stream import stream_embed

N_POOL, N_EVAL = 60, 20


def make_project(root: Path, sample: Path) -> Path:
    pool = pd.read_csv(sample / "pool.csv").head(N_POOL)
    evals = pd.read_csv(sample / "eval.csv").head(N_EVAL)
    for t in (pool, evals):
        t["filepath"] = [str(sample / p) for p in t["filepath"]]
    with init_project(root, sorted(set(pool["label"]) | set(evals["label"]))) as proj:
        import_images(proj.store, pool.assign(label=None))
        import_images(proj.store, evals, split="eval")
        proj.settings.model.image_size = 32
        proj.settings.model.device = "cpu"
        from activelab.loop.settings import SETTINGS_FILE, save_settings

        save_settings(proj.settings, root / SETTINGS_FILE)
    return root


@pytest.fixture
def project(tmp_path: Path, sample: Path) -> Project:
    proj = open_project(make_project(tmp_path / "project", sample))
    yield proj
    proj.close()


def all_keys(project: Project) -> list[str]:
    return [k for k, _ in project_items(project)]


def test_pass_embeds_every_image_once_and_matches_the_fast_path(project: Project) -> None:
    report = embed_project(project, batch_size=16, shard_size=32)
    assert (report.n_images, report.n_computed, report.n_cached, report.n_failed) == (80, 80, 0, 0)
    assert report.n_shards == 3  # 32 + 32 + 16
    model = embedding_model(project)
    keys = all_keys(project)
    emb, found = model.cache.get(model.model_id, keys)
    assert found.all() and emb.shape == (80, 1280)
    # the fast path reads the same cache entries and computes the same numbers
    fresh = embedding_model(project)
    fresh.cache = type(fresh.cache)(None)
    paths = [p for _, p in project_items(project)]
    assert np.allclose(fresh.embed(paths[:8], keys=keys[:8]), emb[:8], atol=1e-4)
    again = embed_project(project)
    assert (again.n_computed, again.n_cached) == (0, 80)


def test_interrupted_pass_resumes_without_recomputing(project: Project, tmp_path: Path) -> None:
    def stop_after_two_shards(n_done: int) -> None:
        if n_done >= 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        embed_project(project, batch_size=10, shard_size=10, on_shard=stop_after_two_shards)
    model = embedding_model(project)
    assert model.cache.count(model.model_id) == 20  # finished shards kept, nothing half-written
    resumed = embed_project(project, batch_size=10, shard_size=10)
    assert (resumed.n_cached, resumed.n_computed) == (20, 60)
    # same numbers as one uninterrupted pass into another cache
    keys = all_keys(project)
    got, _ = model.cache.get(model.model_id, keys)
    other = embedding_model(project)
    other.cache = type(other.cache)(tmp_path / "other-cache")
    stream_embed(other, project_items(project), batch_size=32)
    want, found = other.cache.get(other.model_id, keys)
    assert found.all() and np.allclose(got, want, atol=1e-4)


def test_pass_reads_the_pool_lazily_one_window_at_a_time(project: Project) -> None:
    consumed = []
    seen_at_first_shard = []

    def items():
        for pair in project_items(project):
            consumed.append(pair)
            yield pair

    model = embedding_model(project)
    report = stream_embed(
        model,
        items(),
        window=25,
        shard_size=5,
        batch_size=5,
        on_shard=lambda n: seen_at_first_shard.append(len(consumed)),
    )
    assert report.n_computed == 80
    assert seen_at_first_shard[0] <= 25 + 1  # one window read before the first shard, not the whole pool


def test_unreadable_image_is_reported_and_does_not_stop_the_pass(project: Project, tmp_path: Path) -> None:
    victim = project.store.images("pool")[3]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    from sqlalchemy import update

    from activelab.store import schema as t

    with project.store._write() as conn:  # test-only: simulate a file replaced on disk after import
        conn.execute(update(t.images).where(t.images.c.id == victim.id).values(path=str(broken)))
    report = embed_project(project, batch_size=8, shard_size=16)
    assert report.n_failed == 1 and report.failed[0][0] == str(broken)
    assert report.n_computed == 79
    model = embedding_model(project)
    assert not model.cache.contains(model.model_id, [victim.sha256])[0]


def test_bad_arguments_are_refused(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InputError, match="backend"):
        embed_project(project, backend="spark")
    with pytest.raises(InputError, match="split"):
        embed_project(project, splits=("train",))
    with pytest.raises(InputError, match="batch_size"):
        embed_project(project, batch_size=0)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if ray were not installed
    with pytest.raises(MissingDependencyError, match=r"activelab\[ray\]"):
        embed_project(project, backend="ray")


def test_embed_command_reports_and_resumes(tmp_path: Path, sample: Path) -> None:
    from activelab.cli.main import app

    root = make_project(tmp_path / "cli-project", sample)
    runner = CliRunner()
    first = runner.invoke(app, ["embed", str(root), "--batch-size", "16", "--shard-size", "32"])
    assert first.exit_code == 0, first.output
    assert "80 images: 0 already cached, 80 embedded" in first.output
    second = runner.invoke(app, ["embed", str(root), "--split", "eval"])
    assert second.exit_code == 0, second.output
    assert "20 images: 20 already cached, 0 embedded" in second.output
    bad = runner.invoke(app, ["embed", str(root), "--backend", "spark"])
    assert bad.exit_code == 2 and "backend must be one of" in bad.output


def test_the_cached_backbone_is_the_one_rounds_load_with_its_self_supervised_weights(project: Project) -> None:
    import torch

    plain = embedding_model(project)
    body, _ = plain.backbone()
    torch.save({k: v * 0.5 for k, v in body.module.state_dict().items()}, project.root / "ssl.pt")
    project.settings.model.backbone_weights = "ssl.pt"  # as `activelab pretrain --use` writes it
    tuned = embedding_model(project)
    assert tuned.spec.weights_file == str(project.root / "ssl.pt")
    assert tuned.model_id != plain.model_id  # another cache key: ImageNet embeddings are never reused
    project.settings.model.backbone_weights = "missing.pt"
    with pytest.raises(InputError, match="activelab pretrain"):
        embedding_model(project)
