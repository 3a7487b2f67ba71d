# crowdstrike-offline-repair.ps1: remove the July 2024 CrowdStrike channel file from a
# Windows EBS volume attached to this (rescue) instance as a data disk.
#
# remediate's rescue.repair runs it through SSM (AWS-RunPowerShellScript) and sets, before
# its first line, quoted:   $VolumeId = '<the EBS volume id>'
# and, when the step names a key escrow (bitlocker_keys), where this instance reads the
# recovery key of a BitLocker-locked volume:   $BitLockerKeys = 'ssm:<SecureString name>'
# or 'secretsmanager:<secret id>', and $KeyRegion = '<its Region>'. The key itself never
# passes through remediate or the command's parameters: it is read here, with this
# instance's profile (AWS Tools for PowerShell, on AWS's Windows AMIs), used, and dropped.
#
# What it does, in order:
#   1. finds the disk by the volume id: on Nitro instances an EBS disk's serial number is
#      the volume id without its dash ("vol" + hex digits). Never by drive letter or by
#      device name, which Windows assigns in its own order.
#   2. refuses this instance's own boot/system disk.
#   3. refuses a disk Windows keeps offline because of a disk-signature collision (the
#      rescue instance runs the same image as the volume's instance): bringing it online
#      would rewrite its signature and can leave it unbootable.
#   4. brings the disk online and clears its read-only flag.
#   5. finds the partition holding Windows\System32 (assigning a drive letter if needed);
#      unlocks a BitLocker-locked partition with the recovery key from $BitLockerKeys,
#      or, with no escrow named, reports it with its recovery key ID instead of guessing.
#   6. deletes Windows\System32\drivers\CrowdStrike\C-00000291*.sys and prints every path
#      it deleted (nothing to delete is not an error: the sensor may have fixed it).
#   7. flushes the volume, locks a partition it unlocked again, and sets the disk offline
#      again, also after a failure, so it can be detached cleanly.
#
# Exit codes (message on stderr): 0 done, 1 unexpected error, 2 $VolumeId not set to a
# volume id, 3 disk not found, 4 it is this instance's system disk, 5 signature
# collision, 6 no Windows partition, 7 BitLocker-locked and no escrow named, 8 could not
# set it offline, 11 no recovery key at $BitLockerKeys, 12 the key there does not unlock
# it, 13 could not lock it again.

$ErrorActionPreference = 'Stop'
$script:ExitCode = 0
$script:DiskNumber = $null
$script:Unlocked = $null

function Stop-Repair([int]$Code, [string]$Message) {
    $script:ExitCode = $Code
    throw $Message
}

function Find-VolumeDisk([string]$Serial) {
    Update-HostStorageCache
    # NVMe serials read "vol0123..._00000001." on some Windows versions: drop the suffix.
    @(Get-Disk | Where-Object { (("$($_.SerialNumber)" -replace '_.*$', '').Trim()) -eq $Serial })
}

function Get-Letter($Partition) {
    "$($Partition.DriveLetter)".Trim([char]0).Trim()
}

function Get-RecoveryKey {
    # Read on this instance, with its instance profile; never printed or passed on.
    if ($BitLockerKeys.StartsWith('ssm:')) {
        return (Get-SSMParameter -Name $BitLockerKeys.Substring(4) -WithDecryption $true -Region $KeyRegion).Value
    }
    return (Get-SECSecretValue -SecretId $BitLockerKeys.Substring(15) -Region $KeyRegion).SecretString
}

function Unlock-Partition([string]$Letter) {
    $volume = Get-BitLockerVolume -MountPoint "$($Letter):" -ErrorAction SilentlyContinue
    if (-not $volume -or "$($volume.LockStatus)" -ne 'Locked') {
        return
    }
    $ids = @($volume.KeyProtector | Where-Object { "$($_.KeyProtectorType)" -eq 'RecoveryPassword' } |
        ForEach-Object { $_.KeyProtectorId }) -join ', '
    if (-not $BitLockerKeys) {
        Stop-Repair 7 ("BitLocker-locked (recovery key ID $ids) and no key escrow named: set the " +
            "repair step's bitlocker_keys (e.g. --param bitlocker_keys=ssm:/bitlocker/{volume_id}), " +
            "or unlock it by hand (manage-bde -unlock <letter>: -RecoveryPassword <key>) and repair again")
    }
    $key = $null
    try {
        $key = Get-RecoveryKey
    } catch {
        Stop-Repair 11 ("BitLocker-locked (recovery key ID $ids): no recovery key readable at " +
            "$BitLockerKeys in $KeyRegion ($($_.Exception.Message)): store it there, or give " +
            'the rescue instance profile access to it')
    }
    if (-not $key) {
        Stop-Repair 11 "BitLocker-locked (recovery key ID $ids): $BitLockerKeys in $KeyRegion is empty"
    }
    try {
        Unlock-BitLocker -MountPoint "$($Letter):" -RecoveryPassword "$key".Trim() | Out-Null
    } catch {
        Stop-Repair 12 ("BitLocker-locked (recovery key ID $ids): the key at $BitLockerKeys does " +
            'not unlock it: store the recovery password of that key ID there')
    } finally {
        $key = $null
    }
    $script:Unlocked = "$($Letter):"
    [Console]::Out.WriteLine("${VolumeId}: unlocked $($Letter): (recovery key ID $ids) with the key at $BitLockerKeys")
}

