"""One vocabulary and one look for every command: help, hidden old spellings, usage errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from activelab.cli.commands import OLD_MODE_NAMES as CLI_OLD_MODE_NAMES
from activelab.cli.commands import either, mode_name
from activelab.cli.main import app
from activelab.exceptions import InputError

runner = CliRunner()


def invoke(*args: object):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def test_commands_are_listed_in_workflow_order() -> None:
    text = invoke("--help").output
    names = re.findall(r"^│ (\w[\w-]*) ", text.split("Commands")[1], re.M)
    assert names[:10] == [
        "init",
        "import",
        "status",
        "query",
        "serve",
        "train",
        "evaluate",
        "predict",
        "errors",
        "export",
    ]


@pytest.mark.parametrize(
    "command",
    ["init", "import", "status", "query", "train", "export", "errors", "embed", "serve", "predict", "evaluate"],
)
def test_help_shows_project_switches_and_defaults(command: str) -> None:
    text = invoke(command, "--help").output
    assert f"Usage: activelab {command} [OPTIONS] PROJECT" in text
    assert "{project}" not in text and "<bool>" not in text


def test_defaults_are_shown() -> None:
    assert "[default: 20]" in invoke("query", "--help").output
    assert "[default: auto]" in invoke("import", "--help").output
    assert "[default: 8000]" in invoke("serve", "--help").output


def test_old_spellings_are_hidden() -> None:
    assert "--batch-size" not in invoke("query", "--help").output
    text = invoke("train", "--help").output
    assert "--full" not in text and "--path" not in text and "--mode" in text and "finetune" in text
    text = invoke("simulate", "--help").output
    assert "--strategies" not in text and "--output" not in text and "--batch-size" not in text
    assert "--path" not in text
    assert "--strategy" in text and "--out" in text and "-k" in text and "--mode" in text


def test_old_spellings_still_parse_and_must_agree(tmp_path: Path) -> None:
    invoke("init", tmp_path / "p", "--classes", "a,b")
    result = invoke("query", tmp_path / "p", "-k", "5", "--batch-size", "6")
    assert result.exit_code == 2 and "-k and --batch-size (its old spelling) disagree" in result.output
    result = invoke("train", tmp_path / "p", "--path", "fast", "--full")
    assert result.exit_code == 2 and "--path and --full/--fast (its old spelling) disagree" in result.output
    result = invoke("train", tmp_path / "p", "--mode", "frozen", "--path", "full")
    assert result.exit_code == 2 and "--mode and --path/--full/--fast (its old spelling) disagree" in result.output
    result = invoke("simulate", "--mode", "finetune", "--path", "fast")
    assert result.exit_code == 2 and "--mode and --path (its old spelling) disagree" in result.output


def test_old_mode_names_mean_the_new_ones() -> None:
    from activelab.loop.settings import OLD_MODE_NAMES

    assert CLI_OLD_MODE_NAMES == OLD_MODE_NAMES == {"fast": "frozen", "full": "finetune"}
    assert [mode_name(v) for v in ("fast", "full", "frozen", None)] == ["frozen", "finetune", "frozen", None]


def test_either_takes_the_old_spelling_when_only_it_is_given() -> None:
    assert either("-k", None, "--batch-size", 7) == 7
    assert either("-k", 7, "--batch-size", None) == 7
    assert either("-k", 7, "--batch-size", 7) == 7
    with pytest.raises(InputError, match="disagree"):
        either("-k", 7, "--batch-size", 8)


def test_usage_errors_use_the_one_error_prefix() -> None:
    result = invoke("status")
    assert result.exit_code == 2
    assert result.output.startswith("error: Missing argument 'PROJECT'") and "Error" not in result.output
    result = invoke("query", "x", "--nope")
    assert result.exit_code == 2 and result.output.startswith("error: No such option")


def test_help_defaults_match_the_library() -> None:
    from activelab.cli import errors, main, simulate
    from activelab.data.images import DEFAULT_MAX_FILE_MB
    from activelab.label_errors.rank import DEFAULT_DUPLICATE_DISTANCE
    from activelab.simulate import SimulationConfig

    assert main.MAX_FILE_MB_DEFAULT == DEFAULT_MAX_FILE_MB
    assert errors.MAX_DISTANCE_DEFAULT == DEFAULT_DUPLICATE_DISTANCE
    defaults = SimulationConfig()
    for key, shown in simulate.SIM_DEFAULTS.items():
        value = getattr(defaults, key)
        assert shown == (",".join(map(str, value)) if isinstance(value, list) else value), key
