"""``activelab train / query / predict / evaluate``: the loop from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import pandas as pd
import typer
from rich.table import Table

from activelab.cli.output import console, friendly_errors
from activelab.errors import compare_before_after
from activelab.exceptions import InputError
from activelab.loop.project import Project, open_project
from activelab.loop.session import ActiveSession
from activelab.loop.settings import Settings, parse_settings, read_yaml_mapping
from activelab.loop.stopping import StoppingRules

ProjectArg = Annotated[Path, typer.Argument(help="Project folder (holds activelab.yaml).")]
ConfigOpt = Annotated[
    Optional[Path],
    typer.Option("--config", help="YAML file with model / train / active_learner sections overriding the project's."),
]


def _settings_with(project: Project, config: Path | None, overrides: dict[str, dict[str, Any]]) -> Settings:
    """Project settings, then the ``--config`` file, then command-line flags (None = not given)."""
    data = project.settings.model_dump(mode="json")
    if config is not None:
        for section, values in read_yaml_mapping(config, "config file").items():
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
    project.settings = _settings_with(project, config, sections)
    return ActiveSession(project, progress=True)


def _metrics_line(metrics: dict[str, Any]) -> str:
    ev = metrics.get("eval")
    if not ev:
        return f"trained on {metrics['n_labeled']} labels (no labeled eval split: import one with --split eval)"
    line = f"trained on {metrics['n_labeled']} labels: eval accuracy {ev['accuracy']:.4f}, macro-F1 {ev['macro_f1']:.4f}"
    return line + f" on {ev['n']} eval images"


def train(
    project: ProjectArg,
    model: Annotated[Optional[str], typer.Option(help="Model name, e.g. efficientnet_lite0, resnet18.")] = None,
    full: Annotated[Optional[bool], typer.Option("--full/--fast", help="Fine-tune the whole network.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Epochs (full path).")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Learning rate (full path).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Also save the model (with its class map) here.")] = None,
    config: ConfigOpt = None,
    compare: Annotated[
        Optional[bool],
        typer.Option("--compare/--no-compare",
                     help="Also train on the labels as imported and compare eval accuracy (default: when any "
                          "label was reviewed or corrected)."),
    ] = None,
) -> None:
    """Train a model on the current labels and evaluate it on the eval split."""
    with open_project(project) as proj:
        session = _session(proj, config, model={"name": model, "path": None if full is None else
                                                ("full" if full else "fast")},
                           train={"epochs": epochs, "lr": lr})
        trained, metrics = session.train()
        session.models_dir.mkdir(parents=True, exist_ok=True)
        trained.save(session.models_dir / "latest")
        if out is not None:
            trained.save(out)
        if compare is None:
            compare = proj.store.n_label_events(sources=("review", "correction")) > 0
        before_after = compare_before_after(proj) if compare and metrics.get("eval") else None
    console.print(_metrics_line(metrics), highlight=False)
    if before_after is not None:
        console.print(
            f"eval accuracy with the labels as imported: {before_after.accuracy_before:.4f}; after review: "
            f"{before_after.accuracy_after:.4f} ({before_after.delta:+.4f}; {before_after.n_changed} labels "
            f"changed, {before_after.n_removed} removed from training)", highlight=False)
    console.print(f"model saved to {out or session.models_dir / 'latest'}", highlight=False)


def query(
    project: ProjectArg,
    strategy: Annotated[Optional[str], typer.Option(help="Query strategy (see `activelab strategies`).")] = None,
    k: Annotated[Optional[int], typer.Option("-k", "--k", help="How many images to select.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of the round.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="CSV of the selection (default: PROJECT/rounds/).")] = None,
    config: ConfigOpt = None,
    budget: Annotated[Optional[int], typer.Option(help="Say when this many labels are used.")] = None,
    target_accuracy: Annotated[Optional[float], typer.Option(help="Say when eval accuracy reaches this.")] = None,
    plateau_rounds: Annotated[Optional[int], typer.Option(help="Say when accuracy stalls this many rounds.")] = None,
) -> None:
    """Run one round: train, score the pool, select the next images to label, record it."""
    with open_project(project) as proj:
        session = _session(proj, config, active_learner={"strategy": strategy, "batch_size": k, "seed": seed})
        result = session.run_round()
        images = {img.id: img for img in proj.store.images("pool")}
        rows = [(rank + 1, iid, images[iid].path, score)
                for rank, (iid, score) in enumerate(zip(result.selected, result.scores))]
        frame = pd.DataFrame(rows, columns=["rank", "image_id", "filepath", "confidence"])
        dest = out or session.rounds_dir / f"round-{result.number:04d}-selection.csv"
        dest.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(dest, index=False)
        reason = session.stop_reason(StoppingRules(budget=budget, target_accuracy=target_accuracy,
                                                   plateau_rounds=plateau_rounds))
    console.print(f"round {result.number} ({result.strategy}): " + _metrics_line(result.metrics), highlight=False)
    table = Table(title=f"next {len(frame)} images to label", show_header=True)
    for col in ("rank", "image_id", "filepath", "confidence"):
        table.add_column(col)
    for row in frame.head(20).itertuples(index=False):
        table.add_row(str(row.rank), str(row.image_id), str(row.filepath),
                      "" if pd.isna(row.confidence) else f"{row.confidence:.3f}")
    console.print(table)
    console.print(f"selection written to {dest}", highlight=False)
    if reason:
        console.print(f"[bold green]you can stop labeling:[/] {reason}", highlight=False)


def predict(
    project: ProjectArg,
    out: Annotated[Path, typer.Argument(help="CSV to write: filepath, pred_label, pred_conf, one column per class.")],
    split: Annotated[str, typer.Option(help="pool, eval or all.")] = "pool",
    unlabeled_only: Annotated[bool, typer.Option(help="Only images without a label.")] = False,
) -> None:
    """Predict with the latest trained model."""
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
    frame = pd.DataFrame({"image_id": [i.id for i in images], "filepath": [i.path for i in images],
                          "pred_label": [classes[j] for j in probs.argmax(axis=1)] if len(images) else [],
                          "pred_conf": probs.max(axis=1) if len(images) else []})
    for j, name in enumerate(classes):
        frame[f"p_{name}"] = probs[:, j] if len(images) else []
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)
    console.print(f"{len(frame)} predictions written to {out}", highlight=False)


def evaluate(
    project: ProjectArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full metrics as JSON.")] = False,
) -> None:
    """Evaluate the latest trained model on the labeled eval split."""
    with open_project(project) as proj:
        session = ActiveSession(proj)
        metrics = session.evaluate(session.latest_model()).get("eval")
    if metrics is None:
        raise InputError("the eval split has no labeled images: import some with --split eval")
    metrics.pop("eval_predictions", None)
    if as_json:
        typer.echo(json.dumps(metrics, indent=2))
        return
    console.print(f"accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f} on {metrics['n']} images")
    table = Table(title="per class", show_header=True)
    for col in ("class", "precision", "recall", "f1", "support"):
        table.add_column(col)
    for name, m in metrics["per_class"].items():
        table.add_row(name, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}", str(m["support"]))
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add the loop commands to the main app."""
    for fn in (train, query, predict, evaluate):
        app.command(fn.__name__)(friendly_errors(fn))
