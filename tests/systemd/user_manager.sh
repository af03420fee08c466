#!/bin/bash
# user_manager.sh: a rootless pier under a systemd user manager (issue 12), beside runc.
#
#   tests/systemd/user_manager.sh PIER SD_NOTIFY_SEND     (as root; boots harness.sh's machine)
#   env SYSTEMDS="host debian13" (the default: both, one after the other, as run.py)
#
# For each systemd (host: the host's /usr, systemd 252; debian13: the Debian 13 root that
# sdtest/debroot.py builds and caches, systemd 257, booted with harness.sh's SD_ROOT), in the
# nspawn machine of harness.sh (cgroup2): a user `sdu` (uid 2000) gets `user@2000.service`
# (a `systemd --user`), then as that user:
# 1. `systemd-run --user -p Type=notify pier run --bundle B ID` leaves the unit active with
#    the container's STATUS and MainPID = the init's pid (pier state), the init in a cgroup
#    pier made inside the user manager's delegated subtree, and `systemctl --user stop` ends it
#    cleanly (the payload exits 0 on SIGTERM), with the container gone from `pier list`.
# 2. `RT --systemd-cgroup run -d`, for RT = pier and runc, once from a unit of the user
#    manager (`systemd-run --user`) and once from a cgroup the user does not own (the shell
#    nsenter gives, as a login session's scope): the init is in the transient scope
#    `<user@2000.service cgroup>/user.slice/RT-ID.scope` of the user's manager, active with
#    Delegate=yes; `RT exec` works (in the scope, from a unit); `RT delete -f` stops it.
#    The same as uid 0 of a user namespace of the user's (`unshare -r`, rootless podman's way):
#    still the user's manager, the bus authenticating the uid it sees.
# 3. A pids + memory limit: applied (pids.max, memory.max, the unit's TasksMax/MemoryMax) when
#    the user manager's cgroup has those controllers; refused by both, with nothing left, when
#    it has not (a cgroup v1 hybrid host gives the machine's cgroup2 tree no controllers).
#    A hugepage limit (2MB pages, 8 MiB): hugetlb is the controller a hybrid host's cgroup2 has,
#    and systemd does not manage it, so the script enables it by hand (+hugetlb in
#    cgroup.subtree_control, as root) from the host's cgroup2 root down to the machine's cgroup
#    (undone on exit where it was off), and inside from the root down to user@2000.service,
#    whose children (app.slice, user.slice) then have it; runtimes enable it below. Then, for
#    pier and runc: (a) `systemd-run --user -p Type=notify RT run`: hugetlb.2MB.max holds the
#    limit in the container's cgroup, which holds the init: pier's is `<unit's cgroup>/<id>`
#    (pier moves itself into `<unit's cgroup>/.pier` to enable hugetlb there), runc's is
#    `<the unit's parent>/<id>` (runc's cgroupfs driver on cgroup2 starts from the parent of
#    its own cgroup); the stop is clean and no cgroup is left. (b) `RT --systemd-cgroup run -d`
#    from a unit: the limit is in the scope, with the init; delete stops it. (c) pier from a
#    unit whose cgroup holds another process: refused, naming the no-internal-process rule,
#    nothing left. Where hugetlb cannot reach the user manager, (b) is refused by both.
# 4. No user bus: both fail with runc's "failed to connect to dbus" and nothing is left. Where
#    the root has no user bus (Debian 13's has no dbus-user-session; the host's /usr has it,
#    scripts/deps.sh installs it), first with the user
#    manager running but no bus ("could not detect DBUS_SESSION_BUS_ADDRESS"); then the script
#    installs dbus-user-session's two user units so that 2 and 3 run there too.
# The last line is the summary over all systemds ("N passed, M failed").
#
# What the empty /etc of the machine lacks for user@.service, added here: a PAM stack for
# systemd-user (pam_permit) and XDG_RUNTIME_DIR for the user manager (pam_systemd, which sets
# it, needs logind). runc is not compared in 1: its foreground `run` announces its own pid as
# MAINPID (not the init's), so a Type=notify unit tracks runc (tests/rootless.rs shows it).
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 PIER SD_NOTIFY_SEND" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
pier=$(readlink -f "$1")
sender=$(readlink -f "$2")
runc=$(command -v runc || true)
harness="$here/harness.sh"
work=""
host_hugetlb="" # the host cgroup2 root, when this script enabled hugetlb in it (undone on exit)
# -hugetlb once the machine is gone (its cgroup had it enabled for its children: EBUSY before).
undo_host_hugetlb() {
    [ -n "$host_hugetlb" ] || return 0
    echo -hugetlb >"$host_hugetlb/cgroup.subtree_control" ||
        echo "user_manager.sh: could not disable hugetlb again in $host_hugetlb" >&2
    host_hugetlb=""
}
cleanup() {
    [ -z "$work" ] || { bash "$harness" down "$work" >/dev/null 2>&1 || true; rm -rf "$work"; }
    undo_host_hugetlb
}
trap cleanup EXIT

