"""The XML config: what loads, and every error class with its file:line and fix."""

from __future__ import annotations

import dataclasses
import shutil
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

from fleetstat.config import (
    AlertRule,
    Client,
    Config,
    Defaults,
    Retention,
    Timeouts,
    load_config,
    require_secrets,
    secret_issues,
)
from fleetstat.config.dburl import mask_database_url, url_password
from fleetstat.errors import ConfigError, ConfigIssue
from fleetstat.units import format_duration, parse_duration

FIXTURES = Path(__file__).parent / "fixtures" / "config"
CLIENT = '<client ip="10.0.0.9" username="u" password-env="P"/>'
ENV = {"WEB01_PW": "web-secret", "WIN_PW": "win-secret", "FLEETSTAT_SMTP_PASSWORD": "smtp"}


def write(tmp_path: Path, xml: str, *, mode: int = 0o600, name: str = "fleetstat.xml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(xml).lstrip("\n"), encoding="utf-8")
    path.chmod(mode)
    return path


def issues_of(path: Path, env: dict[str, str] | None = None) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, env=ENV if env is None else env)
    return caught.value.issues


def only_issue(path: Path, env: dict[str, str] | None = None) -> ConfigIssue:
    issues = issues_of(path, env)
    assert len(issues) == 1, "\n".join(map(str, issues))
    return issues[0]


# --- what loads -----------------------------------------------------------------------


def test_assignment_example_with_straight_quotes_loads(tmp_path: Path) -> None:
    path = tmp_path / "assignment.xml"
    shutil.copy(FIXTURES / "assignment.xml", path)
    path.chmod(0o600)
    config = load_config(path, env={})
    (client,) = config.clients
    assert (client.ip, client.port, client.username, client.password) == (
        "127.0.0.1",
        22,
        "user",
        "password",
    )
    assert client.mail == ("asa@asda.com",)
    assert client.alerts == (
        AlertRule(type="memory", limit=50.0, line=3),
        AlertRule(type="cpu", limit=20.0, line=4),
    )
    assert [rule.key for rule in client.alerts] == ["memory", "cpu"]
    assert client.line == 2
    assert config.warnings == ()


