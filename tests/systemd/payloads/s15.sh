#!/bin/sh
# Scenario 15 (a main pid gone before the manager reads it): once the judge has stopped the
# manager, READY=1 (no barrier: nothing answers while it is stopped), then exit 0 at once; the
# judge then tries to give the init's pid to another process before the manager reads the
# MAINPID= naming it (the runtime must leave the init unreaped, so it cannot).
read -r _ < "$CTL/go1"
sd-notify-send -j READY=1 STATUS=s15-ready
exit 0
