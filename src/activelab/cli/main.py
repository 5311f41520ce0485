"""``activelab`` commands: project set-up, import, status, export, datasets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import pandas as pd
import typer

from activelab.cli import embed, errors, rounds, serve, simulate
from activelab.cli.output import console, friendly_errors, status_tables
from activelab.data.datasets import FASHION_MNIST_CLASSES, fetch_dataset, list_datasets
from activelab.loop.export import EXPORT_FORMATS, export_labels
from activelab.loop.ingest import default_report_path, import_images
from activelab.loop.project import init_project, open_project
from activelab.loop.settings import SETTINGS_FILE, save_settings

app = typer.Typer(
    name="activelab",
    help="Active learning for computer vision: label the images that matter, know when to stop.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
datasets_app = typer.Typer(help="Real image datasets available offline.", no_args_is_help=True)
classes_app = typer.Typer(help="List or add a project's classes.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")
app.add_typer(classes_app, name="classes")
rounds.register(app)
serve.register(app)
simulate.register(app)
errors.register(app)
embed.register(app)

ProjectArg = Annotated[Path, typer.Argument(help="Project folder (holds activelab.yaml).")]


def _split_names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


@app.command()
@friendly_errors
def init(
    project: ProjectArg,
    classes: Annotated[str, typer.Option(help="Comma-separated class names, e.g. cat,dog.")] = "",
    db: Annotated[
        Optional[str], typer.Option(help="SQLAlchemy URL of the store (default: SQLite file in the project).")
    ] = None,
    name: Annotated[Optional[str], typer.Option(help="A display name for the project.")] = None,
) -> None:
    """Create a project folder with its settings file and store."""
    with init_project(project, _split_names(classes), db=db, name=name) as proj:
        console.print(
            f"created project [bold]{proj.settings.name}[/] in {project} "
            f"(store: {proj.store.url}, classes: {', '.join(proj.store.class_names()) or 'none yet'})"
        )


@app.command("import")
@friendly_errors
def import_cmd(
    project: ProjectArg,
    source: Annotated[Path, typer.Argument(help="A folder, an ImageFolder tree, or a CSV/TSV/parquet table.")],
    format: Annotated[
        str, typer.Option("--format", help="auto (table file or plain folder), folder, imagefolder or table.")
    ] = "auto",
    split: Annotated[str, typer.Option(help="pool (to label and train on) or eval (held out for evaluation).")] = "pool",
    path_col: Annotated[str, typer.Option(help="Table column holding file paths.")] = "filepath",
    label_col: Annotated[str, typer.Option(help="Table column holding labels (optional).")] = "label",
    add_classes: Annotated[bool, typer.Option(help="Create classes for unknown label values.")] = False,
    author: Annotated[Optional[str], typer.Option(help="Recorded as the labels' author (default: your user).")] = None,
    report: Annotated[Optional[Path], typer.Option(help="Per-file report CSV (default: PROJECT/reports/).")] = None,
) -> None:
    """Import images (and labels, if the source has them). Re-running adds only what is new."""
    with open_project(project) as proj:
        result = import_images(
            proj.store,
            source,
            fmt=format,
            split=split,
            path_col=path_col,
            label_col=label_col,
            add_classes=add_classes,
            author=author,
            report_path=report or default_report_path(proj.root),
            progress=True,
        )
    if result.new_classes:
        console.print(f"new classes: {', '.join(result.new_classes)}")
    console.print(result.summary(), highlight=False)
    console.print(f"per-file report: {result.report_path}", highlight=False)


@app.command()
@friendly_errors
def status(
    project: ProjectArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Images per split, labeled and unlabeled, labels per class, rounds."""
    with open_project(project) as proj:
        summary = proj.store.summary()
        title = f"{proj.settings.name} ({proj.store.url})"
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    for table in status_tables(summary, title):
        console.print(table)
    console.print(f"rounds finished: {summary['rounds']}, label events: {summary['label_events']}")


@app.command()
@friendly_errors
def export(
    project: ProjectArg,
    out: Annotated[Path, typer.Argument(help="Output file (csv/parquet) or folder (imagefolder).")],
    format: Annotated[str, typer.Option("--format", help=f"One of {', '.join(EXPORT_FORMATS)}.")] = "csv",
    include_eval: Annotated[bool, typer.Option(help="Also export the eval split (marked as such).")] = False,
) -> None:
    """Write the current labels, with their source and author."""
    with open_project(project) as proj:
        written = export_labels(proj.store, out, fmt=format, include_eval=include_eval)
    console.print(f"exported to {written}", highlight=False)


