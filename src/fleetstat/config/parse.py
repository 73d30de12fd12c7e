"""From a :class:`Node` tree to :class:`Config`: the element builders and ``load_config``.

Each builder reads one element through the shared :class:`Reader`, which
records what is wrong and hands back a usable default, and returns a value (or
``None`` when the element is unusable), so the walk always reaches the end of
the file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import cast, get_args

from fleetstat.config.cluster import build_cluster
from fleetstat.config.dburl import normalize_database_url, url_password, with_password
from fleetstat.config.model import (
    DEFAULT_DATABASE_ALERT_AFTER,
    DEFAULT_SPOOL_BYTES,
    DEFAULT_ZONE,
    Client,
    ClientOs,
    Config,
    Defaults,
    HostKeyPolicy,
    Http,
    Retention,
    Smtp,
    SpoolSettings,
    Timeouts,
    TopProcessesWhen,
)
from fleetstat.config.reader import ATTRIBUTES, Reader
from fleetstat.config.rules import build_alert
from fleetstat.config.source import Node, SourceError, parse_xml, read_text, scan_typographic_quotes
from fleetstat.config.sshconfig import (
    NONE,
    Given,
    HopSpec,
    Resolved,
    parse_jump,
    resolve_client,
)
from fleetstat.config.validate import (
    Invalid,
    check_env_name,
    check_host,
    check_mail,
    check_port,
    check_zone,
    default_spool_directory,
    parse_bool,
    parse_int,
    parse_keep,
    parse_listen,
    parse_seconds,
    parse_spool_size,
    split_mail,
    suggest,
)
from fleetstat.errors import ConfigError

ROOTS = ("fleetstat", "clients")
TOP_LEVEL = (
    "database",
    "key",
    "smtp",
    "defaults",
    "retention",
    "http",
    "spool",
    "cluster",
    "client",
    "clients",
)
CLIENT_CHILDREN = ("alert", "mail", "events")
CREDENTIAL_FIX = (
    'add password-env="VAR" (password in an environment variable), '
    'key="/path/to/private_key", password="...", or an ssh-agent (agent="/path/to/socket" '
    "or SSH_AUTH_SOCK set)"
)


def load_config(path: str | Path, *, env: Mapping[str, str] | None = None) -> Config:
    """Read, parse and validate a config file; raise :class:`ConfigError` listing every issue.

    ``env`` stands in for ``os.environ`` when resolving ``password-env`` (tests).
    """
    shown = str(path)
    file = Path(path).expanduser().absolute()
    try:
        text = read_text(file, shown)
    except SourceError as exc:
        raise ConfigError(exc.issues) from None
    quote_issues, repaired = scan_typographic_quotes(text, shown)
    try:
        root = parse_xml(repaired, shown)
    except SourceError as exc:
        # With typographic quotes about, the XML error is most likely theirs.
        raise ConfigError(quote_issues or exc.issues) from None
    reader = Reader(shown, file.parent, os.environ if env is None else env)
    reader.issues.extend(quote_issues)
    config = _build(reader, root, file)
    _warn_plaintext_passwords(reader, file)
    if reader.issues:
        raise ConfigError(sorted(reader.issues, key=lambda issue: issue.line or 0))
    return replace(
        config,
        warnings=tuple(str(warning) for warning in reader.warnings),
        unset_secrets=tuple(reader.unset_secrets),
    )


def _build(reader: Reader, root: Node, file: Path) -> Config:
    sections: dict[str, Node] = {}
    clients: list[Client] = []
    if root.tag == "client":  # the assignment's snippet pasted as the whole file
        reader.check_attributes(root)
        client_nodes = [root]
    elif root.tag in ROOTS:
        reader.check_attributes(root)
        client_nodes = list(_top_level(reader, root, sections))
    else:
        close = suggest(root.tag, (*ROOTS, "client")) or "fleetstat"
        reader.issue(
            root.line, f"the root element is <{root.tag}>", f"use <{close}> ... </{close}>"
        )
        client_nodes = []
    defaults_node = sections.get("defaults")
    defaults = _defaults(reader, defaults_node) if defaults_node else Defaults()
    seen: dict[tuple[str, int], int] = {}
    for node in client_nodes:
        client = _client(reader, node, defaults, defaults_node)
        if client is None:
            continue
        first = seen.get((client.ip, client.port))
        if first is not None:
            reader.issue(
                node.line,
                f"duplicate client {client.address} (first on line {first})",
                "remove one of them, or give them different ip or port",
            )
            continue
        seen[(client.ip, client.port)] = node.line
        clients.append(client)
    if not client_nodes and root.tag in ROOTS:
        reader.issue(
            root.line,
            "no <client> configured",
            f'add <client ip="10.0.0.5" username="monitor" key="id_ed25519"/> inside <{root.tag}>',
        )
    database = sections.get("database")
    key = sections.get("key")
    smtp = sections.get("smtp")
    retention = sections.get("retention")
    http = sections.get("http")
    spool = sections.get("spool")
    cluster = sections.get("cluster")
    database_url = _database(reader, database)
    if cluster is None:
        for node in client_nodes:
            if "zone" in node.attrib:
                reader.warn(
                    node.attr_line("zone"),
                    "a client has zone= but the config has no <cluster>",
                    'zones place hosts on workers: add <cluster broker="amqp://..."/>, '
                    "or remove zone=",
                )
                break
    return Config(
        path=file,
        database_url=database_url,
        key_path=(reader.path(key, "path") if key else None) or file.parent / "fleetstat.key",
        smtp=_smtp(reader, smtp) if smtp else None,
        defaults=defaults,
        clients=tuple(clients),
        retention=_retention(reader, retention) if retention else Retention(),
        http=_http(reader, http) if http else Http(),
        spool=_spool(reader, spool, file),
        cluster=build_cluster(reader, cluster, database_url) if cluster is not None else None,
        database_alert_after=(
            reader.get(database, "alert-after", parse_seconds, DEFAULT_DATABASE_ALERT_AFTER)
            if database is not None
            else DEFAULT_DATABASE_ALERT_AFTER
        ),
    )


def _top_level(reader: Reader, root: Node, sections: dict[str, Node]) -> Iterator[Node]:
    """Yield client elements; remember each single section, flagging repeats."""
    for node in reader.children(root, TOP_LEVEL):
        if node.tag == "client":
            yield node
        elif node.tag == "clients":  # <fleetstat><clients><client/>...</clients></fleetstat>
            reader.check_attributes(node)
            yield from reader.children(node, ("client",))
        elif node.tag in sections:
            reader.issue(
                node.line,
                f"second <{node.tag}> element (first on line {sections[node.tag].line})",
                f"keep one <{node.tag}>",
            )
        else:
            reader.check_leaf(node)
            sections[node.tag] = node


def _database(reader: Reader, node: Node | None) -> str:
    default = normalize_database_url("sqlite:///fleetstat.db", reader.base_dir)
    if node is None:
        return default
    if reader.require(node, "url", 'url="sqlite:///fleetstat.db"') is None:
        return default
    url = reader.get(node, "url", lambda raw: normalize_database_url(raw, reader.base_dir), default)
    if url_password(url):
        reader.plaintext_password_lines.append(node.attr_line("url"))
    if "password-env" not in node.attrib:
        return url
    password, _ = reader.secret(node, "database", "<database>")
    if password is None:
        return url
    return reader.get(node, "url", lambda _raw: with_password(url, password), url)


def _smtp(reader: Reader, node: Node) -> Smtp | None:
    host = reader.require(node, "host", 'host="mail.example.com"')
    host = reader.get(node, "host", check_host, host) if host else None
    starttls = reader.get(node, "starttls", parse_bool, False)
    tls = reader.get(node, "tls", parse_bool, False)
    if starttls and tls:
        reader.issue(
            node.attr_line("tls"),
            "<smtp> asks for both starttls and tls (implicit TLS)",
            'choose one: starttls="true" (usually port 587) or tls="true" (usually port 465)',
        )
    port = reader.get(node, "port", check_port, 465 if tls else 587 if starttls else 25)
    sender = reader.get(node, "from", check_mail, "fleetstat@localhost")
    username = node.attrib.get("username") or None
    password, password_env = reader.secret(node, "smtp", "<smtp>")
    has_secret = "password" in node.attrib or "password-env" in node.attrib
    if has_secret and not username:
        reader.issue(
            node.line,
            "<smtp> has a password but no username",
            'add username="..." (SMTP AUTH needs both)',
        )
    if username and not has_secret:
        reader.issue(
            node.line,
            "<smtp> has a username but no password",
            'add password-env="SMTP_PASSWORD" (or remove username= for no AUTH)',
        )
    timeout = reader.get(node, "timeout", parse_seconds, 30.0)
    admin = tuple(dict.fromkeys(reader.get(node, "admin", split_mail, list[str]())))
    cafile = reader.path(node, "cafile")
    if cafile is not None and not cafile.is_file():
        reader.issue(
            node.attr_line("cafile"),
            f"cafile {cafile} {'is not a file' if cafile.exists() else 'does not exist'}",
            "give the path of a PEM file with the CA certificate(s) to trust for the SMTP server",
        )
        cafile = None
    if cafile is not None and not (starttls or tls):
        reader.warn(
            node.attr_line("cafile"),
            "cafile= is unused: <smtp> asks for neither starttls nor tls",
            'add starttls="true" (or tls="true"), or remove cafile=',
        )
    if host is None:
        return None
    return Smtp(
        host, port, starttls, tls, sender, username, password, timeout, password_env, cafile, admin
    )


def _spool(reader: Reader, node: Node | None, file: Path) -> SpoolSettings:
    directory = reader.path(node, "dir") if node is not None else None
    if directory is not None and directory.exists() and not directory.is_dir():
        reader.issue(
            node.attr_line("dir") if node is not None else None,
            f"<spool> dir {directory} is not a directory",
            "give a directory fleetstat may create and write (it is made 0700)",
        )
    max_bytes = DEFAULT_SPOOL_BYTES
    if node is not None:
        max_bytes = reader.get(node, "max-size", parse_spool_size, DEFAULT_SPOOL_BYTES)
    return SpoolSettings(directory or default_spool_directory(file, reader.env), max_bytes)


def _defaults(reader: Reader, node: Node) -> Defaults:
    base = Defaults()
    policy = reader.choice(node, "host-keys", get_args(HostKeyPolicy), base.host_keys)
    if policy == "off":
        reader.warn(
            node.attr_line("host-keys"),
            'host-keys="off": any machine answering at a client address receives its credentials',
            'use host-keys="accept-new" to trust on first use and detect changes later',
        )
    return Defaults(
        concurrency=reader.get(node, "concurrency", lambda r: parse_int(r, 1, 5000), 100),
        timeouts=Timeouts(
            connect=reader.get(node, "connect-timeout", parse_seconds, base.timeouts.connect),
            run=reader.get(node, "run-timeout", parse_seconds, base.timeouts.run),
        ),
        host_keys=cast(HostKeyPolicy, policy),
        known_hosts=reader.path(node, "known-hosts"),
        top_processes=reader.get(node, "top-processes", lambda r: parse_int(r, 0, 100), 5),
        top_processes_when=cast(
            TopProcessesWhen,
            reader.choice(
                node, "top-processes-when", get_args(TopProcessesWhen), base.top_processes_when
            ),
        ),
        repeat_seconds=reader.get(
            node, "repeat", lambda r: parse_seconds(r, allow_zero=True), base.repeat_seconds
        ),
        keep_connections=reader.get(node, "keep-connections", parse_keep, None),
        max_connection_age=reader.get(
            node, "max-connection-age", parse_seconds, base.max_connection_age
        ),
        ssh_config=reader.path(node, "ssh-config"),
        jump=reader.get(node, "jump", _jump_text, None),
        agent=_agent_attr(reader, node),
        passphrase_env=reader.get(node, "passphrase-env", check_env_name, None),
    )


def _jump_text(raw: str) -> str:
    text = raw.strip()
    if text.lower() != NONE:
        parse_jump(text)  # raises Invalid with the fix
    return text


def _agent_attr(reader: Reader, node: Node) -> str | None:
    raw = node.attrib.get("agent")
    if raw is None:
        return None
    if not raw.strip():
        reader.issue(
            node.attr_line("agent"),
            f"<{node.tag}> agent= is empty",
            'give the ssh-agent socket path, "SSH_AUTH_SOCK" or "none"',
        )
        return None
    return raw.strip()


def _keep_for(raw: str) -> float | None:
    if raw.strip().lower() in ("forever", "never", "off", "none"):
        return None
    return parse_seconds(raw)


def _retention(reader: Reader, node: Node) -> Retention:
    return Retention(
        samples=reader.get(node, "samples", _keep_for, None),
        attempts=reader.get(node, "attempts", _keep_for, None),
        events=reader.get(node, "events", _keep_for, None),
    )


def _http(reader: Reader, node: Node) -> Http:
    base = Http()
    host, port = reader.get(node, "listen", parse_listen, (base.host, base.port))
    certfile = _readable(reader, node, "certfile", "the server's certificate chain (PEM)")
    keyfile = _readable(reader, node, "keyfile", "the certificate's private key (PEM)")
    if ("certfile" in node.attrib) != ("keyfile" in node.attrib):
        given, missing = (
            ("certfile", "keyfile") if "certfile" in node.attrib else ("keyfile", "certfile")
        )
        reader.issue(
            node.attr_line(given),
            f"<http> has {given}= but no {missing}=",
            f"TLS needs both: add {missing}=, or remove {given}= to serve plain HTTP",
        )
    return Http(
        host=host,
        port=port,
        certfile=certfile if keyfile else None,
        keyfile=keyfile if certfile else None,
        metrics_public=reader.get(node, "metrics-public", parse_bool, base.metrics_public),
        watch=reader.get(node, "watch", parse_bool, base.watch),
        session_lifetime=reader.get(node, "session-lifetime", parse_seconds, base.session_lifetime),
    )


def _readable(reader: Reader, node: Node, name: str, what: str) -> Path | None:
    path = reader.path(node, name)
    if path is not None and not (path.is_file() and os.access(path, os.R_OK)):
        state = "is not a readable file" if path.exists() else "does not exist"
        reader.issue(
            node.attr_line(name), f"<http> {name} {path} {state}", f"give the path of {what}"
        )
        return None
    return path


def _client(
    reader: Reader, node: Node, defaults: Defaults, defaults_node: Node | None
) -> Client | None:
    reader.check_attributes(node)
    ip = reader.require(node, "ip", 'ip="10.0.0.5"')
    ip = reader.get(node, "ip", check_host, None) if ip else None
    port = reader.get(node, "port", check_port, 22)
    ssh_config = _client_ssh_config(reader, node, defaults)
    if ssh_config is None:
        username = reader.require(node, "username", 'username="monitor"')
    else:  # ssh_config's User, else the local user, as ssh would
        username = (node.attrib.get("username") or "").strip() or None
    owner = (node.attrib.get("name") or node.attrib.get("ip") or "").strip()
    password, password_env = reader.secret(node, "client", owner or f"line {node.line}")
    passphrase, passphrase_env = _client_passphrase(reader, node, defaults, defaults_node, owner)
    key = reader.path(node, "key")
    if key is not None and not (key.is_file() and os.access(key, os.R_OK)):
        state = "is not a readable file" if key.exists() else "does not exist"
        reader.issue(
            node.attr_line("key"),
            f"key file {key} {state}",
            "give the path of an SSH private key readable by fleetstat",
        )
    resolved = None
    if ip is not None:
        given = Given(
            ip=ip,
            port=port if "port" in node.attrib else None,
            username=username,
            key=key,
            has_password="password" in node.attrib or "password-env" in node.attrib,
            ssh_config=ssh_config,
            jump=_client_jump(reader, node, defaults),
            agent=node.attrib.get("agent", "").strip() or defaults.agent,
        )
        resolved = _resolve(reader, node, defaults_node, given)
    # A misspelt credential (password_env=) is already reported; one issue is enough.
    known = ATTRIBUTES["client"]
    spelled = {name if name in known else suggest(name, known) or name for name in node.attrib}
    if not ({"password", "password-env", "key"} & spelled) and not (
        resolved is not None and (resolved.identity_files or resolved.agent)
    ):
        reader.issue(node.line, "client has no credential", CREDENTIAL_FIX)
    mail = list(reader.get(node, "mail", split_mail, list[str]()))
    name = node.attrib.get("name", "").strip() or None
    host_os = reader.choice(node, "os", get_args(ClientOs), "auto")
    zone = reader.get(node, "zone", check_zone, DEFAULT_ZONE)
    events, events_max, alerts = False, 500, []
    events_line: int | None = None
    rule_lines: dict[str, int] = {}
    for child in reader.children(node, CLIENT_CHILDREN):
        reader.check_leaf(child)
        if child.tag == "mail":
            if reader.require(child, "to", 'to="ops@example.com"'):
                mail.extend(reader.get(child, "to", split_mail, list[str]()))
        elif child.tag == "events":
            if events_line is not None:
                reader.issue(
                    child.line,
                    f"second <events> (first on line {events_line})",
                    "keep one <events>",
                )
            events_line = child.line
            events = reader.get(child, "enabled", parse_bool, True)
            events_max = reader.get(child, "max", lambda r: parse_int(r, 1, 100_000), 500)
        else:
            rule = build_alert(reader, child)
            if rule is None:
                continue
            if rule.key in rule_lines:
                reader.issue(
                    child.line,
                    f"duplicate alert {rule.key} (first on line {rule_lines[rule.key]})",
                    "keep one rule per type (and mount, for disk)",
                )
                continue
            rule_lines[rule.key] = child.line
            alerts.append(rule)
    if ip is None or resolved is None:
        return None
    if (alerts or events) and not mail:
        reader.warn(
            node.line,
            f"client {ip} has alerts or events but no mail address",
            'add mail="ops@example.com" so its alerts reach someone',
        )
    return Client(
        ip=ip,
        port=resolved.port,
        username=resolved.username,
        password=password,
        password_env=password_env,
        key=key,
        mail=tuple(dict.fromkeys(mail)),
        name=name,
        os=cast(ClientOs, host_os),
        events=events,
        alerts=tuple(alerts),
        line=node.line,
        events_max=events_max,
        zone=zone,
        keep_connections=reader.get(node, "keep-connections", parse_keep, None),
        hostname=resolved.hostname,
        identity_files=resolved.identity_files,
        jump=resolved.jump,
        agent=resolved.agent,
        passphrase=passphrase,
        passphrase_env=passphrase_env,
        keepalive=resolved.keepalive,
        ssh_config=resolved.ssh_config,
    )


def _client_ssh_config(reader: Reader, node: Node, defaults: Defaults) -> Path | None:
    """The client's ``ssh-config=`` ("none": not the defaults' either), else the defaults'."""
    raw = node.attrib.get("ssh-config")
    if raw is not None and raw.strip().lower() == NONE:
        return None
    return reader.path(node, "ssh-config") or defaults.ssh_config


