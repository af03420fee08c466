#!/bin/sh
# Scenario 13 (a unit whose ExecStart is `pier exec --notify-socket own BOX ...`): as the box
# container's init (pid 1) this only waits; exec'd by the unit (or run by it in host mode) it is
# the service: STATUS, READY, a later STATUS, exit 0 on SIGTERM.
if [ "$$" -eq 1 ]; then
    exec sleep 100000
fi
trap 'echo "payload: SIGTERM received, exiting 0"; echo sigterm > "$CTL/stopped"; kill $! 2>/dev/null; exit 0' TERM
sd-notify-send -b -v STATUS=s13-starting
read -r _ < "$CTL/go1"
sd-notify-send -b -v -j READY=1 STATUS=s13-ready
read -r _ < "$CTL/go2"
sd-notify-send -b -v STATUS=s13-changed
sleep 100000 & wait
