from __future__ import annotations

import json
from pathlib import Path

import pytest

from activelab.exceptions import ConfigError
from activelab.simulate import SimulationConfig


def test_yaml_unknown_key_names_file_key_and_fix(tmp_path: Path) -> None:
    f = tmp_path / "sim.yaml"
    f.write_text("dataset: digits\nstrategy: [random]\nbudget: 50\n")
    with pytest.raises(ConfigError) as e:
        SimulationConfig.from_yaml(f)
    assert str(e.value).startswith(
        f"unknown key 'strategy' in {f}; did you mean 'strategies'? Known keys: task, dataset,"
    )


def test_yaml_bad_value(tmp_path: Path) -> None:
    f = tmp_path / "sim.yaml"
    f.write_text("k: ten\n")
    with pytest.raises(ConfigError, match=r"sim.yaml: k: Input should be a valid integer"):
        SimulationConfig.from_yaml(f)


def test_flags_override_yaml_and_strings_split(tmp_path: Path) -> None:
    f = tmp_path / "sim.yaml"
    f.write_text("strategies: [random]\nseeds: [0]\nbudget: 40\n")
    cfg = SimulationConfig.from_yaml(f, strategies="random,margin", seeds="3,4", budget=None)
    assert cfg.strategies == ["random", "margin"] and cfg.seeds == [3, 4] and cfg.budget == 40


def test_rounds_and_budget() -> None:
    cfg = SimulationConfig(initial_size=20, k=30, budget=100, rounds=None)
    assert cfg.n_rounds == 3
    assert [cfg.batch_for_round(r) for r in (1, 2, 3)] == [30, 30, 20]
    assert SimulationConfig(initial_size=20, k=10, budget=None, rounds=4).n_rounds == 4
    assert SimulationConfig(initial_size=20, k=10, budget=60, rounds=2).n_rounds == 2
    with pytest.raises(ConfigError, match="rounds"):
        SimulationConfig(budget=None, rounds=None)


def test_hash_ignores_strategies_and_seeds_but_not_the_model() -> None:
    a = SimulationConfig(strategies=["random"], seeds=[0])
    b = SimulationConfig(strategies=["random", "margin"], seeds=[0, 1], targets=[0.5], output="elsewhere")
    c = SimulationConfig(strategies=["random"], seeds=[0], head="mlp")
    assert a.config_hash() == b.config_hash()
    assert a.config_hash() != c.config_hash()


def test_unknown_strategy_and_bad_cold_start() -> None:
    with pytest.raises(ConfigError, match="unknown strategy 'nope'"):
        SimulationConfig(strategies=["nope"]).check_strategies()
    with pytest.raises(ConfigError, match="before the first label"):
        SimulationConfig(initial="margin").check_strategies()


def test_old_key_names_still_read_and_suggested(tmp_path: Path) -> None:
    f = tmp_path / "sim.yaml"
    f.write_text("batch_size: 5\npath: full\n")
    cfg = SimulationConfig.from_yaml(f)
    assert (cfg.k, cfg.mode) == (5, "finetune")
    assert SimulationConfig(batch_size=4, path="fast").to_dict()["k"] == 4
    assert SimulationConfig(mode="fast").mode == "frozen"
    with pytest.raises(
        ConfigError, match=r"unknown key 'batchsize' in command line; did you mean 'k' \(formerly 'batch_size'\)\?"
    ):
        SimulationConfig.from_dict({"batchsize": 5}, source="command line")
    with pytest.raises(ConfigError, match="both 'batch_size' and 'k' are given; keep only 'k'"):
        SimulationConfig(batch_size=4, k=5)


def test_written_config_uses_new_names_and_reads_back(tmp_path: Path) -> None:
    cfg = SimulationConfig(k=7, mode="finetune", model="small_cnn", seeds=[3])
    text = cfg.to_yaml()
    assert "k: 7" in text and "mode: finetune" in text and "batch_size" not in text and "path:" not in text
    f = tmp_path / "sim.yaml"
    f.write_text(text)
    assert SimulationConfig.from_yaml(f) == cfg


def test_json_config_file_loads(tmp_path: Path) -> None:
    f = tmp_path / "sim.json"
    f.write_text(json.dumps({"dataset": "digits", "strategies": ["random"], "k": 5, "budget": 30}))
    cfg = SimulationConfig.from_yaml(f)
    assert (cfg.strategies, cfg.k, cfg.budget, cfg.n_rounds) == (["random"], 5, 30, 2)


def test_results_hash_unchanged_by_the_renames() -> None:
    """Results folders written before ``k``/``mode`` (hashed as batch_size/path) are still found."""
    assert SimulationConfig().config_hash() == "c7a290fef860"
    assert SimulationConfig(k=5, mode="finetune", head="mlp").config_hash() == "f3e5b05ffe24"
    assert SimulationConfig(batch_size=5, path="full", head="mlp").config_hash() == "f3e5b05ffe24"


def test_task_is_checked_and_only_hashed_when_not_the_default() -> None:
    assert SimulationConfig(task="classification").config_hash() == "c7a290fef860"
    with pytest.raises(ConfigError, match=r"config: task: unknown task 'keypoints.*; known: classification"):
        SimulationConfig(task="keypoints")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"budget": 10, "initial_size": 20}, "config: budget: the budget (10) is smaller than the initial set (20)"),
        ({"strategies": ["random", "random"]}, "config: strategies: lists an entry twice: ['random', 'random']"),
        ({"strategies": []}, "config: strategies: List should have at least 1 item"),
        ({"seeds": [-1]}, "config: seeds.0: Input should be greater than or equal to 0"),
        ({"targets": [1.5]}, "config: targets.0: Input should be less than or equal to 1"),
        ({"trackers": ["comet"]}, "config: trackers.0: Input should be 'tensorboard', 'mlflow' or 'wandb'"),
        ({"strategy_params": {"bald": {}}}, "config: strategy_params: has parameters for ['bald']"),
        ({"head": "svm"}, "config: head: Input should be 'logreg' or 'mlp'"),
    ],
)
def test_bad_values_name_the_key(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as e:
        SimulationConfig(**kwargs)
    assert str(e.value).startswith(message)


def test_semi_supervised_and_representation_are_hashed_when_set_and_checked_against_the_mode() -> None:
    default = SimulationConfig()
    assert "semi_supervised" not in default.result_fields() and default.config_hash() == "c7a290fef860"
    semi = SimulationConfig(semi_supervised="label_spreading")
    assert semi.result_fields()["semi_supervised"] == "label_spreading"
    assert len({default.config_hash(), semi.config_hash(), SimulationConfig(semi_supervised="auto").config_hash()}) == 3
    assert SimulationConfig(representation="auto").config_hash() != default.config_hash()
    with pytest.raises(ConfigError, match="config: semi_supervised 'fixmatch' does not run in frozen mode: use one of"):
        SimulationConfig(semi_supervised="fixmatch")  # efficientnet_lite0's own mode is frozen
    assert SimulationConfig(model="small_cnn", semi_supervised="fixmatch").model_mode == "finetune"