passed=0 failed=0 label=""
check() { # check NAME WANT GOT
    if [ "$2" = "$3" ]; then passed=$((passed + 1)); echo "ok   [$label] $1"
    else failed=$((failed + 1)); echo "FAIL [$label] $1: want [$2], got [$3]"; fi
}
contains() { case $2 in *"$1"*) echo yes ;; *) echo "no: $2" ;; esac; }

# bundle DIR ARGS-AS-JSON [RESOURCES-JSON [nouserns]]: busybox, the sender, the user's single id
# mapped to 0 (runc spec --rootless's shape, made by pier spec --rootless); nouserns: no user
# namespace of its own (rootless podman's shape, for a runtime run in the user's namespace).
bundle() {
    local b=$1
    mkdir -p "$b/rootfs/bin" "$b/rootfs/proc" "$b/rootfs/dev" "$b/rootfs/sys" "$b/rootfs/tmp" "$b/rootfs/run/notify"
    cp "$(command -v busybox)" "$b/rootfs/bin/busybox"
    for a in sh cat id sleep tr grep; do ln -s busybox "$b/rootfs/bin/$a"; done
    install -m 0755 "$sender" "$b/rootfs/bin/sd-notify-send"
    (cd "$b" && "$pier" spec --rootless)
    python3 - "$b/config.json" "$2" "${3:-null}" "${4:-}" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["terminal"] = False
c["process"]["args"] = json.loads(sys.argv[2])
c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 2000, "size": 1}]
c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100, "size": 1}]
if json.loads(sys.argv[3]) is not None:
    c["linux"]["resources"] = json.loads(sys.argv[3])
if sys.argv[4] == "nouserns":  # rootless podman's shape: the runtime is in the user's userns
    c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "user"]
    del c["linux"]["uidMappings"], c["linux"]["gidMappings"]
json.dump(c, open(sys.argv[1], "w"), indent=1)
EOF
    chown -R 2000:100 "$b"
}