def test_bare_client_root_is_one_client(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        <client ip='127.0.0.1' port='22' username='user' password='password' mail="asa@asda.com">
          <alert type="memory" limit="50%" />
        </client>
        """,
    )
    config = load_config(path, env={})
    assert [c.address for c in config.clients] == ["127.0.0.1:22"]
    assert config.database_url == f"sqlite:///{tmp_path}/fleetstat.db"


def test_full_example_loads_every_setting(tmp_path: Path) -> None:
    path = tmp_path / "full.xml"
    shutil.copy(FIXTURES / "full.xml", path)
    config = load_config(path, env=ENV)
    assert config.path == path
    assert config.database_url == f"sqlite:///{tmp_path}/data/fleetstat.db"
    assert config.key_path == tmp_path / "keys" / "server.key"
    assert config.smtp is not None
    assert (config.smtp.host, config.smtp.port, config.smtp.starttls, config.smtp.tls) == (
        "mail.example.com",
        587,
        True,
        False,
    )
    assert config.smtp.sender == "fleetstat@example.com"
    assert (config.smtp.username, config.smtp.password) == ("fleetstat", "smtp")
    assert config.smtp.password_env == "FLEETSTAT_SMTP_PASSWORD"
    assert config.smtp.timeout == 20.0
    assert config.defaults == Defaults(
        concurrency=250,
        timeouts=Timeouts(connect=5.0, run=120.0),
        host_keys="accept-new",
        known_hosts=tmp_path / "known_hosts",
        top_processes=3,
        top_processes_when="always",
        repeat_seconds=3600.0,
    )
    assert config.retention == Retention(samples=90 * 86400.0, attempts=30 * 86400.0, events=None)

    web, win, db = config.clients
    assert (web.label, web.address, web.os, web.password, web.password_env) == (
        "web-01",
        "10.0.0.5:22",
        "linux",
        "web-secret",
        "WEB01_PW",
    )
    assert web.mail == ("ops@example.com", "web@example.com", "oncall@example.com")
    rules = {rule.key: rule for rule in web.alerts}
    assert list(rules) == ["memory", "cpu", "disk:/var", "disk:*", "load", "unreachable"]
    assert rules["cpu"] == AlertRule(
        type="cpu", limit=90.0, for_rounds=3, clear=70.0, window="interval", line=14
    )
    assert rules["disk:/var"].limit == 85.5
    assert rules["disk:/var"].repeat_seconds == 0.0
    assert rules["disk:*"].limit == 95.0
    assert (rules["load"].limit, rules["load"].clear) == (1.5, 1.0)
    assert rules["unreachable"].limit is None
    assert rules["unreachable"].notify_resolved is False

    assert (win.ip, win.port, win.address, win.os, win.events, win.events_max) == (
        "fd00::7",
        2222,
        "[fd00::7]:2222",
        "windows",
        True,
        200,
    )
    assert (db.ip, db.label, db.alerts, db.events) == (
        "db-01.example.com",
        "db-01.example.com",
        (),
        False,
    )
    assert config.warnings == ()


def test_defaults_when_sections_are_absent(tmp_path: Path) -> None:
    path = write(tmp_path, '<fleetstat><client ip="h1" username="u" password-env="P"/></fleetstat>')
    config = load_config(str(path), env={"P": "x"})
    assert config.defaults == Defaults()
    assert config.defaults.timeouts == Timeouts(connect=10.0, run=60.0)
    assert config.defaults.repeat_seconds == 4 * 3600
    assert config.defaults.top_processes_when == "alerts"
    assert config.smtp is None
    assert config.retention == Retention()
    assert config.key_path == tmp_path / "fleetstat.key"
    assert config.database_url == f"sqlite:///{tmp_path}/fleetstat.db"
    (client,) = config.clients
    assert client == Client(ip="h1", username="u", password="x", password_env="P", line=1)
    assert (client.port, client.os, client.events, client.events_max, client.mail) == (
        22,
        "auto",
        False,
        500,
        (),
    )


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load_config(FIXTURES / "full.xml", env=ENV)
    assert isinstance(config, Config)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.clients = ()  # type: ignore[misc]


def test_clients_root_and_nested_clients_group(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        <fleetstat>
          <clients>
            <client ip="10.0.0.1" username="u" password-env="P"/>
            <client ip="10.0.0.2" username="u" password-env="P"/>
          </clients>
        </fleetstat>
        """,
    )
    assert [c.ip for c in load_config(path, env={"P": "x"}).clients] == ["10.0.0.1", "10.0.0.2"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///fleetstat.db", "sqlite:///{dir}/fleetstat.db"),
        ("sqlite:///sub/x.db?timeout=5", "sqlite:///{dir}/sub/x.db?timeout=5"),
        ("sqlite:////var/lib/fleetstat.db", "sqlite:////var/lib/fleetstat.db"),
        ("sqlite://", "sqlite://"),
        ("postgresql://fs:pw@db/fleet", "postgresql+psycopg://fs:pw@db/fleet"),
        ("postgresql+psycopg://db/fleet", "postgresql+psycopg://db/fleet"),
        ("postgres://db/fleet", "postgresql+psycopg://db/fleet"),
        ("mysql://fs@db:3306/fleet", "mysql+pymysql://fs@db:3306/fleet"),
        ("mariadb://fs@db/fleet", "mariadb+pymysql://fs@db/fleet"),
        ("mariadb+pymysql://fs@db/fleet", "mariadb+pymysql://fs@db/fleet"),
    ],
)
def test_database_url(tmp_path: Path, url: str, expected: str) -> None:
    path = write(
        tmp_path,
        f"""
        <fleetstat>
          <database url="{url}"/>
          <client ip="h" username="u" key="{FIXTURES / "full.xml"}"/>
        </fleetstat>
        """,
    )
    assert load_config(path, env={}).database_url == expected.format(dir=tmp_path)


