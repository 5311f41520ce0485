"""``activelab simulate``: compare query strategies with an oracle on a labeled dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from activelab._defaults import DEFAULT_DETECTION_MODEL, DEFAULT_MODEL, DEFAULT_SEGMENTATION_MODEL
from activelab.cli.commands import either, mode_name
from activelab.cli.output import console, friendly_errors, print_json, result_table

#: SimulationConfig's defaults as help shows them (simulate.config is not imported here: it loads torch)
SIM_DEFAULTS = {
    "task": "classification",
    "dataset": "digits",
    "strategies": "random,entropy,margin",
    "initial": "balanced",
    "initial_size": 20,
    "k": 10,
    "budget_unit": "images",
    "region_method": "slic",
    "region_size": 16,
    "budget": 200,
    "seeds": "0,1,2",
    "model": DEFAULT_MODEL,
    "targets": "0.8,0.9",
    "output": "simulations",
    "semi_supervised": "none",
    "representation": "fixed",
}


def register(app: typer.Typer) -> None:
    """Add the ``simulate`` command to ``app``."""
    app.command("simulate")(friendly_errors(simulate))


def simulate(
    config: Annotated[
        Path | None,
        typer.Option("--config", help="YAML file of simulation keys (see docs/simulation.md); flags override it."),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            help="digits, fashion-mnist, fashion-mnist-sample, fashion-scenes (detection, segmentation: generated "
            "once at --pool-limit/--eval-limit scenes), or a folder with pool.csv (or answers.csv) and eval.csv "
            "(detection, segmentation: a fashion-scenes folder) "
            f"(default: {SIM_DEFAULTS['dataset']})."
        ),
    ] = None,
    task: Annotated[
        str | None,
        typer.Option(
            help="What a label is: classification, multilabel, detection or segmentation (the dataset's label "
            f"column, or a fashion-scenes folder's mask tables, is read by it) (default: {SIM_DEFAULTS['task']})."
        ),
    ] = None,
    strategy: Annotated[
        str | None,
        typer.Option(
            "--strategy",
            help="Comma-separated strategy names, e.g. random,margin,badge (default: "
            f"{SIM_DEFAULTS['strategies']}, those the task can feed, plus its default strategy: random,det_entropy for "
            "detection). Region strategies (region_random, region_entropy, ...) ask for regions of images.",
        ),
    ] = None,
    initial: Annotated[
        str | None,
        typer.Option(
            help="Initial set: balanced (random per class), random, or a cold-start strategy "
            f"(typiclust, probcover) (default: {SIM_DEFAULTS['initial']})."
        ),
    ] = None,
    initial_size: Annotated[
        int | None, typer.Option(help=f"Labels in the initial set (default: {SIM_DEFAULTS['initial_size']}).")
    ] = None,
    k: Annotated[
        int | None,
        typer.Option(
            "-k",
            "--k",
            help="Labels acquired per round: images (regions for a region strategy), boxes or pixels (see "
            f"--budget-unit) (default: {SIM_DEFAULTS['k']}).",
        ),
    ] = None,
    budget_unit: Annotated[
        str | None,
        typer.Option(
            help="What -k counts: images (regions for a region strategy), boxes (detection: each image costs the "
            "boxes the model predicts in it) or pixels (segmentation: each image costs its pixels, each region "
            f"its own); boxes and pixels need --rounds (default: {SIM_DEFAULTS['budget_unit']})."
        ),
    ] = None,
    region_method: Annotated[
        str | None,
        typer.Option(
            help="Segmentation: how images are cut into regions, slic (superpixels) or patch (squares) "
            f"(default: {SIM_DEFAULTS['region_method']})."
        ),
    ] = None,
    region_size: Annotated[
        int | None,
        typer.Option(
            help="Segmentation: region side in pixels (SLIC: about size x size pixels per superpixel) "
            f"(default: {SIM_DEFAULTS['region_size']})."
        ),
    ] = None,
    rounds: Annotated[
        int | None, typer.Option(help="Acquisition rounds (default: as many as --budget allows).")
    ] = None,
    budget: Annotated[
        int | None, typer.Option(help=f"Total labels, initial set included (default: {SIM_DEFAULTS['budget']}).")
    ] = None,
    seeds: Annotated[
        str | None, typer.Option(help=f"Comma-separated seeds (default: {SIM_DEFAULTS['seeds']}).")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help=f"Model name (default: the task's: {SIM_DEFAULTS['model']}, {DEFAULT_DETECTION_MODEL} for "
            f"detection, {DEFAULT_SEGMENTATION_MODEL} for segmentation; small_cnn for finetune mode)."
        ),
    ] = None,
    mode: Annotated[
        str | None,
        typer.Option(
            help="frozen (a light head on cached embeddings of a frozen backbone) or finetune (train the whole "
            "network) (default: the model's usual mode)."
        ),
    ] = None,
    head: Annotated[
        str | None, typer.Option(help="Frozen-mode head: logreg or mlp (mlp gives MC dropout for bald).")
    ] = None,
    image_size: Annotated[int | None, typer.Option(help="Model input size in pixels.")] = None,
    semi_supervised: Annotated[
        str | None,
        typer.Option(
            help="Also train on the unlabeled pool: self_training or label_spreading (frozen mode), fixmatch "
            f"(finetune mode), auto (the mode's method) or none (default: {SIM_DEFAULTS['semi_supervised']})."
        ),
    ] = None,
    representation: Annotated[
        str | None,
        typer.Option(
            help="auto: choose the feature extractor among candidates on the labeled images (frozen mode, "
            f"single-label); fixed: the model as given (default: {SIM_DEFAULTS['representation']})."
        ),
    ] = None,
    pool_limit: Annotated[
        int | None, typer.Option(help="Use a stratified random subset of this many pool images.")
    ] = None,
    eval_limit: Annotated[
        int | None, typer.Option(help="Use a stratified random subset of this many eval images.")
    ] = None,
    pool_subset: Annotated[
        int | None,
        typer.Option(help="Score only this many random unlabeled images per round (finetune mode on big pools)."),
    ] = None,
    targets: Annotated[
        str | None, typer.Option(help=f"Accuracies for labels-to-reach (default: {SIM_DEFAULTS['targets']}).")
    ] = None,
    out: Annotated[
        str | None,
        typer.Option(
            "--out", help=f"Results root; each config gets OUT/<dataset>-<hash> (default: {SIM_DEFAULTS['output']})."
        ),
    ] = None,
    tensorboard: Annotated[
        str | None, typer.Option("--tensorboard", help="Write TensorBoard scalars under this folder.")
    ] = None,
    plots: Annotated[bool | None, typer.Option("--plots/--no-plots", help="Write PNG plots (default: yes).")] = None,
    tsne: Annotated[
        bool | None, typer.Option("--tsne/--no-tsne", help="Include the t-SNE map (slowest plot; default: yes).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON (nothing else).")] = False,
    strategies: Annotated[str | None, typer.Option("--strategies", hidden=True)] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", hidden=True)] = None,
    path: Annotated[str | None, typer.Option("--path", hidden=True)] = None,
    output: Annotated[str | None, typer.Option("--output", hidden=True)] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", hidden=True)] = True,
) -> None:
    """Run every strategy from the same initial set per seed, resuming finished work; write reports."""
    flags: dict[str, Any] = {
        "task": task,
        "dataset": dataset,
        "strategies": either("--strategy", strategy, "--strategies", strategies),
        "initial": initial,
        "initial_size": initial_size,
        "k": either("-k", k, "--batch-size", batch_size),
        "budget_unit": budget_unit,
        "region_method": region_method,
        "region_size": region_size,
        "rounds": rounds,
        "budget": budget,
        "seeds": seeds,
        "model": model,
        "mode": either("--mode", mode, "--path", mode_name(path)),
        "head": head,
        "image_size": image_size,
        "semi_supervised": semi_supervised,
        "representation": representation,
        "pool_limit": pool_limit,
        "eval_limit": eval_limit,
        "pool_subset": pool_subset,
        "targets": targets,
        "output": either("--out", out, "--output", output),
        "tensorboard": tensorboard,
        "plots": plots,
        "tsne": tsne,
    }
    given = {key: value for key, value in flags.items() if value is not None}
    from activelab.simulate import Experiment, SimulationConfig  # after the flags: a usage error needs no torch

    if config is not None:
        cfg = SimulationConfig.from_yaml(config, **given)
    else:
        cfg = SimulationConfig.from_dict(given, source="command line")
    exp = Experiment(cfg, progress=progress)
    if not as_json:
        console.print(f"results: {exp.results_dir}", highlight=False, soft_wrap=True)
    exp.run()
    paths = exp.report()
    rows = exp.summary()
    if as_json:
        print_json(
            {
                "results_dir": str(exp.results_dir),
                "skipped": exp.skipped,
                "summary": rows,
                "files": {name: str(p) for name, p in paths.items()},
            }
        )
        return
    if exp.skipped:
        console.print(f"skipped (already done): {', '.join(exp.skipped)}", highlight=False)
    console.print(summary_table(rows, list(cfg.targets), exp.headline_metric, exp.curve_x))
    if cfg.semi_supervised != "none":
        from activelab.loop.settings import resolve_semi_supervised

        method = resolve_semi_supervised(cfg.semi_supervised, cfg.model_mode, cfg.task)
        console.print(
            f"semi-supervised ({method}): every fit also trained on the round's unlabeled pool images "
            "(never the eval split); each round records n_unlabeled",
            highlight=False,
        )
    if cfg.representation == "auto":
        console.print("representation: auto; each round records the candidate it used", highlight=False)
    console.print(
        f"wrote {', '.join(p.name for p in paths.values())} in {exp.results_dir}", highlight=False, soft_wrap=True
    )


def summary_table(
    rows: list[dict[str, Any]], targets: list[float], metric: str = "accuracy", x: str = "n_labeled"
) -> Any:
    """The per-strategy summary (as ``summary.md``) as a rich table; '-' where a target was never reached;
    ``x`` names what labels are counted in (``n_pixels``: pixels, segmentation)."""
    from activelab.simulate.reports import LABEL_WORDS, target_name

    word = LABEL_WORDS.get(x, x)
    final = bool(rows) and "labels_to_random_final" in rows[0]

    def fmt(value: Any, spec: str = "") -> str:
        return "-" if value is None else format(value, spec)

    columns = [
        ("strategy", "left"),
        ("seeds", "right"),
        ("AUC (norm.)", "right"),
        ("AUC / random", "right"),
        (f"final {metric}", "right"),
    ]
    for t in targets:
        columns += [(f"{word} to {target_name(t)}", "right"), (f"÷ random ({target_name(t)})", "right")]
    if final:
        columns += [(f"{word} to random's final", "right"), ("÷ random (final)", "right")]
    cells = []
    for r in rows:
        line = [
            str(r["strategy"]),
            str(r["seeds"]),
            f"{r['auc']:.4f} ± {r['auc_std']:.4f}",
            fmt(r["auc_ratio"], ".3f"),
            f"{r['final_accuracy']:.4f}",
        ]
        for t in targets:
            name = target_name(t)
            line += [fmt(r[f"labels_to_{name}"]), fmt(r[f"ratio_to_{name}"], ".2f")]
        if final:
            line += [fmt(r["labels_to_random_final"]), fmt(r["ratio_to_random_final"], ".2f")]
        cells.append(line)
    return result_table(f"strategies compared ({word} to reach: on the seed-mean curve)", columns, cells)
