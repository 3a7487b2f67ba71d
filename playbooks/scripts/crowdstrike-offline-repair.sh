# shellcheck shell=sh
# crowdstrike-offline-repair.sh: remove the July 2024 CrowdStrike channel file from a
# Windows EBS volume attached to this Linux (rescue) instance, with ntfs-3g.
#
# remediate's rescue.repair runs it through SSM (AWS-RunShellScript, POSIX sh) and sets
# one variable before its first line, quoted:   VolumeId='<the EBS volume id>'
#
# What it does, in order:
#   1. finds the disk by the volume id: on Nitro instances udev links it as
#      /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol<hex digits>. Never by device
#      name (/dev/sdf, /dev/nvme1n1), which the kernel assigns in its own order.
#   2. refuses the disk if any of its partitions is mounted (this instance's own disk).
#   3. for each NTFS partition: ntfsfix (clears the "dirty" flag the crash left), mounts
#      it read-write with ntfs-3g and, if it holds Windows/System32, deletes
#      Windows/System32/drivers/CrowdStrike/C-00000291*.sys (names matched without
#      regard to case, as Windows does) and prints every path it deleted. Nothing to
#      delete is not an error: the sensor may have fixed it.
#   4. unmounts, also after a failure, so the volume can be detached cleanly.
#   BitLocker-locked partitions are reported, never touched (ntfs-3g cannot open them).
#
# Exit codes (message on stderr): 0 done, 1 unexpected error, 2 VolumeId not set to a
# volume id, 3 disk not found, 4 disk in use here, 6 no Windows partition,
# 7 BitLocker-locked, 9 ntfs-3g not installed, 10 mount refused (Windows hibernated or
# Fast Startup: removing the hibernation file would lose that state, so it is left).

set -u

fail() {
    code=$1
    shift
    printf '%s: %s\n' "${VolumeId:-VolumeId}" "$*" >&2
    exit "$code"
}

case "${VolumeId:-}" in
    vol-*) ;;
    *) fail 2 "VolumeId is not set to an EBS volume id (found '${VolumeId:-}')" ;;
esac
hex=${VolumeId#vol-}
case "$hex" in
    "" | *[!0-9a-f]*) fail 2 "VolumeId is not set to an EBS volume id (found '$VolumeId')" ;;
esac

# Where udev links disks by id (a variable only so the script can be tested).
by_id=${RemediateDiskDir:-/dev/disk/by-id}
disk="$by_id/nvme-Amazon_Elastic_Block_Store_vol$hex"
if [ ! -e "$disk" ]; then
    udevadm settle 2>/dev/null
    [ -e "$disk" ] || fail 3 "Disk for volume $VolumeId not found: $disk does not exist" \
        "(is the volume attached to this instance, and is this a Nitro instance type?)"
fi
if ! command -v ntfsfix >/dev/null 2>&1 || ! command -v ntfs-3g >/dev/null 2>&1; then
    fail 9 "ntfs-3g is not installed (this script needs ntfsfix and ntfs-3g)"
fi
if lsblk -nro MOUNTPOINT "$(readlink -f "$disk")" 2>/dev/null | grep -q '[^[:space:]]'; then
    fail 4 "$disk has a mounted partition: it is in use on this instance; refusing"
fi

mnt=$(mktemp -d /tmp/remediate-repair.XXXXXX) || fail 1 "cannot create a mount point"
# shellcheck disable=SC2317  # called by the trap
cleanup() {
    if mountpoint -q "$mnt"; then
        sync
        umount "$mnt" || printf '%s: could not unmount %s\n' "$VolumeId" "$mnt" >&2
    fi
    rmdir "$mnt" 2>/dev/null
}
trap cleanup EXIT

# The first subdirectory of $1 named $2, compared without regard to case.
child() {
    find "$1" -mindepth 1 -maxdepth 1 -type d -iname "$2" 2>/dev/null | head -n 1
}

locked=""
for part in "$disk"-part*; do
    [ -e "$part" ] || continue
    case "$(blkid -o value -s TYPE "$part" 2>/dev/null)" in
        BitLocker) locked="$locked ${part##*/}"; continue ;;
        ntfs) ;;
        *) continue ;;
    esac
    ntfsfix -d "$part" >/dev/null 2>&1 || ntfsfix "$part" >/dev/null 2>&1
    if ! err=$(ntfs-3g -o rw "$part" "$mnt" 2>&1); then
        case "$err" in
            *[Hh]ibernat* | *[Ff]ast*[Ss]tart*)
                fail 10 "Windows on ${part##*/} is hibernated or used Fast Startup; ntfs-3g" \
                    "refuses to write to it: $err" ;;
        esac
        fail 1 "mounting ${part##*/} failed: $err"
    fi
    windows=$(child "$mnt" Windows)
    system32=${windows:+$(child "$windows" System32)}
    if [ -z "$system32" ]; then
        umount "$mnt" || fail 1 "could not unmount ${part##*/}"
        continue
    fi
    drivers=$(child "$system32" drivers)
    folder=${drivers:+$(child "$drivers" CrowdStrike)}
    if [ -z "$folder" ]; then
        echo "$VolumeId: Windows/System32/drivers/CrowdStrike does not exist; nothing to delete"
        exit 0
    fi
    deleted=$(find "$folder" -maxdepth 1 -type f -iname 'C-00000291*.sys' \
        -exec rm -f -- {} \; -print) || fail 1 "deleting in ${folder#"$mnt"/} failed"
    left=$(find "$folder" -maxdepth 1 -type f -iname 'C-00000291*.sys')
    [ -z "$left" ] || fail 1 "could not delete: $left"
    if [ -z "$deleted" ]; then
        echo "$VolumeId: no C-00000291*.sys in ${folder#"$mnt"/}; nothing to delete"
    else
        printf '%s\n' "$deleted" | while IFS= read -r path; do
            echo "$VolumeId: deleted ${path#"$mnt"/}"
        done
    fi
    exit 0
done

if [ -n "$locked" ]; then
    fail 7 "no readable Windows partition: BitLocker-locked partition(s)$locked; unlock" \
        "them with the recovery key (e.g. on a Windows rescue instance) and repair again"
fi
fail 6 "no partition of $disk holds Windows/System32"
