"""One round over a simulated fleet, timed for fleetstat, a reference runner and Ansible.

    .venv/bin/python bench/round_bench.py            # the full matrix (see bench/README.md)
    .venv/bin/python bench/round_bench.py --quick    # 20 hosts, one repeat: does it work?
    .venv/bin/python bench/round_bench.py --resume   # go on with an interrupted run

Runs as root (the fleet's throw-away login and the cgroups need it). One OpenSSH
sshd (simfleet) serves every host for every runner in the run; each runner is a
subprocess in a cgroup of its own, the sshd in another (see measure.py for why).
Every finished run is appended to ``bench/results/<name>.jsonl`` at once, so an
interrupted run resumes where it stopped; the summary (medians, min-max) is
printed as a table and written to ``bench/results/<name>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from measure import CpuGroup, loadavg, machine_cpu_seconds, preexec_join, proc_tree_cpu

from fleetstat import envelope
from fleetstat.simfleet import SimFleet
from fleetstat.transport.ssh import ENCRYPTION_ALGS

BENCH = Path(__file__).resolve().parent
WORK = BENCH / ".work"
RESULTS = BENCH / "results"
ANSIBLE_VENV = BENCH / ".venv-ansible"
ANSIBLE_SPEC = "ansible-core>=2.17,<2.20"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_DB = "fleetstat_bench"
PYTHON = sys.executable
FLEETSTAT_RUNNERS = ("fleetstat-sqlite", "fleetstat-pg")
REFERENCE_RUNNERS = ("reference", "reference-gcm")
# --baseline CHECKOUT: that checkout's fleetstat (its src/ and its own
# bench/fleetstat_timed.py) on SQLite, interleaved with this one's in the same run.
BASELINE_RUNNER = "baseline-sqlite"
RUNNERS = (*FLEETSTAT_RUNNERS, *REFERENCE_RUNNERS, "ansible-default", "ansible-tuned")
ANSIBLE_DEFAULT_FORKS = 5


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --- the fleet and what each runner needs --------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.max_n = max(args.n)
        every = args.hang_every
        hang = {i: "hang" for i in range(self.max_n) if every and i % every == 1}
        self.fleet = SimFleet(WORK / "fleet", count=self.max_n, behaviours=hang)
        self.sshd_group: CpuGroup | None = None
        self.key = WORK / "server.key"
        self.logs = WORK / "logs" / args.name

    def start(self) -> None:
        if os.geteuid() != 0:
            sys.exit("round_bench.py needs root: the fleet's login user and the cgroups")
        WORK.mkdir(exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.fleet.start()
        assert self.fleet.pid is not None
        self.sshd_group = CpuGroup.create(f"sshd-{self.fleet.port}")
        if self.sshd_group is not None:
            self.sshd_group.add(self.fleet.pid)
        if not self.key.exists():
            envelope.generate_keypair(self.key)
        log(
            f"fleet: {self.max_n} hosts on port {self.fleet.port}, sshd pid {self.fleet.pid}, "
            f"cgroups: {self.sshd_group.path if self.sshd_group else 'unavailable'}"
        )

    def stop(self) -> None:
        self.fleet.stop()
        if self.sshd_group is not None:
            self.sshd_group.remove()

    def sshd_cpu(self) -> float:
        if self.sshd_group is not None:
            return self.sshd_group.cpu_seconds()
        assert self.fleet.pid is not None
        return proc_tree_cpu(self.fleet.pid)

    def drain_sessions(self) -> None:
        """Wait for the sessions of the last run to end, so their CPU is all counted."""
        if self.sshd_group is not None and self.fleet.pid is not None:
            self.sshd_group.wait_until({self.fleet.pid}, 30)
        else:
            time.sleep(2)

    # -- fleetstat --------------------------------------------------------------------
    def fleetstat_config(self, n: int, concurrency: int, db_url: str) -> Path:
        kind = "pg" if "postgres" in db_url else "baseline" if "baseline" in db_url else "sqlite"
        path = WORK / f"fleetstat-{n}-{concurrency}-{kind}.xml"
        path.write_text(
            f"""<fleetstat>
  <database url="{db_url}"/>
  <key path="{self.key}"/>
  <defaults concurrency="{concurrency}" connect-timeout="10s" run-timeout="{self.args.run_timeout}s"
            top-processes="{self.args.top_processes}"
            top-processes-when="{self.args.top_processes_when}"
            host-keys="strict" known-hosts="{self.fleet.known_hosts}"/>
{self.fleet.client_xml(auth="key", indices=list(range(n)))}
</fleetstat>
""",
            encoding="utf-8",
        )
        path.chmod(0o600)
        return path

    def db_url(self, runner: str, n: int) -> str:
        if runner == "fleetstat-pg":
            return f"postgresql://postgres@127.0.0.1:5432/{PG_DB}"
        if runner == BASELINE_RUNNER:  # its own file: the schema may be an older one
            return f"sqlite:///{WORK / f'baseline-{n}.db'}"
        return f"sqlite:///{WORK / f'fleetstat-{n}.db'}"

    def compile_fleetstat(self) -> None:
        """Byte-compile the fleetstat under test, as an installed package would be.

        The runners run with the caller's environment, which may set
        PYTHONDONTWRITEBYTECODE: an uncompiled editable checkout would then be
        compiled again by every timed run, a cost no installed fleetstat pays.
        """
        src = Path(self.args.fleetstat_src) if self.args.fleetstat_src else BENCH.parent / "src"
        sources = [src] + ([Path(self.args.baseline) / "src"] if self.args.baseline else [])
        for folder in sources:
            subprocess.run(
                [PYTHON, "-m", "compileall", "-q", str(folder)],
                check=True,
                stdout=subprocess.DEVNULL,
            )

    def prepare_databases(self, fresh: bool) -> None:
        """Schemas created before any timed run: a round writes into an existing database."""
        runners = self.args.runners
        if "fleetstat-pg" in runners:
            import psycopg

            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                exists = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (PG_DB,)
                ).fetchone()
                if fresh and exists:
                    conn.execute(f"DROP DATABASE {PG_DB} WITH (FORCE)")
                    exists = None
                if not exists:
                    conn.execute(f"CREATE DATABASE {PG_DB}")
        for runner in (*FLEETSTAT_RUNNERS, BASELINE_RUNNER):
            if runner not in runners:
                continue
            for n in self.args.n:
                url = self.db_url(runner, n)
                if fresh and url.startswith("sqlite:///"):
                    Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
                cfg = self.fleetstat_config(n, 1, url)
                fleetstat = str(Path(PYTHON).parent / "fleetstat")
                upgrade = [fleetstat, "db", "upgrade", "-c", str(cfg)]
                subprocess.run(upgrade, check=True, env=self.fleetstat_env(runner))

    def fleetstat_env(self, runner: str = "fleetstat-sqlite") -> dict[str, str] | None:
        """``--fleetstat-src``: run another checkout's fleetstat (a before/after pair);
        the baseline runner runs ``--baseline``'s."""
        if runner == BASELINE_RUNNER:
            src = str((Path(self.args.baseline) / "src").resolve())
        elif self.args.fleetstat_src:
            src = str(Path(self.args.fleetstat_src).resolve())
        else:
            return None
        return {**os.environ, "PYTHONPATH": src}

    def fleetstat_cmd(self, runner: str, n: int, c: int, key: str) -> tuple[list[str], Path]:
        cfg = self.fleetstat_config(n, c, self.db_url(runner, n))
        timings = self.logs / f"{key}.timings.json"
        timings.unlink(missing_ok=True)
        bench = Path(self.args.baseline) / "bench" if runner == BASELINE_RUNNER else BENCH
        cmd = [PYTHON, str(bench / "fleetstat_timed.py"), str(timings), "collect", "-c", str(cfg)]
        if os.environ.get("BENCH_NO_PYC"):
            cmd = ["env", "BENCH_NO_PYC=1", *cmd]
        return [*cmd, "-q"], timings

    # -- reference ----------------------------------------------------------------------
    def reference_cmd(self, n: int, c: int, ciphers: tuple[str, ...] = ()) -> list[str]:
        spec = WORK / f"reference-{n}.json"
        spec.write_text(
            json.dumps(
                {
                    "hosts": [[h.address, self.fleet.port] for h in self.fleet.hosts[:n]],
                    "username": self.fleet.user,
                    "key": str(self.fleet.client_key),
                    "known_hosts": str(self.fleet.known_hosts),
                }
            )
        )
        cmd = [PYTHON, str(BENCH / "reference_runner.py"), str(spec), "--concurrency", str(c)]
        return [*cmd, "--ciphers", ",".join(ciphers)] if ciphers else cmd

    # -- ansible --------------------------------------------------------------------------
    def ensure_ansible(self) -> str:
        playbook = ANSIBLE_VENV / "bin" / "ansible-playbook"
        if not playbook.exists():
            log(f"installing {ANSIBLE_SPEC} into {ANSIBLE_VENV} (bench only)")
            subprocess.run([PYTHON, "-m", "venv", str(ANSIBLE_VENV)], check=True)
            pip = [str(ANSIBLE_VENV / "bin" / "pip"), "install", "-q"]
            subprocess.run([*pip, ANSIBLE_SPEC], check=True)
        out = subprocess.run(
            [str(ANSIBLE_VENV / "bin" / "ansible"), "--version"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return out.splitlines()[0]

    def ansible_cmd(self, runner: str, n: int, c: int) -> tuple[list[str], dict[str, str], Path]:
        tuned = runner == "ansible-tuned"
        folder = WORK / "ansible" / f"{runner}-{n}-{c}"
        folder.mkdir(parents=True, exist_ok=True)
        hosts = "\n".join(
            f"h{i:04d} ansible_host={h.address}" for i, h in enumerate(self.fleet.hosts[:n])
        )
        ssh_args = f"-o UserKnownHostsFile={self.fleet.known_hosts} -o StrictHostKeyChecking=yes"
        (folder / "inventory.ini").write_text(
            f"""[fleet]
{hosts}

[fleet:vars]
ansible_port={self.fleet.port}
ansible_user={self.fleet.user}
ansible_ssh_private_key_file={self.fleet.client_key}
ansible_ssh_common_args={ssh_args}
"""
        )
        (folder / "playbook.yml").write_text(
            f"""- hosts: fleet
  gather_facts: false
  tasks:
    - name: trivial probe
      ansible.builtin.script: {BENCH / "trivial_probe.py"}
      args:
        executable: python3 -I -S
"""
        )
        # Default: nothing set but the inventory (forks 5, no pipelining; ssh_args
        # stay Ansible's own -C -o ControlMaster=auto -o ControlPersist=60s).
        cfg = "[defaults]\ninventory = inventory.ini\nhost_key_checking = True\n"
        if tuned:
            cfg += f"forks = {c}\n\n[ssh_connection]\npipelining = True\n"
        (folder / "ansible.cfg").write_text(cfg)
        env = {
            **os.environ,
            "ANSIBLE_CONFIG": str(folder / "ansible.cfg"),
            "ANSIBLE_NOCOLOR": "1",
            "PATH": f"{ANSIBLE_VENV / 'bin'}:{os.environ['PATH']}",
        }
        cmd = [str(ANSIBLE_VENV / "bin" / "ansible-playbook"), "playbook.yml"]
        return cmd, env, folder

    # -- one measured run -----------------------------------------------------------------
    def measure(
        self, key: str, cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> dict[str, Any]:
        group = CpuGroup.create(f"run-{uuid.uuid4().hex[:8]}")
        out_path = self.logs / f"{key}.out"
        load = loadavg()
        sshd0 = self.sshd_cpu()
        machine0 = machine_cpu_seconds()
        t0 = time.perf_counter()
        with out_path.open("wb") as out:
            proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, cwd=cwd, preexec_fn=preexec_join(group),
            )  # fmt: skip
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        collector_cpu = usage.ru_utime + usage.ru_stime
        leftovers = 0
        if group is not None:
            leftovers = group.kill_all()  # e.g. ssh ControlPersist masters
            time.sleep(0.05)
            collector_cpu = group.cpu_seconds()
            group.remove()
        self.drain_sessions()
        machine = machine_cpu_seconds() - machine0
        sshd = self.sshd_cpu() - sshd0
        return {
            "loadavg_before": load,
            "exit_code": proc.returncode,
            "wall_seconds": round(wall, 3),
            "machine_cpu_seconds": round(machine, 3),
            "collector_cpu_seconds": round(collector_cpu, 3),
            "collector_cpu_source": "cgroup" if group is not None else "wait4 rusage",
            "sshd_cpu_seconds": round(sshd, 3),
            "sshd_cpu_source": "cgroup" if self.sshd_group is not None else "listener cutime",
            "collector_peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "leftover_processes_killed": leftovers,
            "output": out_path.read_text(errors="replace")[-3000:],
        }

    def run_one(self, runner: str, n: int, c: int, repeat: int) -> dict[str, Any]:
        key = f"{runner}-n{n}-c{c}-r{repeat}"
        result: dict[str, Any] = {"runner": runner, "n": n, "concurrency": c, "repeat": repeat}
        if runner in (*FLEETSTAT_RUNNERS, BASELINE_RUNNER):
            cmd, timings_path = self.fleetstat_cmd(runner, n, c, key)
            m = self.measure(key, cmd, env=self.fleetstat_env(runner))
            found = re.search(r"(\d+)/(\d+) ok, (\d+) failed(?:, (\d+) retried)?", m["output"])
            m["hosts_ok"] = int(found.group(1)) if found else 0
            m["retries"] = int(found.group(4) or 0) if found else None
            if timings_path.exists():
                steps = json.loads(timings_path.read_text())
                m["steps"] = {k: round(v, 4) for k, v in steps.items()}
        elif runner in REFERENCE_RUNNERS:
            ciphers = ENCRYPTION_ALGS if runner == "reference-gcm" else ()
            m = self.measure(key, self.reference_cmd(n, c, ciphers))
            try:
                m["hosts_ok"] = json.loads(m["output"].strip().splitlines()[-1])["ok"]
            except (ValueError, IndexError, KeyError):
                m["hosts_ok"] = 0
        else:
            cmd, env, folder = self.ansible_cmd(runner, n, c)
            m = self.measure(key, cmd, env=env, cwd=folder)
            full = (self.logs / f"{key}.out").read_text(errors="replace")
            m["hosts_ok"] = ansible_hosts_ok(full)
        result.update(m)
        result["collector_cpu_ms_per_host"] = round(m["collector_cpu_seconds"] * 1000 / n, 2)
        result["sshd_cpu_ms_per_host"] = round(m["sshd_cpu_seconds"] * 1000 / n, 2)
        return result


def ansible_hosts_ok(output: str) -> int:
    """Hosts of ansible-playbook's PLAY RECAP with tasks ok and none unreachable or failed."""
    ok = 0
    for line in output.split("PLAY RECAP")[-1].splitlines():
        found = re.search(r"ok=(\d+).*unreachable=(\d+)\s+failed=(\d+)", line)
        if found and found.group(1) != "0" and found.group(2) == found.group(3) == "0":
            ok += 1
    return ok


# --- the matrix, resumable -----------------------------------------------------------


def plan(args: argparse.Namespace) -> list[tuple[str, int, int, int]]:
    """(runner, n, concurrency, repeat), repeats outermost so noise spreads evenly."""
    runs = []
    for repeat in range(args.repeats):
        for n in args.n:
            for c in args.concurrency:
                for runner in args.runners:
                    # Ansible default: forks 5 whatever the concurrency, one configuration per N.
                    if runner == "ansible-default" and (
                        c != args.concurrency[0] or n > args.ansible_default_max_n
                    ):
                        continue
                    runs.append((runner, n, c, repeat))
    return runs


def config_label(runner: str, c: int) -> str:
    return f"forks {ANSIBLE_DEFAULT_FORKS}" if runner == "ansible-default" else str(c)


def summarize(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["runner"], r["n"], r["concurrency"]), []).append(r)
    rows = []
    metrics = (
        "wall_seconds", "machine_cpu_seconds", "collector_cpu_ms_per_host",
        "sshd_cpu_ms_per_host", "collector_peak_rss_mb", "hosts_ok",
    )  # fmt: skip

    def spread(values: list[float]) -> dict[str, float]:
        return {"median": statistics.median(values), "min": min(values), "max": max(values)}

    def order(key: tuple[str, int, int]) -> tuple[int, int, int]:
        known = (*RUNNERS, BASELINE_RUNNER)
        return (key[1], key[2], known.index(key[0]))

    for (runner, n, c), runs in sorted(groups.items(), key=lambda kv: order(kv[0])):
        row: dict[str, Any] = {"runner": runner, "n": n, "runs": len(runs)}
        row["concurrency"] = config_label(runner, c)
        for metric in metrics:
            row[metric] = spread([r[metric] for r in runs])
        stores = [
            r["steps"]["store_seconds"] for r in runs if "store_seconds" in r.get("steps", {})
        ]
        if stores:
            row["store_seconds"] = spread(stores)
        rows.append(row)
    return rows


def fmt(stat: dict[str, float], digits: int = 1) -> str:
    return f"{stat['median']:.{digits}f} ({stat['min']:.{digits}f}-{stat['max']:.{digits}f})"


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'runner':<17} {'N':>4} {'conc':>7} {'wall s':>18} {'machine CPU s':>19} "
        f"{'collector ms/host':>19} {'sshd+probe ms/host':>19} {'peak RSS MB':>19} "
        f"{'ok':>11} {'store s':>17}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        store = fmt(r["store_seconds"], 3) if "store_seconds" in r else ""
        lines.append(
            f"{r['runner']:<17} {r['n']:>4} {r['concurrency']:>7} {fmt(r['wall_seconds'], 2):>18} "
            f"{fmt(r['machine_cpu_seconds'], 2):>19} {fmt(r['collector_cpu_ms_per_host'], 1):>19} "
            f"{fmt(r['sshd_cpu_ms_per_host'], 1):>19} {fmt(r['collector_peak_rss_mb'], 0):>19} "
            f"{fmt(r['hosts_ok'], 0):>11} {store:>17}"
        )
    return "\n".join(lines)


