"""The reading side of a load: the attribute table, and the :class:`Reader` that
collects issues while the builders pull checked values out of elements.

Every accessor returns a usable default after reporting a problem, so a bad
value never stops the walk: the operator sees every issue in one run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TypeVar

from fleetstat.config.model import SecretUse, UnsetSecret
from fleetstat.config.source import Node
from fleetstat.config.validate import Invalid, check_env_name, suggest
from fleetstat.errors import ConfigIssue

T = TypeVar("T")

# The attributes each element accepts; anything else is reported with a suggestion.
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "fleetstat": (),
    "clients": (),
    "database": ("url", "password-env", "alert-after"),
    "key": ("path",),
    "smtp": (
        "host",
        "port",
        "starttls",
        "tls",
        "from",
        "username",
        "password",
        "password-env",
        "timeout",
        "cafile",
        "admin",
    ),
    "defaults": (
        "concurrency",
        "connect-timeout",
        "run-timeout",
        "host-keys",
        "known-hosts",
        "top-processes",
        "top-processes-when",
        "repeat",
        "keep-connections",
        "max-connection-age",
        "ssh-config",
        "jump",
        "agent",
        "passphrase-env",
    ),
    "retention": ("samples", "attempts", "events"),
    "spool": ("dir", "max-size"),
    "http": ("listen", "certfile", "keyfile", "metrics-public", "watch", "session-lifetime"),
    "cluster": ("broker", "shard-size", "deadline", "heartbeat", "queue-prefix"),
    "client": (
        "ip",
        "port",
        "username",
        "password",
        "password-env",
        "key",
        "mail",
        "name",
        "os",
        "zone",
        "keep-connections",
        "ssh-config",
        "jump",
        "agent",
        "passphrase-env",
    ),
    "alert": ("type", "limit", "mount", "for", "clear", "resolved", "repeat", "window", "scope"),
    "mail": ("to",),
    "events": ("enabled", "max"),
}


class Reader:
    """Shared state of one load: where issues go, and how attributes are read."""

    def __init__(self, shown: str, base_dir: Path, env: Mapping[str, str]) -> None:
        self.shown = shown
        self.base_dir = base_dir
        self.env = env
        self.issues: list[ConfigIssue] = []
        self.warnings: list[ConfigIssue] = []
        self.plaintext_password_lines: list[int] = []
        self.unset_secrets: list[UnsetSecret] = []
        self.reported: set[str] = set()  # issues about a shared file, reported once

    def issue(self, line: int | None, message: str, fix: str | None = None) -> None:
        self.issues.append(ConfigIssue(self.shown, line, message, fix))

    def warn(self, line: int | None, message: str, fix: str | None = None) -> None:
        self.warnings.append(ConfigIssue(self.shown, line, message, fix))

    def check_attributes(self, node: Node) -> None:
        """Unknown attributes are errors: a typo must not silently drop a setting."""
        valid = ATTRIBUTES[node.tag]
        for name in node.attrib:
            if name in valid:
                continue
            close = suggest(name, valid)
            fix = f"did you mean {close}=?" if close else None
            if not fix:
                fix = f"valid: {', '.join(valid)}" if valid else "remove it"
            self.issue(node.attr_line(name), f"unknown attribute {name}= on <{node.tag}>", fix)
        if node.text:
            self.issue(
                node.line,
                f"unexpected text {node.text[:30]!r} inside <{node.tag}>",
                'settings go in attributes, such as <alert type="cpu" limit="80%"/>',
            )

    def get(self, node: Node, name: str, check: Callable[[str], T], default: T) -> T:
        """The checked value of attribute ``name``, or ``default`` when absent or invalid."""
        raw = node.attrib.get(name)
        if raw is None:
            return default
        try:
            return check(raw)
        except Invalid as exc:
            self.issue(node.attr_line(name), f"<{node.tag}> {name}: {exc.message}", exc.fix)
            return default

    def require(self, node: Node, name: str, example: str) -> str | None:
        """A mandatory, non-blank attribute, or an issue saying how to add it."""
        raw = node.attrib.get(name)
        if raw is None and self._misspelt(node, name):
            return None  # "unknown attribute ... did you mean" already says it
        if raw is None or not raw.strip():
            what = "is empty" if raw is not None else "is missing"
            self.issue(node.attr_line(name), f"<{node.tag}> {name}= {what}", f"write {example}")
            return None
        return raw.strip()

    @staticmethod
    def _misspelt(node: Node, name: str) -> bool:
        valid = ATTRIBUTES[node.tag]
        return any(suggest(other, valid) == name for other in node.attrib if other not in valid)

    def choice(self, node: Node, name: str, options: tuple[str, ...], default: str) -> str:
        def check(raw: str) -> str:
            if raw in options:
                return raw
            close = suggest(raw, options)
            hint = f'did you mean "{close}"? ' if close else ""
            raise Invalid(f"{raw!r} is not valid", f"{hint}use one of {', '.join(options)}")

        return self.get(node, name, check, default)

    def path(self, node: Node, name: str) -> Path | None:
        raw = node.attrib.get(name)
        if raw is None:
            return None
        if not raw.strip():
            self.issue(node.attr_line(name), f"<{node.tag}> {name}= is empty", "give a file path")
            return None
        path = Path(raw.strip()).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    def secret(self, node: Node, use: SecretUse, owner: str) -> tuple[str | None, str | None]:
        """``(password, env name)`` from ``password=`` or ``password-env=``.

        A ``password-env`` variable that is unset or empty is no issue here: it is
        remembered (``unset_secrets``) for the commands that log in with it.
        """
        literal = node.attrib.get("password")
        env_name = self.get(node, "password-env", check_env_name, None)
        if literal is not None and "password-env" in node.attrib:
            self.issue(
                node.attr_line("password"),
                f"<{node.tag}> has both password= and password-env=",
                "keep password-env= and remove password=",
            )
        if literal is not None:
            if not literal:
                self.issue(
                    node.attr_line("password"),
                    f"<{node.tag}> password= is empty",
                    'use password-env="VAR" or key="..."',
                )
                return None, None
            self.plaintext_password_lines.append(node.attr_line("password"))
            return literal, None
        if env_name is None:
            return None, None
        value = self.env.get(env_name)
        if not value:
            line = node.attr_line("password-env")
            self.unset_secrets.append(UnsetSecret(env_name, use, owner, line, value == ""))
        return value or None, env_name

    def issue_once(self, line: int | None, message: str, fix: str | None = None) -> None:
        """An issue many clients would repeat (the ssh_config file they share): once."""
        if message not in self.reported:
            self.reported.add(message)
            self.issue(line, message, fix)

    def passphrase(
        self, env_name: str | None, line: int | None, owner: str
    ) -> tuple[str | None, str | None]:
        """``(passphrase, env name)`` from a checked ``passphrase-env`` name; unset is
        remembered, as for ``password-env``: only the commands that log in need it."""
        if env_name is None:
            return None, None
        value = self.env.get(env_name)
        if not value:
            self.unset_secrets.append(
                UnsetSecret(env_name, "client", owner, line, value == "", "passphrase-env")
            )
        return value or None, env_name

    def check_leaf(self, node: Node) -> None:
        """Attributes of an element that takes no children, and no children."""
        self.check_attributes(node)
        for _ in self.children(node, ()):
            pass  # children() reports each one

    def children(self, node: Node, allowed: tuple[str, ...]) -> Iterator[Node]:
        """Known child elements; unknown ones become issues with a suggestion."""
        for child in node.children:
            if child.tag in allowed:
                yield child
                continue
            close = suggest(child.tag, allowed)
            if close:
                fix = f"did you mean <{close}>?"
            elif allowed:
                fix = f"valid inside <{node.tag}>: " + ", ".join(f"<{t}>" for t in allowed)
            else:
                fix = f"<{node.tag}> takes no child elements; end it with />"
            self.issue(child.line, f"unknown element <{child.tag}> inside <{node.tag}>", fix)
