#!/bin/bash
# demo.sh: pier's main job end to end, as root on Debian 12.
#   1. build pier (release);
#   2. make a busybox bundle whose service speaks sd_notify (a tiny static sender);
#   3. boot a real systemd (PID 1 in systemd-nspawn, the host's own /usr) and start
#      `pier run` from a Type=notify, NotifyAccess=main unit;
#   4. show what the host's manager received: ActiveState, MainPID, StatusText as they change,
#      then stop the unit (SIGTERM reaches the container) and show the journal.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
bash scripts/deps.sh
echo "== building pier and the static sd_notify sender (release)"
cargo build --release -p pier 2>&1 | tail -1
cargo build --release -p notify-relay --example sd-notify-send 2>&1 | tail -1
work=$(mktemp -d /tmp/pier-demo.XXXXXX)
trap 'bash "$top/tests/systemd/harness.sh" down "$work" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
mkdir -p "$work/bundles/demo" "$work/units" "$work/bin"
cp target/x86_64-unknown-linux-gnu/release/pier "$work/bin/pier"

echo "== making a busybox bundle with a notifying service"
bundle=$work/bundles/demo
bash scripts/make-bundle.sh "$bundle" "$work/bin/pier"
install -m 0755 target/x86_64-unknown-linux-gnu/release/examples/sd-notify-send "$bundle/rootfs/bin/"
python3 - "$bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p))
c["process"]["args"] = ["sh", "-c", """
trap 'sd-notify-send -b -v STOPPING=1 "STATUS=stopping on SIGTERM"; exit 0' TERM
sd-notify-send -b -v "STATUS=warming up"; sleep 1
sd-notify-send -b -v -j READY=1 "STATUS=serving requests"; sleep 1
sd-notify-send -b -v "STATUS=serving, 42 requests so far"
while :; do sleep 1; done"""]
json.dump(c, open(p, "w"), indent=2)
PY

echo "== booting a real systemd in systemd-nspawn"
bash tests/systemd/harness.sh up "$work" --bind-ro="$work/bin:/opt/pier"
inside() { bash tests/systemd/harness.sh exec "$work" "$@"; }
unit=pier-demo.service
echo "== systemd-run -p Type=notify -p NotifyAccess=main pier run demo"
inside systemd-run --unit=$unit -p Type=notify -p NotifyAccess=main --no-block \
  /opt/pier/pier --root /run/pier run --bundle /h/bundles/demo demo
show() { inside systemctl show $unit -p ActiveState,SubState,MainPID,StatusText | paste -sd' '; }
last=""
for _ in $(seq 60); do
  now=$(show)
  [ "$now" != "$last" ] && echo "   $now" && last=$now
  case $now in *"42 requests"*) break ;; esac
  sleep 0.1
done
echo "== systemctl stop (SIGTERM is forwarded to the container)"
inside systemctl stop $unit
echo "   $(show)"
echo "== journal of $unit"
inside journalctl -u $unit --no-pager -o cat | sed 's/^/   /'
