"""``fleetstat keygen`` and ``fleetstat probe``: the server key and the probe it seals to."""

from __future__ import annotations

from pathlib import Path

import click

from fleetstat.commands.common import PATH, command
from fleetstat.errors import FleetstatError, UsageError
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
    """Write the probe zipapp, to audit or run by hand.

    The whole archive, which runs anywhere; a round sends each host the same
    archive without the other platform's modules (docs/probe.md).

    Example: fleetstat probe --output probe.pyz && python3 probe.pyz --help
    """
    from fleetstat.probe_bundle import build_probe, probe_digest

    data = build_probe()
    try:
        output.write_bytes(data)
    except OSError as exc:
        raise FleetstatError(f"cannot write {output}: {exc.strerror or exc}") from None
    out().print(f"wrote {output}: {len(data)} bytes, sha256 {probe_digest()}", highlight=False)


@command("open-envelope")
@click.argument("line_file", required=False, type=click.Path(allow_dash=True, dir_okay=False),
                metavar="[LINE_FILE|-]")  # fmt: skip
@click.option("--key", "key_path", type=PATH, help="The server's private key (with LINE_FILE).")
@click.option("--challenge", help="The --challenge the probe was given (with LINE_FILE).")
@click.option("--python", help="Run the probe here with this interpreter (default: fleetstat's).")
def open_envelope(
    line_file: str | None, key_path: Path | None, challenge: str | None, python: str | None
) -> None:
    """Print a probe's plain document (JSON), as the probe wrote it.

    Without LINE_FILE: run the probe on this machine, the exact zipapp a round
    uploads, and open what it printed. With LINE_FILE (or - for stdin): open the
    FLEETSTAT/1 line a probe printed on a host by hand, with the server's key
    and the challenge it was given (docs/probe.md).

    Example: fleetstat open-envelope --key fleetstat.key --challenge AAAAAAAAAAAAAAAAAAAAAA line.txt
    """
    import json

    from fleetstat.openenvelope import open_line_from_host, run_probe_here

    if line_file is None:
        if key_path is not None or challenge is not None:
            raise UsageError("--key and --challenge open a LINE_FILE: give one (or - for stdin)")
        document = run_probe_here(python)
    else:
        if key_path is None or challenge is None:
            raise UsageError(
                "opening a line needs --key (the server's private key) and --challenge"
            )
        try:
            with click.open_file(line_file) as stream:
                line = stream.read()
        except OSError as exc:
            raise UsageError(f"cannot read {line_file}: {exc.strerror or exc}") from None
        document = open_line_from_host(line, key_path, challenge)
    click.echo(json.dumps(document, indent=2, sort_keys=True))
