#!/bin/sh
# Scenario 5c/5d: exit 0 before READY (systemd: Result=protocol, as for the same service uncontained).
sd-notify-send -b -v STATUS=s5-failing
echo "payload: exiting 0 before READY"
exit 0
