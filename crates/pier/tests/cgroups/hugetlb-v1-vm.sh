#!/bin/bash
# hugetlb-v1-vm.sh: pier and runc side by side on a host whose hugetlb controller is on a
# cgroup v1 hierarchy (issue 16: runtime-tools' linux_cgroups_hugetlb and
# linux_cgroups_relative_hugetlb). On the usual hybrid host hugetlb is enabled in the cgroup2
# root's subtree_control, so it cannot be mounted on v1 without changing the host for every
# cgroup on it; this boots a throwaway guest instead (Debian's kernel, an initramfs with
# busybox, pier, runc and its libraries), builds a hybrid tree there with hugetlb on v1
# (cgroup2 at /sys/fs/cgroup/unified without it), and compares what each runtime writes and
# reports. Nothing on the host changes.
#
#   usage: crates/pier/tests/cgroups/hugetlb-v1-vm.sh [PIER] [RUNC]   (as root; needs
#          qemu-system-x86_64 and a /boot/vmlinuz-*: `apt-get install qemu-system-x86
#          linux-image-cloud-amd64`). Not part of scripts/test.sh. The guest is emulated (TCG,
#          ~1-2 min): under this machine's nested KVM the guest kernel hangs at boot
#          (and `-cpu host` fails setting MSR 0x10a); QEMU_ACCEL=kvm tries KVM anyway.
# Exit status 0 when every check passes for pier (and, for the record, says what runc did).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../../../.." && pwd)
pier=${1:-$repo/target/x86_64-unknown-linux-gnu/release/pier}
runc=${2:-$(command -v runc || true)}
kernel=${KERNEL:-$(ls /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1)}
[ -x "$pier" ] || { echo "hugetlb-v1-vm: no pier at $pier" >&2; exit 2; }
command -v qemu-system-x86_64 >/dev/null && [ -n "$kernel" ] ||
    { echo "hugetlb-v1-vm: needs qemu-system-x86_64 and /boot/vmlinuz-*" >&2; exit 2; }
kver=${kernel#/boot/vmlinuz-}

dir=$(mktemp -d /tmp/pier-hugetlb-v1.XXXXXX)
trap 'rm -rf "$dir"' EXIT
ird=$dir/initramfs
mkdir -p "$ird"/{bin,sbin,etc,proc,sys,dev,run,tmp,root,lib/modules}
cp /bin/busybox "$ird/bin/busybox"
cp "$pier" "$ird/bin/pier"
if [ -n "$runc" ]; then
    cp "$runc" "$ird/bin/runc"
    # runc is dynamic: its libraries at the same paths.
    for lib in $(ldd "$runc" | grep -o '/[^ ]*'); do
        mkdir -p "$ird$(dirname "$lib")"
        cp -L "$lib" "$ird$lib"
    done
fi
# overlayfs (pier's sealed copy; else its memfd fallback), and virtio-rng: an emulated guest
# has no entropy source, and getrandom(2) (Rust's HashMap seed) would block forever.
mods="fs/overlayfs/overlay virtio/virtio_ring virtio/virtio virtio/virtio_pci_legacy_dev
      virtio/virtio_pci_modern_dev virtio/virtio_pci char/hw_random/virtio-rng"
for m in $mods; do
    f=/lib/modules/$kver/kernel/$m.ko
    [ "${m#fs/}" != "$m" ] || f=/lib/modules/$kver/kernel/drivers/$m.ko
    [ -f "$f" ] && cp "$f" "$ird/lib/modules/"
    echo "${f##*/}" >> "$ird/lib/modules/order"
done

# The bundles: pier spec (runc's shape), busybox, the suite's limit (56892210544640 B of 2 MB
# pages) for the absolute cgroupsPath and a small one (8 MiB) for the relative one.
mkdir -p "$ird/bundle/rootfs/bin"
cp /bin/busybox "$ird/bundle/rootfs/bin/busybox"
for a in sh sleep cat; do ln -s busybox "$ird/bundle/rootfs/bin/$a"; done
"$pier" spec --bundle "$dir"
python3 - "$dir/config.json" "$ird/bundle" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["terminal"] = False
c["process"]["args"] = ["sleep", "1000"]
c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "cgroup"]
for name, path, limit in (("abs", "/cgrouptest", 56892210544640),
                          ("rel", "testdir/cgrouptest/container", 8 << 20)):
    c["linux"]["cgroupsPath"] = path
    c["linux"]["resources"] = {"hugepageLimits": [{"pageSize": "2MB", "limit": limit}]}
    json.dump(c, open(f"{sys.argv[2]}/config-{name}.json", "w"), indent=1)
EOF

