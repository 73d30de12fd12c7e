"""``fleetstat demo``: a real round against simulated hosts on this machine.

Starts one private OpenSSH sshd that answers on a few 127.1.0.x addresses (see
``simfleet``), writes a config for them into the demo folder (SQLite database,
server key, known_hosts), runs ``collect`` and shows the table and the stored rows.

It also starts a local SMTP sink (aiosmtpd, the ``demo`` extra) on 127.0.0.1, gives
the first hosts alert rules they cannot help breaking, and prints the first alert
mail the sink caught; every caught message is kept as ``<dir>/mail/NNN.eml``.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import threading
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from rich.console import Console

from fleetstat.present import inert_lines, summary_table
from fleetstat.simfleet import SimFleet, SimFleetError, free_port
from fleetstat.units import format_duration

if TYPE_CHECKING:
    from fleetstat.app import CollectOutcome
    from fleetstat.config import Config

INSTALL_HINT = "pip install 'fleetstat[demo]'  (or: pip install aiosmtpd)"
# Rules that fire on any machine, so the demo shows a real alert mail. repeat="0":
# every demo run mails again, even with the database of the previous run.
DEMO_ALERTS = {
    0: (
        '<alert type="memory" limit="1%" repeat="0"/>',
        '<alert type="cpu" limit="0%" repeat="0"/>',
    ),
    1: ('<alert type="disk" limit="1%" repeat="0"/>',),
}


class MailSink:
    """A local SMTP server that keeps what it receives: in memory and as NNN.eml files."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.messages: list[EmailMessage] = []
        self._lock = threading.Lock()
        self._controller: Any = None

    def __enter__(self) -> MailSink:
        from aiosmtpd.controller import Controller

        self.folder.mkdir(parents=True, exist_ok=True)
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data = bytes(envelope.content)
        message = message_from_bytes(data, policy=default_policy)
        with self._lock:
            existing = len(list(self.folder.glob("*.eml")))
            (self.folder / f"{existing + 1:03d}.eml").write_bytes(data)
            if isinstance(message, EmailMessage):
                self.messages.append(message)
        return "250 2.0.0 caught by the fleetstat demo sink"


def _demo_clients(fleet: SimFleet, auth: str) -> str:
    elements = []
    for index in range(len(fleet.hosts)):
        line = fleet.client_xml(auth=auth, mail="owner@example.com", indices=[index]).strip()
        rules = DEMO_ALERTS.get(index)
        if rules:
            children = "".join(f"\n    {rule}" for rule in rules)
            line = f"{line.removesuffix('/>').rstrip()}>{children}\n  </client>"
        elements.append(f"  {line}")
    return "\n".join(elements)


def write_demo_config(workdir: Path, fleet: SimFleet, smtp_port: int | None = None) -> Path:
    auth = "password" if fleet.as_root else "key"
    smtp = (
        f'  <smtp host="127.0.0.1" port="{smtp_port}" starttls="false" '
        'from="fleetstat@localhost"/>\n'
        if smtp_port
        else ""
    )
    path = workdir / "fleetstat.xml"
    path.write_text(
        f"""<?xml version="1.0" encoding="utf-8"?>
<!-- fleetstat demo config: hosts are simulated on loopback by a private sshd. -->
<fleetstat>
  <database url="sqlite:///fleetstat.db"/>
  <key path="fleetstat.key"/>
{smtp}  <defaults concurrency="50" connect-timeout="10s" run-timeout="30s"
            host-keys="strict" known-hosts="{fleet.known_hosts}"/>
{_demo_clients(fleet, auth)}
</fleetstat>
""",
        encoding="utf-8",
    )
    path.chmod(0o600)  # it holds the simulated hosts' password
    return path


DEMO_PORT = 8760
DEMO_USER = "demo"


