#!/bin/sh
# Scenario 10 (a stuck manager): once the judge has stopped the manager (SIGSTOP of PID 1),
# a burst of STATUS datagrams, then READY=1 with the last STATUS, all without barriers; "done"
# in $CTL/done says every send returned. Exit 0 on SIGTERM.
trap 'echo "payload: SIGTERM received, exiting 0"; exit 0' TERM
read -r _ < "$CTL/go1"
i=0
while [ "$i" -lt 200 ]; do
    sd-notify-send "STATUS=s10-burst-$i"
    i=$((i + 1))
done
sd-notify-send -j READY=1 STATUS=s10-ready
echo done > "$CTL/done"
sleep 100000 & wait