inside() { bash "$harness" exec "$work" "$@"; }
as_user() {
    inside setpriv --reuid 2000 --regid 100 --clear-groups \
        env XDG_RUNTIME_DIR=/run/user/2000 HOME=/home/sdu USER=sdu PATH=/usr/bin:/bin sh -c "$1"
}
show() { as_user "systemctl --user show -p $1 --value $2"; }
pid_of() { as_user "/h/$1 state $2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])'; }

# dbus-user-session's user units (the user bus at $XDG_RUNTIME_DIR/bus), for a root without it.
add_user_bus() {
    inside sh -c 'mkdir -p /etc/systemd/user/sockets.target.wants &&
        printf "[Socket]\nListenStream=%%t/bus\nExecStartPost=-/usr/bin/systemctl --user set-environment DBUS_SESSION_BUS_ADDRESS=unix:path=%%t/bus\n" >/etc/systemd/user/dbus.socket &&
        printf "[Unit]\nRequires=dbus.socket\n[Service]\nType=notify\nNotifyAccess=main\nExecStart=/usr/bin/dbus-daemon --session --address=systemd: --nofork --nopidfile --systemd-activation --syslog-only\n" >/etc/systemd/user/dbus.service &&
        ln -sf ../dbus.socket /etc/systemd/user/sockets.target.wants/dbus.socket &&
        systemctl restart user@2000.service'
}

# 1: Type=notify through the user manager.
notify_checks() {
    as_user 'systemd-run --user -q -u pier-sdu -p Type=notify /h/pier run --bundle /h/notify sdu1'
    local init unit_cg
    init=$(pid_of pier sdu1)
    check "active after READY=1" "active running" "$(show ActiveState pier-sdu) $(show SubState pier-sdu)"
    check "STATUS from the container" "up as 0  0 2000 1" "$(show StatusText pier-sdu)"
    check "MainPID is the init" "$init" "$(show MainPID pier-sdu)"
    unit_cg=$(show ControlGroup pier-sdu)
    check "the init is in a cgroup pier made in the delegated subtree" "0::$unit_cg/sdu1" \
        "$(inside cat "/proc/$init/cgroup" | grep '^0::')"
    as_user 'systemctl --user stop pier-sdu'
    check "clean stop" "inactive success" "$(show ActiveState pier-sdu) $(show Result pier-sdu)"
    check "nothing left in pier list" "" "$(as_user '/h/pier list -q')"
}

# 2: --systemd-cgroup asks the user manager for the scope. FROM is "unit" (a transient
# service of the user manager runs RT) or "outside" (a cgroup the user does not own).
scope_checks() { # scope_checks RT FROM
    local rt=$1 from=$2 id="${1}sc$2" scope init
    scope="$rt-$id.scope"
    case $from in
    unit) as_user "systemd-run --user --wait -q -p Type=exec /h/$rt --systemd-cgroup run -d --bundle /h/sleep $id </dev/null" ;;
    outside) as_user "/h/$rt --systemd-cgroup run -d --bundle /h/sleep $id </dev/null" ;;
    esac
    init=$(pid_of "$rt" "$id" || echo none)
    check "$rt from $from: the scope is active with Delegate=yes" "active yes" \
        "$(show ActiveState "$scope") $(show Delegate "$scope")"
    check "$rt from $from: the init is in the user manager's $scope" "0::$manager_cg/user.slice/$scope" \
        "$(inside cat "/proc/$init/cgroup" 2>/dev/null | grep '^0::' || true)"
    # exec from the same place: unprivileged, it joins the user namespace first. The
    # container has its own cgroup namespace, rooted at the scope: "0::/" is in the scope. From
    # outside, pier has the user manager move it (AttachProcessesToUnit); runc 1.1 ignores the
    # failed move of a rootless exec and leaves it in its caller's cgroup, so only its uid is
    # compared there.
    local joined exec="/h/$rt exec $id sh -c 'id -u; grep ^0:: /proc/self/cgroup'"
    case $from in
    unit) joined=$(as_user "systemd-run --user --wait --pipe -q $exec" 2>&1 | tr '\n' ' ' | sed 's/ $//') ;;
    outside) joined=$(as_user "$exec" 2>&1 | tr '\n' ' ' | sed 's/ $//') ;;
    esac
    if [ "$from" = outside ] && [ "$rt" = runc ]; then
        check "$rt from $from: exec runs as 0" "0" "${joined%% *}"
    else
        check "$rt from $from: exec runs as 0 in the scope" "0 0::/" "$joined"
    fi
    as_user "/h/$rt delete -f $id" || true
    check "$rt from $from: delete stops the scope" "inactive" "$(show ActiveState "$scope")"
    check "$rt from $from: nothing left in $rt list" "" "$(as_user "/h/$rt list -q")"
}

# 2b: rootless podman's way: the runtime runs as uid 0 of a user namespace of the user's
# (`unshare -r`), with --systemd-cgroup: it still asks the user's manager (the rootless cgroup
# manager, as the euid is 0 only inside), authenticated as the uid the bus sees (2000).
userns_checks() { # userns_checks RT
    local rt=$1 id="${1}podman" scope
    scope="$rt-$id.scope"
    as_user "systemd-run --user --wait -q -p Type=exec unshare -r /h/$rt --root /tmp/un-$rt --systemd-cgroup run -d --bundle /h/podman $id </dev/null" || true
    check "$rt as root of the user's userns: the user manager's scope is active with Delegate=yes" \
        "active yes $manager_cg/user.slice/$scope" \
        "$(show ActiveState "$scope") $(show Delegate "$scope") $(show ControlGroup "$scope")"
    as_user "unshare -r /h/$rt --root /tmp/un-$rt delete -f $id" || true
    check "$rt as root of the user's userns: delete stops the scope" "inactive" "$(show ActiveState "$scope")"
}

