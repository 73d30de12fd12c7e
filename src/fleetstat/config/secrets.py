"""Secrets named by ``password-env``: required only by the commands that log in.

``load_config`` resolves every variable that is set and remembers the others
(``Config.unset_secrets``). A command asks for what it logs in with: ``collect``
and ``watch`` the clients', the SMTP server's and the database's; ``mail flush``
the SMTP server's and the database's; ``report``, ``history``, ``alerts``,
``prune`` and ``db upgrade`` only the database's (and none with ``--db``). A
missing variable is one issue however many clients name it.
"""

from __future__ import annotations

from collections.abc import Iterable

from fleetstat.config.model import Config, SecretUse, UnsetSecret
from fleetstat.errors import ConfigError, ConfigIssue

_WHAT = {"database": "the database", "smtp": "the SMTP server", "client": "SSH logins"}
# passphrase-env (an encrypted key's passphrase) is a "client" secret too: only the
# commands that log in read it.


def secret_issues(config: Config, uses: Iterable[SecretUse]) -> list[ConfigIssue]:
    """One issue per unset variable that one of ``uses`` needs, in file order."""
    wanted = set(uses)
    by_env: dict[str, list[UnsetSecret]] = {}
    for unset in config.unset_secrets:
        if unset.use in wanted:
            by_env.setdefault(unset.env, []).append(unset)
    issues = []
    for env, refs in sorted(by_env.items(), key=lambda item: item[1][0].line or 0):
        state = "is empty" if all(ref.empty for ref in refs) else "is not set"
        issues.append(
            ConfigIssue(
                str(config.path),
                refs[0].line,
                f"environment variable {env} {state}: {refs[0].attribute} of {_owners(refs)}",
                f"export {env}=... in the environment that runs fleetstat "
                "(systemd: EnvironmentFile=, see contrib/fleetstat.service)",
            )
        )
    return issues


def require_secrets(config: Config, *uses: SecretUse) -> None:
    """Raise :class:`ConfigError` (exit 2) naming each unset variable ``uses`` need once."""
    issues = secret_issues(config, uses)
    if issues:
        raise ConfigError(issues)


def _owners(refs: list[UnsetSecret]) -> str:
    what = _WHAT[refs[0].use] if len({ref.use for ref in refs}) == 1 else "several uses"
    clients = [ref.owner for ref in refs if ref.use == "client"]
    others = [ref.owner for ref in refs if ref.use != "client"]
    named = others[:]
    if clients:
        shown = ", ".join(clients[:3]) + (
            f" and {len(clients) - 3} more" if len(clients) > 3 else ""
        )
        named.append(
            f"{len(clients)} client(s): {shown}" if len(clients) > 1 else f"client {shown}"
        )
    return f"{' and '.join(named)} ({what})"
