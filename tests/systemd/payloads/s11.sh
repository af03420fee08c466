#!/bin/sh
# Scenario 11 (podman quadlet, Notify=true): READY=1 with a STATUS, a later STATUS after go1;
# exit 0 on SIGTERM.
trap 'echo "payload: SIGTERM received, exiting 0"; exit 0' TERM
sd-notify-send -b -v -j READY=1 STATUS=s11-ready
read -r _ < "$CTL/go1"
sd-notify-send -b -v STATUS=s11-changed
sleep 100000 & wait