@classes_app.command("list")
@friendly_errors
def classes_list(project: ProjectArg) -> None:
    """Print the project's classes, one a line, in class-index order."""
    with open_project(project) as proj:
        for name in proj.store.class_names():
            typer.echo(name)


@classes_app.command("add")
@friendly_errors
def classes_add(project: ProjectArg, names: Annotated[str, typer.Argument(help="Comma-separated names.")]) -> None:
    """Add classes (existing names are left as they are)."""
    with open_project(project) as proj:
        added = proj.store.add_classes(_split_names(names))
    console.print(f"added: {', '.join(added) or 'nothing new'}")


@datasets_app.command("list")
def datasets_list() -> None:
    """Datasets that can be written out without a network."""
    for info in list_datasets():
        state = "available" if info.available else f"missing: {info.how_to_get}"
        typer.echo(f"{info.name:14s} {info.n_pool:>6} pool / {info.n_eval:>5} eval, {len(info.classes)} classes  "
                   f"[{state}]  {info.source}")


@datasets_app.command("fetch")
@friendly_errors
def datasets_fetch(
    name: Annotated[str, typer.Argument(help="fashion-mnist, digits or sample.")],
    dest: Annotated[Path, typer.Argument(help="Folder to write PNGs, pool.csv and eval.csv into.")],
    limit: Annotated[Optional[int], typer.Option(help="Keep this many pool images (class-balanced).")] = None,
    eval_limit: Annotated[Optional[int], typer.Option(help="Keep this many eval images (default: --limit).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the subset drawn with --limit.")] = 0,
) -> None:
    """Write a real dataset as PNG files plus pool.csv / eval.csv tables."""
    out = fetch_dataset(name, dest, limit=limit, eval_limit=eval_limit, seed=seed, progress=True)
    console.print(
        f"wrote {name} to {out}; import with:\n"
        f"  activelab import PROJECT {out / 'pool.csv'}\n"
        f"  activelab import PROJECT {out / 'eval.csv'} --split eval",
        highlight=False,
    )


@app.command("strategies")
def strategies_cmd() -> None:
    """The registered query strategies, what each needs, and its paper."""
    from activelab.strategies import get_strategy, list_strategies

    for name in list_strategies():
        spec = get_strategy(name)
        needs = ", ".join(sorted(spec.requires)) or "nothing"
        typer.echo(f"{name:22s} needs {needs:32s} {spec.paper}")


@app.command("models")
@friendly_errors
def models_cmd(
    pattern: Annotated[Optional[str], typer.Argument(help="fnmatch filter, e.g. 'timm/resnet*'.")] = None,
) -> None:
    """Model names `--model` accepts (built-ins, timm/..., torchvision/...)."""
    from activelab.models import list_models

    for name in list_models(pattern):
        typer.echo(name)


@app.command()
@friendly_errors
def demo(
    project: Annotated[Path, typer.Argument(help="Where to create the demo project.")] = Path("demo-project"),
    seed_per_class: Annotated[int, typer.Option(help="Labeled images per class to start from.")] = 2,
    serve_app: Annotated[bool, typer.Option("--serve/--no-serve", help="Start the labeling web app.")] = True,
    port: Annotated[int, typer.Option(help="Port of the web app.")] = 8000,
) -> None:
    """Create (once) a demo project from the bundled Fashion-MNIST sample, show it, and serve it."""
    if not (project / "activelab.yaml").exists():
        data = fetch_dataset("sample", project / "data")
        with init_project(project, FASHION_MNIST_CLASSES, name="fashion-mnist demo") as proj:
            # 28 px images: a 64 px backbone input is ~10x cheaper than 224 px on a CPU
            proj.settings.model.image_size = 64
            save_settings(proj.settings, proj.root / SETTINGS_FILE)
            import_images(proj.store, data / "pool", fmt="folder", author="demo",
                          report_path=default_report_path(proj.root))
            pool = pd.read_csv(data / "pool.csv")
            seed = pool.groupby("label", sort=False).head(seed_per_class)
            seed = seed.assign(filepath=[str(data / p) for p in seed["filepath"]])
            import_images(proj.store, seed, author="demo", report_path=default_report_path(proj.root))
            import_images(proj.store, data / "eval.csv", split="eval", author="demo",
                          report_path=default_report_path(proj.root))
        console.print(f"created demo project in {project}")
    status(project, as_json=False)
    if serve_app:
        serve.run_server(project, port=port)


def main() -> None:
    app()