cat > "$ird/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
if [ ! -e /.stage2 ]; then
    # pivot_root cannot leave the initramfs root: continue from a tmpfs copy of it.
    mkdir /newroot && mount -t tmpfs -o size=400m tmpfs /newroot
    for d in /*; do [ "$d" = /newroot ] || cp -a "$d" /newroot/; done
    touch /newroot/.stage2
    exec switch_root /newroot /init
fi
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm; mount -t devpts devpts /dev/pts; mount -t tmpfs tmpfs /run
for m in $(cat /lib/modules/order); do [ -f /lib/modules/$m ] && insmod /lib/modules/$m; done
echo 8 > /proc/sys/vm/nr_hugepages
# A hybrid tree with hugetlb on v1, as on a host whose cgroup2 does not enable it.
mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup
for c in cpu,cpuacct memory pids devices freezer blkio cpuset hugetlb; do
    mkdir "/sys/fs/cgroup/$c"; mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c"
done
mkdir /sys/fs/cgroup/systemd; mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd
mkdir /sys/fs/cgroup/unified; mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified
say() { echo "RESULT $*"; }
say entropy "$(cat /proc/sys/kernel/random/entropy_avail)" "$(cat /sys/class/misc/hw_random/rng_current 2>&1)"
say kernel "$(uname -r)" hugetlb-on "$(grep hugetlb /proc/cgroups | tr '\t' ' ')"
for rt in pier runc; do
    command -v $rt >/dev/null || continue
    for kind in abs rel; do
        cp /bundle/config-$kind.json /bundle/config.json
        id=$rt-$kind
        ( sleep 120; for p in /proc/[0-9]*; do grep -q -e pier -e runc $p/cmdline 2>/dev/null &&
            say hung "${p#/proc/}" "$(tr '\0' ' ' < $p/cmdline)" "$(cat $p/wchan)" "$(cat $p/stack 2>/dev/null | head -n 3 | tr '\n' ' ')"; done
            dmesg | tail -n 5 ) &
        watchdog=$!
        # Not through $(...): the created init keeps create's stdio until it execs.
        if ! $rt --root /run/$rt create --bundle /bundle $id </dev/null >/tmp/create.out 2>&1; then
            kill $watchdog; say $rt $kind create-failed "$(tr '\n' ' ' < /tmp/create.out)"; continue
        fi
        kill $watchdog
        pid=$($rt --root /run/$rt state $id | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p')
        path=$(sed -n 's/^[0-9]*:hugetlb://p' /proc/$pid/cgroup)
        d=/sys/fs/cgroup/hugetlb$path
        say $rt $kind cgroup "$path"
        say $rt $kind limit_in_bytes "$(cat $d/hugetlb.2MB.limit_in_bytes 2>&1)"
        say $rt $kind rsvd.limit_in_bytes "$(cat $d/hugetlb.2MB.rsvd.limit_in_bytes 2>&1)"
        say $rt $kind v2-has-it "$(ls /sys/fs/cgroup/unified$path 2>/dev/null | grep -c hugetlb)"
        say $rt $kind stats "$($rt --root /run/$rt events --stats $id 2>&1 | tr -d ' \n' | grep -o '"hugetlb":{[^}]*}[^}]*}' )"
        $rt --root /run/$rt start $id
        $rt --root /run/$rt delete --force $id
        say $rt $kind after-delete "$([ -d $d ] && echo cgroup-left || echo cgroup-gone)"
        rmdir /sys/fs/cgroup/*/testdir/cgrouptest /sys/fs/cgroup/*/testdir 2>/dev/null || true
    done
done
say done
poweroff -f
EOF
chmod +x "$ird/init"
(cd "$ird" && find . | cpio -o -H newc --quiet | gzip -1) > "$dir/initramfs.gz"

timeout 900 qemu-system-x86_64 -accel "${QEMU_ACCEL:-tcg}" -cpu max -m 1024 -smp 1 -no-reboot \
    -device virtio-rng-pci -kernel "$kernel" -initrd "$dir/initramfs.gz" \
    -append "console=ttyS0 rdinit=/init panic=-1 quiet" \
    -display none -serial "file:$dir/console.log" -monitor none >/dev/null 2>&1 || true
results=$(grep -a '^RESULT ' "$dir/console.log" | tr -d '\r' || true)
echo "$results"
grep -q '^RESULT done' <<<"$results" || { echo "hugetlb-v1-vm: the guest did not finish" >&2; tail -n 30 "$dir/console.log" >&2; exit 1; }
fail=0
check() { grep -qxF "RESULT pier $1" <<<"$results" || { echo "hugetlb-v1-vm: FAIL pier $1" >&2; fail=1; }; }
# runtime-tools' linux_cgroups_hugetlb: an absolute cgroupsPath is relative to the hierarchy's
# mount point, the limit is read back from hugetlb.<size>.limit_in_bytes there;
# linux_cgroups_relative_hugetlb: the cgroup is found through /proc/<pid>/cgroup.
for kind in abs rel; do
    limit=56892210544640; [ $kind = rel ] && limit=8388608
    check "$kind limit_in_bytes $limit"
    check "$kind rsvd.limit_in_bytes $limit"
    check "$kind v2-has-it 0"
    check "$kind after-delete cgroup-gone"
    grep -q "^RESULT pier $kind stats \"hugetlb\":{.*\"2MB\"" <<<"$results" ||
        { echo "hugetlb-v1-vm: FAIL pier $kind stats have no 2MB entry" >&2; fail=1; }
    # The same cgroup, limit and stats as runc (runc 1.1.5 predates the .rsvd limits).
    for key in cgroup limit_in_bytes stats after-delete; do
        theirs=$(grep "^RESULT runc $kind $key " <<<"$results" || true)
        [ -z "$theirs" ] && continue
        ours=$(grep "^RESULT pier $kind $key " <<<"$results" || true)
        [ "${ours#RESULT pier}" = "${theirs#RESULT runc}" ] ||
            { echo "hugetlb-v1-vm: FAIL $kind $key: pier '${ours#RESULT pier }', runc '${theirs#RESULT runc }'" >&2; fail=1; }
    done
done
check "abs cgroup /cgrouptest"
check "rel cgroup /testdir/cgrouptest/container"
[ $fail = 0 ] && echo "hugetlb-v1-vm: pier passed every check"
exit $fail
