"""A segmentation project end to end through the library: init, import of seed masks, a region round that
records the pixels it asks for, partial labels kept as immutable content-addressed files, export round trip,
and ``ActiveLearner(task="segmentation")``.

Data: fashion-scenes at 64 px (8 pool, 4 eval images), three of its seed masks; the real ``unet_small``
trains two steps a round (what is checked is the flow, not the model's quality).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from activelab.data.scenes import SEGMENTATION_TABLES, write_scenes
from activelab.loop.export import export_labels
from activelab.loop.ingest import import_images
from activelab.loop.learner import ActiveLearner
from activelab.loop.project import Project, init_project
from activelab.loop.session import ActiveSession
from activelab.loop.trainer import BackgroundTrainer
from activelab.tasks.masks import IGNORE, read_mask
from activelab.tasks.regions import region_map

N_SEED = 3
TINY = {"min_steps": 2}


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fashion-scenes at 64 px, with ``seed3.csv``: the first three rows of its seed masks."""
    data = write_scenes(tmp_path_factory.mktemp("scenes"), n_pool=8, n_eval=4, size=64)
    seed = pd.read_csv(data / SEGMENTATION_TABLES["seed"]).head(N_SEED)
    seed.to_csv(data / "seed3.csv", index=False)
    return data


def _classes(scenes: Path) -> list[str]:
    return (scenes / SEGMENTATION_TABLES["classes"]).read_text(encoding="utf-8").split()


def _new_project(root: Path, scenes: Path) -> Project:
    proj = init_project(root, _classes(scenes), task="segmentation")
    proj.settings.model.options = dict(TINY)
    proj.settings.train.epochs = 1
    return proj


@pytest.fixture
def project(tmp_path: Path, scenes: Path) -> Iterator[Project]:
    proj = _new_project(tmp_path / "proj", scenes)
    task = proj.task()
    import_images(proj.store, scenes / "pool.csv", path_col="image", label_col=None, task=task)
    import_images(proj.store, scenes / "seed3.csv", path_col="image", task=task)
    import_images(proj.store, scenes / SEGMENTATION_TABLES["eval"], split="eval", path_col="image", task=task)
    yield proj
    proj.close()


def _truth(project: Project, scenes: Path, image_id: int) -> np.ndarray:
    """The image's full semantic mask from fashion-scenes' answers table."""
    answers = pd.read_csv(scenes / SEGMENTATION_TABLES["answers"])
    path = Path(project.store.get_image(image_id).path).resolve()
    row = answers[[(scenes / p).resolve() == path for p in answers["image"]]].iloc[0]
    return read_mask(scenes / row["mask"])


def test_a_segmentation_project_defaults_to_the_small_unet_and_stores_seed_masks(project: Project) -> None:
    assert (project.settings.model.name, project.settings.model.mode) == ("unet_small", "finetune")
    assert project.settings.active_learner.strategy == "seg_entropy"  # not classification's bald
    current = project.store.current_annotations("pool")
    assert len(current) == N_SEED
    for annotation in current.values():
        payload = annotation.payload
        assert set(payload) == {"mask", "width", "height", "labeled"} and payload["labeled"] == 64 * 64
        assert project.mask_store().path(payload["mask"]).is_file()
    _, pool, _ = ActiveSession(project).pool()
    assert pool.trained.sum() == N_SEED and pool.labeled.sum() == N_SEED  # fully labeled: closed


def test_a_region_round_records_the_asked_pixels_and_a_partial_label_keeps_the_image_open(
    project: Project, scenes: Path
) -> None:
    project.settings.active_learner.strategy = "region_entropy"
    project.settings.active_learner.k = 3
    trainer = BackgroundTrainer(project, retrain_every=1)
    state = trainer.run_once()
    assert state["last_error"] is None
    store, masks = project.store, project.mask_store()
    (rnd,) = store.rounds()
    selected = [iid for iid, _ in store.round_selection(rnd.number)]
    asked = store.round_asked(rnd.number)
    assert set(asked) == set(selected) and not set(selected) & set(store.current_annotations("pool"))
    assert 0.0 <= state["last_metrics"]["miou"] <= 1.0 and rnd.metrics["eval"]["n"] == 4
    n_regions = 0
    for iid in selected:
        mask = masks.get(asked[iid])
        assert store.asked_mask_key(iid) == asked[iid] and set(np.unique(mask)) <= {0, 1}
        regions = region_map(store.get_image(iid).path, "slic", 16)
        picked = np.unique(regions[mask == 1])
        assert np.array_equal(np.isin(regions, picked), mask == 1)  # whole superpixels, nothing else
        n_regions += len(picked)
    assert n_regions == 3  # k counts regions
    assert sum(int(masks.get(asked[i]).sum()) for i in selected) == state["last_metrics"]["asked_pixels"] > 0
    session = ActiveSession(project)
    assert session.queue() == selected

    # the labeler answers the asked pixels of the first image only: a partial mask
    iid = selected[0]
    task = project.task()
    truth = _truth(project, scenes, iid)
    partial = np.where(masks.get(asked[iid]) == 1, truth, IGNORE).astype(np.uint8)
    first = task.validate(partial, store.class_names(), size=(64, 64))
    store.submit_annotation(iid, first, author="ann")
    path = masks.path(first["mask"])
    data, mtime = path.read_bytes(), path.stat().st_mtime_ns
    assert hashlib.sha256(data).hexdigest() == first["mask"] and first["labeled"] == int((partial != IGNORE).sum())
    assert np.array_equal(read_mask(path), partial)
    assert iid not in session.queue() and session.queue() == selected[1:]
    images, pool, _ = session.pool()
    row = [img.id for img in images].index(iid)
    assert pool.trained[row] and not pool.exclude[row]  # trains on its labeled pixels, open to region rounds
    (target,) = session.labeled_set("pool").y[[i == iid for i in session.labeled_set("pool").image_ids]]
    assert np.array_equal(target, partial)

    # a second label event (the whole image) gets its own file; the first one is untouched
    second = task.validate(truth, store.class_names(), size=(64, 64))
    store.submit_annotation(iid, second, author="ann")
    assert second["mask"] != first["mask"] and masks.path(second["mask"]).is_file()
    assert path.read_bytes() == data and path.stat().st_mtime_ns == mtime
    assert [e.payload["mask"] for e in store.label_history(iid)] == [first["mask"], second["mask"]]
    _, pool, _ = session.pool()
    assert pool.exclude[row]  # no pixel left to ask for


