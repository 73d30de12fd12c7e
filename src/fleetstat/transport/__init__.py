"""One SSH session to one host (see ``ssh.run_probe``) and its host-key policy."""

from fleetstat.transport.hostkeys import HostKeyPolicy, KnownHosts, default_known_hosts
from fleetstat.transport.ssh import Probe, ProbeRun, TransportSettings, run_probe

__all__ = [
    "HostKeyPolicy",
    "KnownHosts",
    "Probe",
    "ProbeRun",
    "TransportSettings",
    "default_known_hosts",
    "run_probe",
]