def test_key_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "id_ed25519").write_text("not checked here")
    path = write(
        tmp_path,
        """
        <fleetstat>
          <key path="server.key"/>
          <client ip="h" username="u" key="keys/id_ed25519"/>
        </fleetstat>
        """,
    )
    config = load_config(path, env={})
    assert config.key_path == tmp_path / "server.key"
    assert config.clients[0].key == tmp_path / "keys" / "id_ed25519"
    assert config.clients[0].password is None


def test_password_env_is_resolved_at_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(
        tmp_path, '<fleetstat><client ip="h" username="u" password-env="FS_TEST_PW"/></fleetstat>'
    )
    monkeypatch.setenv("FS_TEST_PW", "from-environ")
    config = load_config(path)
    assert config.clients[0].password == "from-environ"
    assert config.unset_secrets == ()
    require_secrets(config, "client", "smtp", "database")
    monkeypatch.delenv("FS_TEST_PW")
    # Unset: no error at load (reads need no SSH secret), one for the commands that log in.
    config = load_config(path, env={})
    assert config.clients[0].password is None
    require_secrets(config, "database", "smtp")
    with pytest.raises(ConfigError) as caught:
        require_secrets(config, "client")
    (issue,) = caught.value.issues
    assert issue.line == 1
    assert issue.fix is not None and issue.fix.startswith(
        "export FS_TEST_PW=... in the environment"
    )
    assert "FS_TEST_PW is not set" in issue.message and "client h" in issue.message


def test_one_unset_variable_is_one_issue_however_many_clients_name_it(tmp_path: Path) -> None:
    clients = "".join(
        f'<client ip="10.0.0.{i}" username="u" password-env="FLEET_PW" name="web-{i}"/>\n'
        for i in range(1, 9)
    )
    path = write(
        tmp_path,
        f"""<fleetstat>
          <database url="postgresql://fs@db/fleet" password-env="DB_PW"/>
          <smtp host="m" username="u" password-env="SMTP_PW"/>
        {clients}</fleetstat>""",
    )
    config = load_config(path, env={"SMTP_PW": ""})
    issues = secret_issues(config, ["database", "smtp", "client"])
    assert [i.message.split(":")[0] for i in issues] == [
        "environment variable DB_PW is not set",
        "environment variable SMTP_PW is empty",
        "environment variable FLEET_PW is not set",
    ]
    assert [i.line for i in issues] == [2, 3, 4]
    assert "8 client(s): web-1, web-2, web-3 and 5 more" in issues[2].message
    assert secret_issues(config, ["database"]) == issues[:1]
    assert config.database_url == "postgresql+psycopg://fs@db/fleet"
    with_db = load_config(path, env={"DB_PW": "p@ss/w:rd", "SMTP_PW": "s", "FLEET_PW": "f"})
    assert with_db.database_url == "postgresql+psycopg://fs:p%40ss%2Fw%3Ard@db/fleet"
    assert sa.make_url(with_db.database_url).password == "p@ss/w:rd"
    assert with_db.unset_secrets == ()


def test_smtp_ports_follow_the_tls_mode(tmp_path: Path) -> None:
    def port(attrs: str) -> int:
        path = write(
            tmp_path,
            f'<fleetstat><smtp host="m" {attrs}/>{CLIENT}</fleetstat>',
        )
        config = load_config(path, env={"P": "x"})
        assert config.smtp is not None
        return config.smtp.port

    assert port("") == 25
    assert port('starttls="true"') == 587
    assert port('tls="true"') == 465
    assert port('tls="true" port="2465"') == 2465


