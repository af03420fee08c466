#!/bin/sh
# Scenario 6: a start slower than TimeoutStartSec made legal by EXTEND_TIMEOUT_USEC, then a stop
# announced with STOPPING=1 before the process exits.
trap 'exit 0' TERM
sd-notify-send -b -v -j EXTEND_TIMEOUT_USEC=30000000 STATUS=s6-slow
read -r _ < "$CTL/go1"
sd-notify-send -b -v -j READY=1 STATUS=s6-ready
read -r _ < "$CTL/go2"
sd-notify-send -b -v -j STOPPING=1 STATUS=s6-stopping
read -r _ < "$CTL/go3"
echo "payload: stopping done, exiting 0"
exit 0
