#!/bin/bash
# make-bundle.sh: a minimal OCI bundle: busybox-static rootfs and `pier spec`'s config.json with
# process.terminal=false, root.readonly=false and process.args=ARG... (default /bin/true).
# usage: make-bundle.sh DIR PIER [ARG...]
set -euo pipefail
dir=${1:?usage: make-bundle.sh DIR PIER [ARG...]}; pier=${2:?pier binary}; shift 2
[ $# -gt 0 ] || set -- /bin/true
bb=/bin/busybox
[ -x $bb ] && ! ldd $bb >/dev/null 2>&1 || { echo "make-bundle.sh: needs busybox-static" >&2; exit 1; }
rm -rf "$dir/rootfs" "$dir/config.json"
mkdir -p "$dir"/rootfs/{bin,proc,dev,sys,tmp,etc,run}
cp $bb "$dir/rootfs/bin/busybox"
for a in $($bb --list); do [ -e "$dir/rootfs/bin/$a" ] || ln -s busybox "$dir/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$dir/rootfs/etc/passwd"
echo 'root:x:0:' > "$dir/rootfs/etc/group"
"$pier" spec --bundle "$dir"
python3 - "$dir/config.json" "$@" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = sys.argv[2:]
c["root"]["readonly"] = False
json.dump(c, open(p, "w"), indent=2)
PY
