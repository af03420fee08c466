#!/usr/bin/env bash
# bench/crun-trixie.sh: Debian 13's crun (1.21), unpacked beside the host's Debian 12 crun.
#
# usage: bench/crun-trixie.sh [CACHE_DIR]    (as root; prints the wrapper to run on stdout)
#
# apt-get download (with an apt state of its own under CACHE_DIR, so the host's apt lists and
# packages are untouched) of crun and its run-time libraries from the trixie suite of the
# Debian mirror the host's apt sources name, dpkg-deb -x into CACHE_DIR/root. The binary is
# linked against trixie's glibc 2.41, which the host's 2.36 loader cannot load, so it is run
# by the unpacked ld.so with the unpacked libraries:
#   CACHE_DIR/crun-1.21  ->  exec root/lib64/ld-linux-x86-64.so.2 --library-path ... root/usr/bin/crun
# crun re-executes itself (/proc/self/exe, its CVE-2019-5736 guard): under an explicit ld.so
# that would be the loader, so the binary is copied with its ELF interpreter and RUNPATH set
# to the unpacked ones (patchelf) instead of a wrapper that names the loader; /proc/self/exe
# is then crun itself and its re-exec loads the same libraries.
# Cached: a second call only checks that the binary runs. CACHE_DIR defaults to
# /var/cache/pier-bench/crun-trixie.
set -euo pipefail
cache=${1:-/var/cache/pier-bench/crun-trixie}
say() { printf 'crun-trixie: %s\n' "$*" >&2; }
bin=$cache/crun

if [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; then
    echo "$bin"; exit 0
fi

# The mirror: the first http(s) URI of the host's Debian sources (deb822 or one-line form).
mirror=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null |
    grep -oE 'https?://[^ ]*/debian/?( |$)' | grep -v security | head -n1 | tr -d ' ' || true)
mirror=${mirror%/}
[ -n "$mirror" ] || { say "no Debian mirror in /etc/apt sources"; exit 1; }
command -v patchelf >/dev/null ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends patchelf >&2

apt=$cache/apt
mkdir -p "$apt"/{lists/partial,archives/partial,etc/preferences.d} "$cache/debs"
cat >"$apt/etc/sources.list" <<EOF
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main
EOF
: >"$apt/status"
opts=(-o "Dir::Etc::SourceList=$apt/etc/sources.list" -o "Dir::Etc::SourceParts=-"
    -o "Dir::Etc::Preferences=$apt/etc/preferences" -o "Dir::Etc::PreferencesParts=$apt/etc/preferences.d"
    -o "Dir::State::Lists=$apt/lists" -o "Dir::State::status=$apt/status"
    -o "Dir::Cache=$apt" -o "Dir::Cache::archives=$apt/archives" -o "APT::Architecture=amd64"
    -o "APT::Architectures::=amd64" -o "Debug::NoLocking=1")
say "apt-get update (trixie, $mirror)"
apt-get "${opts[@]}" update >&2

# crun and the shared libraries it loads, recursively (Depends and Pre-Depends only).
pkgs=$(apt-cache "${opts[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts \
    --no-breaks --no-replaces --no-enhances crun | grep -vE '^ |^<' | sort -u)
say "downloading: $(echo $pkgs)"
(cd "$cache/debs" && apt-get "${opts[@]}" download $pkgs >&2)
rm -rf "$cache/root"
for deb in "$cache"/debs/*.deb; do dpkg-deb -x "$deb" "$cache/root"; done
root=$cache/root
ld=$root/usr/lib64/ld-linux-x86-64.so.2
[ -e "$ld" ] || ld=$root/lib64/ld-linux-x86-64.so.2
libs=$root/usr/lib/x86_64-linux-gnu:$root/lib/x86_64-linux-gnu
cp "$root/usr/bin/crun" "$bin.tmp"
patchelf --set-interpreter "$(readlink -f "$ld")" --set-rpath "$libs" --force-rpath "$bin.tmp"
mv "$bin.tmp" "$bin"
"$bin" --version >&2
echo "$bin"
