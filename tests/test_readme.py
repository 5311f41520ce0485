"""Every shell and Python block of README.md runs as written, in order, in a temp folder.

A block is left out only when ``<!-- readme-test: skip (why) -->`` stands right before it;
the test counts the blocks it ran and skipped, so a block lost or silently left out fails it.
Consecutive Python blocks share one interpreter (they read as one session). An
``activelab serve`` line runs in the background on a free port (``ACTIVELAB_PORT``) until
``GET /api/queue`` answers with items; then the server is stopped and the block goes on.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(
    r"(?P<skip><!-- readme-test: skip \((?P<why>[^)]+)\) -->\s*)?```(?P<lang>bash|python)\n"
    r"(?P<body>.*?)```",
    re.DOTALL,
)
#: what the README holds today: change these with the README, never to hide a block
EXPECTED_RUN = {"bash": 3, "python": 3}
EXPECTED_SKIPPED = 2
SERVE = re.compile(r"^\s*activelab serve\b")
STEP_TIMEOUT_S = 600


@dataclass(frozen=True)
class Block:
    lang: str
    body: str
    skip_reason: str | None


def readme_blocks(text: str) -> list[Block]:
    """The README's bash and Python blocks in order, each with its skip reason (None: it runs)."""
    return [Block(m["lang"], m["body"], m["why"]) for m in BLOCK.finditer(text)]


def _env(port: int) -> dict[str, str]:
    """The venv's ``activelab`` first on PATH, as after ``source .venv/bin/activate``."""
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HF_HUB_OFFLINE": "1",
        "ACTIVELAB_PORT": str(port),
        "PYTHONUNBUFFERED": "1",
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(args: list[str], cwd: Path, env: dict[str, str], what: str) -> str:
    done = subprocess.run(args, check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=STEP_TIMEOUT_S)
    assert done.returncode == 0, f"{what} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _bash(script: str, cwd: Path, env: dict[str, str]) -> str:
    return _run(["bash", "-c", "set -euo pipefail\n" + script], cwd, env, f"bash block part\n{script}")


def _serve_until_queue(command: str, cwd: Path, env: dict[str, str]) -> dict:
    """Start ``command`` in the background, return its first non-empty queue page, then stop it."""
    server = subprocess.Popen(
        ["bash", "-c", command],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{env['ACTIVELAB_PORT']}/api/queue"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert server.poll() is None, f"{command!r} exited early:\n{server.stdout.read()}"  # type: ignore[union-attr]
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    page = json.load(response)
                if page["items"]:
                    return page
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.5)
        raise AssertionError(f"{url} had no queue items within 120 s")
    finally:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def run_bash_block(body: str, cwd: Path, env: dict[str, str]) -> tuple[str, list[dict]]:
    """Run the block line by line in order: plain lines in bash, ``activelab serve`` in the background."""
    output, pages, pending = "", [], ""
    for line in body.splitlines(keepends=True):
        if SERVE.match(line):
            output += _bash(pending, cwd, env) if pending else ""
            pending = ""
            pages.append(_serve_until_queue(line.strip(), cwd, env))
        else:
            pending += line
    output += _bash(pending, cwd, env) if pending.strip() else ""
    return output, pages


def test_readme_skip_marker_is_read() -> None:
    text = "<!-- readme-test: skip (needs root) -->\n```bash\nsudo x\n```\n```python\nprint(1)\n```\n```yaml\na: 1\n```"
    assert readme_blocks(text) == [Block("bash", "sudo x\n", "needs root"), Block("python", "print(1)\n", None)]


@pytest.mark.slow
def test_readme_runs_as_written(tmp_path: Path) -> None:
    blocks = readme_blocks(README.read_text(encoding="utf-8"))
    env = _env(_free_port())
    ran = {"bash": 0, "python": 0}
    shell_out, python_out, pages, python_session = "", "", [], ""
    for block in [*blocks, None]:
        if python_session and (block is None or block.lang != "python" or block.skip_reason):
            python_out += _run([sys.executable, "-c", python_session], tmp_path, env, "Python blocks")
            python_session = ""
        if block is None or block.skip_reason:
            continue
        ran[block.lang] += 1
        if block.lang == "python":
            python_session += block.body
        else:
            out, served = run_bash_block(block.body, tmp_path, env)
            shell_out, pages = shell_out + out, pages + served
    assert ran == EXPECTED_RUN and sum(b.skip_reason is not None for b in blocks) == EXPECTED_SKIPPED

    # the Quickstart: an unlabeled pool, 5 seed labels per class, a queue of 50 in the app
    assert "300 files seen, 300 added, 0 labels recorded" in shell_out
    assert "50 files seen, 0 added, 50 labels recorded" in shell_out
    assert "round 1 (auto): trained on 50 labels" in shell_out
    assert [page["total"] for page in pages] == [50]
    labels = pd.read_csv(tmp_path / "labels.csv")
    assert len(labels) == 50 and labels["label"].value_counts().tolist() == [5] * 10
    # multi-label: sets imported from 'a|b' cells, a round scored with set metrics, sets exported
    assert "36 files seen, 0 added, 36 labels recorded" in shell_out
    assert re.search(r"round 1 \(cvirs\): trained on 36 labels: micro-F1 0\.\d+, subset accuracy", shell_out)
    tags = pd.read_csv(tmp_path / "tags.csv", keep_default_na=False)
    assert len(tags) == 36 and tags["label"].str.contains("|", regex=False).mean() > 0.5
    flags = tags[["bag", "pullover"]].to_numpy()
    assert ((flags == 1) == [[("bag" in c.split("|")), ("pullover" in c.split("|"))] for c in tags["label"]]).all()
    # detection: boxes imported from JSON cells, a detector trained and scored in COCO mAP, a COCO export
    assert "20 files seen, 0 added, 20 labels recorded" in shell_out
    assert re.search(r"round 1 \(det_entropy\): trained on 20 labels: mAP 0\.\d{4} on 30 eval images", shell_out)
    coco = json.loads((tmp_path / "shelf-coco" / "pool" / "annotations.json").read_text())
    seed = pd.read_csv(tmp_path / "scenes" / "seed.csv")
    assert len(coco["images"]) == 20 and len(coco["annotations"]) == sum(len(json.loads(b)) for b in seed["boxes"])
    # the Python API blocks
    assert "100 added, 100 labels recorded" in python_out
    assert "'bag']" in python_out
    assert "[1 2]" in python_out