def _client_jump(reader: Reader, node: Node, defaults: Defaults) -> tuple[HopSpec, ...] | None:
    """The hops of jump= (the client's, else the defaults'); () for "none"; None: not given."""
    text = reader.get(node, "jump", _jump_text, None) or defaults.jump
    if text is None:
        return None
    return () if text.lower() == NONE else parse_jump(text)


def _client_passphrase(
    reader: Reader, node: Node, defaults: Defaults, defaults_node: Node | None, owner: str
) -> tuple[str | None, str | None]:
    """The client's passphrase-env, else the defaults'. An unset variable is one issue
    for the commands that log in, however many clients name it (``secrets``)."""
    if "passphrase-env" in node.attrib:
        env = reader.get(node, "passphrase-env", check_env_name, None)
        return reader.passphrase(env, node.attr_line("passphrase-env"), owner)
    line = defaults_node.attr_line("passphrase-env") if defaults_node is not None else None
    return reader.passphrase(defaults.passphrase_env, line, owner)


def _resolve(
    reader: Reader, node: Node, defaults_node: Node | None, given: Given
) -> Resolved | None:
    """ssh_config applied, its errors reported once per file and message."""
    try:
        return resolve_client(given, reader.env)
    except OSError as exc:
        where = node if "ssh-config" in node.attrib or defaults_node is None else defaults_node
        reader.issue_once(
            where.attr_line("ssh-config"),
            f"ssh-config {given.ssh_config}: {exc.strerror or exc}",
            "give the path of a readable OpenSSH client config file, or remove ssh-config=",
        )
    except Invalid as exc:
        reader.issue_once(node.line, f"client {given.ip}: {exc.message}", exc.fix)
    except ValueError as exc:  # asyncssh's ConfigParseError: "<file> line N: reason"
        where = node if "ssh-config" in node.attrib or defaults_node is None else defaults_node
        reader.issue_once(
            where.attr_line("ssh-config"),
            f"ssh-config: {exc}",
            "correct that line (ssh -G -F FILE HOST shows how OpenSSH reads it)",
        )
    return None


def _warn_plaintext_passwords(reader: Reader, file: Path) -> None:
    """One warning per file: a password written in it (``password=``, or in the
    database URL) that group or others can read."""
    if not reader.plaintext_password_lines:
        return
    try:
        mode = file.stat().st_mode & 0o777
    except OSError:  # pragma: no cover - we just read it
        return
    if mode & 0o077:
        lines = reader.plaintext_password_lines
        count = f"{len(lines)} plaintext passwords" if len(lines) > 1 else "a plaintext password"
        reader.warn(
            lines[0],
            f"{count} in a file readable by group or others (mode {mode:04o})",
            f"chmod 600 {reader.shown}, or move the password to password-env=",
        )
