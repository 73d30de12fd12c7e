"""What every command module shares: the click classes, the common options and
the config loader that shows the config's warnings."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from fleetstat.config import Config


class Command(click.Command):
    def get_short_help_str(self, limit: int = 45) -> str:
        # The whole first paragraph of the docstring, wrapped: click would cut it
        # at about 60 characters with "...".
        return " ".join((self.short_help or self.help or "").split("\n\n")[0].split())


class Group(click.Group):
    command_class = Command

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # in the order registered, not sorted

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # No arguments is bad usage: help on stdout, exit 2. click 8.2 and later
        # print this help on stderr; fleetstat always printed it on stdout.
        if not args and self.no_args_is_help and not ctx.resilient_parsing:
            click.echo(ctx.get_help(), color=ctx.color)
            ctx.exit(2)
        return super().parse_args(ctx, args)


def command(name: str | None = None) -> Any:
    """``@click.command`` with fleetstat's help formatting."""
    return click.command(name, cls=Command)


def group(name: str) -> Any:
    """``@click.group`` with fleetstat's help formatting; no arguments shows the help."""
    return click.group(name, cls=Group, no_args_is_help=True)


class Duration(click.ParamType):
    """A duration as operators write it (``30s``, ``5m``, ``7d``), in seconds, at least
    ``minimum``: a bad one is a usage error (exit 2) that names the option."""

    name = "duration"

    def __init__(self, minimum: float = 0.0, *, inclusive: bool = True) -> None:
        self.minimum = minimum
        self.inclusive = inclusive

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, float):
            return value
        from fleetstat.units import parse_duration

        try:
            seconds = parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        if seconds < self.minimum or (not self.inclusive and seconds == self.minimum):
            bound = "at least" if self.inclusive else "more than"
            self.fail(f"{value!r}: give {bound} {self.minimum:g}s", param, ctx)
        return seconds


PATH = click.Path(path_type=Path)
config_option = click.option(
    "--config", "-c", type=PATH, default="fleetstat.xml", show_default=True,
    help="The XML config file.",
)  # fmt: skip


class DatabaseUrl(click.ParamType):
    """``--db``: normalised exactly as ``<database url=...>`` (one function for both);
    a bad one is a usage error (exit 2) whose message does not repeat the URL."""

    name = "url"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from fleetstat.config.dburl import normalize_database_url
        from fleetstat.config.validate import Invalid

        try:
            return normalize_database_url(str(value), Path.cwd())
        except Invalid as exc:
            self.fail(f"{exc.message} (fix: {exc.fix})" if exc.fix else exc.message, param, ctx)


db_option = click.option(
    "--db", type=DatabaseUrl(),
    help="Database URL (sqlite:///file.db, postgresql://..., mysql://..., mariadb://...); "
    "overrides <database> in the config.",
)  # fmt: skip


def load_config(path: Path) -> Config:
    """The config at ``path``; its warnings (e.g. a readable password) go to stderr."""
    from fleetstat.config import load_config as load
    from fleetstat.present import warn

    config = load(path)
    for warning in config.warnings:
        warn(warning)
    return config
