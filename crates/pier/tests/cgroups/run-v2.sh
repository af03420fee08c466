#!/bin/bash
# run-v2.sh: run the cgroup tests on a pure cgroup v2 tree: inside the real-systemd harness
# (tests/systemd/harness.sh), as a transient service of the inner systemd, so pier sees only
# cgroup2 (freezer via cgroup.freeze, devices via its eBPF program). On a hybrid host that
# tree offers no resource controllers; the tests that need one say "skipped".
#   usage: crates/pier/tests/cgroups/run-v2.sh [TEST-FILTER...]   (as root; honours CARGO_TARGET_DIR)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../../../.." && pwd)
cd "$repo"
target=${CARGO_TARGET_DIR:-$repo/target}
bin=$(cargo test -p pier --test cgroups --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "cgroups" and m.get("executable"):
        print(m["executable"])')
[ -x "$bin" ] || { echo "run-v2.sh: test binary not built" >&2; exit 1; }
dir=$(mktemp -d /tmp/pier-cgroups-v2.XXXXXX)
mkdir "$dir/units"
trap 'bash tests/systemd/harness.sh down "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
bash tests/systemd/harness.sh up "$dir" --bind-ro="$target" >/dev/null
# TMPDIR on the root tmpfs: the inner /tmp is nodev, which would hide the device-cgroup check.
bash tests/systemd/harness.sh exec "$dir" sh -c 'mkdir -p /var/tmp && exec "$@"' sh \
    systemd-run -E TMPDIR=/var/tmp --wait --pipe -q "$bin" "$@"
