"""Warm rounds (SSH connections kept) against cold ones, beside Ansible with ControlPersist.

    .venv/bin/python bench/warm_rounds.py --n 500 --concurrency 100 --rounds 6 --name warm-n500
    .venv/bin/python bench/warm_rounds.py --n 20 --concurrency 10 --rounds 3 --name warm-smoke

Runs as root (the fleet's login user and the cgroups, as bench/round_bench.py).
One simulated fleet (one OpenSSH sshd in a cgroup of its own, logging each
login) serves every runner; each runner does ``--rounds`` consecutive rounds
over the same N hosts:

- ``collect``: ``fleetstat collect`` once per round, a new process each time
  (as round_bench.py's fleetstat-sqlite): every round logs in, as before issue 16;
- ``watch-cold``: the watch loop (bench/warm_runner.py, one process for all
  rounds) with ``keep-connections="off"``: every round logs in;
- ``watch-warm``: the same loop with the connections kept (the default of
  ``watch`` and ``serve``): round 1 logs in, the later rounds run on a new
  channel of each kept connection;
- ``ansible-persist``: ``ansible-playbook`` running bench/trivial_probe.py with
  the ``script`` module once per round, forks = concurrency, pipelining, and
  ``ControlPersist=30m``: round 1 starts an ssh master per host, the later
  rounds reuse them.

Per round: the runner's CPU (its cgroup: every thread and child, the ssh
masters included), the sshd's (every session, shell and probe it forked), wall
time, hosts ok, and logins (sshd's ``Accepted`` lines). The round's sshd CPU
is read once its sessions have ended (only sshd processes left in its cgroup),
so a round is charged with all of its own work. The summary gives round 1 and
the median (min-max) of rounds 2..R, per host. Raw rounds go to
``bench/results/<name>.jsonl`` as they finish, the summary to ``<name>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from measure import CpuGroup, loadavg, machine_cpu_seconds, preexec_join
from round_bench import PYTHON, RESULTS, WORK, Bench, ansible_hosts_ok, fmt, log

BENCH = Path(__file__).resolve().parent
RUNNERS = ("collect", "watch-cold", "watch-warm", "ansible-persist")
FLEETSTAT = str(Path(PYTHON).parent / "fleetstat")
# What a cgroup of sshd holds between rounds: the listener and, per kept
# connection, its monitor and session process; anything else is a session's.
SSHD_NAMES = ("sshd", "sshd-session", "sshd-auth")
TARGET_SSHD_MS = 20.0
TARGET_COLLECTOR_MS = 2.5


class WarmBench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.bench = Bench(_round_bench_args(args))
        self.bench.fleet.log_level = "INFO"  # sshd logs each login: they are counted
        self.fleet = self.bench.fleet

    # -- the sshd side ----------------------------------------------------------------
    def sessions_done(self, seconds: float = 60) -> bool:
        """Wait until every process in sshd's cgroup is an sshd (no session left)."""
        group = self.bench.sshd_group
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            pids = group.pids() if group is not None else []
            if all(_comm(pid) in SSHD_NAMES for pid in pids):
                return True
            time.sleep(0.05)
        return False

    def counters(self, group: CpuGroup | None) -> dict[str, float]:
        return {
            "runner": group.cpu_seconds() if group is not None else 0.0,
            "sshd": self.bench.sshd_cpu(),
            "machine": machine_cpu_seconds(),
            "logins": float(self.fleet.accepted_logins()),
            "t": time.perf_counter(),
        }

    def record(
        self, runner: str, repeat: int, number: int, before: dict[str, float],
        after: dict[str, float], ok: int, **extra: Any,
    ) -> dict[str, Any]:  # fmt: skip
        n = self.args.n
        return {
            "runner": runner,
            "repeat": repeat,
            "round": number,
            "n": n,
            "concurrency": self.args.concurrency,
            "hosts_ok": ok,
            "wall_seconds": round(after["t"] - before["t"], 3),
            "collector_cpu_ms_per_host": round((after["runner"] - before["runner"]) * 1000 / n, 2),
            "sshd_cpu_ms_per_host": round((after["sshd"] - before["sshd"]) * 1000 / n, 2),
            "machine_cpu_seconds": round(after["machine"] - before["machine"], 3),
            "logins": int(after["logins"] - before["logins"]),
            **extra,
        }

    # -- fleetstat ----------------------------------------------------------------------
    def watch_config(self, runner: str) -> Path:
        n, c = self.args.n, self.args.concurrency
        url = f"sqlite:///{WORK / f'warm-{runner}-{n}.db'}"
        Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
        text = self.bench.fleetstat_config(n, c, url).read_text()
        keep = "off" if runner == "watch-cold" else "30m"
        path = WORK / f"warm-{runner}-{n}-{c}.xml"
        path.write_text(text.replace("<defaults ", f'<defaults keep-connections="{keep}" ', 1))
        path.chmod(0o600)
        subprocess.run([FLEETSTAT, "db", "upgrade", "-c", str(path)], check=True,
                       stdout=subprocess.DEVNULL, env=self.bench.fleetstat_env())  # fmt: skip
        return path

    def run_watch(self, runner: str, repeat: int) -> list[dict[str, Any]]:
        config = self.watch_config(runner)
        group = CpuGroup.create(f"warm-{uuid.uuid4().hex[:8]}")
        err = (self.bench.logs / f"{runner}-r{repeat}.log").open("wb")
        proc = subprocess.Popen(
            [PYTHON, str(BENCH / "warm_runner.py"), str(config), str(self.args.rounds)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True,
            env=self.bench.fleetstat_env(), preexec_fn=preexec_join(group),
        )  # fmt: skip
        assert proc.stdin is not None and proc.stdout is not None
        records = []
        try:
            for number in range(1, self.args.rounds + 1):
                self.sessions_done()
                before = self.counters(group)
                proc.stdin.write("go\n")
                proc.stdin.flush()
                line = proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"{runner} ended early; see {err.name}")
                self.sessions_done()
                after = self.counters(group)
                done = json.loads(line)
                records.append(self.record(runner, repeat, number, before, after, done["ok"],
                                           retries=done["retries"]))  # fmt: skip
                self.report(records[-1])
            tail = proc.stdout.read()
            pool = [json.loads(x)["pool"] for x in tail.splitlines() if x.startswith('{"pool"')]
            if pool and records:
                records[-1]["pool"] = pool[0]
        finally:
            proc.stdin.close()
            proc.wait(timeout=120)
            err.close()
            if group is not None:
                group.kill_all()
                group.remove()
        return records

    def run_collect(self, repeat: int) -> list[dict[str, Any]]:
        n, c = self.args.n, self.args.concurrency
        records = []
        for number in range(1, self.args.rounds + 1):
            key = f"collect-r{repeat}-{number}"
            cmd, _timings = self.bench.fleetstat_cmd("fleetstat-sqlite", n, c, key)
            group = CpuGroup.create(f"warm-{uuid.uuid4().hex[:8]}")
            self.sessions_done()
            before = self.counters(group)
            with (self.bench.logs / f"{key}.out").open("wb") as out:
                code = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT,
                                      env=self.bench.fleetstat_env(),
                                      preexec_fn=preexec_join(group)).returncode  # fmt: skip
            self.sessions_done()
            after = self.counters(group)
            if group is not None:
                group.remove()
            text = (self.bench.logs / f"{key}.out").read_text(errors="replace")
            ok = _collect_ok(text)
            records.append(self.record("collect", repeat, number, before, after, ok,
                                       exit_code=code))  # fmt: skip
            self.report(records[-1])
        return records

    # -- ansible --------------------------------------------------------------------------
    def run_ansible(self, repeat: int) -> list[dict[str, Any]]:
        n, c = self.args.n, self.args.concurrency
        cmd, env, folder = self.bench.ansible_cmd("ansible-persist", n, c)
        # Ansible's own ssh_args with a ControlPersist that outlives the rounds, and
        # a control-socket folder of this run's (socket paths must stay short).
        control = Path(f"/tmp/fs-cp-{os.getpid()}")
        control.mkdir(mode=0o700, exist_ok=True)
        (folder / "ansible.cfg").write_text(
            "[defaults]\ninventory = inventory.ini\nhost_key_checking = True\n"
            f"forks = {c}\n\n[ssh_connection]\npipelining = True\n"
            "ssh_args = -C -o ControlMaster=auto -o ControlPersist=30m\n"
            f"control_path_dir = {control}\n"
        )
        group = CpuGroup.create(f"warm-{uuid.uuid4().hex[:8]}")
        records = []
        try:
            for number in range(1, self.args.rounds + 1):
                key = f"ansible-persist-r{repeat}-{number}"
                self.sessions_done()
                before = self.counters(group)
                with (self.bench.logs / f"{key}.out").open("wb") as out:
                    code = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                          cwd=folder,
                                          preexec_fn=preexec_join(group)).returncode  # fmt: skip
                self.sessions_done()
                after = self.counters(group)
                text = (self.bench.logs / f"{key}.out").read_text(errors="replace")
                records.append(self.record("ansible-persist", repeat, number, before, after,
                                           ansible_hosts_ok(text), exit_code=code))  # fmt: skip
                self.report(records[-1])
        finally:
            if group is not None:
                group.kill_all()  # the ssh masters
                time.sleep(0.1)
                group.remove()
            subprocess.run(["rm", "-rf", str(control)], check=False)
        return records

    def report(self, r: dict[str, Any]) -> None:
        log(
            f"{r['runner']} #{r['repeat']} round {r['round']}: {r['hosts_ok']}/{r['n']} ok, "
            f"wall {r['wall_seconds']:.2f}s, collector {r['collector_cpu_ms_per_host']:.2f} "
            f"ms/host, sshd+probe {r['sshd_cpu_ms_per_host']:.2f} ms/host, "
            f"{r['logins']} logins"
        )
        with (RESULTS / f"{self.args.name}.jsonl").open("a") as f:
            f.write(json.dumps(r) + "\n")


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "sshd"  # gone meanwhile


