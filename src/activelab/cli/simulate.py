"""``activelab simulate``: compare query strategies with an oracle on a labeled dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from activelab.cli.output import console, friendly_errors


def register(app: typer.Typer) -> None:
    """Add the ``simulate`` command to ``app``."""

    @app.command()
    @friendly_errors
    def simulate(
        config: Annotated[
            Path | None,
            typer.Option(
                "--config",
                help="YAML file of simulation keys (see docs/simulation.md); flags override it.",
            ),
        ] = None,
        dataset: Annotated[
            str | None,
            typer.Option(
                help="digits, fashion-mnist, sample, or a folder with pool.csv and eval.csv."
            ),
        ] = None,
        strategies: Annotated[
            str | None,
            typer.Option(
                help="Comma-separated strategy names, e.g. random,margin,badge."
            ),
        ] = None,
        initial: Annotated[
            str | None,
            typer.Option(
                help="Initial set: balanced (random per class), random, or a cold-start strategy (typiclust, probcover)."
            ),
        ] = None,
        initial_size: Annotated[
            int | None, typer.Option(help="Labels in the initial set.")
        ] = None,
        batch_size: Annotated[
            int | None, typer.Option(help="Labels acquired per round.")
        ] = None,
        rounds: Annotated[int | None, typer.Option(help="Acquisition rounds.")] = None,
        budget: Annotated[
            int | None, typer.Option(help="Total labels, initial set included.")
        ] = None,
        seeds: Annotated[
            str | None, typer.Option(help="Comma-separated seeds, e.g. 0,1,2.")
        ] = None,
        model: Annotated[
            str | None,
            typer.Option(
                help="Model name (default efficientnet_lite0; small_cnn for the full path)."
            ),
        ] = None,
        path: Annotated[
            str | None,
            typer.Option(
                help="fast (frozen embeddings + head) or full (train the network)."
            ),
        ] = None,
        head: Annotated[
            str | None,
            typer.Option(
                help="Fast-path head: logreg or mlp (mlp gives MC dropout for bald)."
            ),
        ] = None,
        image_size: Annotated[
            int | None, typer.Option(help="Model input size in pixels.")
        ] = None,
        pool_limit: Annotated[
            int | None,
            typer.Option(
                help="Use a stratified random subset of this many pool images."
            ),
        ] = None,
        eval_limit: Annotated[
            int | None,
            typer.Option(
                help="Use a stratified random subset of this many eval images."
            ),
        ] = None,
        pool_subset: Annotated[
            int | None,
            typer.Option(
                help="Score only this many random unlabeled images per round (full path on big pools)."
            ),
        ] = None,
        targets: Annotated[
            str | None,
            typer.Option(help="Accuracies for labels-to-reach, e.g. 0.8,0.9."),
        ] = None,
        output: Annotated[
            str | None,
            typer.Option(
                help="Results root; each config gets output/<dataset>-<hash>."
            ),
        ] = None,
        tensorboard: Annotated[
            str | None,
            typer.Option(
                "--tensorboard", help="Write TensorBoard scalars under this folder."
            ),
        ] = None,
        plots: Annotated[
            bool | None, typer.Option("--plots/--no-plots", help="Write PNG plots.")
        ] = None,
        tsne: Annotated[
            bool | None,
            typer.Option(
                "--tsne/--no-tsne", help="Include the t-SNE map (slowest plot)."
            ),
        ] = None,
        progress: Annotated[
            bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")
        ] = True,
    ) -> None:
        """Run every strategy from the same initial set per seed, resuming finished work; write reports."""
        from activelab.simulate import Experiment, SimulationConfig

        flags: dict[str, Any] = {
            "dataset": dataset,
            "strategies": strategies,
            "initial": initial,
            "initial_size": initial_size,
            "batch_size": batch_size,
            "rounds": rounds,
            "budget": budget,
            "seeds": seeds,
            "model": model,
            "path": path,
            "head": head,
            "image_size": image_size,
            "pool_limit": pool_limit,
            "eval_limit": eval_limit,
            "pool_subset": pool_subset,
            "targets": targets,
            "output": output,
            "tensorboard": tensorboard,
            "plots": plots,
            "tsne": tsne,
        }
        given = {k: v for k, v in flags.items() if v is not None}
        if config is not None:
            cfg = SimulationConfig.from_yaml(config, **given)
        else:
            cfg = SimulationConfig.from_dict(given, source="command line")
        exp = Experiment(cfg, progress=progress)
        console.print(f"results: {exp.results_dir}")
        exp.run()
        if exp.skipped:
            console.print(f"skipped (already done): {', '.join(exp.skipped)}")
        paths = exp.report()
        console.print(
            (exp.results_dir / "summary.md").read_text(), markup=False, highlight=False
        )
        console.print(
            f"wrote {', '.join(p.name for p in paths.values())} in {exp.results_dir}"
        )
