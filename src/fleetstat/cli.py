"""The ``fleetstat`` command. Thin: parse arguments, call the library, print.

Exit codes: 0 success, 1 some hosts failed (collect) or a runtime error,
2 a config error or bad usage.
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from fleetstat import __version__
from fleetstat.errors import ConfigError, FleetstatError
from fleetstat.model import HostResult, RoundResult

if TYPE_CHECKING:
    from fleetstat.app import CollectOutcome
    from fleetstat.store.reports import HostState

app = typer.Typer(
    name="fleetstat",
    help="Agentless machine statistics over SSH: probe every host, store, alert.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema commands.", no_args_is_help=True)
app.add_typer(db_app, name="db")
mail_app = typer.Typer(help="The alert mail outbox.", no_args_is_help=True)
app.add_typer(mail_app, name="mail")

out = Console(soft_wrap=False, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)

ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", help="The XML config file.", show_default=True)
]
DbOpt = Annotated[
    str | None, typer.Option("--db", help="Database URL; overrides <database> in the config.")
]


def _fail(exc: FleetstatError) -> typer.Exit:
    if isinstance(exc, ConfigError):
        err.print(f"[bold red]config error[/] ({len(exc.issues)} issue(s)):", highlight=False)
        for issue in exc.issues:
            err.print(f"  {issue}", highlight=False, markup=False)
    else:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
    return typer.Exit(exc.exit_code)


def _load(path: Path):
    from fleetstat.config import load_config

    config = load_config(path)
    for warning in config.warnings:
        err.print(f"[yellow]warning:[/] {warning}", highlight=False)
    return config


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fleetstat {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        logging.getLogger("asyncssh").setLevel(logging.ERROR)


@app.command("check-config")
def check_config(
    file: Annotated[Path | None, typer.Argument(help="The XML config file.")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Same, as an option.")
    ] = None,
) -> None:
    """Validate a config file and report every problem at once.

    Example: fleetstat check-config /etc/fleetstat/fleetstat.xml
    """
    path = file or config
    if path is None:
        err.print("give the config file: fleetstat check-config FILE")
        raise typer.Exit(2)
    try:
        cfg = _load(path)
    except FleetstatError as exc:
        raise _fail(exc) from None
    alerts = sum(len(c.alerts) for c in cfg.clients)
    out.print(
        f"{path}: ok, {len(cfg.clients)} client(s), {alerts} alert rule(s), "
        f"database {cfg.database_url}",
        highlight=False,
    )


@app.command()
def collect(
    config: ConfigOpt = Path("fleetstat.xml"),
    db: DbOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No table, only errors.")] = False,
) -> None:
    """Run one round over every client in the config and store the results.

    Exits 0 when every host succeeded, 1 when some failed, 2 on a config error.

    Example: fleetstat collect -c /etc/fleetstat/fleetstat.xml
    """
    from fleetstat.app import collect_once

    try:
        cfg = _load(config)
        with _progress(len(cfg.clients)) as progress:
            outcome = collect_once(cfg, progress=progress, database_url=db)
    except FleetstatError as exc:
        raise _fail(exc) from None
    if not quiet:
        out.print(summary_table(outcome.round))
    r = outcome.round
    retries = f", {r.retries} retried connection(s)" if r.retries else ""
    seconds = (r.finished_at - r.started_at).total_seconds()
    out.print(
        f"round {outcome.round_id}: {r.ok_count}/{len(r.results)} ok, {r.failed_count} failed"
        f"{retries} in {seconds:.1f}s; stored in {outcome.database}",
        highlight=False,
    )
    out.print(_mail_line(outcome), highlight=False, markup=False)
    raise typer.Exit(0 if r.failed_count == 0 else 1)


@app.command()
def keygen(
    path: Annotated[Path | None, typer.Argument(help="Private key file to write.")] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Same, as an option.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing key.")] = False,
) -> None:
    """Write the server's X25519 key pair: PATH (mode 0600) and PATH.pub.

    Probes seal their output to the public key; only this private key opens it.
    Default PATH: fleetstat.key in the current folder.

    Example: fleetstat keygen /etc/fleetstat/fleetstat.key
    """
    from fleetstat import envelope

    target = path or output or Path("fleetstat.key")
    try:
        public = envelope.generate_keypair(target, force=force)
    except FleetstatError as exc:
        raise _fail(exc) from None
    out.print(f"wrote {target} (private, 0600) and {target}.pub", highlight=False)
    out.print(f"public key: {envelope.public_key_b64(public)}", highlight=False)


@app.command()
def probe(
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write probe.pyz.")],
) -> None:
    """Write the exact probe zipapp that collect uploads, to audit or run by hand.

    Example: fleetstat probe --output probe.pyz && python3 probe.pyz --help
    """
    from fleetstat.probe_bundle import build_probe, probe_digest

    data = build_probe()
    output.write_bytes(data)
    out.print(f"wrote {output}: {len(data)} bytes, sha256 {probe_digest()}", highlight=False)


@db_app.command("upgrade")
def db_upgrade(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="The XML config.")] = None,
    db: DbOpt = None,
) -> None:
    """Create or upgrade the database schema to the latest revision.

    Example: fleetstat db upgrade -c fleetstat.xml   (or --db postgresql://host/fleetstat)
    """
    from fleetstat.store import Store

    try:
        url = db or (_load(config).database_url if config else None)
        if url is None:
            err.print("give --config FILE or --db URL")
            raise typer.Exit(2)
        store = Store(url)
        store.upgrade()
        out.print(f"{store.display_url}: at revision {store.current_revision()}", highlight=False)
    except FleetstatError as exc:
        raise _fail(exc) from None


@app.command()
def alerts(
    config: ConfigOpt = Path("fleetstat.xml"),
    db: DbOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array on stdout.")] = False,
    pending: Annotated[
        bool, typer.Option("--pending", help="Also alerts waiting for their for= count.")
    ] = False,
) -> None:
    """List the alerts firing now: host, rule, value, limit, since, last mailed.

    Example: fleetstat alerts -c /etc/fleetstat/fleetstat.xml --json
    """
    import json

    from fleetstat.app import list_alerts

    try:
        views = list_alerts(_load(config), database_url=db, pending=pending)
    except FleetstatError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps([view.as_json() for view in views], indent=2))
        return
    if not views:
        out.print("no alerts firing", highlight=False)
        return
    table = Table(header_style="bold")
    for name in ("host", "address", "rule", "state", "value", "limit", "since", "last mailed"):
        table.add_column(name, overflow="fold")
    for view in views:
        table.add_row(
            view.host,
            f"{view.client_ip}:{view.client_port}",
            view.rule,
            view.state,
            _alert_number(view.metric, view.value),
            _alert_number(view.metric, view.limit),
            _when(view.since),
            _when(view.last_notified_at),
        )
    out.print(table)


@mail_app.command("flush")
def mail_flush(
    config: ConfigOpt = Path("fleetstat.xml"),
    db: DbOpt = None,
    due_only: Annotated[
        bool, typer.Option("--due-only", help="Respect the retry backoff (as collect does).")
    ] = False,
) -> None:
    """Send the queued alert mail now; exit 1 when anything could not be sent.

    Example: fleetstat mail flush -c /etc/fleetstat/fleetstat.xml
    """
    from fleetstat.app import flush_mail

    try:
        report = flush_mail(_load(config), database_url=db, everything=not due_only)
    except FleetstatError as exc:
        raise _fail(exc) from None
    for entry in report.sent:
        out.print(f"sent {entry.id}: {entry.subject} -> {', '.join(entry.recipients)}",
                  highlight=False, markup=False)  # fmt: skip
    for entry in report.failed:
        err.print(f"failed {entry.id} (attempt {entry.attempts}): {entry.subject}: "
                  f"{entry.last_error}", highlight=False, markup=False)  # fmt: skip
    for entry in report.failing_for_long:
        err.print(f"unsent since {_when(entry.created_at)}: {entry.id} {entry.subject} "
                  f"({entry.attempts} attempts; last error: {entry.last_error})",
                  highlight=False, markup=False)  # fmt: skip
    if report.error is not None:
        err.print(f"[bold red]error:[/] {report.error}", highlight=False)
    out.print(f"mail: {len(report.sent)} sent, {len(report.failed)} failed, "
              f"{report.pending} queued", highlight=False)  # fmt: skip
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def watch(
    config: ConfigOpt = Path("fleetstat.xml"),
    every: Annotated[
        str, typer.Option("--every", help="Interval between round starts: 30s, 5m, 1h.")
    ] = "5m",
    db: DbOpt = None,
) -> None:
    """Collect every --every until SIGTERM or Ctrl-C; retention once a day.

    Rounds never overlap (a slow round delays the next, and says so). SIGTERM or
    Ctrl-C finishes the round in flight, flushes the outbox and exits 0; a second
    one aborts. One key=value log line per round and per failed host on stderr
    (journald-ready). See contrib/fleetstat.service for systemd.

    Example: fleetstat watch -c /etc/fleetstat/fleetstat.xml --every 5m
    """
    from fleetstat.units import parse_duration
    from fleetstat.watch import MIN_EVERY_SECONDS, configure_logging, watcher_for

    try:
        seconds = parse_duration(every)
    except ValueError as exc:
        err.print(f"--every: {exc}", highlight=False)
        raise typer.Exit(2) from None
    if seconds < MIN_EVERY_SECONDS:
        err.print(f"--every must be at least {MIN_EVERY_SECONDS}s", highlight=False)
        raise typer.Exit(2)
    try:
        cfg = _load(config)
    except FleetstatError as exc:
        raise _fail(exc) from None
    configure_logging()
    watcher = watcher_for(cfg, seconds, database_url=db)
    watcher.install_signal_handlers()
    raise typer.Exit(watcher.run())


@app.command()
def report(
    config: ConfigOpt = Path("fleetstat.xml"),
    db: DbOpt = None,
    host: Annotated[
        list[str] | None, typer.Option("--host", help="Only this client (name, ip or ip:port).")
    ] = None,
    failing: Annotated[
        bool, typer.Option("--failing", help="Only hosts whose last attempt failed.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array on stdout.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV with a header row on stdout.")] = False,
) -> None:
    """The latest state of every configured host: status, last sample, figures, alerts.

    Example: fleetstat report -c /etc/fleetstat/fleetstat.xml --failing
    """
    import json

    from fleetstat.app import report as latest_report

    try:
        states = latest_report(_load(config), database_url=db, hosts=host, failing=failing)
    except FleetstatError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps([state.as_json() for state in states], indent=2))
        return
    if as_csv:
        import csv

        rows = [state.as_json() for state in states]
        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else ["host"])
        writer.writeheader()
        for row in rows:
            writer.writerow(row | {"alerts": " ".join(row["alerts"])})
        return
    out.print(_report_table(states))


@app.command()
def history(
    host: Annotated[str, typer.Argument(help="The client: its name, ip or ip:port.")],
    config: ConfigOpt = Path("fleetstat.xml"),
    db: DbOpt = None,
    since: Annotated[str, typer.Option("--since", help="How far back: 1h, 7d, 30d.")] = "7d",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
    width: Annotated[int, typer.Option("--width", help="Plot width in characters.")] = 48,
) -> None:
    """Min/avg/max of CPU, memory, swap and disk over a window, with a small plot.

    Example: fleetstat history web-01 -c /etc/fleetstat/fleetstat.xml --since 7d
    """
    import json
    from datetime import UTC, timedelta

    from fleetstat.app import history as host_history
    from fleetstat.units import parse_duration

    try:
        window = parse_duration(since)
    except ValueError as exc:
        err.print(f"--since: {exc}", highlight=False)
        raise typer.Exit(2) from None
    until = datetime.now(UTC)
    try:
        found = host_history(_load(config), host, until - timedelta(seconds=window),
                             until=until, database_url=db, buckets=max(1, width))  # fmt: skip
    except FleetstatError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps(found.as_json(), indent=2))
        return
    from fleetstat.store.reports import sparkline

    out.print(f"{found.name} ({found.client_ip}:{found.client_port}) since {_when(found.since)}: "
              f"{found.samples} sample(s), {found.failed_attempts} failed of "
              f"{found.attempts} attempt(s)", highlight=False, markup=False)  # fmt: skip
    out.print(f"first {_when(found.first_sample_at)}, last {_when(found.last_sample_at)}",
              highlight=False)  # fmt: skip
    table = Table(header_style="bold")
    for name in ("figure", "min", "avg", "max"):
        table.add_column(name, justify="left" if name == "figure" else "right")
    for name, stat in found.stats.items():
        table.add_row(f"{name} %", _pct(stat.min), _pct(stat.avg), _pct(stat.max))
    out.print(table)
    step = _human_duration(found.bucket_seconds) if found.bucket_seconds >= 60 else (
        f"{found.bucket_seconds}s")  # fmt: skip
    out.print(f"CPU    |{sparkline(found.cpu_series)}|  (0-100 %, one mark per {step})",
              highlight=False, markup=False)  # fmt: skip
    out.print(f"memory |{sparkline(found.memory_series)}|", highlight=False, markup=False)


@app.command()
def prune(
    config: ConfigOpt = Path("fleetstat.xml"),
    db: DbOpt = None,
) -> None:
    """Delete rows older than <retention> allows, in small batches; keeps what is needed.

    Never deleted: each host's latest sample and attempt, the rows of hosts with an
    unresolved alert, unsent mail. watch does this once a day by itself.

    Example: fleetstat prune -c /etc/fleetstat/fleetstat.xml
    """
    from fleetstat.app import prune_now

    try:
        cfg = _load(config)
        if cfg.retention == type(cfg.retention)():
            out.print(f"{config}: no <retention>: everything is kept", highlight=False)
            return
        done = prune_now(cfg, database_url=db)
    except FleetstatError as exc:
        raise _fail(exc) from None
    out.print(f"pruned {done.samples} sample(s), {done.attempts} attempt(s), {done.events} "
              f"event(s), {done.mail} sent mail, {done.rounds} round(s) in {done.batches} "
              f"batch(es), {done.seconds:.1f}s", highlight=False)  # fmt: skip


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option("--dir", help="Folder for the demo's files.")] = Path(
        "demo"
    ),
    hosts: Annotated[int, typer.Option("--hosts", help="Number of simulated hosts.")] = 5,
) -> None:
    """Start a local sshd with a few simulated hosts on loopback and collect from them.

    Everything stays on this machine: the hosts are 127.1.0.x addresses served by a
    private OpenSSH sshd, the database is SQLite in --dir.

    Example: fleetstat demo --hosts 5
    """
    from fleetstat.demo import run_demo

    try:
        code = run_demo(workdir.resolve(), hosts=hosts, console=out)
    except FleetstatError as exc:
        raise _fail(exc) from None
    raise typer.Exit(code)


# -- output helpers -----------------------------------------------------------


def _human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, _ = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m"


def _mail_line(outcome: CollectOutcome) -> str:
    line = f"mail: {outcome.mail_sent} sent, {outcome.mail_queued} queued"
    if outcome.mail_failed:
        line += f", {outcome.mail_failed} failed"
    if outcome.mail_error:
        line += f" ({outcome.mail_error})"
    return line


def _alert_number(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if metric == "load" else f"{value:.1f}%"


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment is not None else "-"


def _pct(value: object) -> str:
    return f"{value:.1f}" if isinstance(value, int | float) else "-"


def _report_table(states: list[HostState]) -> Table:
    table = Table(header_style="bold")
    for name, justify in [
        ("host", "left"), ("status", "left"), ("sample age", "right"), ("CPU %", "right"),
        ("mem %", "right"), ("swap %", "right"), ("fullest disk", "left"), ("load", "right"),
        ("uptime", "right"), ("alerts", "left"),
    ]:  # fmt: skip
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for s in states:
        style = "green" if s.status == "ok" else "red"
        cpu = s.cpu_interval_percent if s.cpu_interval_percent is not None else s.cpu_percent
        disk = f"{_pct(s.disk_max_percent)}% {s.disk_max_mount}" if s.disk_max_mount else "-"
        table.add_row(
            s.name,
            f"[{style}]{s.status}[/]",
            _human_duration(s.sample_age_seconds) if s.sample_age_seconds is not None else "never",
            _pct(cpu),
            _pct(s.memory_percent),
            _pct(s.swap_percent),
            disk,
            f"{s.load1:.2f}" if s.load1 is not None else "-",
            _human_duration(s.uptime_seconds),
            f"[red]{' '.join(s.alerts)}[/]" if s.alerts else "",
        )
    return table


def summary_table(result: RoundResult) -> Table:
    table = Table(title=None, show_lines=False, header_style="bold")
    for name, justify in [
        ("host", "left"),
        ("address", "left"),
        ("status", "left"),
        ("CPU %", "right"),
        ("memory %", "right"),
        ("uptime", "right"),
        ("error", "left"),
    ]:
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for r in result.results:
        doc = r.document or {}
        style = "green" if r.ok else "red"
        table.add_row(
            r.client.label,
            r.client.address,
            f"[{style}]{r.status.value}[/]",
            _pct((doc.get("cpu") or {}).get("used_percent")),
            _pct((doc.get("memory") or {}).get("used_percent")),
            _human_duration(doc.get("uptime_seconds")),
            r.error or "",
        )
    return table


class _progress:
    """A progress bar on a terminal; one plain line per finished host otherwise."""

    def __init__(self, total: int) -> None:
        self.total = total
        self._bar = None
        self._task = None

    def __enter__(self):
        if err.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

            self._bar = Progress(
                "collecting", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                console=err, transient=True,
            )  # fmt: skip
            self._bar.start()
            self._task = self._bar.add_task("hosts", total=self.total)
        return self.update

    def update(self, result: HostResult) -> None:
        if self._bar is not None:
            self._bar.advance(self._task)
        elif not result.ok:
            err.print(
                f"{result.status.value} {result.client.address} "
                f"{result.duration_seconds:.2f}s {result.error or ''}",
                highlight=False,
                markup=False,
            )

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


def main() -> None:
    app()