# 3: a pids and memory limit under the user manager.
limit_checks() { # limit_checks RT
    local rt=$1 id="${1}lim" scope dir rc=0
    scope="$rt-$id.scope"
    dir="/sys/fs/cgroup$manager_cg/user.slice/$scope"
    as_user "systemd-run --user --wait -q -p Type=exec /h/$rt --systemd-cgroup run -d --bundle /h/limited $id </dev/null" || rc=$?
    if [ "$has_controllers" = yes ]; then
        check "$rt: the limits reach the scope's cgroup" "50 67108864" \
            "$(inside cat "$dir/pids.max" "$dir/memory.max" 2>&1 | tr '\n' ' ' | sed 's/ $//')"
        check "$rt: the user manager has them as TasksMax/MemoryMax" "50 67108864" \
            "$(show TasksMax "$scope") $(show MemoryMax "$scope")"
        as_user "/h/$rt delete -f $id" || true
    else
        check "$rt: no pids/memory controller for the user manager here: the limit is refused" \
            "refused, no scope, empty list" \
            "$([ $rc -ne 0 ] && echo refused || echo "ran"), $([ "$(show ActiveState "$scope")" = inactive ] && echo no scope || echo scope left), $([ -z "$(as_user "/h/$rt list -q")" ] && echo empty list || echo "not empty")"
    fi
}

# 3, hugetlb: bring the controller to user@2000.service's children, as root: on the host from
# the cgroup2 root to the machine's cgroup (nspawn sits in its supervisor/, the machine in
# payload/, so it holds no process itself), inside from the root to user@2000.service (the
# manager sits in its init.scope). A cgroup with processes could not (EBUSY). Succeeds when the
# host's cgroup2 offers hugetlb and has 2MB pages.
bring_hugetlb() {
    local machine root
    [ -d /sys/kernel/mm/hugepages/hugepages-2048kB ] || return 1
    machine=$(bash "$harness" cgroup "$work") || return 1
    root=$(dirname "$machine")
    case " $(cat "$root/cgroup.controllers") " in *" hugetlb "*) ;; *) return 1 ;; esac
    if ! grep -qw hugetlb "$root/cgroup.subtree_control"; then
        echo +hugetlb >"$root/cgroup.subtree_control" || return 1
        host_hugetlb=$root
    fi
    grep -qw hugetlb "$machine/cgroup.subtree_control" || echo +hugetlb >"$machine/cgroup.subtree_control" || return 1
    inside sh -c 'p=/sys/fs/cgroup
        for c in $(echo "${1#/}" | tr / " ") ""; do
            grep -qw hugetlb $p/cgroup.subtree_control || echo +hugetlb >$p/cgroup.subtree_control || exit 1
            p=$p/$c
        done' sh "$manager_cg"
}

huge_max() { inside cat "/sys/fs/cgroup$1/hugetlb.2MB.max" 2>&1; }
cgroup_of() { inside cat "/proc/$1/cgroup" 2>/dev/null | sed -n 's/^0:://p'; }

