"""The command reference of docs/cli.md, written from the CLI itself so the two never disagree.

``python -m activelab.cli.reference`` prints it; ``--write`` replaces the part of
docs/cli.md between the reference markers. A test fails when that part is stale.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer.main
from typer.core import TyperArgument, TyperGroup

from activelab.cli.main import app

START = "<!-- cli-reference:start (written by `python -m activelab.cli.reference --write`) -->"
END = "<!-- cli-reference:end -->"
DOC = Path(__file__).resolve().parents[3] / "docs" / "cli.md"


def commands(group: Any, ctx: Any, prefix: str) -> Iterator[tuple[str, Any, Any]]:
    """``(path, command, context)`` of every visible command, in the order ``--help`` lists them."""
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if cmd is None or cmd.hidden:
            continue
        sub = typer.Context(cmd, info_name=name, parent=ctx)
        if isinstance(cmd, TyperGroup):
            yield from commands(cmd, sub, f"{prefix} {name}")
        else:
            yield f"{prefix} {name}", cmd, sub


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _code(value: object) -> str:
    """A default as inline code; a ``|`` (the separators' default) is escaped so it does not split the table row."""
    return f"`{value}`".replace("|", "\\|")


def _option_row(param: Any, ctx: Any) -> str:
    names = ", ".join(f"`{n}`" for n in [*param.opts, *param.secondary_opts])
    if isinstance(param, TyperArgument):
        names = f"`{param.metavar or param.name.upper()}`"
    kind = "" if getattr(param, "is_flag", False) else (param.display_type_rich(ctx) or "")
    default = param.get_default(ctx) if not param.required else None
    shown = "" if default is None or default == "" or (isinstance(default, bool) and not default) else _code(default)
    if isinstance(default, bool) and default:
        shown = "on"
    value = f"`{kind}`" if kind else ""
    return f"| {names} | {value} | {shown} | {_cell(param.help or '')} |"


def reference() -> str:
    """Markdown: per command, its usage line, what it does, and a table of its arguments and options."""
    root = typer.main.get_command(app)
    ctx = typer.Context(root, info_name="activelab")
    shared = [p for p in root.get_params(ctx) if p.name not in ("help", "install_completion", "show_completion")]
    parts = [
        "### options of every command",
        "",
        "`activelab [--quiet] COMMAND ...`",
        "",
        "| argument / option | value | default | meaning |",
        "|---|---|---|---|",
        *[_option_row(p, ctx) for p in shared],
        "",
    ]
    for path, cmd, sub in commands(root, ctx, "activelab"):
        params = [p for p in cmd.get_params(sub) if not p.hidden and p.name != "help"]
        usage = " ".join([path, *cmd.collect_usage_pieces(sub)])
        lines = [
            f"### `{path.removeprefix('activelab ')}`",
            "",
            f"`{usage}`",
            "",
            _cell((cmd.help or "").split("\n\n")[0]),
            "",
        ]
        if params:
            lines += ["| argument / option | value | default | meaning |", "|---|---|---|---|"]
            lines += [_option_row(p, sub) for p in params]
            lines.append("")
        parts.append("\n".join(lines))
    return "\n".join(parts)


def write(doc: Path = DOC) -> None:
    """Replace the reference part of ``doc`` with :func:`reference`."""
    text = doc.read_text(encoding="utf-8")
    head, rest = text.split(START)
    _, tail = rest.split(END)
    doc.write_text(f"{head}{START}\n\n{reference()}\n{END}{tail}", encoding="utf-8")


if __name__ == "__main__":
    if "--write" in sys.argv[1:]:
        write()
    else:
        print(reference())
