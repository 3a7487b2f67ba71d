# shellcheck shell=sh
# crowdstrike-verify.sh: proof of recovery on a Linux host, run by remediate's
# ssm.verify_guest through SSM (AWS-RunShellScript, POSIX sh) after the boot. remediate
# sets one variable before its first line, quoted: InstanceId='<its id>'.
#
# Recovered means: no channel file C-00000291*.sys of the faulty 2024-07-19 04:09 UTC
# build under /opt/CrowdStrike (the reverted build is 05:27 UTC or later), and the
# Falcon sensor's service (falcon-sensor) is active.
#
# Exit codes (message on stderr): 0 recovered, 2 the faulty channel file is still
# there, 3 the sensor service is not active.

set -u

faulty=$(find /opt/CrowdStrike -name 'C-00000291*.sys' -type f \
    -newermt '2024-07-19 04:08:59 UTC' ! -newermt '2024-07-19 05:27:00 UTC' 2>/dev/null)
if [ -n "$faulty" ]; then
    echo "$InstanceId: the faulty channel file is still there: $faulty" >&2
    exit 2
fi
state=$(systemctl is-active falcon-sensor 2>/dev/null)
if [ "$state" != active ]; then
    echo "$InstanceId: the Falcon sensor service falcon-sensor is ${state:-missing}, not active" >&2
    exit 3
fi
echo "$InstanceId: no faulty C-00000291*.sys; falcon-sensor active"
