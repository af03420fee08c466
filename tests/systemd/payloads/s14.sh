#!/bin/sh
# Scenario 14 (a container names a new main pid: MAINPID= of itself): the init starts a child
# that sends MAINPID=<its own pid> + READY=1 and keeps that pid (exec), then a later STATUS;
# the init exits 0 on SIGTERM.
case "$1" in
main)
    exec sd-notify-send -b -v -j "MAINPID=$$" READY=1 STATUS=s14-ready -- sh "$0" after ;;
after)
    trap 'exit 0' TERM
    read -r _ < "$CTL/go1"
    sd-notify-send -b -v STATUS=s14-changed
    sleep 100000 & wait ;;
esac
trap 'echo "payload: SIGTERM received, exiting 0"; exit 0' TERM
sh "$0" main &
wait
