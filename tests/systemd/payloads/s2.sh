#!/bin/sh
# Scenario 2 (detached runtimes): READY, a later STATUS from the same init; exit 0 on SIGTERM.
trap 'echo "payload: SIGTERM received, exiting 0"; exit 0' TERM
sd-notify-send -b -v -j READY=1 STATUS=s2-ready
read -r _ < "$CTL/go1"
sd-notify-send -b -v STATUS=s2-changed
sleep 100000 & wait
