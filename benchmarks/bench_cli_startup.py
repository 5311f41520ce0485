"""Benchmark: how long `activelab --help` and `activelab status` take, before and after lazy imports.

Runs each command N times in fresh processes (as hyperfine does) and reports the
median and the fastest wall time: the bare interpreter, the CLI as it is now, and the
CLI of an earlier commit (``--before``, default the last commit before the CLI stopped
importing torch at start-up), extracted into a temporary folder and run with the same
interpreter, so both are measured on the same machine under the same load.

Run:  .venv/bin/python benchmarks/bench_cli_startup.py [--runs 10] [--before REF]
Prints one table and replaces the "CLI start-up" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import date
from io import BytesIO
from pathlib import Path

from _report import machine, write_section

ROOT = Path(__file__).resolve().parents[1]
BEFORE = "a5b11b9"  # the CLI imported torch and scikit-learn at start-up
ISSUE_SECONDS = 3.5  # what issue 13 measured for every command before the change, on a quiet machine


def cli(src: Path, *args: str) -> list[str]:
    """The command line running the ``activelab`` CLI from the package under ``src``."""
    code = f"import sys; sys.path.insert(0, {str(src)!r}); from activelab.cli.main import app; app()"
    return [sys.executable, "-c", code, *args]


def timed(argv: list[str], runs: int) -> tuple[float, float]:
    """(median, fastest) wall seconds of ``runs`` fresh runs of ``argv``, after one warm-up run.

    The exit status is not checked: an older CLI may refuse a store written by a newer one,
    and its start-up (the import time measured here) is the same either way.
    """
    env = {**os.environ, "COLUMNS": "100"}
    subprocess.run(argv, capture_output=True, env=env, check=False)
    seconds = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(argv, capture_output=True, env=env, check=False)
        seconds.append(time.perf_counter() - t)
    return statistics.median(seconds), min(seconds)


def extract(ref: str, dest: Path) -> Path:
    """``src/`` of commit ``ref`` under ``dest``; returns the folder holding the ``activelab`` package."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", ref, "src/activelab"], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return dest / "src"


def small_project(folder: Path) -> Path:
    """A project holding the bundled sample (500 pool images), made with the current CLI."""
    project = folder / "shop"
    src = ROOT / "src"
    subprocess.run(cli(src, "datasets", "fetch", "sample", str(folder / "data")), capture_output=True, check=True)
    subprocess.run(cli(src, "init", str(project)), capture_output=True, check=True)
    subprocess.run(
        cli(src, "import", str(project), str(folder / "data" / "pool.csv"), "--add-classes"),
        capture_output=True,
        check=True,
    )
    return project


def report(
    rows: list[tuple[str, float, float]], *, runs: int, before: str, note: str, load: float, command: str
) -> str:
    """The section of docs/benchmarks.md: the table, the machine, and what load did to the numbers."""
    cores = os.cpu_count() or 1
    medians = {name: med for name, med, _ in rows}
    old_help = medians[f"`activelab --help` at {before}"]
    busy = ""
    if load > 0.5 * cores:
        slowdown = old_help / ISSUE_SECONDS
        now_help, now_status = medians["`activelab --help` now"], medians["`activelab status shop` now"]
        busy = (
            f" Measured under load (load average {load:.1f} on {cores} cores): the earlier CLI took "
            f"{old_help:.1f} s here against the {ISSUE_SECONDS} s issue 13 measured, {slowdown:.1f}x slower, "
            f"so on a quiet machine today's `--help` would take about {now_help / slowdown:.2f} s and "
            f"`status` about {now_status / slowdown:.2f} s (an estimate from that ratio, not a measurement)."
        )
    lines = ["| command | median (s) | fastest (s) |", "|---|---:|---:|"]
    lines += [f"| {name} | {med:.2f} | {best:.2f} |" for name, med, best in rows]
    return (
        f"Wall time of a whole CLI process, {runs} fresh runs each after one warm-up (as hyperfine "
        "measures), on a project holding the bundled 500-image sample. The CLI now imports typer, rich and "
        "(for `status`) the store only; torch, scikit-learn and pandas load inside the commands that use "
        f"them. The earlier CLI is commit {before}, run by the same interpreter.\n\n"
        f"Machine: {machine()}, no GPU; {date.today().isoformat()}.{busy}{(' ' + note) if note else ''}\n"
        f"Command: `.venv/bin/python benchmarks/bench_cli_startup.py {command}`.\n\n" + "\n".join(lines) + "\n\n"
        f"Issue 13 measured {ISSUE_SECONDS} s for every command, `--help` included, before the change; "
        "`tests/cli/test_startup.py` guards the cause (no torch, scikit-learn or pandas imported by "
        "`--help` or `status`) without timing anything.\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="timed runs per command (median reported)")
    parser.add_argument("--before", default=BEFORE, help="git ref of the CLI to compare with")
    parser.add_argument("--note", default="", help="a sentence about the conditions (e.g. measured under load)")
    parser.add_argument("--no-doc", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        project = small_project(folder)
        before = extract(args.before, folder / "before")
        now = ROOT / "src"
        cases = [
            ("`python -c pass` (the floor)", [sys.executable, "-c", "pass"]),
            ("`activelab --help` now", cli(now, "--help")),
            (f"`activelab --help` at {args.before}", cli(before, "--help")),
            ("`activelab status shop` now", cli(now, "status", str(project))),
            (f"`activelab status shop` at {args.before}", cli(before, "status", str(project))),
        ]
        rows = [(name, *timed(argv, args.runs)) for name, argv in cases]
    body = report(
        rows,
        runs=args.runs,
        before=args.before,
        note=args.note,
        load=os.getloadavg()[0],
        command=" ".join(sys.argv[1:]),
    )
    print(body)
    if not args.no_doc:
        write_section("CLI start-up", body)


if __name__ == "__main__":
    main()
