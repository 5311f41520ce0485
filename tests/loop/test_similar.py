"""Similar images over real bundled images: exact copies first, look-alikes of the same class."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from activelab.exceptions import InputError, NotFoundError
from activelab.loop.ingest import import_images
from activelab.loop.project import Project, init_project
from activelab.loop.similar import SimilarImages

N = 200


def copy_with_other_bytes(src: str, dest: Path) -> Path:
    """The same pixels under another sha256 (a text chunk added): an exact duplicate to the model."""
    info = PngInfo()
    info.add_text("comment", "re-exported copy")
    Image.open(src).save(dest, pnginfo=info)
    return dest


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, sample: Path) -> tuple[Project, dict[int, str], int, int]:
    """A project of 200 pool images + one re-exported copy of the first; its similar-images index built."""
    root = tmp_path_factory.mktemp("similar")
    table = pd.read_csv(sample / "pool.csv").head(N)
    table["filepath"] = [str(sample / p) for p in table["filepath"]]
    dup = copy_with_other_bytes(table["filepath"][0], root / "copy.png")
    table = pd.concat([table, pd.DataFrame({"filepath": [str(dup)], "label": [table["label"][0]]})])
    project = init_project(root / "project", sorted(set(table["label"])))
    import_images(project.store, table)
    project.settings.model.image_size = 64
    project.settings.model.device = "cpu"
    images = project.store.images()
    by_path = dict(zip(table["filepath"], table["label"]))
    classes = {img.id: by_path[img.path] for img in images}
    original = next(img.id for img in images if img.path == table["filepath"].iloc[0])
    copy = next(img.id for img in images if img.path == str(dup))
    SimilarImages(project).ensure()
    yield project, classes, original, copy
    project.close()


def test_exact_duplicate_is_the_nearest_neighbour(built) -> None:
    project, _, original, copy = built
    index = SimilarImages(project)
    (first, score), *rest = index.similar(original, 5)
    assert first == copy and score == pytest.approx(1.0, abs=1e-5)
    assert index.similar(copy, 1)[0][0] == original
    assert len(rest) == 4 and original not in [i for i, _ in rest]  # never the image itself
    scores = [s for _, s in index.similar(original, 20)]
    assert scores == sorted(scores, reverse=True)


def test_neighbours_are_mostly_of_the_same_class(built) -> None:
    project, classes, _, _ = built
    index = SimilarImages(project)
    ids = sorted(classes)[:60]
    agree = [np.mean([classes[j] == classes[i] for j, _ in index.similar(i, 10)]) for i in ids]
    assert np.mean(agree) > 0.45  # 10 classes: chance is about 0.1


def test_index_is_persisted_and_rebuilt_when_images_are_added(
    built, sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project, _, _original, _ = built
    index = SimilarImages(project)
    assert (index.folder / "index.faiss").is_file() and (index.folder / "meta.json").is_file()

    def no_build(*args, **kwargs):
        raise AssertionError("rebuilt an up-to-date index")

    monkeypatch.setattr(SimilarImages, "_build", no_build)
    info = index.ensure()
    assert (info.kind, info.n) == ("flat", N + 1)
    monkeypatch.undo()
    extra = pd.read_csv(sample / "pool.csv").iloc[N : N + 5]
    import_images(project.store, pd.DataFrame({"filepath": [str(sample / p) for p in extra["filepath"]]}))
    info = index.ensure()
    assert info.n == N + 6 and info.fingerprint == project.store.images_fingerprint()


def test_ivf_index_above_the_threshold_finds_the_same_duplicate(built, tmp_path: Path) -> None:
    project, _, original, copy = built
    ivf = SimilarImages(project, flat_threshold=50, nprobe=8)
    info = ivf.rebuild()
    assert info.kind == "ivf"
    (first, score), *_ = ivf.similar(original, 3)
    assert first == copy and score > 0.99  # 8-bit quantised: approximately 1
    flat = SimilarImages(project, flat_threshold=10_000)
    flat.rebuild()
    assert flat.info is not None and flat.info.kind == "flat"


def test_bad_queries(built) -> None:
    project, _, original, _ = built
    index = SimilarImages(project)
    with pytest.raises(InputError, match="k must be"):
        index.similar(original, 0)
    with pytest.raises(NotFoundError):
        index.similar(10**9, 5)


def test_background_build_reports_failure_and_waits_for_new_images(tmp_path: Path, monkeypatch) -> None:
    project = init_project(tmp_path / "empty", ["a", "b"])
    project.settings.model.device = "cpu"
    index = SimilarImages(project)
    assert index.status() == {"status": "building"}
    index.start_build()
    index.wait(120)
    assert index.status() == {
        "status": "failed",
        "error": "the project has no readable images to search; import some first",
    }
    started = []
    monkeypatch.setattr(SimilarImages, "_build_in_background", lambda self: started.append(1))
    index.start_build()
    index.wait(5)
    assert started == [], "the same images are not tried again"
    project.close()


def test_search_never_builds(built) -> None:
    project, _, original, copy = built
    index = SimilarImages(project)  # nothing loaded yet
    assert index.search(original, 3) is None and index.info is None
    index.start_build()  # loads the persisted index in the background
    index.wait(60)
    assert index.status()["status"] == "ready" and index.search(original, 1)[0][0] == copy
