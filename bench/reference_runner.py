"""The reference runner: what the SSH transport alone costs, written with asyncssh.

For every host, at most ``concurrency`` at once: connect (key login, host key
checked against known_hosts), one exec channel whose shell makes a private temp
dir, writes the trivial probe from stdin into it, runs it with ``python3 -I -S``
and removes the dir; read the output; close. Nothing else: no sealing, no parsing,
no database, no retries. fleetstat's round is measured against this.

    python bench/reference_runner.py hosts.json --concurrency 100

``hosts.json``: {"hosts": [[ip, port], ...], "username", "key", "known_hosts"}.
Prints one JSON object: {"ok": n, "failed": n, "errors": [first few]}.

``--ciphers aes128-gcm@openssh.com,...`` sets asyncssh's ``encryption_algs``
(default: asyncssh's own order, chacha20-poly1305 first); the bench's
``reference-gcm`` runner passes fleetstat's order (``transport.ssh.ENCRYPTION_ALGS``)
so the transport is also compared like for like.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

import asyncssh

PROBE = (Path(__file__).parent / "trivial_probe.py").read_bytes()
# Run by the login shell (sh -c). The EXIT trap removes the dir whatever happens.
COMMAND = (
    'd=$(mktemp -d "${TMPDIR:-/tmp}/refbench.XXXXXXXX") || exit 120; '
    "trap 'rm -rf \"$d\"' EXIT; "
    'cat > "$d/probe.py" || exit 121; '
    'python3 -I -S "$d/probe.py"'
)


async def one(
    host: str,
    port: int,
    options: asyncssh.SSHClientConnectionOptions,
    limit: asyncio.Semaphore,
) -> str | None:
    async with limit:
        try:
            async with asyncssh.connect(host, port, options=options) as conn:
                result = await conn.run(COMMAND, input=PROBE, encoding=None, timeout=60)
        except (OSError, asyncssh.Error, TimeoutError) as exc:
            return f"{host}: {type(exc).__name__}: {exc}"
        out = result.stdout if isinstance(result.stdout, bytes) else b""
        if result.exit_status != 0 or not out.startswith(b"load "):
            return f"{host}: exit {result.exit_status}"
        return None


async def main_async(spec: dict, concurrency: int, ciphers: list[str] | None = None) -> dict:
    extra = {"encryption_algs": ciphers} if ciphers else {}
    options = asyncssh.SSHClientConnectionOptions(
        **extra,
        username=spec["username"],
        client_keys=[asyncssh.read_private_key(spec["key"])],
        known_hosts=asyncssh.read_known_hosts(spec["known_hosts"]),
        agent_path=None,
        config=(),
        connect_timeout=10,
    )
    limit = asyncio.Semaphore(concurrency)
    errors = await asyncio.gather(
        *(one(ip, int(port), options, limit) for ip, port in spec["hosts"])
    )
    failed = [e for e in errors if e]
    return {"ok": len(errors) - len(failed), "failed": len(failed), "errors": failed[:5]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("spec", type=Path)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--ciphers", type=lambda s: s.split(","), help="encryption_algs, in order")
    args = parser.parse_args()
    spec = json.loads(args.spec.read_text())
    summary = asyncio.run(main_async(spec, args.concurrency, args.ciphers))
    print(json.dumps(summary))
    return 0 if summary["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
