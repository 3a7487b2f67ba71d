"""The offline repair scripts under playbooks/scripts.

The shell script really runs (POSIX sh) against a fake disk: ``/dev/disk/by-id``
is a temporary folder and ntfs-3g, blkid, mount and friends are stubs that copy a
file tree in and out of the mount point. The PowerShell script cannot run here;
its text is checked for what rescue.repair and the sandbox rely on.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from remediate.actions.ssm import build_script
from sandbox_actions import SCRIPTS

VOLUME = "vol-0123456789abcdef0"
DISK = "nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0"
CS = "Windows/System32/drivers/CrowdStrike"

STUBS = {
    "blkid": 'for a; do p=$a; done; cat "$FAKE/types/${p##*/}" 2>/dev/null; exit 0',
    "ntfsfix": 'echo "ntfsfix $*" >> "$FAKE/log"',
    "ntfs-3g": (
        'part=$3; mnt=$4; name=${part##*/}\n'
        'errors="$FAKE/mount-errors/$name"\n'
        'if [ -f "$errors" ]; then cat "$errors" >&2; exit 14; fi\n'
        'cp -a "$FAKE/trees/$name/." "$mnt/" && echo "$name" > "$FAKE/mounted"'),
    "mountpoint": '[ -f "$FAKE/mounted" ]',
    "umount": (
        'mnt=$1; name=$(cat "$FAKE/mounted")\n'
        'rm -rf "$FAKE/trees/$name" && mkdir "$FAKE/trees/$name"\n'
        'cp -a "$mnt/." "$FAKE/trees/$name/" && find "$mnt" -mindepth 1 -delete\n'
        'rm "$FAKE/mounted"'),
    "lsblk": '[ -f "$FAKE/in-use" ] && echo /; exit 0',
    "udevadm": "exit 0",
}


@dataclass
class Fake:
    """A fake /dev/disk/by-id with partitions, their types and file trees."""

    root: Path

    @property
    def by_id(self) -> Path:
        return self.root / "by-id"

    def partition(self, number: int, fstype: str, files: tuple[str, ...] = ()) -> Path:
        name = f"{DISK}-part{number}"
        (self.by_id / name).touch()
        (self.root / "types" / name).write_text(fstype + "\n")
        tree = self.root / "trees" / name
        tree.mkdir(parents=True)
        for path in files:
            (tree / path).parent.mkdir(parents=True, exist_ok=True)
            (tree / path).write_text("channel file")
        return tree

    def run(
        self, volume_id: str = VOLUME, *, with_ntfs: bool = True
    ) -> subprocess.CompletedProcess[str]:
        body = (SCRIPTS / "crowdstrike-offline-repair.sh").read_text().splitlines()
        lines = build_script("sh", {"VolumeId": volume_id, "RemediateDiskDir": str(self.by_id)},
                             body)
        bin_dir = self.root / "bin"
        for name in ("ntfs-3g", "ntfsfix"):
            (bin_dir / name).unlink(missing_ok=True)
            if with_ntfs:
                _stub(bin_dir, name, STUBS[name])
        env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "FAKE": str(self.root), "TMPDIR": "/tmp"}
        return subprocess.run(["sh", "-c", "\n".join(lines)], capture_output=True, text=True,
                              env=env, timeout=60, check=False)


def _stub(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


@pytest.fixture
def fake(tmp_path: Path) -> Fake:
    if shutil.which("ntfs-3g"):
        pytest.skip("a real ntfs-3g is installed; the stubs must not compete with it")
    for folder in ("by-id", "types", "trees", "mount-errors", "bin"):
        (tmp_path / folder).mkdir()
    (tmp_path / "by-id" / DISK).touch()
    for name, body in STUBS.items():
        _stub(tmp_path / "bin", name, body)
    return Fake(tmp_path)


def test_it_deletes_the_channel_files_on_the_windows_partition(fake: Fake) -> None:
    fake.partition(1, "vfat", ("EFI/Boot/bootx64.efi",))
    tree = fake.partition(2, "ntfs", (
        f"{CS}/C-00000291-00000000-00000032.sys",
        f"{CS}/c-00000291-00000000-00000031.SYS",
        f"{CS}/C-00000290-00000000-00000032.sys",
    ))
    done = fake.run()
    assert (done.returncode, done.stderr) == (0, "")
    assert sorted(done.stdout.splitlines()) == [
        f"{VOLUME}: deleted {CS}/C-00000291-00000000-00000032.sys",
        f"{VOLUME}: deleted {CS}/c-00000291-00000000-00000031.SYS",
    ]
    assert sorted(p.name for p in (tree / CS).iterdir()) == ["C-00000290-00000000-00000032.sys"]
    assert not (fake.root / "mounted").exists()  # unmounted
    assert f"ntfsfix -d {fake.by_id}/{DISK}-part2" in (fake.root / "log").read_text()


def test_folder_names_are_matched_without_regard_to_case(fake: Fake) -> None:
    tree = fake.partition(1, "ntfs", ("WINDOWS/system32/Drivers/crowdstrike/C-00000291-1.sys",))
    done = fake.run()
    assert done.stdout == (
        f"{VOLUME}: deleted WINDOWS/system32/Drivers/crowdstrike/C-00000291-1.sys\n")
    assert list((tree / "WINDOWS/system32/Drivers/crowdstrike").iterdir()) == []


def test_nothing_to_delete_is_not_an_error(fake: Fake) -> None:
    fake.partition(1, "ntfs", (f"{CS}/C-00000290-1.sys",))
    done = fake.run()
    assert (done.returncode, done.stdout) == (
        0, f"{VOLUME}: no C-00000291*.sys in {CS}; nothing to delete\n")


def test_a_windows_without_crowdstrike_is_fine(fake: Fake) -> None:
    fake.partition(1, "ntfs", ("Windows/System32/kernel32.dll",))
    done = fake.run()
    assert (done.returncode, done.stdout) == (
        0, f"{VOLUME}: Windows/System32/drivers/CrowdStrike does not exist; nothing to delete\n")


@pytest.mark.parametrize(("setup", "code", "message"), [
    ("missing", 3, f"{VOLUME}: Disk for volume {VOLUME} not found: {{by_id}}/{DISK} does not "
                   "exist (is the volume attached to this instance, and is this a Nitro instance "
                   "type?)"),
    ("bitlocker", 7, f"{VOLUME}: no readable Windows partition: BitLocker-locked "
                     f"partition(s) {DISK}-part1; unlock them with the recovery key (e.g. on a "
                     "Windows rescue instance) and repair again"),
    ("data", 6, f"{VOLUME}: no partition of {{by_id}}/{DISK} holds Windows/System32"),
    ("in-use", 4, f"{VOLUME}: {{by_id}}/{DISK} has a mounted partition: it is in use on this "
                  "instance; refusing"),
    ("hibernated", 10, f"{VOLUME}: Windows on {DISK}-part1 is hibernated or used Fast Startup; "
                       "ntfs-3g refuses to write to it: The disk contains an unclean file "
                       "system (0, 0). Metadata kept in Windows cache, refused to mount."
                       " Windows is hibernated."),
    ("no-ntfs-3g", 9, f"{VOLUME}: ntfs-3g is not installed (this script needs ntfsfix and "
                      "ntfs-3g)"),
])
def test_each_failure_has_its_exit_code_and_message(
    fake: Fake, setup: str, code: int, message: str
) -> None:
    if setup == "missing":
        (fake.by_id / DISK).unlink()
    elif setup == "bitlocker":
        fake.partition(1, "BitLocker")
    elif setup == "data":
        fake.partition(1, "ntfs", ("Users/file.txt",))
    elif setup == "in-use":
        (fake.root / "in-use").touch()
    elif setup == "hibernated":
        fake.partition(1, "ntfs", (f"{CS}/C-00000291-1.sys",))
        (fake.root / "mount-errors" / f"{DISK}-part1").write_text(
            "The disk contains an unclean file system (0, 0). Metadata kept in Windows cache, "
            "refused to mount. Windows is hibernated.")
    done = fake.run(with_ntfs=setup != "no-ntfs-3g")
    assert (done.returncode, done.stdout, done.stderr) == (
        code, "", message.format(by_id=fake.by_id) + "\n")


@pytest.mark.parametrize("volume_id", ["", "vol-", "vol-XYZ", "vol-1; rm -rf /", "i-0123"])
def test_a_bad_volume_id_is_refused(fake: Fake, volume_id: str) -> None:
    done = fake.run(volume_id)
    assert done.returncode == 2
    assert done.stderr.endswith(f"VolumeId is not set to an EBS volume id (found '{volume_id}')\n")


@pytest.mark.parametrize("name", ["crowdstrike-offline-repair.ps1",
                                  "crowdstrike-offline-repair.sh"])
def test_the_sandbox_recognises_the_scripts_as_the_repair(name: str) -> None:
    text = (SCRIPTS / name).read_text()
    # What remediate.sandbox.incident looks for, once rescue.repair has set the volume id.
    assert "C-00000291" in text
    # No volume id of its own: the sandbox (like a reader) would take it for a target.
    assert re.search(r"\bvol-[0-9a-f]{8,17}\b", text) is None
    # The variable comes from rescue.repair, quoted; the script never sets it itself.
    assert re.search(r"^\s*\$?VolumeId\s*=", text, re.MULTILINE) is None
    assert text.startswith(("# crowdstrike-offline-repair", "# shellcheck shell=sh"))


def test_the_powershell_script_finds_the_disk_by_serial_and_takes_it_offline() -> None:
    text = (SCRIPTS / "crowdstrike-offline-repair.ps1").read_text()
    assert "$serial = $VolumeId -replace '-', ''" in text
    assert "Set-Disk -Number $disk.Number -IsOffline $false" in text
    assert "Set-Disk -Number $script:DiskNumber -IsOffline $true" in text
    assert "-Filter 'C-00000291*.sys'" in text
    assert text.rstrip().endswith("exit $script:ExitCode")
    assert os.path.getsize(SCRIPTS / "crowdstrike-offline-repair.ps1") < 16_000