def _collect_ok(text: str) -> int:
    import re

    found = re.search(r"(\d+)/(\d+) ok", text)
    return int(found.group(1)) if found else 0


def _round_bench_args(args: argparse.Namespace) -> argparse.Namespace:
    """What round_bench's Bench reads from its command line."""
    return argparse.Namespace(
        n=[args.n], hang_every=0, name=args.name, run_timeout=60, top_processes=5,
        top_processes_when="alerts", fleetstat_src=args.fleetstat_src, baseline=None,
        runners=["fleetstat-sqlite"] if "collect" in args.runners else [],
    )  # fmt: skip


# --- the summary -------------------------------------------------------------------------

METRICS = ("wall_seconds", "collector_cpu_ms_per_host", "sshd_cpu_ms_per_host", "logins",
           "hosts_ok", "machine_cpu_seconds")  # fmt: skip


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarize(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for runner in RUNNERS:
        mine = [r for r in records if r["runner"] == runner]
        if not mine:
            continue
        for phase, chosen in (("round 1", [r for r in mine if r["round"] == 1]),
                              ("rounds 2+", [r for r in mine if r["round"] > 1])):  # fmt: skip
            if not chosen:
                continue
            row: dict[str, Any] = {"runner": runner, "phase": phase, "rounds": len(chosen)}
            for metric in METRICS:
                row[metric] = spread([r[metric] for r in chosen])
            rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'runner':<16} {'rounds':<10} {'wall s':>20} {'collector ms/host':>20} "
        f"{'sshd+probe ms/host':>20} {'logins':>16} {'ok':>14}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['runner']:<16} {r['phase']:<10} {fmt(r['wall_seconds'], 2):>20} "
            f"{fmt(r['collector_cpu_ms_per_host'], 2):>20} {fmt(r['sshd_cpu_ms_per_host'], 1):>20} "
            f"{fmt(r['logins'], 0):>16} {fmt(r['hosts_ok'], 0):>14}"
        )
    return "\n".join(lines)


