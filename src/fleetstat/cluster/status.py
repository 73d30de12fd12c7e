"""``fleetstat cluster status``: the workers, their zones and heartbeats, shard times."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fleetstat.app import open_existing
from fleetstat.config import Config
from fleetstat.store import cluster as rows


@dataclass(frozen=True)
class ClusterStatus:
    workers: list[rows.WorkerRow]
    live: set[str]
    shards: list[rows.ShardTimes]
    zones: dict[str, int]  # zone -> hosts of the config in it
    since: timedelta

    @property
    def zones_without_workers(self) -> list[str]:
        alive = {w.zone for w in self.workers if w.name in self.live}
        return sorted(zone for zone in self.zones if zone not in alive)

    def as_json(self) -> dict[str, Any]:
        return {
            "zones": [
                {
                    "zone": zone,
                    "hosts": hosts,
                    "live_workers": sorted(
                        w.name for w in self.workers if w.zone == zone and w.name in self.live
                    ),
                }
                for zone, hosts in sorted(self.zones.items())
            ],
            "workers": [
                {
                    "name": w.name,
                    "zone": w.zone,
                    "live": w.name in self.live,
                    "hostname": w.hostname,
                    "pid": w.pid,
                    "started_at": w.started_at.isoformat(),
                    "last_seen": w.last_seen.isoformat(),
                    "stopped_at": w.stopped_at.isoformat() if w.stopped_at else None,
                    "shards_done": w.shards_done,
                    "last_shard_seconds": w.last_shard_seconds,
                }
                for w in self.workers
            ],
            "shards_since_seconds": self.since.total_seconds(),
            "shards": [
                {
                    "worker": s.worker,
                    "zone": s.zone,
                    "shards": s.shards,
                    "hosts": s.hosts,
                    "missed": s.missed,
                    "mean_seconds": s.mean_seconds,
                    "max_seconds": s.max_seconds,
                }
                for s in self.shards
            ],
        }

    def lines(self, now: datetime) -> list[str]:
        out = []
        for zone, hosts in sorted(self.zones.items()):
            names = sorted(w.name for w in self.workers if w.zone == zone and w.name in self.live)
            out.append(
                f"zone {zone}: {hosts} host(s), {len(names)} live worker(s)"
                + ("" if names else "  << NO LIVE WORKER: its hosts are not collected")
            )
        out.append("")
        out.append(f"{'worker':<32} {'zone':<12} {'state':<8} {'last heartbeat':>15} "
                   f"{'shards':>7} {'last shard':>10}")  # fmt: skip
        for w in self.workers:
            state = "live" if w.name in self.live else "stopped" if w.stopped_at else "dead"
            age = f"{(now - w.last_seen).total_seconds():.0f}s ago"
            last = "-" if w.last_shard_seconds is None else f"{w.last_shard_seconds:.2f}s"
            out.append(f"{w.name[:32]:<32} {w.zone[:12]:<12} {state:<8} {age:>15} "
                       f"{w.shards_done:>7} {last:>10}")  # fmt: skip
        if not self.workers:
            out.append("(no worker ever sent a heartbeat: start `fleetstat worker -c CONFIG`)")
        out.append("")
        hours = self.since.total_seconds() / 3600
        out.append(f"shards over the last {hours:g}h:")
        for s in self.shards:
            mean = "-" if s.mean_seconds is None else f"{s.mean_seconds:.2f}s"
            most = "-" if s.max_seconds is None else f"{s.max_seconds:.2f}s"
            out.append(f"  {(s.worker or '(missed)')[:32]:<32} {s.zone[:12]:<12} "
                       f"{s.shards:>5} shard(s) {s.hosts:>6} host(s) {s.missed:>4} missed "
                       f"mean {mean} max {most}")  # fmt: skip
        if not self.shards:
            out.append("  (none)")
        return out


def cluster_status(
    config: Config, *, database_url: str | None = None, since: timedelta = timedelta(hours=1)
) -> ClusterStatus:
    from fleetstat.config.model import DEFAULT_ZONE

    dead_after = config.cluster.dead_after if config.cluster else 3 * 2.0
    now = datetime.now(UTC)
    with open_existing(config, database_url) as store:
        workers = rows.workers(store)
        live = {w.name for w in rows.live_workers(store, dead_after, now)}
        shards = rows.shard_times(store, now - since)
    zones: dict[str, int] = {}
    for client in config.clients:
        zone = client.zone or DEFAULT_ZONE
        zones[zone] = zones.get(zone, 0) + 1
    return ClusterStatus(workers, live, shards, zones, since)
