#!/bin/sh
# Scenario 16 (a limit in config.json): READY, a later STATUS from the same init; exit 0 on SIGTERM.
trap 'echo "payload: SIGTERM received, exiting 0"; exit 0' TERM
sd-notify-send -b -v -j READY=1 STATUS=s16-ready
read -r _ < "$CTL/go1"
sd-notify-send -b -v STATUS=s16-changed
sleep 100000 & wait