function Find-WindowsPartition([int]$Number) {
    $unreadable = @()
    foreach ($partition in @(Get-Partition -DiskNumber $Number | Where-Object { $_.Type -in @('Basic', 'IFS') })) {
        if (-not (Get-Letter $partition)) {
            try {
                $partition | Add-PartitionAccessPath -AssignDriveLetter
                $partition = Get-Partition -DiskNumber $Number -PartitionNumber $partition.PartitionNumber
            } catch {
                $unreadable += "partition $($partition.PartitionNumber)"
                continue
            }
        }
        $letter = Get-Letter $partition
        if ($letter) {
            Unlock-Partition $letter
        }
        $volume = Get-Volume -Partition $partition -ErrorAction SilentlyContinue
        if (-not $letter -or -not $volume -or -not $volume.FileSystem) {
            $unreadable += "partition $($partition.PartitionNumber)"
            continue
        }
        if (Test-Path -LiteralPath "$($letter):\Windows\System32") {
            return $letter
        }
    }
    if ($unreadable.Count -gt 0) {
        Stop-Repair 7 ("no readable Windows partition: $($unreadable -join ', ') has no file system " +
            'Windows can read, which is how a BitLocker-locked volume looks. Unlock it with its ' +
            'recovery key (manage-bde -unlock <letter>: -RecoveryPassword <key>) and repair again.')
    }
    Stop-Repair 6 "disk $Number has no partition holding Windows\System32"
}

try {
    if (-not $VolumeId -or $VolumeId -notmatch '^vol-[0-9a-f]{8,17}$') {
        Stop-Repair 2 "VolumeId is not set to an EBS volume id (found '$VolumeId')"
    }
    $serial = $VolumeId -replace '-', ''
    $disks = Find-VolumeDisk $serial
    if ($disks.Count -eq 0) {
        Stop-Repair 3 ("Disk for volume $VolumeId not found: no disk has serial number $serial " +
            '(is the volume attached to this instance, and is this a Nitro instance type?)')
    }
    if ($disks.Count -gt 1) {
        Stop-Repair 3 "$($disks.Count) disks have serial number $serial; refusing to guess"
    }
    $disk = $disks[0]
    if ($disk.IsBoot -or $disk.IsSystem) {
        Stop-Repair 4 "disk $($disk.Number) is this instance's own system disk; refusing"
    }
    if ($disk.IsOffline -and "$($disk.OfflineReason)" -in @('4', 'Collision')) {
        Stop-Repair 5 ("disk $($disk.Number) is offline because of a disk-signature collision " +
            'with a disk of this instance (the rescue instance runs the same image). Bringing it ' +
            'online would change its signature and can leave it unbootable: use a rescue image ' +
            'of a different Windows version.')
    }
    $script:DiskNumber = $disk.Number
    if ($disk.IsOffline) {
        Set-Disk -Number $disk.Number -IsOffline $false
    }
    if ((Get-Disk -Number $disk.Number).IsReadOnly) {
        Set-Disk -Number $disk.Number -IsReadOnly $false
    }
    $letter = Find-WindowsPartition $disk.Number
    $folder = "$($letter):\Windows\System32\drivers\CrowdStrike"
    if (-not (Test-Path -LiteralPath $folder)) {
        Write-Output "${VolumeId}: $folder does not exist; nothing to delete"
    } else {
        $files = @(Get-ChildItem -LiteralPath $folder -Filter 'C-00000291*.sys' -File -Recurse -Force)
        if ($files.Count -eq 0) {
            Write-Output "${VolumeId}: no C-00000291*.sys in $folder; nothing to delete"
        }
        foreach ($file in $files) {
            Remove-Item -LiteralPath $file.FullName -Force
            Write-Output "${VolumeId}: deleted $($file.FullName)"
        }
    }
    Write-VolumeCache -DriveLetter $letter
} catch {
    if ($script:ExitCode -eq 0) {
        $script:ExitCode = 1
    }
    [Console]::Error.WriteLine("${VolumeId}: $($_.Exception.Message)")
} finally {
    if ($null -ne $script:Unlocked) {
        try {
            Lock-BitLocker -MountPoint $script:Unlocked -ForceDismount | Out-Null
            Write-Output "${VolumeId}: locked $($script:Unlocked) again"
        } catch {
            [Console]::Error.WriteLine("${VolumeId}: could not lock $($script:Unlocked) again: $($_.Exception.Message)")
            if ($script:ExitCode -eq 0) {
                $script:ExitCode = 13
            }
        }
    }
    if ($null -ne $script:DiskNumber) {
        try {
            Set-Disk -Number $script:DiskNumber -IsOffline $true
        } catch {
            [Console]::Error.WriteLine("${VolumeId}: could not set disk $($script:DiskNumber) offline: $($_.Exception.Message)")
            if ($script:ExitCode -eq 0) {
                $script:ExitCode = 8
            }
        }
    }
}
exit $script:ExitCode
