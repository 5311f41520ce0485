from __future__ import annotations

from pathlib import Path

import pytest

from activelab.simulate import ConfigError, SimulationConfig


def test_yaml_unknown_key_names_file_key_and_fix(tmp_path: Path) -> None:
    f = tmp_path / "sim.yaml"
    f.write_text("dataset: digits\nstrategy: [random]\nbudget: 50\n")
    with pytest.raises(ConfigError) as e:
        SimulationConfig.from_yaml(f)
    msg = str(e.value)
    assert str(f) in msg and "'strategy'" in msg and "did you mean 'strategies'" in msg


def test_yaml_bad_value(tmp_path: Path) -> None:
    f = tmp_path / "sim.yaml"
    f.write_text("k: ten\n")
    with pytest.raises(ConfigError, match="k: must be an integer"):
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
