"""``ActiveLearner``: the DataFrame workflow of notebook users, without a project store.

A drop-in for the active-vision style of working: load a labeled DataFrame,
train, evaluate, predict an unlabeled set, sample what to label, add the new
labels, repeat. Strategies come from the same registry the CLI and the web app
use; ``sample(strategy=...)`` accepts any registered name.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from activelab.exceptions import ActivelabError, InputError, NotFoundError
from activelab.loop.inputs import strategy_inputs
from activelab.models import FitReport, ModelAdapter, create_model, load_model
from activelab.strategies import select
from activelab.tasks.metrics import classification_metrics

PRED_COLUMNS = ["filepath", "pred_label", "pred_conf", "probs"]

#: ``labeler(df, classes, *, filepath_col, label_col, output_filename, **options) -> DataFrame``:
#: :func:`activelab.server.label_dataframe` is the one activelab ships (see :meth:`ActiveLearner.label`)
Labeler = Callable[..., pd.DataFrame]


class ActiveLearner:
    """Train, predict and sample on pandas DataFrames with a file-path and a label column.

    ``model`` is any name :func:`activelab.models.create_model` accepts
    (``efficientnet_lite0`` works offline; ``resnet18`` and other timm names need
    a network for pretrained weights). ``path="fast"`` trains a head on cached
    frozen embeddings; ``path="full"`` fine-tunes the network.
    """

    def __init__(
        self,
        model: str = "efficientnet_lite0",
        *,
        path: str = "fast",
        pretrained: bool = True,
        device: str | None = None,
        cache_dir: str | Path | None = None,
        seed: int = 0,
        **model_options: Any,
    ) -> None:
        self.model_name = model
        self.path = path
        self.pretrained = pretrained
        self.device = device
        self.cache_dir = cache_dir
        self.seed = seed
        self.model_options = model_options
        self.train_df: pd.DataFrame | None = None
        self.classes: list[str] = []
        self.model: ModelAdapter | None = None
        self.last_report: FitReport | None = None
        self.last_eval: dict[str, Any] | None = None
        self._filepath_col = "filepath"
        self._label_col = "label"

    # ------------------------------------------------------------------ data
    def load_dataset(self, df: pd.DataFrame, filepath_col: str = "filepath", label_col: str = "label") -> None:
        """Set the labeled training set; the class list is its sorted label values."""
        self.train_df = _clean_labeled(df, filepath_col, label_col, "the training DataFrame")
        self._filepath_col, self._label_col = filepath_col, label_col
        self.classes = sorted(self.train_df["label"].unique().tolist())

    def add_to_train_set(self, labeled_df: pd.DataFrame, output_filename: str | Path | None = None) -> pd.DataFrame:
        """Append newly labeled rows (new classes are added); optionally write the set as parquet."""
        new = _clean_labeled(labeled_df, self._filepath_col, self._label_col, "the labeled DataFrame")
        base = self.train_df if self.train_df is not None else new.iloc[0:0]
        merged = pd.concat([base, new], ignore_index=True).drop_duplicates("filepath", keep="last")
        self.train_df = merged.reset_index(drop=True)
        self.classes = sorted(set(self.classes) | set(new["label"]))
        if output_filename is not None:
            out = Path(output_filename)
            out = out if out.suffix else out.with_suffix(".parquet")
            self.train_df.rename(columns={"filepath": self._filepath_col, "label": self._label_col}).to_parquet(out)
        return self.train_df

    # ----------------------------------------------------------------- model
    def train(self, epochs: int | None = None, lr: float | None = None, batch_size: int | None = None) -> FitReport:
        """Train a fresh model on the current training set."""
        if self.train_df is None or self.train_df.empty:
            raise InputError("no training data: call load_dataset(df, filepath_col=..., label_col=...) first")
        options = dict(self.model_options)
        for key, value in (("epochs", epochs), ("lr", lr), ("batch_size", batch_size)):
            if value is not None:
                options[key] = value
        self.model = create_model(
            self.model_name,
            classes=self.classes,
            path=self.path,
            pretrained=self.pretrained,
            device=self.device,
            cache_dir=self.cache_dir,
            **options,
        )
        index = {c: i for i, c in enumerate(self.classes)}
        self.last_report = self.model.fit(
            self.train_df["filepath"].tolist(),
            [index[c] for c in self.train_df["label"]],
            seed=self.seed,
            progress=True,
        )
        return self.last_report

    def _fitted(self) -> ModelAdapter:
        if self.model is None:
            raise InputError("no trained model: call train() (or ActiveLearner.load(path)) first")
        return self.model

    def predict(self, filepaths: Sequence[str | Path] | pd.Series, batch_size: int | None = None) -> pd.DataFrame:
        """Predictions for image files: ``filepath``, ``pred_label``, ``pred_conf`` and ``probs`` (one array per row)."""
        paths = [str(p) for p in filepaths]
        if not paths:
            return pd.DataFrame(columns=PRED_COLUMNS)
        _check_files(paths)
        probs = self._fitted().predict_proba(paths, progress=True)
        return pd.DataFrame(
            {
                "filepath": paths,
                "pred_label": [self.classes[i] for i in probs.argmax(axis=1)],
                "pred_conf": probs.max(axis=1).astype(float),
                "probs": list(probs),
            }
        )

    def evaluate(self, eval_df: pd.DataFrame, filepath_col: str = "filepath", label_col: str = "label") -> float:
        """Accuracy on a labeled set; ``last_eval`` holds the per-class report and confusion matrix."""
        df = _clean_labeled(eval_df, filepath_col, label_col, "the evaluation DataFrame")
        unknown = sorted(set(df["label"]) - set(self.classes))
        if unknown:
            raise InputError(f"evaluation labels {unknown} are not classes the model was trained on: {self.classes}")
        probs = self._fitted().predict_proba(df["filepath"].tolist(), progress=True)
        index = {c: i for i, c in enumerate(self.classes)}
        metrics = classification_metrics([index[c] for c in df["label"]], probs, self.classes)
        metrics["report"] = pd.DataFrame(metrics["per_class"]).T
        metrics["confusion_matrix"] = pd.DataFrame(metrics["confusion"], index=self.classes, columns=self.classes)
        self.last_eval = metrics
        return float(metrics["accuracy"])

    # --------------------------------------------------------------- sampling
    def sample(
        self, pred_df: pd.DataFrame, num_samples: int, strategy: str = "least_confidence", **params: Any
    ) -> pd.DataFrame:
        """The ``num_samples`` rows of ``pred_df`` that ``strategy`` ranks first, best first.

        The training set is passed to the strategy as already labeled, so
        diversity strategies (``coreset``, ``typiclust``...) avoid what is known.
        """
        if pred_df.empty:
            return pred_df.copy()
        if "filepath" not in pred_df.columns:
            raise InputError(f"pred_df needs a 'filepath' column (from predict()); got {list(pred_df.columns)}")
        train_paths = self.train_df["filepath"].tolist() if self.train_df is not None else []
        paths = train_paths + pred_df["filepath"].astype(str).tolist()
        labeled = np.zeros(len(paths), dtype=bool)
        labeled[: len(train_paths)] = True
        index = {c: i for i, c in enumerate(self.classes)}
        train_y = [index[c] for c in self.train_df["label"]] if self.train_df is not None else []
        labels = np.array(train_y + [-1] * len(pred_df), dtype=np.int64)
        inputs = strategy_inputs(self._fitted(), strategy, paths, params=params, labels=labels, seed=self.seed)
        rng = np.random.default_rng(self.seed)
        positions = select(strategy, num_samples, rng=rng, labeled=labeled, **inputs, **params)
        rows = positions - len(train_paths)
        out = pred_df.iloc[rows].copy()
        out["rank"] = np.arange(1, len(out) + 1)
        out["strategy"] = strategy
        return out

    def sample_uncertain(
        self, pred_df: pd.DataFrame, num_samples: int, strategy: str = "least_confidence"
    ) -> pd.DataFrame:
        """Lowest-confidence rows first (``strategy``: least_confidence, margin, ratio or entropy)."""
        return self.sample(pred_df, num_samples, strategy=strategy)

    def sample_diverse(self, pred_df: pd.DataFrame, num_samples: int, strategy: str = "coreset") -> pd.DataFrame:
        """Rows that cover the embedding space (``coreset``, ``cluster``, ``typiclust``, ``outlier``...)."""
        return self.sample(pred_df, num_samples, strategy=strategy)

    def sample_random(self, pred_df: pd.DataFrame, num_samples: int) -> pd.DataFrame:
        """A seeded random sample: the baseline every strategy should beat."""
        return self.sample(pred_df, num_samples, strategy="random")

    def label(
        self,
        df: pd.DataFrame,
        output_filename: str | Path | None = None,
        *,
        labeler: Labeler | None = None,
        **options: Any,
    ) -> pd.DataFrame:
        """Label the rows of ``df`` in the labeling web app; returns ``df`` with the label column filled.

        >>> from activelab.server import label_dataframe
        >>> to_label = learner.sample(learner.predict(paths), 20)          # doctest: +SKIP
        >>> labeled = learner.label(to_label, "batch1", labeler=label_dataframe)  # doctest: +SKIP
        >>> learner.add_to_train_set(labeled.dropna(subset=["label"]))     # doctest: +SKIP

        ``labeler`` is :func:`activelab.server.label_dataframe` (or any function with its
        signature): it serves the app on 127.0.0.1, prints the URL and blocks until every
        row has a class (or Ctrl-C / ``POST /api/done``). The classes offered are this
        learner's (``self.classes``). ``output_filename`` writes the result as parquet;
        ``options`` go to the labeler (``port``, ``timeout``...).

        Why a parameter and not an import: the web app is in the server layer, above
        this loop layer, and layers import downwards only (DESIGN.md). Passing the
        function keeps that rule without hidden plugin registries or global state, and
        any other labeling front end with the same signature plugs in the same way.
        """
        if labeler is None:
            raise ActivelabError(
                "ActiveLearner.label opens the labeling web app, which lives in the server layer this loop layer "
                "does not import: `from activelab.server import label_dataframe` then "
                "`learner.label(df, labeler=label_dataframe)`, or call `label_dataframe(df, classes=learner.classes)` "
                "directly"
            )
        if not self.classes:
            raise InputError("no classes yet: call load_dataset(df) first (the class list comes from its labels)")
        return labeler(
            df,
            self.classes,
            filepath_col=self._filepath_col,
            label_col=self._label_col,
            output_filename=output_filename,
            **options,
        )

    # ------------------------------------------------------------- save/load
    def save(self, path: str | Path) -> Path:
        """Save the model, class list and training set to a folder."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        self._fitted().save(folder / "model")
        if self.train_df is not None:
            self.train_df.to_parquet(folder / "train.parquet")
        meta = {
            "model": self.model_name,
            "path": self.path,
            "classes": self.classes,
            "seed": self.seed,
            "model_options": self.model_options,
        }
        (folder / "learner.json").write_text(json.dumps(meta, indent=2))
        return folder

    @classmethod
    def load(cls, path: str | Path, *, device: str | None = None) -> ActiveLearner:
        """Load what :meth:`save` wrote."""
        folder = Path(path)
        if not (folder / "learner.json").is_file():
            raise NotFoundError(f"no saved ActiveLearner in {folder} (learner.json missing)")
        meta = json.loads((folder / "learner.json").read_text())
        learner = cls(meta["model"], path=meta["path"], device=device, seed=meta["seed"], **meta["model_options"])
        learner.classes = list(meta["classes"])
        learner.model = load_model(folder / "model", device=device)
        if (folder / "train.parquet").is_file():
            learner.train_df = pd.read_parquet(folder / "train.parquet")
        return learner


def _clean_labeled(df: pd.DataFrame, filepath_col: str, label_col: str, name: str) -> pd.DataFrame:
    """``filepath``/``label`` columns as strings; clear errors for missing columns, labels or files."""
    missing = [c for c in (filepath_col, label_col) if c not in df.columns]
    if missing:
        raise InputError(
            f"{name} has no column(s) {missing} (columns: {list(map(str, df.columns))}); "
            "pass filepath_col= and label_col="
        )
    out = pd.DataFrame({"filepath": df[filepath_col].astype(str), "label": df[label_col]})
    blank = out["label"].isna() | (out["label"].astype(str).str.strip() == "")
    if blank.any():
        rows = (np.flatnonzero(blank.to_numpy())[:5] + 1).tolist()
        raise InputError(f"{name} has {int(blank.sum())} row(s) without a label (rows {rows}); drop or label them")
    out["label"] = out["label"].astype(str)
    _check_files(out["filepath"].tolist(), name)
    return out.reset_index(drop=True)


def _check_files(paths: Sequence[str], name: str = "filepaths") -> None:
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise NotFoundError(f"{len(missing)} file(s) in {name} do not exist, e.g. {missing[0]}")
