# crowdstrike-verify.ps1: proof of recovery, run by remediate's ssm.verify_guest on the
# recovered Windows instance itself (SSM AWS-RunPowerShellScript), after it booted.
# remediate sets one variable before its first line, quoted: $InstanceId = '<its id>'.
#
# Recovered means both:
#   1. no channel file C-00000291*.sys of the faulty build is left: CrowdStrike's
#      faulty file is timestamped 2024-07-19 04:09 UTC, the reverted one 05:27 UTC or
#      later (CrowdStrike's technical details of the July 19, 2024 outage);
#   2. the Falcon sensor's service (CSFalconService) is running.
#
# Exit codes (message on stderr): 0 recovered, 1 unexpected error, 2 the faulty
# channel file is still there, 3 the sensor service is missing or not running.

$ErrorActionPreference = 'Stop'
$FaultyFrom = [datetime]::new(2024, 7, 19, 4, 9, 0, [DateTimeKind]::Utc)
$RevertedFrom = [datetime]::new(2024, 7, 19, 5, 27, 0, [DateTimeKind]::Utc)

try {
    $folder = Join-Path $env:SystemRoot 'System32\drivers\CrowdStrike'
    $faulty = @(Get-ChildItem -LiteralPath $folder -Filter 'C-00000291*.sys' -File -Force -ErrorAction SilentlyContinue |
        Where-Object { $_.LastWriteTimeUtc -ge $FaultyFrom -and $_.LastWriteTimeUtc -lt $RevertedFrom })
    if ($faulty.Count -gt 0) {
        [Console]::Error.WriteLine("${InstanceId}: the faulty channel file is still there: " +
            (($faulty | ForEach-Object { $_.FullName }) -join ', '))
        exit 2
    }
    $service = Get-Service -Name 'CSFalconService' -ErrorAction SilentlyContinue
    if ($null -eq $service) {
        [Console]::Error.WriteLine("${InstanceId}: the Falcon sensor service CSFalconService is not installed")
        exit 3
    }
    if ("$($service.Status)" -ne 'Running') {
        [Console]::Error.WriteLine("${InstanceId}: the Falcon sensor service CSFalconService is $($service.Status), not Running")
        exit 3
    }
    Write-Output "${InstanceId}: no faulty C-00000291*.sys; CSFalconService Running"
    exit 0
} catch {
    [Console]::Error.WriteLine("${InstanceId}: $($_.Exception.Message)")
    exit 1
}
