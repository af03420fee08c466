#!/bin/sh
# Scenarios 5e/5f: READY=1, then exit 3 at once (no barrier: the exit races the READY's
# processing, which pier must not report as an exit "before READY=1").
sd-notify-send READY=1 STATUS=s5-ready-then-exit
echo "payload: READY sent, exiting 3"
exit 3
