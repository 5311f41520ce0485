"""A tiny digits simulation shared by the tests (EfficientNet-Lite0 at 32 px, cached)."""

from __future__ import annotations

from pathlib import Path

import pytest

from activelab.simulate import Experiment, SimulationConfig


@pytest.fixture(scope="session")
def sim_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Images and embedding cache shared by every simulation test."""
    return tmp_path_factory.mktemp("sim-cache")


def tiny_config(output: Path, cache: Path, **kw: object) -> SimulationConfig:
    base: dict[str, object] = {
        "dataset": "digits",
        "pool_limit": 120,
        "eval_limit": 60,
        "strategies": ["random", "margin", "coreset"],
        "initial": "balanced",
        "initial_size": 10,
        "batch_size": 10,
        "budget": 30,
        "seeds": [0, 1],
        "image_size": 32,
        "output": str(output),
        "cache_dir": str(cache),
        "threads": 1,
        "tsne_points": 150,
    }
    base.update(kw)
    return SimulationConfig.from_dict(base)


@pytest.fixture(scope="session")
def finished(tmp_path_factory: pytest.TempPathFactory, sim_cache: Path) -> Experiment:
    """A finished tiny experiment with its reports written."""
    out = tmp_path_factory.mktemp("sim-out")
    exp = Experiment(tiny_config(out, sim_cache, tensorboard=str(out / "tb")), progress=False)
    exp.run()
    exp.report()
    return exp
