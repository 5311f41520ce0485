"""``activelab`` commands: project set-up, import, status, export, datasets.

Start-up matters (``activelab --help`` runs often): this module and every command module
import only typer, rich and activelab's light modules at import time; each command
imports what it computes with (pandas, torch, scikit-learn, the store...) when it runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from activelab.cli import embed, errors, formats, pretrain, rounds, serve, simulate
from activelab.cli.commands import finish, new_app
from activelab.cli.exporting import export_format
from activelab.cli.output import (
    console,
    friendly_errors,
    print_json,
    result_table,
    set_quiet,
    status_tables,
)

if TYPE_CHECKING:  # the store loads SQLAlchemy: commands import it when they run
    from collections.abc import Iterable, Sequence

    from activelab.store import CurrentAnnotation, Round

app = new_app(
    name="activelab", help="Active learning for computer vision: label the images that matter, know when to stop."
)
datasets_app = new_app(help="Real image datasets available offline.")
classes_app = new_app(help="List or add a project's classes.")
app.add_typer(datasets_app, name="datasets")
app.add_typer(classes_app, name="classes")
rounds.register(app)
serve.register(app)
simulate.register(app)
errors.register(app)
embed.register(app)
pretrain.register(app)
formats.register(app)

ProjectArg = Annotated[Path, typer.Argument(help="Project folder (holds activelab.yaml).", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON (nothing else).")]
#: a segmentation project's class 0 (pixel value 0): added first by ``init`` when the class list lacks it
BACKGROUND = "background"
SEED_PER_CLASS_DEFAULT = 5  # activelab.data.datasets.SEED_PER_CLASS, not imported: it loads numpy and pandas
MAX_FILE_MB_DEFAULT = 200.0  # activelab.data.images.DEFAULT_MAX_FILE_MB, not imported: it loads numpy and PIL


@app.callback()
def main_options(
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bars (also off when output is piped).")
    ] = False,
) -> None:
    """Active learning for computer vision: label the images that matter, know when to stop."""
    set_quiet(quiet)


def _split_names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _class_file_names(path: Path | None) -> list[str]:
    """The class names of a text file, one a line (blank lines skipped); none without a file."""
    if path is None:
        return []
    from activelab.exceptions import NotFoundError

    if not path.is_file():
        raise NotFoundError(f"--classes-file {path} does not exist; give a text file with one class name a line")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _with_background(names: list[str]) -> list[str]:
    """A segmentation project's classes: pixel value 0 is the background, so ``background`` is class 0.

    Added first when no class is named so; listed elsewhere than first, it is refused (the masks'
    values are class positions, and a mask's unlabeled-by-a-polygon fill is class 0).
    """
    from activelab.exceptions import InputError

    if BACKGROUND not in names:
        return [BACKGROUND, *names]
    if names[0] != BACKGROUND:
        raise InputError(
            f"class {BACKGROUND!r} is number {names.index(BACKGROUND) + 1} in the class list, but a segmentation "
            f"mask's pixel value 0 is the background: list it first (--classes {BACKGROUND},...)"
        )
    return names


@app.command()
@friendly_errors
def init(
    project: ProjectArg,
    classes: Annotated[str, typer.Option(help="Comma-separated class names, e.g. cat,dog.")] = "",
    classes_file: Annotated[
        Path | None,
        typer.Option(
            help="A text file of class names, one a line (e.g. fashion-scenes' classes_masks.txt); "
            "read before --classes."
        ),
    ] = None,
    db: Annotated[
        str | None, typer.Option(help="SQLAlchemy URL of the store (default: SQLite file in the project).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="A display name for the project (default: the folder's).")] = None,
    task: Annotated[
        str,
        typer.Option(
            help="What an annotation is: classification (one class per image), multilabel (a set of classes), "
            "detection (boxes) or segmentation (a class per pixel; its class list starts with 'background', "
            "added when not listed)."
        ),
    ] = "classification",
    as_json: JsonOpt = False,
) -> None:
    """Create a project folder with its settings file and store."""
    from activelab.loop.project import init_project
    from activelab.tasks import get_task

    kind = get_task(task)  # an unknown name fails before anything is written, naming the known tasks
    names = _class_file_names(classes_file) + _split_names(classes)
    if kind.output == "masks":
        names = _with_background(names)
    with init_project(project, names, db=db, name=name, task=task) as proj:
        result = {
            "project": str(project),
            "name": proj.settings.name,
            "task": proj.settings.task,
            "store": proj.store.url,
            "classes": proj.store.class_names(),
        }
    if as_json:
        print_json(result)
        return
    console.print(
        f"created {result['task']} project [bold]{result['name']}[/] in {project} "
        f"(store: {result['store']}, classes: {', '.join(result['classes']) or 'none yet'})",
        highlight=False,
        soft_wrap=True,
    )


@app.command("import")
@friendly_errors
def import_cmd(
    project: ProjectArg,
    source: Annotated[
        Path,
        typer.Argument(
            help="A folder, an ImageFolder tree, a CSV/TSV/parquet table, or an annotation file or folder (--format).",
            show_default=False,
        ),
    ],
    format: Annotated[
        str,
        typer.Option(
            "--format",
            help="auto (table file or plain folder), folder, imagefolder, table, "
            "another tool's export: labelstudio, hf, fiftyone, or boxes (detection projects): "
            "coco (the JSON file), yolo (data.yaml or its folder), voc (the XML folder) (docs/formats.md).",
        ),
    ] = "auto",
    split: Annotated[
        str, typer.Option(help="pool (to label and train on) or eval (held out for evaluation).")
    ] = "pool",
    path_col: Annotated[str, typer.Option(help="Table column holding file paths.")] = "filepath",
    label_col: Annotated[
        str,
        typer.Option(
            help="Table column holding labels (optional); a detection project reads 'boxes' "
            "(the boxes' JSON) when the table has it."
        ),
    ] = "label",
    label_sep: Annotated[
        str, typer.Option(help="Separates several classes in one label cell (multilabel projects).")
    ] = "|",
    class_columns: Annotated[
        str | None,
        typer.Option(
            help="Instead of a label column: one 0/1 (true/false, yes/no) column per class, comma-separated, "
            "or '*' for every column named like a class (multilabel projects)."
        ),
    ] = None,
    add_classes: Annotated[bool, typer.Option(help="Create classes for unknown label values.")] = False,
    author: Annotated[str | None, typer.Option(help="Recorded as the labels' author (default: your user).")] = None,
    report: Annotated[Path | None, typer.Option(help="Per-file report CSV (default: PROJECT/reports/).")] = None,
    max_file_mb: Annotated[
        float, typer.Option(help="Reject files larger than this many MB (10^6 bytes) as too_large, unread.")
    ] = MAX_FILE_MB_DEFAULT,
    images_root: Annotated[
        Path | None,
        typer.Option(
            help="labelstudio, coco, yolo, voc: where the images are (default: where the format keeps them, "
            "docs/formats.md)."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Import images (and labels, if the source has them). Re-running adds only what is new."""
    if format in formats.IMPORT_FORMATS:
        return formats.import_other(
            project,
            source,
            format,
            split=split,
            add_classes=add_classes,
            author=author,
            report=report,
            images_root=images_root,
            as_json=as_json,
        )
    from activelab.loop.ingest import default_report_path, import_images
    from activelab.loop.project import open_project

    class_cols = None if class_columns is None else class_columns.strip()
    with open_project(project) as proj:
        result = import_images(
            proj.store,
            source,
            fmt=format,
            split=split,
            path_col=path_col,
            label_col=label_col,
            class_cols=class_cols if class_cols in (None, "*") else _split_names(class_cols),
            label_sep=label_sep,
            task=proj.task(),
            add_classes=add_classes,
            author=author,
            report_path=report or default_report_path(proj.root),
            max_file_mb=max_file_mb,
            progress=True,
        )
    if as_json:
        print_json(
            {
                "seen": result.seen,
                "added": result.added,
                "labels_recorded": result.labeled,
                "duplicates": result.duplicates,
                "label_conflicts": result.label_conflicts,
                "merged": result.merged,
                "rejected": dict(result.rejected),
                "new_classes": result.new_classes,
                "report": str(result.report_path) if result.report_path else None,
            }
        )
        return
    if result.new_classes:
        console.print(f"new classes: {', '.join(result.new_classes)}", highlight=False)
    console.print(result.summary(), highlight=False)
    console.print(f"per-file report: {result.report_path}", highlight=False, soft_wrap=True)


@app.command()
@friendly_errors
def status(project: ProjectArg, as_json: JsonOpt = False) -> None:
    """Images per split, labeled and unlabeled, labels per class, rounds."""
    from activelab.loop.project import open_project

    with open_project(project) as proj:
        summary = proj.store.summary()
        name, url = proj.settings.name, proj.store.url
        image_size = proj.settings.model.image_size
        latest = latest_metrics(proj.store.rounds())
        pixels = _labeled_pixels(proj.store.current_annotations("pool").values())
    if latest is not None:
        summary["latest_round"] = latest
    if pixels is not None:
        summary["labeled_pixels"] = pixels
    if as_json:
        print_json(summary)
        return
    for table in status_tables(summary, f"project {name}"):
        console.print(table)
    console.print(f"store: {url}", highlight=False, soft_wrap=True)
    console.print(f"rounds finished: {summary['rounds']}, label events: {summary['label_events']}")
    if pixels is not None:
        console.print(f"classes: {', '.join(summary['per_class'])}", highlight=False, soft_wrap=True)
        console.print(
            f"labeled pixels (pool): {pixels['labeled']:,} of {pixels['total']:,} in the labeled images "
            f"({pixels['images_in_part']} labeled in part)",
            highlight=False,
        )
    if latest is not None:
        console.print(_latest_line(latest), highlight=False)
    console.print(
        f"input size {image_size} px (model.image_size)"
        if image_size
        else "input size not chosen yet: the first embedding pass or round picks it from the pool's images "
        "(docs/models.md, 'Input size')",
        highlight=False,
    )


def latest_metrics(rounds: Sequence[Round]) -> dict[str, Any] | None:
    """The latest finished round that trained a model: its number, labels, the task's headline metric on the
    eval split (the one the round recorded: accuracy, micro-F1, mAP, mIoU; rounds recorded before it say
    nothing, and are read as accuracy) and pixel accuracy where the task has it; None if none.

    Read from the store alone: ``status`` imports no task (numpy) to name its metric."""
    for rnd in reversed(rounds):
        metrics = rnd.metrics or {}
        if rnd.status != "done" or metrics.get("cold_start"):
            continue
        ev = metrics.get("eval") or {}
        headline = metrics.get("headline", "accuracy")
        return {
            "round": rnd.number,
            "n_labeled": rnd.n_labeled,
            "metric": headline,
            "value": ev.get(headline),
            "n_eval": ev.get("n"),
            **({"pixel_accuracy": ev["pixel_accuracy"]} if "pixel_accuracy" in ev else {}),
        }
    return None


#: how ``status`` names a task's headline metric
HEADLINE_NAMES = {"accuracy": "eval accuracy", "map": "mAP", "miou": "mIoU", "micro_f1": "micro-F1"}


def _latest_line(latest: dict[str, Any]) -> str:
    name = HEADLINE_NAMES.get(latest["metric"], latest["metric"])
    head = f"latest round {latest['round']} (trained on {latest['n_labeled']} labeled images): "
    if latest["value"] is None:
        return head + f"no {name}: no labeled eval images (import some with --split eval)"
    extra = f", pixel accuracy {latest['pixel_accuracy']:.4f}" if "pixel_accuracy" in latest else ""
    return head + f"{name} {latest['value']:.4f}{extra} on {latest['n_eval']} eval images"


def _labeled_pixels(annotations: Iterable[CurrentAnnotation]) -> dict[str, int] | None:
    """Labeled pixels over the labeled pool images when the annotations are masks (payloads with ``labeled``,
    ``width`` and ``height``); None otherwise."""
    masks = [a.payload for a in annotations if isinstance(a.payload, dict) and "labeled" in a.payload]
    if not masks:
        return None
    total = [int(p["width"]) * int(p["height"]) for p in masks]
    labeled = [int(p["labeled"]) for p in masks]
    return {
        "labeled": sum(labeled),
        "total": sum(total),
        "images": len(masks),
        "images_in_part": sum(n < t for n, t in zip(labeled, total)),
    }


@app.command()
@friendly_errors
def export(
    project: ProjectArg,
    out: Annotated[
        Path,
        typer.Argument(
            help="Output file (.csv, .parquet) or folder (imagefolder, coco, yolo, voc).", show_default=False
        ),
    ],
    format: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="csv, parquet or imagefolder (default: from OUT's extension; a folder "
            "name without one is an imagefolder tree), or labelstudio, hf-imagefolder, "
            "fiftyone, or coco, yolo, voc (detection projects) (docs/formats.md).",
        ),
    ] = None,
    include_eval: Annotated[bool, typer.Option(help="Also export the eval split (marked as such).")] = False,
    label_sep: Annotated[
        str, typer.Option(help="Joins several classes in one label cell (multilabel projects).")
    ] = "|",
    as_json: JsonOpt = False,
) -> None:
    """Write the current labels, with their source and author."""
    from activelab.loop.export import export_labels
    from activelab.loop.project import open_project

    fmt = export_format(out, format)
    if fmt in formats.EXPORT_FORMATS:
        return formats.export_other(project, out, fmt, include_eval=include_eval, as_json=as_json)
    with open_project(project) as proj:
        task = proj.task()
        written = export_labels(proj.store, out, fmt=fmt, include_eval=include_eval, task=task, sep=label_sep)
    if as_json:
        print_json({"path": str(written), "format": fmt})
        return
    console.print(f"exported {fmt} to {written}", highlight=False, soft_wrap=True)


