#!/usr/bin/env python3
"""Rootless podman with pier as its runtime, beside runc (issue 12, part 3).

A real unprivileged user (pier-rootless, made here as in crates/pier/tests/rootless.rs, with
/etc/subuid and /etc/subgid ranges for newuidmap/newgidmap) runs `podman --runtime pier` and
`podman --runtime runc` on the same cases: every case of tests/engines/run.py's podman list,
then the rootless ones below (id maps, --userns=keep-id, --uidmap, file owners on the host,
the init's host user). Podman runs the runtime inside its own user namespace (uid 0 there,
the user's uid and subuid range outside), with a config.json that usually has no user
namespace of its own. A difference in exit code or (normalised) output is a failure. The last
line is the summary ("N passed, M failed").

usage: tests/engines/rootless_podman.py --runtime PIER [--only TEXT] [-v] [--keep]   (as root)
"""

import argparse
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run  # noqa: E402  (tests/engines/run.py: the podman engine, cases, comparison)

USER = "pier-rootless"
SUB_START, SUB_COUNT = 300000, 65536

ROOTLESS_CASES = [
    ("id maps", ["{E} run --rm {I} sh -c 'id; cat /proc/self/uid_map /proc/self/gid_map'"]),
    ("--userns=keep-id", ["{E} run --rm --userns=keep-id {I} sh -c 'id -u; cat /proc/self/uid_map'"]),
    ("--uidmap --gidmap", [
        "{E} run --rm --uidmap 0:1:1000 --gidmap 0:1:1000 {I} sh -c 'id; cat /proc/self/uid_map; stat -c %u:%g /bin/busybox'",
    ]),
    ("a volume's files are the user's on the host", [
        "mkdir -p {V}",
        "{E} run --rm -v {V}:/v {I} sh -c 'echo x > /v/by-root; stat -c %u /v/by-root'",
        "stat -c %u {V}/by-root",
        "{E} unshare rm -f {V}/by-root",
    ]),
    ("the init runs as the user on the host", [
        run.RUN_BG, run.WAIT_UP,
        "ps -o user= -p $({E} inspect -f '{{{{.State.Pid}}}}' {N})",
        "{E} rm -f -t 0 {N} >/dev/null",
    ]),
    # slirp4netns (package slirp4netns): podman makes the network namespace and its tap0, the
    # runtime joins it by path; the container reaches a listener on the host's loopback
    # through the gateway (allow_host_loopback). The listener is bound before its line ends
    # and serves one request (or gives up after 60 s).
    ("--network slirp4netns", [
        "{E} run --rm --network slirp4netns {I} sh -c "
        "'ip -o -4 addr show tap0 | cut -d\" \" -f2,7; ip route show default; grep ^nameserver /etc/resolv.conf'",
        "python3 -c 'import os, socket\n"
        "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        "s.bind((\"127.0.0.1\", 38917)); s.listen(1); s.settimeout(60)\n"
        "if os.fork(): os._exit(0)\n"
        "c = s.accept()[0]; c.recv(4096); c.sendall(b\"HTTP/1.0 200 OK\\r\\n\\r\\nfrom the host\\n\")'"
        " </dev/null >/dev/null 2>&1",
        "{E} run --rm --network slirp4netns:allow_host_loopback=true {I} wget -q -O - http://10.0.2.2:38917/",
    ]),
    ("--network host, --pid host", [
        "{E} run --rm --network host {I} sh -c 'ip -o link | wc -l'",
        "{E} run --rm --pid host {I} sh -c 'test -d /proc/1 && echo host-pids'",
    ]),
]

# Wording that differs and is not behaviour: runc warns that it could not restore the limits
# of an update it refused before writing any (pier writes none either, and says nothing), and
# pier names the step of its update error ("update the container's resources: <runc's cause>").
KNOWN_WORDING = [
    (re.compile(r'^.*level=warning msg="Setting back cgroup configs failed.*\n?', re.M), ""),
    (re.compile(r"update the container's resources: "), ""),
    # podman's temporary resources file for `update`.
    (re.compile(r"--resources=/var/tmp/podman[0-9]+"), "--resources=FILE"),
]


def normalise_known(text, runtime):
    """Apply KNOWN_WORDING, and name the runtime binary RUNTIME (podman quotes its path)."""
    text = text.replace(runtime, "RUNTIME")
    for pattern, repl in KNOWN_WORDING:
        text = pattern.sub(repl, text)
    return text


def ensure_user():
    """The test user (useradd --system) with its subordinate ranges; (uid, gid)."""
    try:
        pw = pwd.getpwnam(USER)
    except KeyError:
        run.sh(f"useradd --system --no-create-home --shell /usr/sbin/nologin {USER}", check=True)
        pw = pwd.getpwnam(USER)
    line = f"{USER}:{SUB_START}:{SUB_COUNT}"
    if not all(line in open(f).read().split("\n") for f in ["/etc/subuid", "/etc/subgid"]):
        rng = f"{SUB_START}-{SUB_START + SUB_COUNT - 1}"
        run.sh(f"usermod --add-subuids {rng} --add-subgids {rng} {USER}", check=True)
    return pw.pw_uid, pw.pw_gid


def ensure_tun():
    """/dev/net/tun as udev makes it (Debian's 50-udev-default.rules: MODE="0666"), so that
    slirp4netns, run by the user, can open it; a machine without udev has the kernel's 0600
    node, and then rootless podman's slirp4netns fails for every runtime alike."""
    tun = "/dev/net/tun"
    try:
        mode = os.stat(tun).st_mode & 0o777
    except FileNotFoundError:
        return
    if mode & 0o006 != 0o006:
        print(f"rootless_podman.py: {tun} has mode {mode:o} (no udev); chmod 666 as udev does")
        os.chmod(tun, 0o666)


def as_root(args):
    """Set up a work dir the user owns, run the cases as the user, clean up after podman."""
    if os.geteuid() != 0:
        sys.exit("rootless_podman.py: run as root (it makes the test user)")
    if not shutil.which("podman") or not shutil.which("newuidmap"):
        print("podman or newuidmap not installed, skipped\n0 passed, 0 failed")
        return 0
    uid, gid = ensure_user()
    ensure_tun()
    # Short: rootless podman refuses a runroot longer than 50 characters.
    work = tempfile.mkdtemp(prefix="pier-rp-", dir="/tmp")
    os.chmod(work, 0o755)
    xdg = os.path.join(work, "xdg")
    home = os.path.join(work, "home")
    os.makedirs(xdg, mode=0o700)
    os.makedirs(home)
    os.makedirs(os.path.join(work, "bin"))
    pier = os.path.join(work, "bin", "pier")
    shutil.copy(args.runtime, pier)
    os.chmod(pier, 0o755)
    for d in [work, xdg, home]:
        os.chown(d, uid, gid)
    env = {
        "HOME": home,
        "XDG_RUNTIME_DIR": xdg,
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "USER": USER,
        "LANG": "C.UTF-8",
    }
    cmd = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--init-groups",
           sys.executable, os.path.abspath(__file__), "--as-user", "--work", work,
           "--runtime", pier, "--runc", args.runc]
    if args.only:
        cmd += ["--only", args.only]
    if args.verbose:
        cmd.append("-v")
    try:
        code = subprocess.run(cmd, env=env, cwd=work).returncode
    finally:
        stop_pause_process(xdg)
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return code


def stop_pause_process(xdg):
    """Rootless podman keeps a pause process holding its user namespace
    ($XDG_RUNTIME_DIR/libpod/tmp/pause.pid): stop that one (by its pid) so nothing is left."""
    try:
        pid = int(open(os.path.join(xdg, "libpod/tmp/pause.pid")).read().strip())
        os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError):
        pass


