"""The ``fleetstat`` command: the click group, the registration of the commands
(one module each in :mod:`fleetstat.commands`) and the one place where an error
becomes a message and an exit code.

Exit codes: 0 success, 1 some hosts failed (collect) or a runtime error,
2 a config error or bad usage (click's own usage errors and ``UsageError``),
69 the database did not take the round, which waits in the spool (collect;
``spool replay`` when rounds are still waiting), 75 another round holds the
database's round lock (``RoundLockedError``), 130 after Ctrl-C on collect.
Nothing in fleetstat imports this module.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Any, NoReturn

import click
from click.exceptions import Exit

from fleetstat import __version__
from fleetstat.commands import (
    alerts,
    check_config,
    cluster,
    collect,
    db,
    demo,
    keys,
    mail,
    reports,
    serve,
    spool,
    users,
    watch,
)
from fleetstat.commands.common import Group
from fleetstat.errors import FleetstatError
from fleetstat.present import error_line, show_error

log = logging.getLogger("fleetstat.cli")


class _Fleetstat(Group):
    def invoke(self, ctx: click.Context) -> Any:
        # Every command and sub-command runs inside this call: a FleetstatError
        # (config, usage, store, mail, ...) ends here as a message and its exit
        # code; anything else is a bug, said in one line (-v: the traceback).
        try:
            return super().invoke(ctx)
        except (click.ClickException, Exit, click.Abort):
            raise
        except FleetstatError as exc:
            raise Exit(show_error(exc)) from None
        except Exception as exc:
            log.debug("internal error", exc_info=True)
            error_line(f"internal error (a bug in fleetstat): {type(exc).__name__}: {exc}"
                       f"{'' if _verbose(ctx) else '; run with -v for the traceback'}")  # fmt: skip
            raise Exit(1) from None


def _verbose(ctx: click.Context) -> bool:
    return bool(ctx.params.get("verbose"))


def _version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"fleetstat {__version__}")
        ctx.exit()


@click.group("fleetstat", cls=_Fleetstat, no_args_is_help=True)
@click.option("--verbose", "-v", is_flag=True, help="Debug logging.")
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_version,
              help="Show version.")  # fmt: skip
def app(verbose: bool) -> None:
    """Agentless machine statistics over SSH: probe every host, store, alert."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        logging.getLogger("asyncssh").setLevel(logging.ERROR)


# The order of `fleetstat --help`. A new command: a module in fleetstat/commands/
# and one line here.
app.add_command(check_config.check_config)
app.add_command(collect.collect)
app.add_command(keys.keygen)
app.add_command(keys.probe)
app.add_command(keys.open_envelope)
app.add_command(alerts.alerts)
app.add_command(watch.watch)
app.add_command(serve.serve)
app.add_command(reports.report)
app.add_command(reports.history)
app.add_command(reports.prune)
app.add_command(demo.demo)
# Sub-groups last: the help lists them after the commands.
app.add_command(db.db)
app.add_command(mail.mail)
app.add_command(users.user)
app.add_command(users.token)
app.add_command(spool.spool)
app.add_command(cluster.worker)
app.add_command(cluster.cluster)


def run() -> int:
    """Run the command line (``sys.argv``) and return its exit code."""
    try:
        app()  # standalone mode: every outcome, errors included, ends in SystemExit
    except SystemExit as exc:
        code = exc.code
    else:  # pragma: no cover - click always exits in standalone mode
        code = 0
    if code is None or isinstance(code, int):
        return code or 0
    click.echo(code, err=True)  # sys.exit("message") semantics
    return 1


def exit_now(code: int) -> NoReturn:
    """Flush, close the log handlers and leave with ``os._exit``: no interpreter teardown.

    When a command has returned, everything it opened is closed (the store, SMTP
    sessions, the event loop and its executor: all ``with`` blocks), so the
    interpreter's finalization would only free a round's objects one by one and
    unload some 700 modules: 0.15-0.27 s of CPU after a 500-host ``collect``,
    about 0.4 ms per host (``/usr/bin/time`` with and without, 3 pairs).
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        # A closed pipe or stream: there is nothing more to say on it.
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def main() -> None:
    """The ``fleetstat`` console script."""
    exit_now(run())
