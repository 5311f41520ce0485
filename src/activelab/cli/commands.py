"""How the CLI's help and usage errors look: workflow order, PROJECT metavars, shown defaults, ``error:``."""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence
from typing import Any, TypeVar

import typer
from typer._click.exceptions import (
    ClickException,  # typer vendors click; its usage errors are these
)
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from activelab.cli.output import print_error
from activelab.exceptions import InputError

T = TypeVar("T")

WORKFLOW_ORDER = (
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
    "embed",
    "classes",
    "datasets",
    "strategies",
    "models",
    "simulate",
    "demo",
)


class CliCommand(TyperCommand):
    """A command whose usage line reads ``activelab query [OPTIONS] PROJECT`` and whose switches show no type."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain_metavars(super().get_params(ctx))

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                name = param.display_name_raw + ("..." if param.nargs != 1 else "")
                pieces.append(name if param.required else f"[{name}]")
        return pieces


class WorkflowGroup(TyperGroup):
    """Lists commands in the order a user needs them and prints usage errors as ``error: ...``."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain_metavars(super().get_params(ctx))

    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        rank = {name: i for i, name in enumerate(WORKFLOW_ORDER)}
        return sorted(names, key=lambda name: (rank.get(name, len(rank)), name))

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        run = functools.partial(
            super().main,
            args,
            prog_name,
            complete_var,
            standalone_mode=False,
            windows_expand_args=windows_expand_args,
            **extra,
        )
        if not standalone_mode:
            return run()
        try:
            code = run()
        except ClickException as exc:
            if type(exc).__name__ != "NoArgsIsHelpError":  # help was already printed
                _print_usage_error(exc)
            sys.exit(exc.exit_code)
        except typer.Abort:
            print_error("aborted")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def _plain_metavars(params: list[Any]) -> list[Any]:
    """Arguments shown as PROJECT (not {project}); switches with no ``<bool>`` placeholder."""
    for param in params:
        if isinstance(param, TyperArgument) and param.metavar is None:
            param.metavar = (param.name or "").upper()
        elif isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
            param.metavar = ""
    return params


def _print_usage_error(exc: ClickException) -> None:
    ctx = getattr(exc, "ctx", None)
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    print_error(exc.format_message() + hint)


def new_app(**kwargs: Any) -> typer.Typer:
    """A Typer app (or command group) in workflow order, with defaults shown in help."""
    return typer.Typer(
        cls=WorkflowGroup,
        context_settings={"show_default": True},
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        **kwargs,
    )


def finish(app: typer.Typer) -> None:
    """Give every command registered so far (in groups too) the CLI's usage line; call after registering."""
    for command in app.registered_commands:
        if command.cls in (None, TyperCommand):  # typer fills in its own class; a custom one is kept
            command.cls = CliCommand
    for group in app.registered_groups:
        if group.typer_instance is not None:
            finish(group.typer_instance)


def either(option: str, value: T, old_option: str, old_value: T) -> T:
    """The value of an option given under its name or under its old, hidden spelling (not both)."""
    if old_value is None:
        return value
    if value is not None and value != old_value:
        raise InputError(f"{option} and {old_option} (its old spelling) disagree: pass only {option}")
    return old_value


#: the spellings of ``--mode`` before 0.x (``--path fast|full``); activelab.loop.settings.OLD_MODE_NAMES, not
#: imported: it loads pydantic, and ``--help`` must stay fast
OLD_MODE_NAMES = {"fast": "frozen", "full": "finetune"}


def mode_name(old: str | None) -> str | None:
    """The ``--mode`` value an old ``--path fast|full`` meant (other values pass through for the settings to refuse)."""
    return None if old is None else OLD_MODE_NAMES.get(old, old)
