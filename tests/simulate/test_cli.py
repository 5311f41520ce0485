from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from activelab.cli.simulate import register


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command()
    def other() -> None:  # a second command, so typer keeps "simulate" as a subcommand
        pass

    return app


def test_simulate_end_to_end_from_a_yaml_file(tmp_path: Path, sim_cache: Path) -> None:
    cfg = tmp_path / "sim.yaml"
    cfg.write_text(
        "dataset: digits\npool_limit: 80\neval_limit: 40\nstrategies: [random, entropy]\n"
        f"initial_size: 10\nbatch_size: 10\nbudget: 20\nseeds: [0]\nimage_size: 32\ncache_dir: {sim_cache}\n"
        "threads: 1\ntsne: false\n"
    )
    out = tmp_path / "out"
    args = [
        "simulate",
        "--config",
        str(cfg),
        "--output",
        str(out),
        "--seeds",
        "0,1",
        "--no-progress",
    ]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    (folder,) = list(out.glob("digits-*"))
    assert sorted(p.name for p in (folder / "runs").glob("*.json")) == [
        "entropy__seed0.json",
        "entropy__seed1.json",
        "random__seed0.json",
        "random__seed1.json",
    ]
    assert (folder / "learning_curves.png").stat().st_size > 0
    assert not (folder / "tsne.png").exists()
    assert "AUC" in result.output
    again = CliRunner().invoke(_app(), args)
    assert again.exit_code == 0 and "skipped (already done)" in again.output


def test_simulate_rejects_an_unknown_key(tmp_path: Path) -> None:
    cfg = tmp_path / "sim.yaml"
    cfg.write_text("dataset: digits\nbatchsize: 5\n")
    result = CliRunner().invoke(_app(), ["simulate", "--config", str(cfg)])
    assert result.exit_code == 2
    assert "unknown key 'batchsize'" in result.output and "batch_size" in result.output


def test_simulate_new_option_names_and_json(tmp_path: Path, sim_cache: Path) -> None:
    cfg = tmp_path / "sim.yaml"
    cfg.write_text(
        f"dataset: digits\npool_limit: 60\neval_limit: 30\ninitial_size: 10\nbudget: 20\nimage_size: 32\n"
        f"cache_dir: {sim_cache}\nthreads: 1\nplots: false\ntsne: false\n"
    )
    out = tmp_path / "out"
    args = [
        "simulate",
        "--config",
        str(cfg),
        "--out",
        str(out),
        "--strategy",
        "random,margin",
        "-k",
        "5",
        "--seeds",
        "0",
        "--json",
    ]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert [row["strategy"] for row in report["summary"]] == ["random", "margin"]
    (folder,) = list(out.glob("digits-*"))
    assert report["results_dir"] == str(folder)
    rounds = json.loads((folder / "runs" / "margin__seed0.json").read_text())["rounds"]
    assert [r["n_labeled"] for r in rounds] == [10, 15, 20]


def test_simulate_old_and_new_spelling_must_agree(tmp_path: Path) -> None:
    result = CliRunner().invoke(_app(), ["simulate", "--strategy", "margin", "--strategies", "random"])
    assert result.exit_code == 2 and "--strategy and --strategies (its old spelling) disagree" in result.output