def verdicts(rows: list[dict[str, Any]], n: int) -> list[str]:
    def find(runner: str) -> dict[str, Any] | None:
        return next((r for r in rows if r["runner"] == runner and r["phase"] == "rounds 2+"), None)

    warm = find("watch-warm")
    if warm is None:
        return []
    out = []
    valid = warm["hosts_ok"]["min"] == n and warm["logins"]["max"] == 0
    state = "" if valid else " INVALID (hosts lost or logins in warm rounds)"
    sshd, coll = warm["sshd_cpu_ms_per_host"]["median"], warm["collector_cpu_ms_per_host"]["median"]
    out.append(
        f"watch-warm N={n}: sshd+probe {sshd:.1f} ms/host per round "
        f"(<= {TARGET_SSHD_MS:g}: {'met' if sshd <= TARGET_SSHD_MS else 'MISSED'}){state}"
    )
    out.append(f"watch-warm N={n}: collector {coll:.2f} ms/host per round "
               f"(<= {TARGET_COLLECTOR_MS:g}: "
               f"{'met' if coll <= TARGET_COLLECTOR_MS else 'MISSED'}){state}")  # fmt: skip
    for other in ("watch-cold", "collect", "ansible-persist"):
        row = find(other)
        if row is None:
            continue
        for metric in ("wall_seconds", "collector_cpu_ms_per_host", "sshd_cpu_ms_per_host"):
            ratio = warm[metric]["median"] / row[metric]["median"]
            ahead = "ahead" if ratio < 1 else "BEHIND"
            out.append(f"watch-warm vs {other} (rounds 2+): {metric} {ratio:.2f}x ({ahead})")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=6, help="rounds per runner (>= 2)")
    parser.add_argument("--repeats", type=int, default=1, help="the runners' sequence, again")
    parser.add_argument("--runners", type=lambda s: s.split(","), default=list(RUNNERS))
    parser.add_argument("--name", default="warm", help="results file stem under bench/results/")
    parser.add_argument("--fleetstat-src", help="the src/ folder of another checkout to run")
    args = parser.parse_args()
    if args.rounds < 2:
        parser.error("--rounds must be at least 2: round 1 is the cold start")
    unknown = set(args.runners) - set(RUNNERS)
    if unknown:
        parser.error(f"unknown runners {sorted(unknown)}; use {','.join(RUNNERS)}")
    if os.geteuid() != 0:
        sys.exit("warm_rounds.py needs root: the fleet's login user and the cgroups")

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.jsonl").unlink(missing_ok=True)
    wb = WarmBench(args)
    ansible_version = wb.bench.ensure_ansible() if "ansible-persist" in args.runners else None
    wb.bench.start()
    records: list[dict[str, Any]] = []
    try:
        wb.bench.compile_fleetstat()
        if "collect" in args.runners:
            wb.bench.prepare_databases(fresh=True)
        for repeat in range(args.repeats):
            # Rotated each repeat, so no runner always follows the same one.
            order = (
                args.runners[repeat % len(args.runners) :]
                + args.runners[: repeat % len(args.runners)]
            )
            for runner in order:
                load = loadavg()
                if runner == "collect":
                    got = wb.run_collect(repeat)
                elif runner == "ansible-persist":
                    got = wb.run_ansible(repeat)
                else:
                    got = wb.run_watch(runner, repeat)
                for r in got:
                    r["loadavg_before_runner"] = load
                records += got
    finally:
        wb.bench.stop()

    rows = summarize(records)
    lines = verdicts(rows, args.n)
    summary = {
        "command": " ".join([Path(PYTHON).name, *sys.argv]),
        "machine": {
            "cpus": os.cpu_count(),
            "kernel": platform.release(),
            "python": platform.python_version(),
            "openssh": subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip(),
            "ansible": ansible_version,
        },
        "fleet": {
            "hosts": args.n,
            "kex": wb.fleet.kex_algorithms,
            "host_key": "ssh-ed25519",
            "client_auth": "ssh-ed25519 key",
        },
        "rows": rows,
        "verdicts": lines,
    }
    (RESULTS / f"{args.name}.json").write_text(json.dumps(summary, indent=2) + "\n")
    print()
    print(table(rows))
    print()
    print("\n".join(lines))
    print(f"\nraw rounds: {RESULTS / f'{args.name}.jsonl'}")
    print(f"summary:    {RESULTS / f'{args.name}.json'}")
    return 0


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