# 3 (a): a Type=notify unit runs RT in the foreground, cgroupfs (RT's own placement).
hugetlb_unit_checks() { # hugetlb_unit_checks RT
    local rt=$1 id="${1}hu" unit="$1-huge" unit_cg init cg want
    as_user "systemd-run --user -q -u $unit -p Type=notify /h/$rt run --bundle /h/hugenotify $id" || true
    init=$(pid_of "$rt" "$id" || echo none)
    unit_cg=$(show ControlGroup "$unit")
    check "$rt: Type=notify with a hugepage limit: active" "active running" "$(show ActiveState "$unit") $(show SubState "$unit")"
    case $rt in
    pier) want="$unit_cg/$id" ;;
    *) want="$(dirname "$unit_cg")/$id" ;; # runc: from the parent of its own cgroup
    esac
    cg=$(cgroup_of "$init")
    check "$rt: the init is in $want" "$want" "$cg"
    check "$rt: hugetlb.2MB.max there holds the limit" "8388608" "$(huge_max "$cg")"
    if [ "$rt" = pier ]; then
        check "pier: pier itself is in the leaf .pier of the unit's cgroup" "1" \
            "$(inside cat "/sys/fs/cgroup$unit_cg/.pier/cgroup.procs" 2>/dev/null | wc -l)"
    fi
    as_user "systemctl --user stop $unit"
    check "$rt: clean stop" "inactive success" "$(show ActiveState "$unit") $(show Result "$unit")"
    check "$rt: no cgroup left" "no no" \
        "$(inside test -e "/sys/fs/cgroup$unit_cg" && echo "$unit_cg" || echo no) $(inside test -e "/sys/fs/cgroup$want" && echo "$want" || echo no)"
    check "$rt: nothing left in $rt list" "" "$(as_user "/h/$rt list -q")"
}

# 3 (b): --systemd-cgroup run -d from a unit: the scope of the user manager; the runtime enables
# hugetlb in the manager's user.slice (systemd does not).
hugetlb_scope_checks() { # hugetlb_scope_checks RT
    local rt=$1 id="${1}hs" scope init rc=0
    scope="$rt-$id.scope"
    as_user "systemd-run --user --wait -q -p Type=exec /h/$rt --systemd-cgroup run -d --bundle /h/huge $id </dev/null" || rc=$?
    if [ "$has_hugetlb" = yes ]; then
        init=$(pid_of "$rt" "$id" || echo none)
        check "$rt: --systemd-cgroup with a hugepage limit: the init in the scope, the limit there" \
            "$manager_cg/user.slice/$scope 8388608" \
            "$(cgroup_of "$init") $(huge_max "$manager_cg/user.slice/$scope")"
        as_user "/h/$rt delete -f $id" || true
        check "$rt: --systemd-cgroup with a hugepage limit: delete stops the scope, no cgroup left" "inactive no" \
            "$(show ActiveState "$scope") $(inside test -e "/sys/fs/cgroup$manager_cg/user.slice/$scope" && echo left || echo no)"
    else
        check "$rt: no hugetlb for the user manager here: the hugepage limit is refused" "refused, no scope" \
            "$([ $rc -ne 0 ] && echo refused || echo ran), $([ "$(show ActiveState "$scope")" = inactive ] && echo no scope || echo scope left)"
    fi
    check "$rt: --systemd-cgroup with a hugepage limit: nothing left in $rt list" "" "$(as_user "/h/$rt list -q")"
}

# 3 (c): pier from a unit whose cgroup holds another process: hugetlb cannot be enabled there.
hugetlb_busy_checks() {
    local out
    out=$(as_user "systemd-run --user --wait --pipe -q -p Type=exec sh -c 'sleep 100000 & /h/pier run -d --bundle /h/huge pierbusy </dev/null 2>&1; echo rc=\$?; kill \$!'" 2>&1)
    check "pier: another process in its cgroup: an error" "rc=1" "$(echo "$out" | tail -1)"
    check "pier: another process in its cgroup: names the rule" "yes" "$(contains "no-internal-process rule" "$out")"
    check "pier: another process in its cgroup: nothing left" "" "$(as_user '/h/pier list -q')"
}

# 4: no user bus at all (XDG_RUNTIME_DIR unset, so systemctl --user cannot reach the manager
# either), or a user manager without a bus (WANT is the message both must give).
no_bus_checks() { # no_bus_checks RT WANT [ENV...]
    local rt=$1 want=$2 out
    shift 2
    out=$(as_user "mkdir -p /tmp/nobus-$rt && env $* /h/$rt --root /tmp/nobus-$rt --systemd-cgroup run -d --bundle /h/sleep ${rt}nb </dev/null 2>&1; echo rc=\$?")
    check "$rt: no user bus ($*): an error" "rc=1" "$(echo "$out" | tail -1)"
    check "$rt: no user bus ($*): says so" "yes" "$(contains "$want" "$out")"
    check "$rt: no user bus ($*): nothing left" "" "$(as_user "ls /tmp/nobus-$rt; /h/$rt --root /tmp/nobus-$rt list -q")"
}

