#!/bin/bash
# test.sh: pier's whole test suite, as root on Debian 12: unit, contract and privileged
# integration tests (cargo), then the real-systemd suite (systemd as PID 1 in nspawn).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cargo build --workspace --release --bins
cargo test --workspace --no-fail-fast 2>&1 | tee /tmp/pier-cargo-test.log
# The cgroup tests again on a pure cgroup v2 tree (a service of a real systemd in nspawn).
bash crates/pier/tests/cgroups/run-v2.sh
# hugetlb on a cgroup v1 hierarchy, beside runc, in a throwaway qemu guest (docs/cgroups.md);
# only where qemu-system-x86_64 and a /boot/vmlinuz-* are installed.
if command -v qemu-system-x86_64 >/dev/null && ls /boot/vmlinuz-* >/dev/null 2>&1; then
    bash crates/pier/tests/cgroups/hugetlb-v1-vm.sh "$PWD/target/x86_64-unknown-linux-gnu/release/pier"
else
    echo "test.sh: hugetlb-v1-vm.sh skipped (no qemu-system-x86_64 or /boot/vmlinuz-*)"
fi
# Type=notify units under real systemds (252: the host, 257: a cached Debian 13 root it builds
# when missing); its last line is the summary ("N passed, 0 failed"; 30 today: each scenario under each systemd).
python3 tests/systemd/run.py --runtime "$PWD/target/x86_64-unknown-linux-gnu/release/pier"
# A rootless pier under a systemd user manager (systemd-run --user -p Type=notify, and
# --systemd-cgroup scopes of the user's manager beside runc's), under 252 and 257 in the same
# nspawn machines; the sender is the project's static sd-notify-send (notify-relay's example,
# which run.py above also builds), here a release build.
cargo build --release -p notify-relay --example sd-notify-send
bash tests/systemd/user_manager.sh target/x86_64-unknown-linux-gnu/release/pier \
    target/x86_64-unknown-linux-gnu/release/examples/sd-notify-send
# Engines (podman, Docker, containerd's ctr) with pier as the runtime, each case beside runc.
python3 tests/engines/run.py --runtime "$PWD/target/x86_64-unknown-linux-gnu/release/pier"
# Rootless podman (an unprivileged test user) with pier as the runtime, each case beside runc.
python3 tests/engines/rootless_podman.py --runtime "$PWD/target/x86_64-unknown-linux-gnu/release/pier"
