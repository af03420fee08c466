#!/bin/sh
# Scenario 3b: two WATCHDOG=1, then silence while staying alive.
trap 'exit 0' TERM
trap 'echo "payload: SIGABRT (watchdog)"; exit 134' ABRT
sd-notify-send -b -v -j READY=1 STATUS=s3b-pinging
sd-notify-send -b -v WATCHDOG=1
sleep 0.5
sd-notify-send -b -v -j WATCHDOG=1 STATUS=s3b-silent
sleep 100000 & wait
