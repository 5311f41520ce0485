"""Projects: settings file validation, init/open, relative SQLite paths, PostgreSQL URLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from activelab.exceptions import InputError, NotFoundError
from activelab.loop.project import init_project, open_project
from activelab.loop.settings import SETTINGS_FILE, load_settings


def test_init_then_open(tmp_path: Path) -> None:
    with init_project(tmp_path / "p", ["cat", "dog"]) as proj:
        assert proj.store.class_names() == ["cat", "dog"]
    assert (tmp_path / "p" / "activelab.db").is_file()
    with open_project(tmp_path / "p") as proj:
        assert proj.settings.model.name == "efficientnet_lite0"
        assert proj.store.class_names() == ["cat", "dog"]


def test_project_moves_with_its_folder(tmp_path: Path) -> None:
    init_project(tmp_path / "a", ["x"]).close()
    (tmp_path / "a").rename(tmp_path / "b")
    with open_project(tmp_path / "b") as proj:
        assert proj.store.class_names() == ["x"]


def test_init_refuses_existing_and_open_refuses_missing(tmp_path: Path) -> None:
    init_project(tmp_path, []).close()
    with pytest.raises(InputError, match="already an activelab project"):
        init_project(tmp_path, [])
    with pytest.raises(NotFoundError, match="not an activelab project.*activelab init"):
        open_project(tmp_path / "elsewhere")


def test_unknown_settings_keys_are_named(tmp_path: Path) -> None:
    init_project(tmp_path, []).close()
    (tmp_path / SETTINGS_FILE).write_text("model:\n  nmae: resnet18\nactive_learner:\n  batch_size: 0\n")
    with pytest.raises(InputError, match=r"model.nmae: Extra inputs.*active_learner.batch_size"):
        load_settings(tmp_path / SETTINGS_FILE)
    (tmp_path / SETTINGS_FILE).write_text("model: [1, 2\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load_settings(tmp_path / SETTINGS_FILE)


@pytest.mark.postgres
def test_project_on_postgres(tmp_path: Path, postgres_url: str) -> None:
    init_project(tmp_path, ["cat"], db=postgres_url).close()
    assert not (tmp_path / "activelab.db").exists()
    with open_project(tmp_path) as proj:
        assert proj.store.engine.dialect.name == "postgresql"
        assert proj.store.class_names() == ["cat"]
