#!/bin/sh
# Scenario 13c/13d (exec'd services that end at once): as the box container's init (pid 1) this
# only waits; exec'd, with "ready": READY=1, then exit 3; without: exit 0 before any READY.
if [ "$$" -eq 1 ]; then
    exec sleep 100000
fi
if [ "$1" = ready ]; then
    sd-notify-send -b -v -j READY=1 STATUS=s13-ready-then-exit
    echo "payload: READY sent, exiting 3"
    exit 3
fi
echo "payload: exiting 0 before READY"
exit 0
