#!/bin/sh
# Scenario 9 (exec'd services): the init itself never notifies; READY=1 and STATUS come from
# another process of the service (`pier exec --notify-socket container`); exit 0 on SIGTERM.
trap 'echo "payload: SIGTERM received, exiting 0"; exit 0' TERM
echo "payload: waiting for an exec'd process to notify"
sleep 100000 & wait
