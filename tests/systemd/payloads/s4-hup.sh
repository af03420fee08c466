#!/bin/sh
# Scenario 4b (Type=notify-reload): `systemctl reload` sends SIGHUP; the service announces the
# reload (RELOADING=1 + MONOTONIC_USEC), waits for the judge, then READY=1 completes it.
trap 'exit 0' TERM
reload() {
    sd-notify-send -b -v -j -M RELOADING=1 STATUS=s4b-reloading
    read -r _ < "$CTL/go1"
    sd-notify-send -b -v -j READY=1 STATUS=s4b-reloaded
}
trap reload HUP
sd-notify-send -b -v -j READY=1 STATUS=s4b-ready
# wait returns early for each trapped signal: wait again until TERM exits
sleep 100000 &
while :; do wait; done
