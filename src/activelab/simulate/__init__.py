"""Oracle simulations: compare query strategies on a labeled dataset, with reports.

>>> from activelab.simulate import Experiment, SimulationConfig
>>> cfg = SimulationConfig(dataset="digits", strategies=["random", "margin"], budget=100, seeds=[0, 1])
>>> exp = Experiment(cfg)
>>> exp.run(); exp.report()          # doctest: +SKIP

See docs/simulation.md.
"""

from activelab.simulate.config import SimulationConfig
from activelab.simulate.data import SimDataset, from_arrays, from_folder, load_dataset
from activelab.simulate.experiment import Experiment, environment, run_simulation
from activelab.simulate.metrics import labels_to_reach, normalised_auc, summarise
from activelab.simulate.trackers import (
    MLflowTracker,
    TensorBoardTracker,
    Tracker,
    WandbTracker,
    make_tracker,
)

__all__ = [
    "Experiment",
    "MLflowTracker",
    "SimDataset",
    "SimulationConfig",
    "TensorBoardTracker",
    "Tracker",
    "WandbTracker",
    "environment",
    "from_arrays",
    "from_folder",
    "labels_to_reach",
    "load_dataset",
    "make_tracker",
    "normalised_auc",
    "run_simulation",
    "summarise",
]
