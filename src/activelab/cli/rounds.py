"""``activelab train / query / predict / evaluate``: the loop from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from activelab.cli.commands import either, mode_name
from activelab.cli.output import console, friendly_errors, print_json, result_table, status_line
from activelab.exceptions import InputError

if TYPE_CHECKING:  # the loop loads torch: commands import it when they run
    from activelab.loop.project import Project
    from activelab.loop.session import ActiveSession
    from activelab.loop.settings import Settings

ProjectArg = Annotated[Path, typer.Argument(help="Project folder (holds activelab.yaml).", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON (nothing else).")]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="YAML file with model / train / active_learner sections overriding the project's."),
]


def _settings_with(project: Project, config: Path | None, overrides: dict[str, dict[str, Any]]) -> Settings:
    """Project settings, then the ``--config`` file, then command-line flags (None = not given)."""
    from activelab.loop.settings import parse_settings, read_yaml_mapping, upgrade_keys

    data = project.settings.model_dump(mode="json")
    if config is not None:
        for section, values in upgrade_keys(read_yaml_mapping(config, "config file")).items():
            if isinstance(values, dict) and isinstance(data.get(section), dict):
                data[section].update(values)
            else:
                data[section] = values
        source = str(config)
    else:
        source = "settings"
    for section, values in overrides.items():
        data[section].update({k: v for k, v in values.items() if v is not None})
    return parse_settings(data, source=source)


def _session(project: Project, config: Path | None, **sections: dict[str, Any]) -> ActiveSession:
    from activelab.loop.session import ActiveSession

    project.settings = _settings_with(project, config, sections)
    return ActiveSession(project, progress=True)


def _metrics_line(metrics: dict[str, Any]) -> str:
    if metrics.get("cold_start"):
        source = metrics.get("embedding_model")
        return f"cold start: no model trained on {metrics['n_labeled']} labels; selected " + (
            f"from {source} embeddings" if source else "without reading the images"
        )
    ev = metrics.get("eval")
    notes = "".join(f"; {note}" for note in training_notes(metrics))
    if not ev:
        return f"trained on {metrics['n_labeled']} labels{notes} (no labeled eval split: import one with --split eval)"
    return f"trained on {metrics['n_labeled']} labels: {_scores(ev)} on {ev['n']} eval images{notes}"


def training_notes(metrics: dict[str, Any]) -> list[str]:
    """What a round's model learned from besides its labels: the unlabeled images of a semi-supervised fit,
    and the feature extractor chosen under ``model.representation: auto``."""
    notes = []
    method = metrics.get("semi_supervised", "none")
    if method != "none":
        notes.append(f"semi-supervised ({method}): {metrics.get('n_unlabeled', 0):,} unlabeled images")
    representation = metrics.get("representation")
    if representation:
        when = (
            "chosen this round"
            if representation.get("chosen_now")
            else f"chosen at {representation['n_labels']} labels"
        )
        notes.append(f"representation {representation['label']} ({when})")
    return notes


#: the headline metrics of a round, in the order shown; each task reports the ones that mean something for it
_HEADLINE = (
    ("micro_f1", "micro-F1"),
    ("accuracy", "eval accuracy"),
    ("macro_f1", "macro-F1"),
    ("map", "mAP"),
    ("miou", "mIoU"),
    ("pixel_accuracy", "pixel accuracy"),
)


#: the COCO detection metrics ``evaluate`` prints, in order
_COCO = (("map", "mAP@[.5:.95]"), ("map_50", "mAP@.5"), ("map_75", "mAP@.75"))


def _scores(ev: dict[str, Any]) -> str:
    shown = [(label, ev[key]) for key, label in _HEADLINE if isinstance(ev.get(key), float)]
    if "micro_f1" in ev:  # sets of classes: 'accuracy' is subset accuracy (every class right), name it so
        shown = [("subset accuracy" if label == "eval accuracy" else label, v) for label, v in shown]
    return ", ".join(f"{label} {value:.4f}" for label, value in shown)


def train(
    project: ProjectArg,
    model: Annotated[
        str | None, typer.Option(help="Model name, e.g. efficientnet_lite0, resnet18 (default: the project's).")
    ] = None,
    mode: Annotated[
        str | None,
        typer.Option(
            "--mode",
            help="frozen (a light head on cached embeddings of a frozen backbone) or finetune (train the whole "
            "network) (default: the project's model.mode).",
        ),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs (finetune mode; default: the project's).")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate (finetune mode; default: the project's).")] = None,
    out: Annotated[Path | None, typer.Option(help="Also save the model (with its class map) here.")] = None,
    config: ConfigOpt = None,
    compare: Annotated[
        bool | None,
        typer.Option(
            "--compare/--no-compare",
            help="Also train on the labels as imported and compare eval accuracy (default: when any "
            "label was reviewed or corrected).",
        ),
    ] = None,
    as_json: JsonOpt = False,
    path: Annotated[str | None, typer.Option("--path", hidden=True)] = None,
    full: Annotated[bool | None, typer.Option("--full/--fast", hidden=True)] = None,
) -> None:
    """Train a model on the current labels and evaluate it on the eval split."""
    from activelab.label_errors import compare_before_after
    from activelab.loop.project import open_project

    old_mode = either(
        "--path", mode_name(path), "--full/--fast", None if full is None else ("finetune" if full else "frozen")
    )
    with open_project(project) as proj:
        session = _session(
            proj,
            config,
            model={"name": model, "mode": either("--mode", mode, "--path/--full/--fast", old_mode)},
            train={"epochs": epochs, "lr": lr},
        )
        with status_line("training and evaluating"):
            trained, metrics = session.train()
        session.models_dir.mkdir(parents=True, exist_ok=True)
        trained.save(session.models_dir / "latest")
        if out is not None:
            trained.save(out)
        if compare is None:
            compare = proj.store.n_label_events(sources=("review", "correction")) > 0
        before_after = compare_before_after(proj) if compare and metrics.get("eval") else None
    saved = out or session.models_dir / "latest"
    if as_json:
        print_json(
            {
                "metrics": _plain_metrics(metrics),
                "model": str(saved),
                "before_after": None if before_after is None else {**vars(before_after), "delta": before_after.delta},
            }
        )
        return
    console.print(_metrics_line(metrics), highlight=False)
    if before_after is not None:
        console.print(
            f"eval accuracy with the labels as imported: {before_after.accuracy_before:.4f}; after review: "
            f"{before_after.accuracy_after:.4f} ({before_after.delta:+.4f}; {before_after.n_changed} labels "
            f"changed, {before_after.n_removed} removed from training)",
            highlight=False,
        )
    console.print(f"model saved to {saved}", highlight=False, soft_wrap=True)


def query(
    project: ProjectArg,
    strategy: Annotated[
        str | None, typer.Option(help="Query strategy (see `activelab strategies`; default: the project's).")
    ] = None,
    k: Annotated[
        int | None,
        typer.Option(
            "-k",
            "--k",
            help="How many images to select (regions, for a region strategy; boxes or pixels with --budget-unit) "
            "(default: the project's active_learner.k).",
        ),
    ] = None,
    budget_unit: Annotated[
        str | None,
        typer.Option(
            help="What -k counts: images (regions, for a region strategy such as region_entropy), boxes "
            "(detection: each image costs the boxes the model predicts in it) or pixels (segmentation: each image "
            "costs its pixels, each region its own) (default: the project's active_learner.budget_unit)."
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the round.")] = None,
    out: Annotated[Path | None, typer.Option(help="CSV of the selection (default: PROJECT/rounds/).")] = None,
    config: ConfigOpt = None,
    budget: Annotated[int | None, typer.Option(help="Say when this many labels are used.")] = None,
    target_accuracy: Annotated[float | None, typer.Option(help="Say when eval accuracy reaches this.")] = None,
    plateau_rounds: Annotated[int | None, typer.Option(help="Say when accuracy stalls this many rounds.")] = None,
    top: Annotated[
        int, typer.Option("--top", min=0, help="How many of the selected images to print (all are in the CSV).")
    ] = 20,
    as_json: JsonOpt = False,
    batch_size: Annotated[int | None, typer.Option("--batch-size", hidden=True)] = None,
) -> None:
    """Run one round: train, score the pool, select the next images to label, record it."""
    import pandas as pd

    from activelab.loop.project import open_project
    from activelab.loop.stopping import StoppingRules

    k = either("-k", k, "--batch-size", batch_size)
    with open_project(project) as proj:
        session = _session(
            proj, config, active_learner={"strategy": strategy, "k": k, "budget_unit": budget_unit, "seed": seed}
        )
        with status_line("round: training, scoring the pool, selecting"):
            result = session.run_round()
        images = {img.id: img for img in proj.store.images("pool")}
        rows = [
            (rank + 1, iid, images[iid].path, score)
            for rank, (iid, score) in enumerate(zip(result.selected, result.scores))
        ]
        frame = pd.DataFrame(rows, columns=["rank", "image_id", "filepath", "confidence"])
        if result.asked:  # a region round: which pixels of each image it asks for
            frame = _with_asked(frame, result.asked, proj)
        dest = out or session.rounds_dir / f"round-{result.number:04d}-selection.csv"
        dest.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(dest, index=False)
        reason = session.stop_reason(
            StoppingRules(budget=budget, target_accuracy=target_accuracy, plateau_rounds=plateau_rounds)
        )
    if as_json:
        print_json(
            {
                "round": result.number,
                "strategy": result.strategy,
                "metrics": _plain_metrics(result.metrics),
                "selection": frame.astype(object).where(frame.notna(), None).to_dict(orient="records"),
                "selection_csv": str(dest),
                "stop_reason": reason or None,
            }
        )
        return
    if result.input_size is not None:
        console.print(result.input_size.describe(), highlight=False)
    console.print(f"round {result.number} ({result.strategy}): " + _metrics_line(result.metrics), highlight=False)
    if "asked_pixels" in result.metrics:
        console.print(
            f"asks for {result.metrics['asked_pixels']:,} pixels (the regions picked) in {len(frame)} images; "
            "the rest of each image may stay unlabeled",
            highlight=False,
        )
    shown = frame.head(top)
    folder = _common_folder(shown["filepath"].tolist())
    asked = "asked_pixels" in frame.columns
    console.print(
        result_table(
            f"first {len(shown)} of the {len(frame)} images selected, best first",
            [
                ("rank", "right"),
                ("image_id", "right"),
                ("file", "left"),
                ("confidence", "right"),
                *([("asked pixels", "right")] if asked else []),
            ],
            [
                [
                    str(r.rank),
                    str(r.image_id),
                    _relative(r.filepath, folder),
                    "" if pd.isna(r.confidence) else f"{r.confidence:.3f}",
                    *([f"{r.asked_pixels:,}"] if asked else []),
                ]
                for r in shown.itertuples(index=False)
            ],
            caption=f"files under {folder}" if folder else None,
        )
    )
    console.print(f"selection written to {dest}", highlight=False, soft_wrap=True)
    if reason:
        console.print(f"[bold green]you can stop labeling:[/] {reason}", highlight=False)


def _with_asked(frame: Any, asked: dict[int, str], project: Project) -> Any:
    """The selection table with the pixels a region round asks for in each image: ``asked_pixels`` (how many)
    and ``asked_mask`` (the key of its mask in the project's mask store, 1 = asked)."""
    masks = project.mask_store()
    keys = [asked.get(iid) for iid in frame["image_id"]]
    counts = [int(masks.get(key).sum()) if key else 0 for key in keys]
    return frame.assign(asked_pixels=counts, asked_mask=keys)


def _plain_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """Metrics for ``--json``: without the per-image eval predictions (the store keeps those)."""
    ev = metrics.get("eval")
    if not ev:
        return metrics
    return {**metrics, "eval": {key: v for key, v in ev.items() if key != "eval_predictions"}}


def _common_folder(paths: list[str]) -> str:
    """The folder all ``paths`` share ('' when none): tables show paths below it, so names never wrap."""
    import os

    if not paths:
        return ""
    folder = os.path.commonpath([os.path.dirname(p) for p in paths])
    return "" if folder in ("", os.sep) else folder


def _relative(path: str, folder: str) -> str:
    import os

    return os.path.relpath(path, folder) if folder else path


def predict(
    project: ProjectArg,
    out: Annotated[
        Path,
        typer.Argument(
            help="CSV to write: filepath, pred_label (a multilabel set joined by '|'; detection: the boxes' JSON), "
            "pred_conf, one column per class (classification).",
            show_default=False,
        ),
    ],
    split: Annotated[str, typer.Option(help="pool, eval or all.")] = "pool",
    unlabeled_only: Annotated[bool, typer.Option(help="Only images without a label.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Predict with the latest trained model."""
    import numpy as np
    import pandas as pd

    from activelab.loop.project import open_project
    from activelab.loop.session import ActiveSession
    from activelab.store.classes import payload_classes

    with open_project(project) as proj:
        session = ActiveSession(proj, progress=True)
        model = session.latest_model()
        if split not in ("pool", "eval", "all"):
            raise InputError(f"--split must be pool, eval or all, got {split!r}")
        images = proj.store.images(None if split == "all" else split)
        if unlabeled_only:
            labeled = proj.store.labeled_image_ids()
            images = [img for img in images if img.id not in labeled]
        probs = model.predict_proba([i.path for i in images], keys=[i.sha256 for i in images], progress=True)
        classes = list(model.classes)
        task = session.task
        decoded = task.decode(probs, classes) if len(images) else []
    frame = pd.DataFrame(
        {
            "image_id": [i.id for i in images],
            "filepath": [i.path for i in images],
            "pred_label": [task.format(payload) for payload, _ in decoded],
            "pred_conf": [confidence for _, confidence in decoded],
        }
    )
    if np.ndim(probs) == 2 or not len(images):  # (N, C) class outputs; a detector's boxes are in pred_label
        for j, name in enumerate(classes):
            frame[f"p_{name}"] = probs[:, j] if len(images) else []
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)
    if as_json:
        counts = {c: sum(payload_classes(payload).count(c) for payload, _ in decoded) for c in classes}
        print_json({"path": str(out), "n": len(frame), "per_class": counts})
        return
    console.print(f"{len(frame)} predictions written to {out}", highlight=False, soft_wrap=True)


def evaluate(
    project: ProjectArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full metrics as JSON.")] = False,
) -> None:
    """Evaluate the latest trained model on the labeled eval split."""
    from activelab.loop.project import open_project
    from activelab.loop.session import ActiveSession

    with open_project(project) as proj:
        session = ActiveSession(proj, progress=True)
        metrics = session.evaluate(session.latest_model()).get("eval")
    if metrics is None:
        raise InputError("the eval split has no labeled images: import some with --split eval")
    metrics.pop("eval_predictions", None)
    if as_json:
        print_json(metrics)
        return
    if "miou" in metrics:  # segmentation: mIoU, pixel accuracy and IoU per class
        console.print(
            f"mIoU {metrics['miou']:.4f}, pixel accuracy {metrics['pixel_accuracy']:.4f} on {metrics['n']} images",
            highlight=False,
        )
        console.print(
            result_table(
                "IoU per class ('-': in neither the masks nor the predictions)",
                [("class", "left"), ("IoU", "right")],
                [[name, "-" if iou is None else f"{iou:.3f}"] for name, iou in metrics["per_class_iou"].items()],
            )
        )
        return
    if "accuracy" not in metrics:  # detection: COCO mAP and AP per class
        shown = [f"{label} {metrics[key]:.4f}" for key, label in _COCO if isinstance(metrics.get(key), float)]
        boxes = f" ({metrics['n_boxes']} boxes)" if "n_boxes" in metrics else ""
        console.print(f"{', '.join(shown)} on {metrics['n']} images{boxes}", highlight=False)
        console.print(
            result_table(
                "AP@[.5:.95] per class ('-': no ground-truth box)",
                [("class", "left"), ("AP", "right")],
                [[name, "-" if ap is None else f"{ap:.3f}"] for name, ap in metrics.get("per_class_ap", {}).items()],
            )
        )
        return
    console.print(
        f"accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f} on {metrics['n']} images",
        highlight=False,
    )
    console.print(
        result_table(
            "per class",
            [("class", "left"), ("precision", "right"), ("recall", "right"), ("f1", "right"), ("support", "right")],
            [
                [name, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}", str(m["support"])]
                for name, m in metrics["per_class"].items()
            ],
        )
    )


def register(app: typer.Typer) -> None:
    """Add the loop commands to the main app."""
    for fn in (train, query, predict, evaluate):
        app.command(fn.__name__)(friendly_errors(fn))
