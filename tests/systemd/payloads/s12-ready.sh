#!/bin/sh
# Scenario 12, the init after its first STATUS: READY=1 from itself once go1 says so.
trap 'echo "payload: SIGTERM received, exiting 0"; exit 0' TERM
read -r _ < "$CTL/go1"
exec sd-notify-send -b -v -j READY=1 STATUS=s12-ready -- sh "$(dirname "$0")/s12-run.sh"
