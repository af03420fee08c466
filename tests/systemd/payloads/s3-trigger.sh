#!/bin/sh
# Scenario 3c: READY, then on the judge's go a WATCHDOG=trigger.
trap 'exit 0' TERM
trap 'echo "payload: SIGABRT (watchdog)"; exit 134' ABRT
sd-notify-send -b -v -j READY=1 STATUS=s3c-ready
read -r _ < "$CTL/go1"
sd-notify-send -b -v WATCHDOG=trigger
sleep 100000 & wait