def test_smtp_cafile_is_resolved_and_must_exist(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    path = write(
        tmp_path, f'<fleetstat><smtp host="m" starttls="true" cafile="ca.pem"/>{CLIENT}</fleetstat>'
    )
    config = load_config(path, env={"P": "x"})
    assert config.smtp is not None and config.smtp.cafile == tmp_path / "ca.pem"

    path = write(
        tmp_path,
        f'<fleetstat>\n<smtp host="m" starttls="true" cafile="nope.pem"/>{CLIENT}</fleetstat>',
    )
    issue = only_issue(path, env={"P": "x"})
    assert issue.line == 2 and f"cafile {tmp_path / 'nope.pem'} does not exist" in issue.message
    assert issue.fix is not None and "PEM" in issue.fix


def test_mail_children_add_recipients_without_duplicates(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        <fleetstat>
          <client ip="h" username="u" password-env="P" mail="a@example.com b@example.com">
            <mail to="b@example.com,c@example.com"/>
            <mail to="root@localhost"/>
          </client>
        </fleetstat>
        """,
    )
    assert load_config(path, env={"P": "x"}).clients[0].mail == (
        "a@example.com",
        "b@example.com",
        "c@example.com",
        "root@localhost",
    )


# --- warnings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql+psycopg://fs:s3cret@db:5432/fleet",
            "postgresql+psycopg://fs:***@db:5432/fleet",
        ),
        ("mysql+pymysql://fs:p@ss@db/fleet", "mysql+pymysql://fs:***@db/fleet"),
        (
            "postgresql+psycopg://fs@db/fleet?password=s3cret&x=1",
            "postgresql+psycopg://fs@db/fleet?password=***&x=1",
        ),
        ("postgresql+psycopg://db/fleet", "postgresql+psycopg://db/fleet"),
        ("sqlite:////var/lib/fleetstat.db", "sqlite:////var/lib/fleetstat.db"),
        ("s3cret", "(not a database URL; not shown)"),
    ],
)
def test_database_urls_are_shown_without_their_password(url: str, shown: str) -> None:
    assert mask_database_url(url) == shown
    assert url_password(url) == (("s3cret" in url or "p@ss" in url) and "://" in url)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://fs:s3cret@db:port/fleet",
        "mysql+mysqldb://fs:s3cret@db/fleet",
        "fs:s3cret@db/fleet",
        "postgresql://fs:s3cret@/",
    ],
)
def test_a_malformed_database_url_is_not_echoed(tmp_path: Path, url: str) -> None:
    path = write(tmp_path, f'<fleetstat><database url="{url}"/>{CLIENT}</fleetstat>')
    issue = only_issue(path)
    assert (issue.line == 1 and "database URL" in issue.message) or "scheme" in issue.message
    assert "s3cret" not in str(issue)


def test_a_database_password_in_a_readable_config_warns(tmp_path: Path) -> None:
    xml = f'<fleetstat><database url="postgresql://fs:s3cret@db/fleet"/>{CLIENT}</fleetstat>'
    readable = load_config(write(tmp_path, xml, mode=0o644), env={"P": "x"})
    (warning,) = readable.warnings
    assert "plaintext password" in warning and "chmod 600" in warning
    assert load_config(write(tmp_path, xml, mode=0o600), env={"P": "x"}).warnings == ()
    from_env = xml.replace('fs:s3cret@db/fleet"', 'fs@db/fleet" password-env="DB_PW"')
    assert load_config(write(tmp_path, from_env, mode=0o644), env={"P": "x"}).warnings == ()


@pytest.mark.parametrize(
    ("database", "message"),
    [
        ('url="postgresql://db/fleet" password-env="DB_PW"', "needs a user name"),
        ('url="postgresql://fs:x@db/fleet" password-env="DB_PW"', "also has password-env"),
    ],
)
def test_database_password_env_needs_a_user_and_no_other_password(
    tmp_path: Path, database: str, message: str
) -> None:
    path = write(tmp_path, f"<fleetstat><database {database}/>{CLIENT}</fleetstat>")
    issue = only_issue(path, env={"P": "x", "DB_PW": "pw"})
    assert message in issue.message and issue.line == 1


def test_plaintext_password_in_readable_file_warns(tmp_path: Path) -> None:
    xml = """
        <fleetstat>
          <client ip="h1" username="u" password="one"/>
          <client ip="h2" username="u" password="two"/>
        </fleetstat>
    """
    private = load_config(write(tmp_path, xml, mode=0o600), env={})
    assert private.warnings == ()
    readable = load_config(write(tmp_path, xml, mode=0o644), env={})
    (warning,) = readable.warnings
    assert warning.startswith(f"{tmp_path}/fleetstat.xml:2: 2 plaintext passwords")
    assert "mode 0644" in warning
    assert "chmod 600" in warning and "password-env" in warning


def test_host_keys_off_warns(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        <fleetstat>
          <defaults host-keys="off"/>
          <client ip="h" username="u" password-env="P"/>
        </fleetstat>
        """,
    )
    config = load_config(path, env={"P": "x"})
    assert config.defaults.host_keys == "off"
    (warning,) = config.warnings
    assert ":2: " in warning and "accept-new" in warning


# --- typographic quotes ------------------------------------------------------------------


def test_assignment_literal_example_reports_its_typographic_quotes() -> None:
    issue = only_issue(FIXTURES / "assignment_literal.xml", env={})
    assert issue.file.endswith("assignment_literal.xml")
    assert issue.line == 1
    assert "’" in issue.message
    assert "ip, port, username, password" in issue.message
    assert issue.fix == "use straight quotes ' or \""


def test_typographic_quotes_on_several_lines_all_reported_with_other_issues(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        <fleetstat>
          <client ip=“10.0.0.1” username="u" password-env="P"/>
          <client ip="10.0.0.2" username=‘u’ password-env="P" mail="Bob’s list"/>
          <client ip="10.0.0.3" username="u" password-env="P" port=″70000″/>
        </fleetstat>
        """,
    )
    issues = issues_of(path, env={"P": "x"})
    quotes = [i for i in issues if "typographic" in i.message]
    assert [(i.line, i.message) for i in quotes] == [
        (2, "typographic quotes “ ” around the value of ip"),
        (3, "typographic quotes ‘ ’ around the value of username"),
        (4, "typographic quotes ″ around the value of port"),
    ]
    # The quotes are repaired in memory so the rest of the file is still checked.
    others = [(i.line, i.message) for i in issues if "typographic" not in i.message]
    assert (3, "<client> mail: not a valid mail address: 'Bob’s', 'list'") in others
    assert (4, "<client> port: 70000 is out of range") in others


def test_apostrophe_inside_straight_quotes_and_comments_is_fine(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        <fleetstat>
          <!-- Bob’s “test” machines -->
          <client ip="h" username="u" password-env="P" name="Bob’s box"/>
        </fleetstat>
        """,
    )
    assert load_config(path, env={"P": "x"}).clients[0].name == "Bob’s box"


# --- every error class: line and fix ----------------------------------------------------


ERROR_CASES = [
    # (body lines inside <fleetstat>, line of the issue, message part, fix part)
    ('<client ip="10.0.0.256" username="u" password-env="P"/>', 2, "not a valid IPv4", "10.0.0.5"),
    ('<client ip="web_01!" username="u" password-env="P"/>', 2, "nor a valid host name", "web-01"),
    ('<client ip="[::1]" username="u" password-env="P"/>', 2, "no brackets", 'ip="::1"'),
    ('<client ip="-bad.example" username="u" password-env="P"/>', 2, "host name", "host name"),
    ('<client ip="h" port="0" username="u" password-env="P"/>', 2, "out of range", "1..65535"),
    (
        '<client ip="h" port="ssh" username="u" password-env="P"/>',
        2,
        "not a whole number",
        "1..65535",
    ),
    ('<client ip="h" password-env="P"/>', 2, "username= is missing", 'username="monitor"'),
    ('<client username="u" password-env="P"/>', 2, "ip= is missing", 'ip="10.0.0.5"'),
    ('<client ip="h" username="u"/>', 2, "no credential", 'password-env="VAR"'),
    (
        '<client ip="h" username="u" password-env="1X"/>',
        2,
        "not an environment variable",
        "letters",
    ),
    ('<client ip="h" username="u" password="a" password-env="P"/>', 2, "both password", "remove"),
    ('<client ip="h" username="u" password=""/>', 2, "password= is empty", "password-env"),
    ('<client ip="h" username="u" key="missing_key"/>', 2, "does not exist", "private key"),
    ('<client ip="h" username="u" password-env="P" mail="ops@"/>', 2, "'ops@'", "ops@example.com"),
    ('<client ip="h" username="u" password-env="P" mail="ops@mailhost"/>', 2, "mail", "commas"),
    (
        '<client ip="h" username="u" password-env="P" os="win"/>',
        2,
        "'win'",
        'did you mean "windows"',
    ),
    ('<client ip="h" username="u" password-env="P" IP="x"/>', 2, "unknown attribute IP=", "ip="),
    ('<client ip="h" username="u" password_env="P"/>', 2, "password_env=", "password-env="),
    (
        '<client ip="h" username="u" password-env="P"><alert type="cpu" limt="1%"/></client>',
        2,
        "unknown attribute limt=",
        "did you mean limit=?",
    ),
    (f"{CLIENT}\n<cilent/>", 3, "unknown element <cilent>", "did you mean <client>?"),
    (f"{CLIENT}\n<smtp/>", 3, "host= is missing", "mail.example.com"),
    (f'{CLIENT}\n<smtp host="m" starttls="true" tls="true"/>', 3, "both starttls and tls", "465"),
    (f'{CLIENT}\n<smtp host="m" from="me"/>', 3, "'me' is not a valid mail", "ops@example.com"),
    (f'{CLIENT}\n<smtp host="m" starttls="maybe"/>', 3, "not true or false", '"true"'),
    (f'{CLIENT}\n<smtp host="m" password-env="P"/>', 3, "no username", "username="),
    (f'{CLIENT}\n<database url="oracle://db/x"/>', 3, "unsupported database scheme", "sqlite"),
    (f'{CLIENT}\n<database url="postgresql+psycopg2://db/x"/>', 3, "scheme", "postgresql+psycopg"),
    (f'{CLIENT}\n<database url="fleetstat.db"/>', 3, "not of the form scheme://", "sqlite:///"),
    (f'{CLIENT}\n<defaults concurrency="5001"/>', 3, "out of range", "1..5000"),
    (f'{CLIENT}\n<defaults connect-timeout="0"/>', 3, "is zero", "greater than zero"),
    (f'{CLIENT}\n<defaults run-timeout="soon"/>', 3, "not a duration", "5m"),
    (f'{CLIENT}\n<defaults host-keys="yes"/>', 3, "'yes' is not valid", "strict, accept-new, off"),
    (f'{CLIENT}\n<defaults timeout="5s"/>', 3, "unknown attribute timeout=", "did you mean"),
    (
        f'{CLIENT}\n<defaults top-processes-when="alert"/>',
        3,
        "'alert' is not valid",
        'did you mean "alerts"? use one of alerts, always',
    ),
    (f'{CLIENT}\n<retention samples="-1d"/>', 3, "not a duration", "7d"),
    (
        f"{CLIENT}\n<defaults/>\n<defaults/>",
        4,
        "second <defaults> element (first on line 3)",
        "keep one",
    ),
    (f"{CLIENT}\n{CLIENT}", 3, "duplicate client 10.0.0.9:22 (first on line 2)", "different ip"),
    (
        f'{CLIENT}\n<client ip="h" username="u" password-env="P">hi</client>',
        3,
        "text",
        "attributes",
    ),
    (f"{CLIENT}\n<key>\n<extra/></key>", 4, "unknown element <extra>", "no child elements"),
]

ALERT_CASES = [
    ('type="mem" limit="5%"', "unknown alert type 'mem'", 'did you mean "memory"?'),
    (
        'type="gpu" limit="5%"',
        "unknown alert type",
        "memory, cpu, cpu-core, swap, disk, load, unreachable",
    ),
    ('type="cpucore" limit="95%"', "unknown alert type 'cpucore'", 'did you mean "cpu-core"?'),
    ('type="cpu-core"', "limit= is missing", 'limit="80%"'),
    ('type="cpu-core" limit="101%"', "not within 0-100%", '"80%"'),
    ('type="cpu-core" limit="busy"', "not a percentage", '"80%"'),
    ('type="cpu-core" limit="95%" window="interval"', "applies to cpu, not cpu-core", "remove"),
    ('type="cpu-core" limit="95%" mount="/"', "mount= applies to disk", 'type="disk"'),
    ('type="swap" limit="50%" scope="cgroup"', "applies to memory, not swap", "remove scope="),
    ('type="memory" limit="50%" scope="pod"', "'pod' is not valid", "host, cgroup"),
    ('limit="5%"', "type= is missing", 'type="cpu"'),
    ('type="cpu"', "limit= is missing", 'limit="80%"'),
    ('type="cpu" limit="120%"', "not within 0-100%", '"80%"'),
    ('type="memory" limit="lots"', "not a percentage", '"80%"'),
    ('type="swap" limit="-1%"', "not within 0-100%", '"80%"'),
    ('type="load" limit="150%"', "not a percentage", '"1.5"'),
    ('type="load" limit="0"', "greater than 0", '"1.5"'),
    ('type="cpu" limit="80%" mount="/var"', "mount= applies to disk", 'type="disk"'),
    ('type="disk" limit="80%" mount="var"', "not an absolute path", 'mount="/var"'),
    ('type="cpu" limit="80%" for="0"', "out of range", "1 or more"),
    ('type="cpu" limit="80%" clear="85%"', "clear (85) must be below the limit (80)", "under"),
    ('type="load" limit="2" clear="2"', "must be below the limit", "under"),
    ('type="cpu" limit="80%" resolved="nope"', "not true or false", '"false"'),
    ('type="cpu" limit="80%" repeat="often"', "not a duration", "4h"),
    ('type="cpu" limit="80%" window="long"', "'long' is not valid", "short, interval"),
    ('type="memory" limit="80%" window="interval"', "applies to cpu", "remove window="),
]


@pytest.mark.parametrize(("body", "line", "message", "fix"), ERROR_CASES)
def test_error_reports_line_message_and_fix(
    tmp_path: Path, body: str, line: int, message: str, fix: str
) -> None:
    path = write(tmp_path, "<fleetstat>\n" + body + "\n</fleetstat>\n")
    issue = only_issue(path, env={"P": "x"})
    assert issue.file == str(path)
    assert issue.line == line, str(issue)
    assert message in issue.message, str(issue)
    assert issue.fix is not None and fix in issue.fix, str(issue)
    assert str(issue).startswith(f"{path}:{line}: ")


@pytest.mark.parametrize(("attrs", "message", "fix"), ALERT_CASES)
def test_alert_error_reports_line_message_and_fix(
    tmp_path: Path, attrs: str, message: str, fix: str
) -> None:
    path = write(
        tmp_path,
        f"""
        <fleetstat>
          <client ip="h" username="u" password-env="P">
            <alert type="unreachable"/>
            <alert {attrs}/>
          </client>
        </fleetstat>
        """,
    )
    issue = only_issue(path, env={"P": "x"})
    assert issue.line == 4, str(issue)
    assert message in issue.message, str(issue)
    assert issue.fix is not None and fix in issue.fix, str(issue)


def test_duplicate_alert_rule_names_the_first(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        <fleetstat>
          <client ip="h" username="u" password-env="P">
            <alert type="disk" limit="90%"/>
            <alert type="disk" limit="80%" mount="/var"/>
            <alert type="disk" limit="95%"/>
          </client>
        </fleetstat>
        """,
    )
    issue = only_issue(path, env={"P": "x"})
    assert (issue.line, issue.message) == (5, "duplicate alert disk:* (first on line 3)")


def test_memory_rules_for_the_host_and_for_its_cgroup_coexist(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        <fleetstat>
          <client ip="h" username="u" password-env="P">
            <alert type="memory" limit="90%"/>
            <alert type="memory" limit="80%" scope="cgroup"/>
            <alert type="memory" limit="70%" scope="host"/>
          </client>
        </fleetstat>
        """,
    )
    issue = only_issue(path, env={"P": "x"})
    assert (issue.line, issue.message) == (5, "duplicate alert memory (first on line 3)")
    path.write_text(path.read_text().replace('<alert type="memory" limit="70%" scope="host"/>', ""))
    rules = load_config(path, env={"P": "x"}).clients[0].alerts
    assert [(r.key, r.scope, r.limit) for r in rules] == [
        ("memory", "host", 90.0),
        ("memory:cgroup", "cgroup", 80.0),
    ]


def test_unreachable_limit_is_ignored_with_a_warning(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        <fleetstat>
          <client ip="h" username="u" password-env="P" mail="a@example.com">
            <alert type="unreachable" limit="5%"/>
          </client>
        </fleetstat>
        """,
    )
    config = load_config(path, env={"P": "x"})
    assert config.clients[0].alerts[0].limit is None
    assert any(":3: limit= is ignored" in w for w in config.warnings)


def test_attribute_on_a_continuation_line_reports_that_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        <fleetstat>
          <client ip="h" username="u"
                  password-env="P"
                  port="99999"/>
        </fleetstat>
        """,
    )
    assert only_issue(path, env={"P": "x"}).line == 4


def test_no_clients_is_an_issue(tmp_path: Path) -> None:
    issue = only_issue(write(tmp_path, "<fleetstat>\n  <defaults/>\n</fleetstat>\n"))
    assert (issue.line, issue.message) == (1, "no <client> configured")
    assert issue.fix is not None and "<client ip=" in issue.fix


def test_wrong_root_suggests_fleetstat(tmp_path: Path) -> None:
    issue = only_issue(write(tmp_path, "<fleetstats><client/></fleetstats>"))
    assert issue.message == "the root element is <fleetstats>"
    assert issue.fix == "use <fleetstat> ... </fleetstat>"


def test_many_errors_are_reported_at_once_in_line_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        <fleetstat>
          <defaults concurrency="0"/>
          <client ip="10.0.0.300" port="0" username="u">
            <alert type="cpu" limit="200%"/>
          </client>
          <client ip="ok.example.com" username="u" password-env="MISSING" mail="nobody"/>
        </fleetstat>
        """,
    )
    issues = issues_of(path, env={})
    # MISSING is not set: no issue at load, only for the commands that log in.
    assert [issue.line for issue in issues] == [2, 3, 3, 3, 4, 6]
    error = str(ConfigError(issues))
    assert error.count(str(path)) == 6


# --- files that cannot be parsed at all ---------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    issue = only_issue(tmp_path / "nope.xml")
    assert (issue.line, issue.message) == (None, "config file not found")


def test_unreadable_file(tmp_path: Path) -> None:
    issue = only_issue(tmp_path)  # a directory
    assert "directory" in issue.message


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.xml"
    path.write_bytes('<fleetstat>\n<client name="café"/>\n</fleetstat>\n'.encode("latin-1"))
    issue = only_issue(path)
    assert (issue.line, issue.fix) == (2, "save the file as UTF-8")


def test_malformed_xml_reports_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, '<fleetstat>\n  <client ip="h" username="u">\n</fleetstat>\n')
    issue = only_issue(path)
    assert issue.line == 3
    assert issue.message == "malformed XML: mismatched tag at column 3"
    assert issue.fix is not None and "</tag>" in issue.fix


def test_several_clients_without_a_root_hint_at_the_root(tmp_path: Path) -> None:
    path = write(tmp_path, f"{CLIENT}\n{CLIENT}\n")
    issue = only_issue(path)
    assert issue.line == 2
    assert issue.fix is not None and "<fleetstat>" in issue.fix


@pytest.mark.parametrize(
    "xml",
    [
        '<!DOCTYPE fleetstat [<!ENTITY pw "secret">]>\n<fleetstat/>',
        '<!DOCTYPE fleetstat SYSTEM "http://example.com/x.dtd">\n<fleetstat/>',
    ],
)
def test_dtd_and_entities_are_refused(tmp_path: Path, xml: str) -> None:
    issue = only_issue(write(tmp_path, xml))
    assert issue.line == 1
    assert "not allowed" in issue.message
    assert issue.fix is not None and "DOCTYPE" in issue.fix


# --- durations ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10s", 10.0),
        ("5m", 300.0),
        ("4h", 14400.0),
        ("7d", 604800.0),
        ("2w", 1209600.0),
        ("90", 90.0),
        ("1.5s", 1.5),
        ("0.5", 0.5),
        ("250ms", 0.25),
        ("1h30m", 5400.0),
        ("1h 30m", 5400.0),
        (" 5 m ", 300.0),
        ("5M", 300.0),
        ("0", 0.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "s", "5x", "-5s", "5s5", "1.2.3s", "inf", "nan", "5 m s"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"), [(14400, "4h"), (5400, "1h30m"), (90, "1m30s"), (1.5, "1.5s"), (0, "0s")]
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds
