#!/bin/bash
# harness.sh: boot one throwaway systemd (PID 1 of a systemd-nspawn container that runs the
# host's own /usr on a tmpfs root, or the tree SD_ROOT names under a tmpfs overlay), run commands
# inside it, and power it off again.
#
#   harness.sh up DIR [NSPAWN-ARG...]  boot; DIR -> /h (rw), DIR/units -> /etc/systemd/system (ro),
#                                      DIR/journald.conf.d (no rate limit) -> /etc/systemd/journald.conf.d;
#                                      extra args go to systemd-nspawn (e.g. --bind-ro=BIN:/opt/x)
#   harness.sh leader DIR              print the host pid of the inner PID 1
#   harness.sh exec DIR CMD...         run CMD in all namespaces of the inner PID 1
#   harness.sh cgroup DIR              print this instance's cgroup2 directory on the host (nspawn
#                                      is in its supervisor/, the machine's root is its payload/)
#   harness.sh down DIR                power off (SIGKILL of the inner PID 1 after DOWN_GRACE s),
#                                      wait for nspawn, remove this instance's cgroups. Idempotent.
#
# Env: SD_ROOT=DIR boots DIR (e.g. a Debian 13 root made by mmdebstrap) with --volatile=overlay:
#      writes go to a tmpfs above it, DIR itself is never changed, so it can be cached and shared.
# Needs root, systemd-container, systemd on the host's /usr (PID 1 need not be systemd).
# What this machine needs (cgroup v1 hybrid host, PID 1 not systemd):
#   --register=no --keep-unit     no machined/PID 1 to register with; nspawn stays in the cgroup
#                                 we make for it below and puts the container in .../payload
#   SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1   inner systemd on a writable, delegated cgroup2 tree even
#                                 though the host is hybrid (runtimes inside need cgroup2)
#   SYSTEMD_SECCOMP=0 --capability=all   runtimes inside need keyctl, bpf, setrlimit, mount
#   systemd-firstboot masked      no interactive first-boot prompt on the empty /etc
# State in DIR: .nspawn.pid (nspawn), .nspawn.leader (inner PID 1), .nspawn.log (console).
set -euo pipefail

usage() { echo "usage: $0 up|leader|cgroup|exec|down DIR [...]" >&2; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1
dir=$(readlink -f "$2")
shift 2
name="pier-sdt-$(printf %s "$dir" | md5sum | cut -c1-10)"
DOWN_GRACE=${DOWN_GRACE:-10}

# One cgroup per instance in every hierarchy that tracks processes here.
cgroup_dirs() {
    local h
    for h in /sys/fs/cgroup/unified /sys/fs/cgroup/systemd /sys/fs/cgroup; do
        [ -e "$h/cgroup.procs" ] && echo "$h/$name"
    done
    return 0
}

# kill -0 also succeeds for a zombie, and an exited nspawn may stay one for a while (its parent,
# the shell that ran "up", is gone; whoever inherits it reaps when it likes): read the state.
alive() {
    local st
    [ -n "${1:-}" ] && st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1) && [ -n "$st" ] && [ "$st" != Z ]
}

boot() {
    mkdir -p "$dir/units"
    [ -e "$dir/units/systemd-firstboot.service" ] || ln -s /dev/null "$dir/units/systemd-firstboot.service"
    [ -e "$dir/units/default.target" ] || ln -s /usr/lib/systemd/system/multi-user.target "$dir/units/default.target"
    # No journald rate limit: the suites read the manager's debug lines (one per notification
    # message, one per D-Bus call of every `systemctl show` poll: ~21k in a 257 run) and a
    # suppressed line would look like a lost message. journald's default burst is 10000 per 30 s
    # per unit and priority, scaled by free journal space (~32k for init.scope's debug here).
    mkdir -p "$dir/journald.conf.d"
    printf '[Journal]\nRateLimitIntervalSec=0\nRateLimitBurst=0\n' >"$dir/journald.conf.d/pier-tests.conf"
    rm -f "$dir/.nspawn.leader"
    local root=(-D / --volatile=yes)
    [ -n "${SD_ROOT:-}" ] && root=(-D "$SD_ROOT" --volatile=overlay)
    (
        for c in $(cgroup_dirs); do mkdir -p "$c"; echo "$BASHPID" >"$c/cgroup.procs"; done
        export SYSTEMD_SECCOMP=0 SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1
        exec setsid systemd-nspawn "${root[@]}" --boot --register=no --keep-unit \
            --console=pipe --machine="$name" --capability=all \
            --bind="$dir:/h" --bind-ro="$dir/units:/etc/systemd/system" \
            --bind-ro="$dir/journald.conf.d:/etc/systemd/journald.conf.d" "$@" \
            -- systemd.log_color=0 </dev/null >"$dir/.nspawn.log" 2>&1
    ) &
    echo $! >"$dir/.nspawn.pid"
}

# Wait for the inner PID 1 to appear, then for the boot to finish.
wait_booted() {
    local nspawn leader="" st=unknown
    nspawn=$(cat "$dir/.nspawn.pid")
    for _ in $(seq 300); do
        leader=$(pgrep -P "$nspawn" -x systemd || true)
        [ -n "$leader" ] && break
        alive "$nspawn" || { cat "$dir/.nspawn.log" >&2; return 1; }
        sleep 0.05
    done
    [ -n "$leader" ] || { echo "harness: inner systemd did not appear" >&2; return 1; }
    echo "$leader" >"$dir/.nspawn.leader"
    for _ in $(seq 600); do
        # --wait blocks until the boot is done once the manager answers; before that it fails fast
        st=$(timeout 60 nsenter -t "$leader" -a systemctl is-system-running --wait 2>/dev/null || true)
        case $st in running | degraded) break ;; esac
        alive "$leader" || { cat "$dir/.nspawn.log" >&2; return 1; }
        sleep 0.05
    done
    echo "harness: inner systemd pid=$leader state=$st"
    case $st in running | degraded) ;; *) return 1 ;; esac
}

remove_cgroups() {
    local c
    for c in $(cgroup_dirs); do
        [ -d "$c" ] || continue
        if [ -e "$c/cgroup.kill" ]; then echo 1 >"$c/cgroup.kill" 2>/dev/null || true; fi
        for _ in $(seq 50); do
            [ -z "$(find "$c" -name cgroup.procs -exec cat {} + 2>/dev/null)" ] && break
            sleep 0.05
        done
        find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null || true
        [ -d "$c" ] && echo "harness: could not remove cgroup $c" >&2
    done
    return 0
}

shutdown() {
    local nspawn leader
    nspawn=$(cat "$dir/.nspawn.pid" 2>/dev/null || true)
    leader=$(cat "$dir/.nspawn.leader" 2>/dev/null || true)
    if alive "$nspawn"; then
        if alive "$leader"; then
            nsenter -t "$leader" -a systemctl poweroff --no-block >/dev/null 2>&1 || kill -RTMIN+4 "$leader" 2>/dev/null || true
        else
            kill "$nspawn" 2>/dev/null || true
        fi
        for _ in $(seq $((DOWN_GRACE * 20))); do alive "$nspawn" || break; sleep 0.05; done
        if alive "$nspawn"; then
            echo "harness: poweroff took longer than ${DOWN_GRACE}s, killing the container" >&2
            alive "$leader" && kill -KILL "$leader" 2>/dev/null
            for _ in $(seq 40); do alive "$nspawn" || break; sleep 0.05; done
            kill -KILL "$nspawn" 2>/dev/null || true
        fi
        # not our child when called from another process: poll until it is gone
        for _ in $(seq 100); do alive "$nspawn" || break; sleep 0.05; done
    fi
    remove_cgroups
    rm -f "$dir/.nspawn.pid" "$dir/.nspawn.leader"
}

case $cmd in
up)
    boot "$@"
    if ! wait_booted; then shutdown; exit 1; fi
    ;;
leader) cat "$dir/.nspawn.leader" ;;
cgroup)
    for c in $(cgroup_dirs); do
        [ "$(stat -f -c %T "$(dirname "$c")")" = cgroup2fs ] && { echo "$c"; exit 0; }
    done
    exit 1
    ;;
exec) exec nsenter -t "$(cat "$dir/.nspawn.leader")" -a "$@" ;;
down) shutdown ;;
*) usage ;;
esac
