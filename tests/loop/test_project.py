"""Projects: settings file validation, init/open, relative SQLite paths, PostgreSQL URLs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from activelab.exceptions import InputError, NotFoundError
from activelab.loop.project import init_project, open_project
from activelab.loop.settings import SETTINGS_FILE, load_settings, parse_settings, save_settings, upgrade_keys


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
    path = tmp_path / SETTINGS_FILE
    path.write_text("model:\n  nmae: resnet18\nactive_learner:\n  k: 0\n")
    with pytest.raises(InputError) as e:
        load_settings(path)
    assert str(e.value) == (
        f"unknown key 'nmae' in {path} (section 'model'); did you mean 'name'? "
        "Known keys: name, mode, head, pretrained, image_size, device, options, representation, backbone_weights; "
        f"{path}: active_learner.k: Input should be greater than or equal to 1"
    )
    path.write_text("active_learner:\n  stratgy: bald\n")
    with pytest.raises(
        InputError, match=r"unknown key 'stratgy' in .*\(section 'active_learner'\); did you mean 'strategy'\?"
    ):
        load_settings(path)
    path.write_text("modle: {}\n")
    with pytest.raises(InputError, match=r"unknown key 'modle' in [^(]*; did you mean 'model'\?"):
        load_settings(path)
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


def test_old_key_names_are_read_and_new_ones_written(tmp_path: Path) -> None:
    init_project(tmp_path, []).close()
    path = tmp_path / SETTINGS_FILE
    path.write_text("model:\n  path: full\nactive_learner:\n  batch_size: 7\n")
    with open_project(tmp_path) as proj:
        assert (proj.settings.model.mode, proj.settings.active_learner.k) == ("finetune", 7)
        save_settings(proj.settings, path)
    written = yaml.safe_load(path.read_text())
    assert written["model"]["mode"] == "finetune" and "path" not in written["model"]
    assert written["active_learner"]["k"] == 7 and "batch_size" not in written["active_learner"]
    assert parse_settings({"model": {"mode": "fast"}}).model.mode == "frozen"


def test_old_and_new_name_together_must_agree() -> None:
    assert parse_settings({"model": {"path": "fast", "mode": "frozen"}}).model.mode == "frozen"
    with pytest.raises(InputError, match="both 'path' and 'mode' are given; keep only 'mode'"):
        parse_settings({"model": {"path": "full", "mode": "frozen"}})


def test_upgrade_keys_renames_only_old_names() -> None:
    data = {"model": {"path": "full", "head": "mlp"}, "active_learner": {"batch_size": 5}, "train": {"batch_size": 8}}
    assert upgrade_keys(data) == {
        "model": {"mode": "full", "head": "mlp"},
        "active_learner": {"k": 5},
        "train": {"batch_size": 8},
    }


def test_task_defaults_to_classification_and_is_checked(tmp_path: Path) -> None:
    with init_project(tmp_path, ["cat"]) as proj:
        assert proj.settings.task == "classification"
    assert "task: classification" in (tmp_path / SETTINGS_FILE).read_text()
    with pytest.raises(InputError, match=r"settings: task: unknown task 'keypoints.*; known: classification"):
        parse_settings({"task": "keypoints"})
    with pytest.raises(InputError, match=r"init_project: task: unknown task 'keypoints"):
        init_project(tmp_path / "new", [], task="keypoints")
    assert not (tmp_path / "new").exists()


def test_model_options_reach_the_model_and_unknown_ones_are_named() -> None:
    from activelab.loop.round import build_model
    from activelab.loop.settings import ModelSettings
    from activelab.tasks import get_task

    settings = ModelSettings(name="fcos_small", mode="finetune", pretrained=False, options={"min_steps": 7})
    model = build_model(settings, ["bag", "shirt"], task=get_task("detection"), cache_dir=None, image_size=64)
    assert model.config["options"]["min_steps"] == 7
    wrong = settings.model_copy(update={"options": {"min_stepz": 7}})
    with pytest.raises(InputError, match=r"unknown option\(s\) for .*: min_stepz; known: .*min_steps"):
        build_model(wrong, ["bag"], task=get_task("detection"), cache_dir=None, image_size=64)