def verdicts(rows: list[dict[str, Any]], n: int, c: int) -> list[str]:
    def find(runner: str, n: int, c: int | str) -> dict[str, Any] | None:
        for r in rows:
            if r["runner"] == runner and r["n"] == n and str(r["concurrency"]) == str(c):
                return r
        return None

    def verdict(met: bool, fs: dict[str, Any], other: dict[str, Any]) -> str:
        # A faster run that lost hosts proves nothing: every run of fleetstat must
        # have as many hosts ok as the runner it is compared with.
        if fs["hosts_ok"]["min"] < other["hosts_ok"]["min"]:
            return f"INVALID: {fs['hosts_ok']['min']} hosts ok, not {other['hosts_ok']['min']}"
        return "met" if met else "MISSED"

    out = []
    for runner in FLEETSTAT_RUNNERS:
        fs = find(runner, n, c)
        # "reference" is the yardstick (asyncssh's defaults); "reference-gcm" is
        # the same runner with fleetstat's cipher order: the like-for-like comparison.
        for ref_name in REFERENCE_RUNNERS:
            ref = find(ref_name, n, c)
            if fs is None or ref is None:
                continue
            for metric, limit in (
                ("wall_seconds", 1.2), ("machine_cpu_seconds", 1.2),
                ("collector_cpu_ms_per_host", 1.2), ("sshd_cpu_ms_per_host", 1.2),
            ):  # fmt: skip
                ratio = fs[metric]["median"] / ref[metric]["median"]
                out.append(
                    f"{runner} N={n} c={c}: {metric} {ratio:.2f}x {ref_name} "
                    f"(<= {limit}x: {verdict(ratio <= limit, fs, ref)})"
                )
        if fs is None:
            continue
        rss = fs["collector_peak_rss_mb"]["median"]
        ref = find(REFERENCE_RUNNERS[0], n, c) or fs
        rss_verdict = verdict(rss < 100, fs, ref)
        out.append(f"{runner} N={n}: peak RSS {rss:.0f} MB (< 100 MB: {rss_verdict})")
    for ans_n in sorted({r["n"] for r in rows if r["runner"] == "ansible-default"}):
        ans = find("ansible-default", ans_n, f"forks {ANSIBLE_DEFAULT_FORKS}")
        for runner in FLEETSTAT_RUNNERS:
            fs = find(runner, ans_n, c)
            if ans is None or fs is None:
                continue
            ratio = ans["wall_seconds"]["median"] / fs["wall_seconds"]["median"]
            out.append(
                f"{runner} N={ans_n} c={fs['concurrency']}: {ratio:.1f}x faster than Ansible "
                f"script default (>= 4x: {verdict(ratio >= 4, fs, ans)})"
            )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    numbers = lambda s: [int(x) for x in s.split(",")]  # noqa: E731
    parser.add_argument("--n", type=numbers, default=[100, 500])
    parser.add_argument("--concurrency", type=numbers, default=[50, 100])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--runners", type=lambda s: s.split(","), default=list(RUNNERS))
    parser.add_argument(
        "--ansible-default-max-n", type=int, default=500,
        help="largest N for Ansible with forks 5 (slow)",
    )  # fmt: skip
    parser.add_argument("--hang-every", type=int, default=0, help="every k-th host hangs (0: none)")
    parser.add_argument("--run-timeout", type=int, default=60)
    parser.add_argument(
        "--top-processes", type=int, default=5,
        help="fleetstat's top-processes (0: no process scan; shows what it costs here)",
    )  # fmt: skip
    parser.add_argument(
        "--top-processes-when", choices=("alerts", "always"), default="alerts",
        help="fleetstat's top-processes-when; the bench's clients have no alert rules, so "
        "'alerts' (the default) reads no process table and 'always' reads it every run",
    )  # fmt: skip
    parser.add_argument("--name", default="latest", help="results file stem under bench/results/")
    parser.add_argument("--resume", action="store_true", help="keep finished runs of --name")
    parser.add_argument("--quick", action="store_true", help="N=20, concurrency 10, 1 repeat")
    parser.add_argument(
        "--fleetstat-src", help="the src/ folder of another checkout to run as fleetstat"
    )
    parser.add_argument(
        "--baseline",
        help="another checkout (e.g. a git worktree of an older commit), run with its own "
        f"bench/fleetstat_timed.py on SQLite as runner {BASELINE_RUNNER}, interleaved",
    )
    args = parser.parse_args()
    if args.quick:
        args.n, args.concurrency, args.repeats = [20], [10], 1
        args.name = "quick" if args.name == "latest" else args.name
    if args.baseline and BASELINE_RUNNER not in args.runners:
        args.runners.append(BASELINE_RUNNER)
    if BASELINE_RUNNER in args.runners and not args.baseline:
        parser.error(f"{BASELINE_RUNNER} needs --baseline CHECKOUT")
    unknown = set(args.runners) - {*RUNNERS, BASELINE_RUNNER}
    if unknown:
        parser.error(f"unknown runners {sorted(unknown)}; use {','.join(RUNNERS)}")

    RESULTS.mkdir(exist_ok=True)
    raw_path = RESULTS / f"{args.name}.jsonl"
    if not args.resume:
        raw_path.unlink(missing_ok=True)
    done = {}
    if raw_path.exists():
        for line in raw_path.read_text().splitlines():
            r = json.loads(line)
            done[(r["runner"], r["n"], r["concurrency"], r["repeat"])] = r
    runs = plan(args)
    todo = [run for run in runs if run not in done]
    log(f"{len(runs)} runs planned, {len(runs) - len(todo)} already done, results in {raw_path}")

    bench = Bench(args)
    ansible_version = None
    if any(r.startswith("ansible") for r in args.runners):
        ansible_version = bench.ensure_ansible()
    bench.start()
    try:
        bench.compile_fleetstat()
        bench.prepare_databases(fresh=not args.resume)
        for i, (runner, n, c, repeat) in enumerate(todo, 1):
            record = bench.run_one(runner, n, c, repeat)
            done[(runner, n, c, repeat)] = record
            with raw_path.open("a") as f:
                f.write(json.dumps(record) + "\n")
            log(
                f"{i}/{len(todo)} {runner} N={n} c={config_label(runner, c)} #{repeat}: "
                f"{record['hosts_ok']}/{n} ok, wall {record['wall_seconds']:.2f}s, "
                f"machine CPU {record['machine_cpu_seconds']:.2f}s, collector "
                f"{record['collector_cpu_ms_per_host']:.1f} ms/host, sshd+probe "
                f"{record['sshd_cpu_ms_per_host']:.1f} ms/host, "
                f"RSS {record['collector_peak_rss_mb']:.0f} MB"
            )
    finally:
        bench.stop()

    records = [done[run] for run in runs if run in done]
    rows = summarize(records)
    target_n, target_c = max(args.n), max(args.concurrency)
    verdict_lines = verdicts(rows, target_n, target_c)
    summary = {
        "command": " ".join([Path(PYTHON).name, *sys.argv]),
        "machine": {
            "cpus": os.cpu_count(),
            "cpu_model": _cpu_model(),
            "kernel": platform.release(),
            "python": platform.python_version(),
            "openssh": subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip(),
            "ansible": ansible_version,
        },
        "fleet": {
            "hosts": max(args.n),
            "sshd": "one OpenSSH sshd, hosts = loopback addresses 127.1.x.y",
            "kex": bench.fleet.kex_algorithms or "sshd default",
            "host_key": "ssh-ed25519",
            "client_auth": "ssh-ed25519 key",
            "max_startups": bench.fleet.max_startups,
            "hanging_hosts": sum(1 for h in bench.fleet.hosts if h.behaviour == "hang"),
        },
        "rows": rows,
        "verdicts": verdict_lines,
    }
    (RESULTS / f"{args.name}.json").write_text(json.dumps(summary, indent=2) + "\n")
    print()
    print(table(rows))
    print()
    print("\n".join(verdict_lines))
    print(f"\nraw runs: {raw_path}\nsummary:  {RESULTS / f'{args.name}.json'}")
    return 0


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
