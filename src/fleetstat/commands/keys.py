"""``fleetstat keygen`` and ``fleetstat probe``: the server key and the probe it seals to."""

from __future__ import annotations

from pathlib import Path

import click

from fleetstat.commands.common import PATH, command
from fleetstat.errors import FleetstatError
from fleetstat.present import out


@command()
@click.argument("path", required=False, type=PATH, help="Private key file to write.")
@click.option("--output", "-o", type=PATH, help="Same, as an option.")
@click.option("--force", is_flag=True, help="Overwrite an existing key.")
def keygen(path: Path | None, output: Path | None, force: bool) -> None:
    """Write the server's X25519 key pair: PATH (mode 0600) and PATH.pub.

    Probes seal their output to the public key; only this private key opens it.
    Default PATH: fleetstat.key in the current folder.

    Example: fleetstat keygen /etc/fleetstat/fleetstat.key
    """
    from fleetstat import envelope

    target = path or output or Path("fleetstat.key")
    public = envelope.generate_keypair(target, force=force)
    out().print(f"wrote {target} (private, 0600) and {target}.pub", highlight=False)
    out().print(f"public key: {envelope.public_key_b64(public)}", highlight=False)


@command()
@click.option("--output", "-o", type=PATH, required=True, help="Where to write probe.pyz.")
def probe(output: Path) -> None:
    """Write the exact probe zipapp that collect uploads, to audit or run by hand.

    Example: fleetstat probe --output probe.pyz && python3 probe.pyz --help
    """
    from fleetstat.probe_bundle import build_probe, probe_digest

    data = build_probe()
    try:
        output.write_bytes(data)
    except OSError as exc:
        raise FleetstatError(f"cannot write {output}: {exc.strerror or exc}") from None
    out().print(f"wrote {output}: {len(data)} bytes, sha256 {probe_digest()}", highlight=False)