@classes_app.command("list")
@friendly_errors
def classes_list(project: ProjectArg, as_json: JsonOpt = False) -> None:
    """Print the project's classes, one a line, in class-index order."""
    from activelab.loop.project import open_project

    with open_project(project) as proj:
        names = proj.store.class_names()
    if as_json:
        print_json(names)
        return
    for name in names:
        typer.echo(name)


@classes_app.command("add")
@friendly_errors
def classes_add(
    project: ProjectArg,
    names: Annotated[str, typer.Argument(help="Comma-separated names.", show_default=False)],
    as_json: JsonOpt = False,
) -> None:
    """Add classes (existing names are left as they are)."""
    from activelab.loop.project import open_project

    with open_project(project) as proj:
        added = proj.store.add_classes(_split_names(names))
    if as_json:
        print_json({"added": added})
        return
    console.print(f"added: {', '.join(added) or 'nothing new'}", highlight=False)


@datasets_app.command("list")
@friendly_errors
def datasets_list(as_json: JsonOpt = False) -> None:
    """Datasets that can be written out without a network."""
    from activelab.data.datasets import list_datasets

    infos = list_datasets()
    if as_json:
        print_json(
            [
                {
                    "name": i.name,
                    "pool": i.n_pool,
                    "eval": i.n_eval,
                    "classes": i.classes,
                    "available": i.available,
                    "how_to_get": i.how_to_get,
                    "source": i.source,
                }
                for i in infos
            ]
        )
        return
    rows = [
        [
            i.name,
            str(i.n_pool),
            str(i.n_eval),
            str(len(i.classes)),
            "available" if i.available else f"missing: {i.how_to_get}",
            i.source,
        ]
        for i in infos
    ]
    console.print(
        result_table(
            None,
            [
                ("dataset", "left"),
                ("pool", "right"),
                ("eval", "right"),
                ("classes", "right"),
                ("state", "left"),
                ("source", "left"),
            ],
            rows,
        )
    )


