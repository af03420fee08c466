#!/bin/sh
# Scenario 5: exit with status 7 before READY.
sd-notify-send -b -v STATUS=s5-failing
echo "payload: exiting 7 before READY"
exit 7