def test_answers_that_only_add_pixels_count_towards_the_next_retraining(project: Project, scenes: Path) -> None:
    store, task = project.store, project.task()
    (iid,) = [img.id for img in store.image_refs("pool") if img.id not in store.current_annotations("pool")][:1]
    truth = _truth(project, scenes, iid)
    left, right = truth.copy(), truth.copy()
    left[:, 32:], right[:, :32] = IGNORE, IGNORE
    store.submit_annotation(iid, task.validate(left, store.class_names()), author="ann")
    n = len(store.current_annotations("pool"))
    trainer = BackgroundTrainer(project, retrain_every=1)
    for asked in (None, {iid: project.mask_store().put((right != IGNORE).astype(np.uint8))}):
        number = store.start_round(strategy="region_entropy", model="unet_small", config={}, n_labeled=n)
        store.finish_round(number, metrics={}, selection=[(iid, 0.5)], asked=asked)
        assert not trainer.due() and ActiveSession(project).queue() == ([iid] if asked else [])
    store.submit_annotation(iid, task.validate(truth, store.class_names()), author="ann")
    assert trainer.labels_since_last_round() == (n, n) and trainer.due()  # no new image, but new pixels
    assert ActiveSession(project).queue() == []


def test_the_export_table_round_trips_the_masks(project: Project, scenes: Path, tmp_path: Path) -> None:
    out = export_labels(project.store, tmp_path / "out" / "labels.csv", task=project.task(), include_eval=True)
    table = pd.read_csv(out)
    assert list(table.columns[:3]) == ["image_id", "filepath", "mask"] and len(table) == N_SEED + 4
    assert all(cell.startswith("labels_masks/") and (out.parent / cell).is_file() for cell in table["mask"])
    with _new_project(tmp_path / "again", scenes) as again:
        for split in ("pool", "eval"):
            rows = table[table["split"] == split]
            rows.to_csv(out.parent / f"{split}.csv", index=False)
            import_images(again.store, out.parent / f"{split}.csv", split=split, task=again.task())

        def masks_by_content(proj: Project) -> dict[tuple[str, str], str]:
            images = {img.id: img for img in proj.store.images()}
            current = proj.store.current_annotations()
            return {(images[i].sha256, images[i].split): a.payload["mask"] for i, a in current.items()}

        assert masks_by_content(again) == masks_by_content(project)


def test_the_learner_trains_on_partly_labeled_masks_and_samples_regions(scenes: Path, tmp_path: Path) -> None:
    classes = _classes(scenes)
    seed = pd.read_csv(scenes / "seed3.csv")
    half = read_mask(scenes / seed["mask"][2])
    half[:, 32:] = IGNORE  # an (H, W) array: only the left half labeled
    labels = pd.Series([str(scenes / seed["mask"][0]), str(scenes / seed["mask"][1]), None], dtype=object)
    labels[2] = half
    frame = pd.DataFrame({"filepath": [str(scenes / p) for p in seed["image"]], "label": labels})
    with pytest.raises(Exception, match="needs its class list, background first"):
        ActiveLearner(task="segmentation").load_dataset(frame)
    learner = ActiveLearner(task="segmentation", classes=classes, epochs=1, **TINY)
    learner.load_dataset(frame)
    assert learner.train_df["label"][2]["labeled"] == 64 * 32 and learner.classes == classes
    learner.train()
    pool = [str(p) for p in sorted((scenes / "pool" / "images").glob("*.png"))[N_SEED:]]
    predictions = learner.predict(pool)
    assert [p["width"] for p in predictions["pred_label"]] == [64] * len(pool)
    picked = learner.sample(predictions, 2, strategy="region_entropy")
    assert [int(a.sum()) > 0 for a in picked["asked"]] == [True] * len(picked) and 1 <= len(picked) <= 2
    evals = pd.read_csv(scenes / SEGMENTATION_TABLES["eval"])
    evals = pd.DataFrame({"filepath": [str(scenes / p) for p in evals["image"]], "label": evals["mask"]})
    evals["label"] = [str(scenes / p) for p in evals["label"]]
    miou = learner.evaluate(evals)
    assert miou == learner.last_eval["miou"] and 0.0 <= miou <= 1.0
    learner.save(tmp_path / "saved")
    loaded = ActiveLearner.load(tmp_path / "saved")
    assert loaded.classes == classes and loaded.evaluate(evals) == pytest.approx(miou)
