#!/bin/sh
# Scenario 12, the init once ready: runs until SIGTERM, then exits 0.
trap 'echo "payload: SIGTERM received, exiting 0"; exit 0' TERM
echo "payload: ready, running"
sleep 100000 & wait