def as_user(args):
    """The cases, each with runc and with pier, as the unprivileged user."""
    os.makedirs(os.path.join(args.work, "podman"))
    engine = run.Podman(os.path.join(args.work, "podman"), args.runtime)
    passed = failed = 0
    try:
        cases = list(engine.cases()) + ROOTLESS_CASES
        for n, (label, script) in enumerate(cases):
            if args.only and args.only not in label:
                continue
            want = normalise_known(run.run_case(engine, args.runc, label, script, n), args.runc)
            got = normalise_known(run.run_case(engine, args.runtime, label, script, n), args.runtime)
            if want == got:
                passed += 1
                print(f"ok   rootless podman: {label}")
                if args.verbose:
                    print("    " + want.replace("\n", "\n    "))
            else:
                failed += 1
                print(f"FAIL rootless podman: {label}\n--- runc\n{want}\n--- pier\n{got}")
    finally:
        engine.close()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runtime", required=True, help="the pier binary")
    ap.add_argument("--runc", default=shutil.which("runc") or "/usr/sbin/runc")
    ap.add_argument("--only", help="run the cases whose name contains this")
    ap.add_argument("-v", "--verbose", action="store_true", help="show what each case printed")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--as-user", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.as_user:
        sys.exit(as_user(args))
    args.runtime = os.path.abspath(args.runtime)
    sys.exit(as_root(args))


if __name__ == "__main__":
    main()
