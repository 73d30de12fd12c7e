"""CPU accounting for the bench: whole machine, a process tree, the fleet's sshd.

Why cgroups: a process tree's CPU is not the sum of what ``getrusage`` sees. The
sshd listener forks a monitor per connection, which forks the session, the shell,
``timeout`` and python3; ``RUSAGE_CHILDREN`` and ``/proc/<pid>/stat``'s cutime only
count descendants that were *waited for* by a parent that was in turn waited for,
and Ansible's ``ssh -o ControlPersist`` masters detach and are never waited for by
the runner. A cgroup charges every task that ever ran in it, exited or not, to
``cpu.stat``'s ``usage_usec``, and children inherit the cgroup of their parent at
fork. So the bench puts the fleet's sshd in one cgroup (every session, shell and
probe it ever forks is charged there) and each runner in a fresh one.

cgroup v2 is used where it is mounted (``/sys/fs/cgroup`` on a unified host,
``/sys/fs/cgroup/unified`` on a hybrid one); v2's ``cpu.stat`` needs no
controller to be enabled. Without v2, cgroup v1's ``cpuacct`` does the same.
Without either, :class:`CpuGroup` is None and the bench falls back to
``wait4`` rusage for the runner and the listener's cutime/cstime for sshd
(both documented as lower bounds in the results).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

_V2_ROOTS = (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified"))
_V1_ROOT = Path("/sys/fs/cgroup/cpuacct")
_PARENT = "fleetstat-bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float:
    """CPU seconds the whole machine spent busy since boot (/proc/stat, all CPUs).

    user + nice + system + irq + softirq + steal; idle and iowait are not work.
    guest time is already inside user (proc(5)).
    """
    with open("/proc/stat") as f:
        fields = f.readline().split()
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def loadavg() -> list[float]:
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def proc_tree_cpu(pid: int) -> float:
    """utime + stime + cutime + cstime of one process (its waited-for descendants)."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    fields = text[text.rindex(")") + 2 :].split()
    return sum(int(x) for x in fields[11:15]) / CLK_TCK


class CpuGroup:
    """One cgroup whose members' CPU (exited ones included) we can read."""

    def __init__(self, path: Path, version: int) -> None:
        self.path = path
        self.version = version

    @classmethod
    def create(cls, name: str) -> CpuGroup | None:
        for root in _V2_ROOTS:
            if (root / "cgroup.controllers").exists():
                group = cls._make(root / _PARENT / name, 2)
                if group is not None:
                    return group
        if (_V1_ROOT / "cpuacct.usage").exists():
            return cls._make(_V1_ROOT / _PARENT / name, 1)
        return None

    @classmethod
    def _make(cls, path: Path, version: int) -> CpuGroup | None:
        try:
            path.mkdir(parents=True, exist_ok=True)
            group = cls(path, version)
            group.cpu_seconds()
        except OSError:
            return None
        return group

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(f"{pid}\n")

    def cpu_seconds(self) -> float:
        if self.version == 2:
            for line in (self.path / "cpu.stat").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "usage_usec":
                    return int(value) / 1e6
            raise OSError(f"no usage_usec in {self.path}/cpu.stat")
        return int((self.path / "cpuacct.usage").read_text()) / 1e9

    def pids(self) -> list[int]:
        text = (self.path / "cgroup.procs").read_text()
        return [int(x) for x in text.split()]

    def wait_until(self, keep: set[int], seconds: float) -> bool:
        """Wait until only ``keep`` is left in the group (sessions torn down)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if set(self.pids()) <= keep:
                return True
            time.sleep(0.05)
        return False

    def kill_all(self) -> int:
        """SIGKILL what the runner left behind (ssh ControlPersist masters); how many."""
        left = self.pids()
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return len(left)

    def remove(self) -> None:
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)


def preexec_join(group: CpuGroup | None):  # type: ignore[no-untyped-def]
    """A ``preexec_fn`` that puts the child in ``group`` before it execs anything."""

    def join() -> None:
        if group is not None:
            group.add(os.getpid())

    return join
