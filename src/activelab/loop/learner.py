"""``ActiveLearner``: the DataFrame workflow of notebook users, without a project store.

A drop-in for the active-vision style of working: load a labeled DataFrame,
train, evaluate, predict an unlabeled set, sample what to label, add the new
labels, repeat. Strategies come from the same registry the CLI and the web app
use; ``sample(strategy=...)`` accepts any registered name.

Segmentation (``task="segmentation"``): the class list is given (``classes=[...]``, the
background first: a mask's pixel values are class positions), a label cell is a mask (a PNG
path, a payload such as ``{"polygons": ...}``, or an ``(H, W)`` integer array, 255 = not
labeled) and is validated when the rows are loaded, so the training set holds canonical
payloads whose masks live in the learner's mask store; a partly labeled mask trains on its
labeled pixels. A region strategy's ``sample`` adds an ``asked`` column: the ``(H, W)`` bool
mask of the pixels to label in each row.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from activelab.exceptions import ActivelabError, InputError, NotFoundError
from activelab.loop.round import Images, Pool, build_model, fit_on_pool, model_settings, play_round
from activelab.loop.settings import OLD_MODE_NAMES, resolve_semi_supervised
from activelab.models import FitReport, ModelAdapter, load_model
from activelab.store.classes import payload_classes
from activelab.tasks import Payload, Task, get_task
from activelab.tasks.masks import MaskFolder, MaskStore

PRED_COLUMNS = ["filepath", "pred_label", "pred_conf", "probs"]

#: ``labeler(df, classes, *, filepath_col, label_col, output_filename, **options) -> DataFrame``:
#: :func:`activelab.server.label_dataframe` is the one activelab ships (see :meth:`ActiveLearner.label`)
Labeler = Callable[..., pd.DataFrame]


class ActiveLearner:
    """Train, predict and sample on pandas DataFrames with a file-path and a label column.

    ``model`` is any name :func:`activelab.models.create_model` accepts (default: the
    task's default model: ``efficientnet_lite0``, which works offline, for classification,
    a detector for detection; ``resnet18`` and other timm names need a network for
    pretrained weights). ``mode="frozen"`` trains a head on cached
    frozen embeddings; ``mode="finetune"`` fine-tunes the network; unset ``mode`` and
    ``pretrained`` are the model's own defaults. ``task`` names the
    kind of label (``"classification"``: one class name per row; ``"multilabel"``: a
    list of class names, or a ``"a|b"`` string, per row; ``"detection"``: a list of box
    dicts, or its JSON text, per row; ``"segmentation"``: a mask per row, see the module docstring).
    ``classes`` fixes the class list and its order (required for segmentation; otherwise the sorted
    classes the labels name); ``masks`` is where a segmentation learner keeps its masks (default: in
    memory; :meth:`save` writes them beside the model).
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        task: str = "classification",
        mode: str | None = None,
        pretrained: bool | None = None,
        device: str | None = None,
        cache_dir: str | Path | None = None,
        seed: int = 0,
        semi_supervised: str = "none",
        classes: Sequence[str] | None = None,
        masks: MaskStore | None = None,
        **model_options: Any,
    ) -> None:
        if "path" in model_options:  # the older name of mode: path="fast" | "full"
            old = model_options.pop("path")
            mode = mode or OLD_MODE_NAMES.get(old, old)
        self.task_name = task
        self._task = get_task(task, masks=masks)  # one instance: a segmentation task's masks live in it
        self.model_name = model or self._task.default_model
        self.mode = mode
        self.pretrained = pretrained
        self.device = device
        self.cache_dir = cache_dir
        self.seed = seed
        self.semi_supervised = semi_supervised
        self.model_options = model_options
        self.train_df: pd.DataFrame | None = None
        self.fixed_classes = classes is not None
        self.classes: list[str] = list(classes or [])
        self.model: ModelAdapter | None = None
        self.last_report: FitReport | None = None
        self.last_eval: dict[str, Any] | None = None
        self._filepath_col = "filepath"
        self._label_col = "label"

    @property
    def task(self) -> Task:
        return self._task

    def _clean(self, df: pd.DataFrame, filepath_col: str, label_col: str, name: str) -> pd.DataFrame:
        if self.task.output == "masks" and not self.classes:
            raise InputError(
                "a segmentation learner needs its class list, background first: "
                "ActiveLearner(task='segmentation', classes=['background', ...])"
            )
        classes = self.classes if self.task.output == "masks" else None
        return _clean_labeled(df, filepath_col, label_col, name, self.task, classes=classes)

    # ------------------------------------------------------------------ data
    def load_dataset(self, df: pd.DataFrame, filepath_col: str = "filepath", label_col: str = "label") -> None:
        """Set the labeled training set; the class list is the sorted classes its labels name (or ``classes``)."""
        self.train_df = self._clean(df, filepath_col, label_col, "the training DataFrame")
        self._filepath_col, self._label_col = filepath_col, label_col
        if not self.fixed_classes:
            self.classes = _classes_of(self.train_df["label"])

    def add_to_train_set(self, labeled_df: pd.DataFrame, output_filename: str | Path | None = None) -> pd.DataFrame:
        """Append newly labeled rows (new classes are added); optionally write the set as parquet."""
        new = self._clean(labeled_df, self._filepath_col, self._label_col, "the labeled DataFrame")
        base = self.train_df if self.train_df is not None else new.iloc[0:0]
        merged = pd.concat([base, new], ignore_index=True).drop_duplicates("filepath", keep="last")
        self.train_df = merged.reset_index(drop=True)
        if not self.fixed_classes:
            self.classes = sorted(set(self.classes) | set(_classes_of(new["label"])))
        if output_filename is not None:
            out = Path(output_filename)
            out = out if out.suffix else out.with_suffix(".parquet")
            self.train_df.rename(columns={"filepath": self._filepath_col, "label": self._label_col}).to_parquet(out)
        return self.train_df

    def _targets(self, payloads: Sequence[Payload]) -> np.ndarray:
        return self.task.targets([self.task.validate(p, self.classes) for p in payloads], self.classes)

    # ----------------------------------------------------------------- model
    def train(
        self,
        epochs: int | None = None,
        lr: float | None = None,
        batch_size: int | None = None,
        *,
        unlabeled: Sequence[str | Path] | pd.Series | None = None,
    ) -> FitReport:
        """Train a fresh model on the current training set.

        ``unlabeled``: image files without labels (e.g. ``pred_df["filepath"]``; never your evaluation
        images) that a ``semi_supervised`` learner also trains on; ignored when it is ``none``.
        """
        if self.train_df is None or self.train_df.empty:
            raise InputError("no training data: call load_dataset(df, filepath_col=..., label_col=...) first")
        options = dict(self.model_options)
        for key, value in (("epochs", epochs), ("lr", lr), ("batch_size", batch_size)):
            if value is not None:
                options[key] = value
        settings = model_settings(
            self.model_name,
            mode=self.mode,
            head=options.pop("head", None),
            pretrained=self.pretrained,
            device=self.device,
        )
        image_size = options.pop("image_size", None)
        semi = resolve_semi_supervised(self.semi_supervised, settings.mode, self.task_name)
        if semi != "none":
            options["semi_supervised"] = semi
        self.model = build_model(
            settings, self.classes, task=self.task, cache_dir=self.cache_dir, image_size=image_size, **options
        )
        paths = self.train_df["filepath"].tolist()
        targets = self._targets(self.train_df["label"])
        extra: list[str] = []
        if unlabeled is not None and semi != "none":  # a semi-supervised method: single-label class targets
            known = set(paths)
            extra = [str(p) for p in unlabeled if str(p) not in known]
            _check_files(extra, "unlabeled")
            targets = np.concatenate([targets, np.full(len(extra), -1, dtype=targets.dtype)])
        trained = np.arange(len(paths) + len(extra)) < len(paths)
        pool = Pool(Images(paths + extra), targets, trained)
        self.last_report = fit_on_pool(self.model, pool, seed=self.seed, progress=True)
        return self.last_report

    def _fitted(self) -> ModelAdapter:
        if self.model is None:
            raise InputError("no trained model: call train() (or ActiveLearner.load(path)) first")
        return self.model

    def predict(self, filepaths: Sequence[str | Path] | pd.Series, batch_size: int | None = None) -> pd.DataFrame:
        """Predictions for image files: ``filepath``, ``pred_label`` (the task's payload), ``pred_conf`` and
        ``probs`` (the model's outputs, one array per row)."""
        paths = [str(p) for p in filepaths]
        if not paths:
            return pd.DataFrame(columns=PRED_COLUMNS)
        _check_files(paths)
        outputs = self._fitted().predict_proba(paths, progress=True)
        decoded = self.task.decode(outputs, self.classes)
        return pd.DataFrame(
            {
                "filepath": paths,
                "pred_label": [payload for payload, _ in decoded],
                "pred_conf": np.array([conf for _, conf in decoded], dtype=float),
                "probs": list(outputs),
            }
        )

    def evaluate(self, eval_df: pd.DataFrame, filepath_col: str = "filepath", label_col: str = "label") -> float:
        """Accuracy on a labeled set (a task without one, detection, gives its headline, mAP); ``last_eval``
        holds the task's metrics (per class, confusion where it has them)."""
        df = self._clean(eval_df, filepath_col, label_col, "the evaluation DataFrame")
        unknown = [] if self.fixed_classes else sorted(set(_classes_of(df["label"])) - set(self.classes))
        if unknown:
            raise InputError(f"evaluation labels {unknown} are not classes the model was trained on: {self.classes}")
        outputs = self._fitted().predict_proba(df["filepath"].tolist(), progress=True)
        metrics = self.task.metrics(self._targets(df["label"]), outputs, self.classes)
        if "per_class" in metrics:
            metrics["report"] = pd.DataFrame(metrics["per_class"]).T
        if "confusion" in metrics:
            metrics["confusion_matrix"] = pd.DataFrame(metrics["confusion"], index=self.classes, columns=self.classes)
        self.last_eval = metrics
        return float(metrics["accuracy"] if "accuracy" in metrics else metrics[self.task.headline])

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
        model = self._fitted()
        train_paths = self.train_df["filepath"].tolist() if self.train_df is not None else []
        paths = train_paths + pred_df["filepath"].astype(str).tolist()
        trained = np.zeros(len(paths), dtype=bool)
        trained[: len(train_paths)] = True
        known = self._targets(self.train_df["label"]) if self.train_df is not None else None
        if known is None:
            targets = np.full(len(paths), -1, dtype=np.int64)
        elif known.dtype == object:  # per-image dicts (detection's boxes): None where not labeled
            targets = np.full(len(paths), None, dtype=object)
        else:
            targets = np.full((len(paths), *known.shape[1:]), -1, dtype=np.int64)
        if known is not None:
            targets[: len(train_paths)] = known
        outcome = play_round(
            self.task,
            model,
            Pool(Images(paths), targets, trained),
            strategy,
            num_samples,
            classes=self.classes,
            seed=self.seed,
            params=params,
            fit=False,
        )
        out = pred_df.iloc[outcome.positions - len(train_paths)].copy()
        out["rank"] = np.arange(1, len(out) + 1)
        out["strategy"] = strategy
        if outcome.asked is not None:  # a region strategy: the pixels to label in each picked image
            out["asked"] = [outcome.asked[int(p)] for p in outcome.positions]
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
            task=self.task_name,
            **options,
        )

    # ------------------------------------------------------------- save/load
    def save(self, path: str | Path) -> Path:
        """Save the model, class list and training set to a folder."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        self._fitted().save(folder / "model")
        if self.train_df is not None:
            if self.task.output == "masks":  # the training set references its masks by key: keep them
                kept = MaskFolder(folder / "masks")
                for payload in self.train_df["label"]:
                    kept.put(self.task.masks.get(payload["mask"]))
            self.train_df.to_parquet(folder / "train.parquet")
        meta = {
            "model": self.model_name,
            "task": self.task_name,
            "mode": self.mode,
            "classes": self.classes,
            "seed": self.seed,
            "semi_supervised": self.semi_supervised,
            "fixed_classes": self.fixed_classes,
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
        learner = cls(
            meta["model"],
            task=meta.get("task", "classification"),
            mode=meta.get("mode") or OLD_MODE_NAMES.get(meta.get("path", "")),  # "path": saved before 0.x
            device=device,
            seed=meta["seed"],
            semi_supervised=meta.get("semi_supervised", "none"),
            classes=meta["classes"] if meta.get("fixed_classes") else None,
            masks=MaskFolder(folder / "masks") if (folder / "masks").is_dir() else None,
            **meta["model_options"],
        )
        learner.classes = list(meta["classes"])
        learner.model = load_model(folder / "model", device=device)
        if (folder / "train.parquet").is_file():
            df = pd.read_parquet(folder / "train.parquet")
            df["label"] = [_list_payload(c) if _listlike(c) else c for c in df["label"]]  # parquet lists: arrays
            learner.train_df = df
        return learner


def _clean_labeled(
    df: pd.DataFrame, filepath_col: str, label_col: str, name: str, task: Task, *, classes: Sequence[str] | None = None
) -> pd.DataFrame:
    """``filepath`` (str) and ``label`` (the task's payload) columns; clear errors for missing columns, labels, files.

    A text cell is read with the task's :meth:`~activelab.tasks.base.Task.parse` (``"a|b"`` for
    several classes, a JSON list for boxes); a list cell is taken as a list of class names, or of box dicts.
    A mask cell (``task.output == "masks"``: a path, a payload dict or an array) is validated against
    ``classes`` into its canonical payload, its mask put in the task's mask store.
    """
    missing = [c for c in (filepath_col, label_col) if c not in df.columns]
    if missing:
        raise InputError(
            f"{name} has no column(s) {missing} (columns: {list(map(str, df.columns))}); "
            "pass filepath_col= and label_col="
        )
    cells = df[label_col].tolist()
    blank = [i for i, c in enumerate(cells) if _blank(c)]
    if blank:
        rows = [i + 1 for i in blank[:5]]
        raise InputError(f"{name} has {len(blank)} row(s) without a label (rows {rows}); drop or label them")
    if task.output == "masks":
        payloads = [_mask_payload(task, c, classes or [], name, row) for row, c in enumerate(cells, start=1)]
    else:
        payloads = [_list_payload(c) if _listlike(c) else task.parse(str(c)) for c in cells]
    out = pd.DataFrame(
        {"filepath": df[filepath_col].astype(str).to_numpy(), "label": pd.Series(payloads, dtype=object)}
    )
    _check_files(out["filepath"].tolist(), name)
    return out


def _mask_payload(task: Task, cell: Any, classes: Sequence[str], name: str, row: int) -> Payload:
    """A mask cell (a PNG path or payload JSON as text, a payload dict, an ``(H, W)`` array) as its canonical
    payload; an InputError names the row."""
    payload = cell if isinstance(cell, dict | np.ndarray) else task.parse(str(cell))
    try:
        return task.validate(payload, classes)
    except InputError as exc:
        raise InputError(f"{name}, row {row}: {exc}") from exc


def _list_payload(cell: Any) -> list[Any]:
    """A list cell as a payload: box dicts as they are, class names sorted as text."""
    items = list(cell)
    if all(isinstance(item, dict) for item in items):
        return [dict(item) for item in items]
    return sorted(map(str, items))


def _listlike(cell: Any) -> bool:
    return isinstance(cell, (list, tuple, set, frozenset, np.ndarray))


def _blank(cell: Any) -> bool:
    """No label at all: a missing value or empty text (an empty list is the multi-label "none of these")."""
    if _listlike(cell):
        return False
    return cell is None or (isinstance(cell, float) and np.isnan(cell)) or str(cell).strip() == ""


def _classes_of(payloads: pd.Series) -> list[str]:
    """The sorted class names that payloads (a class name, a list of them, or a list of box dicts) mention."""
    return sorted({name for p in payloads for name in payload_classes(p)})


def _check_files(paths: Sequence[str], name: str = "filepaths") -> None:
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise NotFoundError(f"{len(missing)} file(s) in {name} do not exist, e.g. {missing[0]}")
