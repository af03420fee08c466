#!/bin/bash
# deps.sh: install what pier's build, tests, demo and benchmarks need on Debian 12 (as root).
# Idempotent: apt runs only when a package is missing.
set -euo pipefail
packages=(busybox-static gcc libc6-dev libseccomp-dev pkg-config python3 procps runc crun systemd-container iproute2 hyperfine mmdebstrap podman containerd catatonit bsdutils protobuf-compiler uidmap slirp4netns dbus-user-session)
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
# Docker (tests/engines): Debian's docker.io and tini unpacked with `dpkg -x` into
# /opt/pier-docker, not installed: installing would add and start a docker service (a bridge,
# iptables rules) on the machine; the tests start their own dockerd by hand. Its other
# dependencies (containerd, runc, iptables) are the packages above or already present.
docker_root=${PIER_DOCKER_ROOT:-/opt/pier-docker}
if [ ! -x "$docker_root/usr/sbin/dockerd" ] && ! command -v dockerd >/dev/null; then
  echo "deps: unpacking docker.io and tini into $docker_root"
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get update -qq && apt-get download -qq docker.io tini 2>/dev/null)
  mkdir -p "$docker_root"
  for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$docker_root"; done
  rm -rf "$tmp"
fi