@datasets_app.command("fetch")
@friendly_errors
def datasets_fetch(
    name: Annotated[
        str,
        typer.Argument(
            help="fashion-mnist, fashion-mnist-sample (bundled), digits, fashion-pairs (multilabel) "
            "or fashion-scenes (detection; docs/detection_data.md).",
            show_default=False,
        ),
    ],
    dest: Annotated[
        Path,
        typer.Argument(
            help="Folder to write PNGs, pool.csv, seed.csv, answers.csv and eval.csv into "
            "(fashion-scenes: images, masks, COCO and YOLO files, and those tables with boxes).",
            show_default=False,
        ),
    ],
    limit: Annotated[
        int | None, typer.Option(help="Keep this many pool images (class-balanced; default: all).")
    ] = None,
    eval_limit: Annotated[int | None, typer.Option(help="Keep this many eval images (default: --limit).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the subset drawn with --limit.")] = 0,
    seed_per_class: Annotated[
        int | None,
        typer.Option(
            help=f"Labeled pool images per class written to seed.csv (default {SEED_PER_CLASS_DEFAULT}; "
            "2 for fashion-scenes).",
            min=0,
            show_default=False,
        ),
    ] = None,
    size: Annotated[
        int | None,
        typer.Option(help="fashion-scenes: side of its square images in px (default 128).", min=32, show_default=False),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write a real dataset as PNGs plus tables: the unlabeled pool, seed labels, the pool's answers, eval."""
    from activelab.data.datasets import SCENES, fetch_dataset

    out = fetch_dataset(
        name,
        dest,
        limit=limit,
        eval_limit=eval_limit,
        seed=seed,
        seed_per_class=seed_per_class,
        size=size,
        progress=True,
    )
    if name == SCENES:
        _print_scenes_fetched(out, as_json)
        return
    seed_per_class = SEED_PER_CLASS_DEFAULT if seed_per_class is None else seed_per_class
    tables = {table: str(out / f"{table}.csv") for table in ("pool", "seed", "answers", "eval")}
    if as_json:
        print_json({"path": str(out), **tables})
        return
    console.print(
        f"wrote {name} to {out}; import the unlabeled pool, the held-out eval split and "
        f"{seed_per_class} labels per class to start from with:\n"
        f"  activelab import PROJECT {tables['pool']}\n"
        f"  activelab import PROJECT {tables['eval']} --split eval\n"
        f"  activelab import PROJECT {tables['seed']}\n"
        f"{tables['answers']} holds every pool label: the oracle of `activelab simulate --dataset {out}`",
        highlight=False,
        soft_wrap=True,
    )


def _print_scenes_fetched(out: Path, as_json: bool) -> None:
    """What fetching fashion-scenes wrote, and how a detection or a segmentation project starts from it."""
    from activelab.data.scenes import SEGMENTATION_TABLES

    files = {
        **{table: str(out / f"{table}.csv") for table in ("pool", "seed", "answers", "eval")},
        "coco": str(out / "pool" / "annotations.json"),
        "yolo": str(out / "data.yaml"),
        **{f"masks_{key}": str(out / name) for key, name in SEGMENTATION_TABLES.items()},
    }
    if as_json:
        print_json({"path": str(out), **files})
        return
    classes = (out / "classes.txt").read_text(encoding="utf-8").split()
    console.print(
        f"wrote fashion-scenes to {out}; start a detection project on the unlabeled pool images, the held-out "
        "eval split and the seed boxes with:\n"
        f"  activelab init PROJECT --task detection --classes {','.join(classes)}\n"
        f"  activelab import PROJECT {files['pool']}\n"
        f"  activelab import PROJECT {files['eval']} --split eval\n"
        f"  activelab import PROJECT {files['seed']}\n"
        f"{files['answers']} holds every pool image's boxes: the oracle of `activelab simulate --task detection "
        f"--dataset {out}`; the same boxes are in COCO ({files['coco']}) and YOLO ({files['yolo']}) form.\n"
        "A segmentation project (docs/segmentation.md) starts from the same pool and the mask tables:\n"
        f"  activelab init PROJECT --task segmentation --classes-file {files['masks_classes']}\n"
        f"  activelab import PROJECT {files['pool']} --path-col image\n"
        f"  activelab import PROJECT {files['masks_eval']} --path-col image --split eval\n"
        f"  activelab import PROJECT {files['masks_seed']} --path-col image\n"
        f"{files['masks_answers']} holds every pool image's mask: the oracle of `activelab simulate --task "
        f"segmentation --dataset {out}`",
        highlight=False,
        soft_wrap=True,
    )


@app.command("strategies")
@friendly_errors
def strategies_cmd(as_json: JsonOpt = False) -> None:
    """The registered query strategies, what each needs, and its paper."""
    from activelab.strategies import get_strategy, list_strategies

    specs = [(name, sorted(get_strategy(name).requires), get_strategy(name).paper) for name in list_strategies()]
    if as_json:
        print_json([{"name": name, "requires": needs, "paper": paper} for name, needs, paper in specs])
        return
    console.print(
        result_table(
            None,
            [("strategy", "left"), ("needs", "left"), ("paper", "left")],
            [[name, ", ".join(needs) or "nothing", paper] for name, needs, paper in specs],
        )
    )


@app.command("models")
@friendly_errors
def models_cmd(
    pattern: Annotated[
        str | None, typer.Argument(help="fnmatch filter, e.g. 'timm/resnet*' (default: all).", show_default=False)
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Model names `--model` accepts (built-ins, timm/..., torchvision/...)."""
    from activelab.models import list_models

    names = list_models(pattern)
    if as_json:
        print_json(names)
        return
    for name in names:
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
        _create_demo(project, seed_per_class)
        console.print(f"created demo project in {project}", highlight=False)
    status(project, as_json=False)
    if serve_app:
        serve.run_server(project, port=port)


def _create_demo(project: Path, seed_per_class: int) -> None:
    from activelab.data.datasets import FASHION_MNIST_CLASSES, SAMPLE, fetch_dataset
    from activelab.loop.ingest import default_report_path, import_images
    from activelab.loop.project import init_project
    from activelab.loop.settings import SETTINGS_FILE, save_settings

    data = fetch_dataset(SAMPLE, project / "data", seed_per_class=seed_per_class)
    with init_project(project, FASHION_MNIST_CLASSES, name="fashion-mnist demo") as proj:
        # 28 px images: a 64 px backbone input is ~10x cheaper than 224 px on a CPU
        proj.settings.model.image_size = 64
        save_settings(proj.settings, proj.root / SETTINGS_FILE)
        import_images(
            proj.store, data / "pool", fmt="folder", author="demo", report_path=default_report_path(proj.root)
        )
        import_images(proj.store, data / "seed.csv", author="demo", report_path=default_report_path(proj.root))
        import_images(
            proj.store, data / "eval.csv", split="eval", author="demo", report_path=default_report_path(proj.root)
        )


finish(app)


def main() -> None:
    app()