def run_demo(
    workdir: Path, *, hosts: int, console: Console, keep: bool = False, every: float = 60.0
) -> int:
    """One round against ``hosts`` simulated hosts; with ``keep``, then serve until a signal.

    With ``keep`` the simulated hosts, the mail sink and ``fleetstat serve`` (API,
    dashboard, a round every ``every`` seconds) stay up until SIGTERM or Ctrl-C, so ``collect``,
    ``watch``, ``report`` and a browser can be tried against them.
    """
    from fleetstat.app import collect_once
    from fleetstat.config import load_config

    workdir.mkdir(parents=True, exist_ok=True)
    sink = _mail_sink(workdir, console)
    fleet = SimFleet(workdir / "fleet", count=hosts)
    try:
        fleet.start()
    except OSError as exc:  # no namespace, no permission on --dir, ...
        fleet.stop()
        raise SimFleetError(f"the simulated hosts cannot start: {exc}") from exc
    # Started above, so not ``with fleet`` (its __enter__ would start a second sshd
    # on the same port, which fails): stopped in the finally.
    try:
        with sink if sink is not None else contextlib.nullcontext():
            console.print(
                f"started a private sshd on port {fleet.port} for {hosts} simulated hosts "
                f"({fleet.hosts[0].address} ... {fleet.hosts[-1].address})",
                highlight=False,
            )
            config_path = write_demo_config(workdir, fleet, sink.port if sink else None)
            config = load_config(config_path)
            outcome = collect_once(config)
            _show_outcome(console, outcome, sink)
            if keep:
                return _keep_running(config, config_path, console, every)
    finally:
        fleet.stop()
    db_file = workdir / "fleetstat.db"
    console.print(
        f"config: {config_path}; the simulated hosts are stopped again "
        "(fleetstat demo --keep leaves them and the API running).\n"
        f"look at the rows: sqlite3 {db_file} "
        '"select client_ip, hostname, cpu_percent, memory_percent from samples"',
        highlight=False,
    )
    return 0 if outcome.round.failed_count == 0 else 1


def _show_outcome(console: Console, outcome: CollectOutcome, sink: MailSink | None) -> None:
    console.print(summary_table(outcome.round))
    r = outcome.round
    console.print(
        f"{r.ok_count}/{len(r.results)} hosts ok; round {outcome.round_id} stored in "
        f"{outcome.database}",
        highlight=False,
    )
    console.print(f"mail: {outcome.mail_sent} sent, {outcome.mail_queued} queued", highlight=False)
    if sink is not None and sink.messages:
        _show_message(console, sink, sink.messages[0])


def _keep_running(config: Config, config_path: Path, console: Console, every: float) -> int:
    """A demo user with a fresh password, then ``fleetstat serve`` in this process."""
    from fleetstat import auth
    from fleetstat.app import open_store
    from fleetstat.serve import ServeOptions, run_serve
    from fleetstat.store import accounts
    from fleetstat.watch import configure_logging

    password = secrets.token_urlsafe(12)
    hashed = auth.hash_password(password)
    with open_store(config) as store:
        if not accounts.set_password(store, DEMO_USER, hashed):
            accounts.add_user(store, DEMO_USER, hashed, datetime.now(UTC))
    port = DEMO_PORT if _port_free(DEMO_PORT) else 0
    url = f"http://127.0.0.1:{port}" if port else "the url= of the serve_start line below"
    console.print(
        f"""
Still running until Ctrl-C: the simulated hosts, the mail sink, and fleetstat serve
(a round every {format_duration(every)}) on {url}
  dashboard: {url}/  (log in as {DEMO_USER}, password {password})
  API:      {url}/openapi.json  (docs/api.md describes it)
  curl:     curl -d username={DEMO_USER} -d password={password} {url}/api/v1/login
  commands: fleetstat report -c {config_path}
            fleetstat collect -c {config_path}
            fleetstat history sim-000 -c {config_path} --since 1h""",
        highlight=False,
        markup=False,
    )
    configure_logging()
    return run_serve(config, ServeOptions(host="127.0.0.1", port=port, every=every))


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _mail_sink(workdir: Path, console: Console) -> MailSink | None:
    try:
        import aiosmtpd.controller  # noqa: F401
    except ImportError:
        console.print(
            f"(alert mail is not shown: the demo's SMTP sink needs aiosmtpd: {INSTALL_HINT})",
            highlight=False,
            markup=False,
        )
        return None
    return MailSink(workdir / "mail")


def _show_message(console: Console, sink: MailSink, message: EmailMessage) -> None:
    console.print(
        f"\nthe local SMTP sink caught {len(sink.messages)} alert mail(s) "
        f"(saved in {sink.folder}); the first one:\n",
        highlight=False,
    )
    headers = "".join(f"{name}: {message[name]}\n" for name in ("From", "To", "Date", "Subject"))
    body = str(message.get_content()).replace("\r\n", "\n")
    # What a host wrote, as text: never markup, control characters shown.
    console.print(inert_lines(headers + "\n" + body), highlight=False)
