#!/bin/sh
# Scenario 3a: record the watchdog environment, then WATCHDOG=1 every 500 ms.
trap 'exit 0' TERM
echo "WATCHDOG_USEC=${WATCHDOG_USEC:--} WATCHDOG_PID=${WATCHDOG_PID:--} pid=$$" > "$CTL/env.tmp"
mv "$CTL/env.tmp" "$CTL/env"
sd-notify-send -b -v -j READY=1 STATUS=s3a-pinging
while :; do
    sd-notify-send -b WATCHDOG=1
    sleep 0.5
done
