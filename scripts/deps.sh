#!/bin/bash
# deps.sh: install what pier's build, tests, demo and benchmarks need on Debian 12 (as root).
# Idempotent: apt runs only when a package is missing.
set -euo pipefail
packages=(busybox-static gcc libc6-dev libseccomp-dev pkg-config python3 procps runc crun systemd-container iproute2 hyperfine mmdebstrap podman containerd catatonit bsdutils protobuf-compiler)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "deps: cargo (Rust toolchain) is required" >&2; exit 1; }
