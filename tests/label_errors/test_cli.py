"""``activelab errors`` end to end through typer's CliRunner, registered on a fresh app."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import typer
from PIL import Image
from typer.testing import CliRunner

from activelab.cli.errors import register
from activelab.label_errors import ranking_path, review_queue
from activelab.loop.ingest import import_images


def test_errors_command_end_to_end(planted, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proj = planted.project
    # a near-duplicate with a different label: one pixel changed, so a new content hash
    src = next(img for img in proj.store.images("pool") if Path(img.path).name not in planted.flipped)
    label = proj.store.current_labels()[src.id].label
    other = "bag" if label != "bag" else "coat"
    dup = tmp_path / "dup.png"
    im = Image.open(src.path).convert("L")
    im.putpixel((0, 0), (im.getpixel((0, 0)) + 1) % 256)
    im.save(dup)
    import_images(proj.store, pd.DataFrame({"filepath": [str(dup)], "label": [other]}))
    root = proj.root
    app = typer.Typer()
    register(app)

    @app.command()
    def other_command() -> None:  # a second command, so `errors` is a sub-command as in the real CLI
        """Unused."""

    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["errors", str(root), "--top", "5", "--folds", "3", "--out", str(out), "--compare"]
    )
    assert result.exit_code == 0, result.output
    assert "top 5 of 201 labels, most likely wrong first" in result.output
    assert "given" in result.output and "suggested" in result.output and "0.000 " not in result.output
    assert "eval accuracy with original labels" in result.output
    ranking = pd.read_csv(out / "ranking.csv")
    assert len(ranking) == 201 and ranking["score"].is_monotonic_increasing
    flips_top = ranking.head(30)["filepath"].map(lambda p: Path(p).name).isin(set(planted.flipped)).sum()
    assert flips_top >= 12
    dups = pd.read_csv(out / "near_duplicates.csv")
    pair = {Path(dups.filepath_a[0]).name, Path(dups.filepath_b[0]).name}
    assert pair == {Path(src.path).name, "dup.png"} and {dups.label_a[0], dups.label_b[0]} == {label, other}
    assert (out / "swaps.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "summary.json").exists()
    # default output folder feeds the review queue; the second run reuses the cached predictions
    again = CliRunner().invoke(app, ["errors", str(root), "--top", "0", "--folds", "3"])
    assert again.exit_code == 0 and "from cache" in again.output
    as_json = json.loads(CliRunner().invoke(app, ["errors", str(root), "--top", "3", "--folds", "3", "--json"]).output)
    assert as_json["summary"]["n_labeled"] == 201 and len(as_json["top"]) == 3
    assert [row["rank"] for row in as_json["top"]] == [1, 2, 3]
    queue = review_queue(proj.store, ranking_path(root))
    assert queue and queue[0] == int(ranking[ranking.is_issue].iloc[0].image_id)
    shutil.rmtree(out)
    bad = CliRunner().invoke(app, ["errors", str(tmp_path / "nope")])
    assert bad.exit_code == 2 and "not an activelab project" in bad.output
