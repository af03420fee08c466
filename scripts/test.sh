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
# Type=notify units under real systemds (252: the host, 257: a cached Debian 13 root it builds
# when missing); its last line is the summary ("16 passed, 0 failed").
python3 tests/systemd/run.py --runtime "$PWD/target/x86_64-unknown-linux-gnu/release/pier"
# Engines (podman, containerd's ctr) with pier as the runtime, each case beside runc.
python3 tests/engines/run.py --runtime "$PWD/target/x86_64-unknown-linux-gnu/release/pier"
