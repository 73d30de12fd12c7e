"""The frozen values ``load_config`` returns (see docs/contracts.md, "Config dataclasses").

Fields beyond the contract: ``Smtp.password_env``, ``Smtp.cafile``, ``Smtp.admin``,
``Client.events_max``, ``Retention`` and ``Config.retention``, ``Http`` and ``Config.http``,
``UnsetSecret`` and ``Config.unset_secrets``, ``SpoolSettings`` and ``Config.spool``,
``Config.database_alert_after``, ``Cluster``, ``Config.cluster``, ``Client.zone``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

HostKeyPolicy = Literal["strict", "accept-new", "off"]
AlertType = Literal["memory", "cpu", "cpu-core", "swap", "disk", "load", "unreachable"]
AlertWindow = Literal["short", "interval"]
# A memory rule's figures: the host's, or the probe's cgroup's (its memory limit
# and usage, when a limit below the host's RAM applies; else the host's).
AlertScope = Literal["host", "cgroup"]
ClientOs = Literal["auto", "linux", "windows"]
# When the probe reads the process table for its top lists: "alerts" only at the
# limit of one of the host's cpu, cpu-core, load, memory or swap rules (the lists explain
# that alert's mail), "always" on every run.
TopProcessesWhen = Literal["alerts", "always"]


@dataclass(frozen=True)
class Timeouts:
    """Server-side deadlines for one host, in seconds."""

    connect: float = 10.0
    run: float = 60.0


@dataclass(frozen=True)
class Defaults:
    """Settings that apply to every client: ``<defaults .../>``."""

    concurrency: int = 100
    timeouts: Timeouts = field(default_factory=Timeouts)
    host_keys: HostKeyPolicy = "strict"
    known_hosts: Path | None = None  # None -> ~/.ssh/known_hosts
    top_processes: int = 5
    top_processes_when: TopProcessesWhen = "alerts"
    repeat_seconds: float = 4 * 3600  # alert re-notify interval
    # Connections kept between rounds (watch, serve): how long one may sit idle;
    # 0 = off, None = the command's default (10 minutes in watch and serve).
    keep_connections: float | None = None
    # A kept connection older than this is replaced by a fresh login.
    max_connection_age: float = 24 * 3600
    # The OpenSSH client side (each also on <client>, which wins): an ssh_config
    # file read for every client's host, a jump host spec ("bastion",
    # "ops@10.0.0.1:2222,inner"), an ssh-agent socket, the passphrase variable
    # of encrypted keys. "none" in a client's attribute cancels the default.
    ssh_config: Path | None = None
    jump: str | None = None
    agent: str | None = None
    passphrase_env: str | None = None


@dataclass(frozen=True)
class JumpHop:
    """One jump host a client is reached through, resolved (ssh_config applied)."""

    host: str  # where to connect: the ssh_config HostName, else the name given
    port: int = 22
    username: str = ""
    identity_files: tuple[Path, ...] = ()  # empty: the client's own keys
    spec: str = ""  # as written in jump= or ProxyJump: "bastion", "ops@10.0.0.1:2222"

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def label(self) -> str:
        """What messages name: the spec as written, else the address."""
        return self.spec or self.address


@dataclass(frozen=True)
class Smtp:
    """Where alert and event mail goes out: ``<smtp .../>``."""

    host: str
    port: int = 25
    starttls: bool = False
    tls: bool = False  # implicit TLS (SMTPS, usually port 465)
    sender: str = "fleetstat@localhost"
    username: str | None = None
    password: str | None = None  # literal, or resolved from password-env at load
    timeout: float = 30.0
    password_env: str | None = None  # the variable the password came from, for messages
    cafile: Path | None = None  # CA bundle or certificate to trust for TLS (private CA, tests)
    admin: tuple[str, ...] = ()  # who hears about fleetstat itself (the database down)


@dataclass(frozen=True)
class Retention:
    """How long rows are kept, in seconds; ``None`` keeps them forever."""

    samples: float | None = None
    attempts: float | None = None
    events: float | None = None


DEFAULT_SPOOL_BYTES = 1024**3
DEFAULT_DATABASE_ALERT_AFTER = 300.0


@dataclass(frozen=True)
class SpoolSettings:
    """Where rounds the database did not take wait for it: ``<spool .../>``.

    ``directory`` is always set: the configured ``dir=``, or the default for this
    config file (``fleetstat.spool.default_directory``).
    """

    directory: Path
    max_bytes: int = DEFAULT_SPOOL_BYTES


DEFAULT_LISTEN = ("127.0.0.1", 8760)

# Hosts without zone= are in this zone, and so are workers started without --zone.
DEFAULT_ZONE = "default"


@dataclass(frozen=True)
class Cluster:
    """Rounds shared by worker processes: ``<cluster broker="amqp://..."/>``.

    ``deadline`` None: the coordinator waits ``2 x (connect + run timeout) + 4 x
    heartbeat`` for a round's shards (a shard that ran into its hosts' deadlines,
    then once more on another worker after its first worker died).
    """

    broker: str  # amqp://, amqps:// (RabbitMQ) or redis://, rediss:// (Redis)
    shard_size: int = 100  # hosts per message
    deadline: float | None = None  # seconds; see above
    heartbeat: float = 2.0  # seconds between a worker's heartbeat rows
    queue_prefix: str = "fleetstat"  # the broker's queue names start with it

    @property
    def kind(self) -> Literal["rabbitmq", "redis"]:
        return "redis" if self.broker.startswith(("redis://", "rediss://")) else "rabbitmq"

    @property
    def dead_after(self) -> float:
        """A worker whose last heartbeat is older than this is taken for dead."""
        return 3 * self.heartbeat

    def round_deadline(self, timeouts: Timeouts) -> float:
        if self.deadline is not None:
            return self.deadline
        return 2 * (timeouts.connect + timeouts.run) + 4 * self.heartbeat


@dataclass(frozen=True)
class Http:
    """``fleetstat serve``: ``<http .../>``; the command line overrides each field."""

    host: str = DEFAULT_LISTEN[0]
    port: int = DEFAULT_LISTEN[1]
    certfile: Path | None = None  # TLS when both are given
    keyfile: Path | None = None
    metrics_public: bool = False  # /metrics without a token
    watch: bool = True  # run the rounds in the server's loop
    session_lifetime: float = 12 * 3600  # a login's token, in seconds

    @property
    def tls(self) -> bool:
        return self.certfile is not None


@dataclass(frozen=True)
class AlertRule:
    """One ``<alert .../>`` of a client."""

    type: AlertType
    limit: float | None  # percent (0-100); per-core load for "load"; None for unreachable
    # cpu-core: the busiest core's percent over the probe's window
    mount: str | None = None  # disk only; None = any local filesystem
    for_rounds: int = 1  # for="3": fire after N consecutive breaching rounds
    clear: float | None = None  # hysteresis; None = the limit
    notify_resolved: bool = True  # resolved="false"
    repeat_seconds: float | None = None  # None = Defaults.repeat_seconds
    window: AlertWindow = "short"
    scope: AlertScope = "host"
    line: int | None = None

    @property
    def key(self) -> str:
        """Unique per client: ``"cpu"``, ``"disk:/var"``, ``"disk:*"``, ``"memory:cgroup"``."""
        if self.type == "disk":
            return f"disk:{self.mount or '*'}"
        if self.scope != "host":
            return f"{self.type}:{self.scope}"
        return self.type


@dataclass(frozen=True)
class Client:
    """One monitored machine: ``<client .../>``."""

    ip: str
    port: int = 22
    username: str = ""
    password: str | None = None  # literal or resolved from password-env
    password_env: str | None = None
    key: Path | None = None  # private key file
    mail: tuple[str, ...] = ()
    name: str | None = None  # display name; defaults to ip
    os: ClientOs = "auto"
    events: bool = False  # <events enabled="true"/>
    alerts: tuple[AlertRule, ...] = ()
    line: int | None = None
    events_max: int = 500  # <events max="500"/>: at most this many events per run
    zone: str = DEFAULT_ZONE  # zone="dc2": only workers of that zone collect it (<cluster>)
    keep_connections: float | None = None  # None = <defaults keep-connections>
    # What the OpenSSH side resolved once at load (config/sshconfig.py): where to
    # connect when ssh_config's HostName differs from ip (ip stays the client's
    # identity in the database), every key to offer (key= first, then
    # IdentityFile), the jump hosts in order, the agent socket, the key
    # passphrase, ServerAliveInterval, and the ssh_config file that applied.
    hostname: str | None = None
    identity_files: tuple[Path, ...] = ()
    jump: tuple[JumpHop, ...] = ()
    agent: str | None = None
    passphrase: str | None = None
    passphrase_env: str | None = None
    keepalive: float | None = None
    ssh_config: Path | None = None

    @property
    def connect_host(self) -> str:
        """Where the TCP connection (or the last jump's tunnel) goes."""
        return self.hostname or self.ip

    @property
    def keys(self) -> tuple[Path, ...]:
        """Every private key file to offer, key= first."""
        if self.key is None or self.key in self.identity_files:
            return self.identity_files
        return (self.key, *self.identity_files)

    @property
    def address(self) -> str:
        """``ip:port``, with IPv6 addresses in brackets."""
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"{host}:{self.port}"

    @property
    def label(self) -> str:
        """What people see: the name when given, else the address."""
        return self.name or self.ip


SecretUse = Literal["database", "smtp", "client"]


@dataclass(frozen=True)
class UnsetSecret:
    """A ``password-env`` whose variable was unset or empty when the config loaded.

    Not an error at load: only the commands that log in with it need it, and they
    say so (:func:`fleetstat.config.require_secrets`), each variable once.
    """

    env: str  # the variable's name
    use: SecretUse  # what logs in with it
    owner: str  # "<database>", "<smtp>", or the client's label
    line: int | None
    empty: bool = False  # set but empty, rather than not set
    attribute: str = "password-env"  # or "passphrase-env" (an encrypted key's)


@dataclass(frozen=True)
class Config:
    """A whole config file, validated."""

    path: Path
    database_url: str  # relative sqlite paths resolved against the config's folder
    key_path: Path  # server private key; default <config dir>/fleetstat.key
    smtp: Smtp | None
    defaults: Defaults
    clients: tuple[Client, ...]
    warnings: tuple[str, ...] = ()  # e.g. plaintext password in a world-readable file
    retention: Retention = field(default_factory=Retention)
    http: Http = field(default_factory=Http)
    unset_secrets: tuple[UnsetSecret, ...] = ()  # password-env variables missing at load
    spool: SpoolSettings | None = None  # None only for a Config built by hand (tests)
    # Without a working database for this long, the admin gets one mail (and one
    # when it is back): <database alert-after="5m">.
    database_alert_after: float = DEFAULT_DATABASE_ALERT_AFTER
    cluster: Cluster | None = None  # <cluster>: watch and serve coordinate workers

    @property
    def admin_addresses(self) -> tuple[str, ...]:
        """``<smtp admin="...">``, else the first client owner's addresses."""
        if self.smtp is not None and self.smtp.admin:
            return self.smtp.admin
        for client in self.clients:
            if client.mail:
                return client.mail[:1]
        return ()
