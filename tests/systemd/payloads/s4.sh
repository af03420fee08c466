#!/bin/sh
# Scenario 4: a reload cycle announced by the service: RELOADING=1 + MONOTONIC_USEC, then READY=1.
trap 'exit 0' TERM
sd-notify-send -b -v -j READY=1 STATUS=s4-ready
read -r _ < "$CTL/go1"
sd-notify-send -b -v -j -M RELOADING=1 STATUS=s4-reloading
read -r _ < "$CTL/go2"
sd-notify-send -b -v -j READY=1 STATUS=s4-reloaded
sleep 100000 & wait
