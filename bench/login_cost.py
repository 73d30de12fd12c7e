"""What one key login costs sshd and the client, asking first or signing first.

    python bench/login_cost.py [--rounds 12] [--logins 20]

Starts a small simulated fleet (root), then alternates rounds of sequential
logins (connect, ``exit 0``, close) with asyncssh's own publickey flow (a query,
PK_OK, then the signed request) and with fleetstat's (``transport/signfirst.py``:
the signed request at once). For each round it reads the sshd cgroup's CPU (every
process sshd forks is charged there) and the client's own CPU, per login, and
prints the medians. Nothing but the login and a trivial command runs, so the
difference is the auth exchange.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import asyncssh
from asyncssh import auth as asyncssh_auth

sys.path.insert(0, str(Path(__file__).parent))
from measure import CpuGroup

from fleetstat.simfleet import SimFleet, host_address
from fleetstat.transport import ssh  # installs the sign-first handler

HOSTS = 20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--logins", type=int, default=20, help="sequential logins per round")
    args = parser.parse_args()
    if not ssh.SIGN_FIRST:
        sys.exit("this asyncssh does not take the sign-first handler: nothing to compare")
    handlers = asyncssh_auth._client_auth_handlers
    flows: dict[str, type] = {
        "asyncssh (query first)": asyncssh_auth._ClientPublicKeyAuth,
        "fleetstat (sign first)": handlers[b"publickey"],
    }

    fleet = SimFleet(Path(tempfile.mkdtemp(prefix="fleetstat-login-")), count=HOSTS)
    fleet.start()
    assert fleet.pid is not None
    group = CpuGroup.create(f"login-{fleet.port}")
    if group is None:
        fleet.stop()
        sys.exit("needs cgroups (run as root)")
    group.add(fleet.pid)
    options = fleet.login_options(encryption_algs=list(ssh.ENCRYPTION_ALGS))

    async def logins(n: int) -> None:
        for i in range(n):
            async with asyncssh.connect(host_address(i % HOSTS), fleet.port, options=options) as c:
                result = await c.run("exit 0")
                assert result.exit_status == 0, result

    def settle() -> None:
        group.wait_until({fleet.pid}, 10)  # every session of the last round gone
        time.sleep(0.2)

    results: dict[str, list[tuple[float, float]]] = {name: [] for name in flows}
    try:
        for _ in range(args.rounds):
            for name, handler in flows.items():
                handlers[b"publickey"] = handler
                settle()
                sshd0, client0 = group.cpu_seconds(), time.process_time()
                asyncio.run(logins(args.logins))
                settle()
                sshd = (group.cpu_seconds() - sshd0) * 1000 / args.logins
                client = (time.process_time() - client0) * 1000 / args.logins
                results[name].append((sshd, client))
    finally:
        handlers[b"publickey"] = flows["fleetstat (sign first)"]
        fleet.stop()
        group.remove()
    print(f"{args.rounds} rounds x {args.logins} sequential logins each, medians per login:")
    for name, rows in results.items():
        sshd_ms = statistics.median(r[0] for r in rows)
        client_ms = statistics.median(r[1] for r in rows)
        print(f"  {name:24} sshd {sshd_ms:6.2f} ms   client {client_ms:6.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