one_machine() { # one_machine host|debian13
    local root=""
    if [ "$1" = debian13 ]; then
        root=$(cd "$here" && python3 -c 'from sdtest import debroot; print(debroot.ensure_root())')
    fi
    work=$(mktemp -d /tmp/pier-sdu-XXXXXX)
    chmod 755 "$work"
    bundle "$work/notify" '["sh", "-c", "trap \"exit 0\" TERM; sd-notify-send \"READY=1\nSTATUS=up as $(id -u) $(cat /proc/self/uid_map | tr -s \" \")\" MAINPID=1; sleep 100000 & wait"]'
    bundle "$work/sleep" '["sleep", "100000"]'
    bundle "$work/limited" '["sleep", "100000"]' '{"pids": {"limit": 50}, "memory": {"limit": 67108864}}'
    bundle "$work/podman" '["sleep", "100000"]' null nouserns
    local huge='{"hugepageLimits": [{"pageSize": "2MB", "limit": 8388608}]}'
    bundle "$work/huge" '["sleep", "100000"]' "$huge"
    bundle "$work/hugenotify" '["sh", "-c", "trap \"exit 0\" TERM; sd-notify-send READY=1 MAINPID=1; sleep 100000 & wait"]' "$huge"
    install -m 0755 "$pier" "$work/pier"
    [ -n "$runc" ] && install -m 0755 "$runc" "$work/runc"
    mkdir -p "$work/units/user@.service.d"
    printf '[Service]\nEnvironment=XDG_RUNTIME_DIR=/run/user/%%i\n' >"$work/units/user@.service.d/xdg.conf"
    SD_ROOT=$root bash "$harness" up "$work" >/dev/null
    label="systemd $(inside systemctl --version | sed -n '1s/^systemd \([0-9]*\).*/\1/p')"
    inside sh -c 'useradd -m -u 2000 -g 100 sdu && mkdir -p /etc/pam.d &&
        printf "auth required pam_permit.so\naccount required pam_permit.so\nsession required pam_permit.so\n" >/etc/pam.d/systemd-user &&
        systemctl start user@2000.service'
    manager_cg=$(inside systemctl show -p ControlGroup --value user@2000.service)
    local rts=(pier) rt
    [ -n "$runc" ] && rts+=(runc)
    if ! inside test -e /run/user/2000/bus; then
        for rt in "${rts[@]}"; do
            no_bus_checks "$rt" "could not detect DBUS_SESSION_BUS_ADDRESS from \`systemctl --user --no-pager show-environment\`"
        done
        add_user_bus
    fi
    notify_checks
    has_controllers=no
    case " $(inside cat "/sys/fs/cgroup$manager_cg/cgroup.controllers") " in
    *" pids "*" memory "* | *" memory "*" pids "*) has_controllers=yes ;;
    esac
    has_hugetlb=no
    if bring_hugetlb; then has_hugetlb=yes; fi
    echo "[$label] hugetlb for the user manager's children: $has_hugetlb"
    for rt in "${rts[@]}"; do
        scope_checks "$rt" unit
        scope_checks "$rt" outside
        userns_checks "$rt"
        limit_checks "$rt"
        [ "$has_hugetlb" = yes ] && hugetlb_unit_checks "$rt"
        hugetlb_scope_checks "$rt"
        no_bus_checks "$rt" "failed to connect to dbus" -u XDG_RUNTIME_DIR
    done
    [ "$has_hugetlb" = yes ] && hugetlb_busy_checks
    bash "$harness" down "$work" >/dev/null 2>&1 || true
    rm -rf "$work"
    work=""
    undo_host_hugetlb
}

for s in ${SYSTEMDS:-host debian13}; do
    one_machine "$s"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
