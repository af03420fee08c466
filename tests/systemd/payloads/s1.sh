#!/bin/sh
# Scenario 1: STATUS while starting, READY, a later STATUS; clean exit 0 on SIGTERM.
# $CTL/goN are FIFOs: the judge writes one when it has seen the previous step.
trap 'echo "payload: SIGTERM received, exiting 0"; exit 0' TERM
sd-notify-send -b -v STATUS=s1-starting
read -r _ < "$CTL/go1"
sd-notify-send -b -v -j READY=1 STATUS=s1-ready
read -r _ < "$CTL/go2"
sd-notify-send -b -v STATUS=s1-changed
sleep 100000 & wait
