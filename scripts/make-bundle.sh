#!/bin/bash
# make-bundle.sh: the one builder of a minimal OCI bundle (the README's example, scripts/demo.sh,
# bench/run and the cargo integration tests' busybox image all use it): a busybox-static rootfs
# (/bin/busybox and one symlink per applet, plus any -x static binaries in /bin; /etc/passwd and
# /etc/group with root, tester (1000) and nobody; /tmp mode 1777) and the config.json that
# `SPEC_RUNTIME spec` writes, patched to process.terminal=false, root.readonly=false and
# process.args=ARG... (default /bin/true). Everything else keeps the runtime's spec defaults.
# SPEC_RUNTIME is pier (README, demo, tests) or runc (bench: every runtime gets runc's config).
# usage: make-bundle.sh DIR SPEC_RUNTIME [-x STATIC_BINARY]... [--] [ARG...]
# needs: busybox-static, python3
set -euo pipefail
usage() { echo "usage: make-bundle.sh DIR SPEC_RUNTIME [-x STATIC_BINARY]... [--] [ARG...]" >&2; exit 64; }
[ $# -ge 2 ] || usage
dir=$1; spec=$2; shift 2
extra=()
while [ $# -gt 0 ]; do
    case $1 in
        -x) [ $# -ge 2 ] || usage; extra+=("$2"); shift 2 ;;
        --) shift; break ;;
        *) break ;;
    esac
done
[ $# -gt 0 ] || set -- /bin/true
bb=/bin/busybox
[ -x "$bb" ] || bb=$(command -v busybox) || { echo "make-bundle.sh: busybox not found (apt-get install busybox-static)" >&2; exit 1; }
if ! "$bb" --list >/dev/null 2>&1 || ldd "$bb" >/dev/null 2>&1; then
    echo "make-bundle.sh: $bb is not a static busybox (apt-get install busybox-static)" >&2; exit 1
fi
rm -rf "$dir/rootfs" "$dir/config.json"
mkdir -p "$dir"/rootfs/{bin,proc,dev,sys,tmp,etc,run,root,home/tester}
chmod 0755 "$dir/rootfs"
chmod 1777 "$dir/rootfs/tmp"
cp "$bb" "$dir/rootfs/bin/busybox"
for a in $("$bb" --list); do [ -e "$dir/rootfs/bin/$a" ] || ln -s busybox "$dir/rootfs/bin/$a"; done
for x in "${extra[@]}"; do cp --remove-destination "$x" "$dir/rootfs/bin/"; done
cat > "$dir/rootfs/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
tester:x:1000:1000:tester:/home/tester:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat > "$dir/rootfs/etc/group" <<'GROUP'
root:x:0:
wheel:x:10:tester
users:x:100:tester
tester:x:1000:
nogroup:x:65534:
GROUP
"$spec" spec --bundle "$dir"
python3 - "$dir/config.json" "$@" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = sys.argv[2:]
c["root"]["readonly"] = False
json.dump(c, open(p, "w"), indent=2)
PY
