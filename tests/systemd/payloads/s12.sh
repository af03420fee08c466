#!/bin/sh
# Scenario 12 (who may notify): a child of the init sends READY=1 first; then the init itself
# (this shell, exec'd into sd-notify-send and back) sends STATUS, waits for go1, sends READY=1.
# With org.pier.notify.access=init (uncontained: NotifyAccess=main) only the init's count.
sd-notify-send -v -j READY=1 STATUS=s12-child
exec sd-notify-send -b -v STATUS=s12-init-waiting -- sh "$(dirname "$0")/s12-ready.sh"
