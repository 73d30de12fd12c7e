"""Disks named by their mount root, in private mount namespaces (as root).

Two hosts' views built for real with ``unshare --mount`` (nothing leaks to the
machine: the namespace's mounts are private and go when it ends):

- a real ext4 filesystem (a loop device) mounted at a long path, with a
  subdirectory of it bound at a shorter one: the probe names the filesystem by
  its real mount point, leaves the bind mount out, and ``/`` is there;
- a container's view: an overlay root with a file bound over ``/etc/hosts``
  (as Docker does) and the probe run chrooted inside: the only disk is ``/``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from fleetstat import envelope, probe_bundle

TOOLS = ("unshare", "mount", "mkfs.ext4", "chroot")
PSUTIL_PARTITIONS = (
    "import json, psutil; print(json.dumps([[p.mountpoint, p.fstype]"
    " for p in psutil.disk_partitions(all=False)]))"
)

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 and not os.environ.get("CI"),
    reason="mount namespaces need root (CI runs as root)",
)


@pytest.fixture
def probe_args() -> tuple[X25519PrivateKey, bytes, list[str]]:
    key = X25519PrivateKey.generate()
    challenge = os.urandom(16)
    args = ["--recipient", envelope.public_key_b64(key.public_key())]
    args += ["--challenge", envelope.b64url_encode(challenge), "--cpu-window", "0", "--top", "0"]
    return key, challenge, args


def _in_namespace(script: str, tmp_path: Path) -> list[str]:
    for tool in TOOLS:
        assert shutil.which(tool), f"{tool} missing: scripts/setup installs it"
    path = tmp_path / "ns.sh"
    path.write_text("set -eu\n" + script)
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def _disks(line: str, key: X25519PrivateKey, challenge: bytes) -> list[dict]:
    doc = envelope.decode_document(envelope.open_line(line, key, challenge))
    assert doc["errors"] == {}
    return doc["disks"]


def test_a_bound_subdirectory_does_not_rename_its_filesystem(
    tmp_path: Path, probe_args: tuple[X25519PrivateKey, bytes, list[str]]
) -> None:
    key, challenge, args = probe_args
    (tmp_path / "probe.pyz").write_bytes(probe_bundle.build_probe())
    real = tmp_path / "real" / "long" / "mount" / "point"
    short = tmp_path / "b"
    quoted = " ".join(f"'{a}'" for a in args)
    lines = _in_namespace(
        f"""
cd '{tmp_path}'
truncate -s 16M disk.img
mkfs.ext4 -q -F disk.img
mkdir -p '{real}' '{short}'
mount -o loop disk.img '{real}'
mkdir '{real}/sub'
mount --bind '{real}/sub' '{short}'
python3 -I -S probe.pyz {quoted}
'{sys.executable}' -c '{PSUTIL_PARTITIONS}'
""",
        tmp_path,
    )
    disks = {d["mount"]: d for d in _disks(lines[0], key, challenge)}
    theirs = dict(json.loads(lines[1]))
    assert "/" in disks
    assert str(real) in disks and disks[str(real)]["device"].startswith("/dev/loop")
    assert str(short) not in disks  # psutil lists it: a second view of the same disk
    assert theirs.get(str(short)) == "ext4" and theirs.get(str(real)) == "ext4"
    assert set(disks) <= set(theirs)
    # 16 MiB less ext4's own metadata, the same figure psutil's disk_usage gives.
    assert 0 < disks[str(real)]["total_bytes"] <= 16 * 2**20


def test_a_container_overlay_root_with_bound_files_reports_slash(
    tmp_path: Path, probe_args: tuple[X25519PrivateKey, bytes, list[str]]
) -> None:
    """As Docker builds a container: an overlay whose upper layer is elsewhere, a
    host file bound over /etc/hosts, proc mounted; the probe runs chrooted in it."""
    key, challenge, args = probe_args
    (tmp_path / "probe.pyz").write_bytes(probe_bundle.build_probe())
    quoted = " ".join(f"'{a}'" for a in args)
    lines = _in_namespace(
        f"""
cd '{tmp_path}'
mkdir layers root
mount -t tmpfs layers layers
mkdir layers/upper layers/work
mount -t overlay overlay -o lowerdir=/,upperdir=layers/upper,workdir=layers/work root
echo '127.0.0.1 container' > hosts
mount --bind hosts root/etc/hosts
mount -t proc proc root/proc
cp probe.pyz root/probe.pyz
chroot root python3 -I -S /probe.pyz {quoted}
""",
        tmp_path,
    )
    disks = _disks(lines[0], key, challenge)
    assert [(d["mount"], d["fstype"]) for d in disks] == [("/", "overlay")]
    assert disks[0]["total_bytes"] > 0
