#!/usr/bin/env python3
"""Engines with pier as their runtime, beside runc on the same commands (issue 13).

Each engine is started as a user would start it, with no system service: podman with its own
storage and a containers.conf naming both runtimes (--runtime), containerd started by hand
with `ctr run --runc-binary`. The image is imported from a local busybox-static rootfs tar (no
registry). Every case runs once with runc and once with pier; a difference in exit code or
(normalised) output is a failure. The last line is the summary ("N passed, M failed").

usage: tests/engines/run.py --runtime PIER [--engine podman|ctr|docker ...] [--keep]   (as root)
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGE = "localhost/pier-bb:latest"
CTR_IMAGE = "docker.io/library/pier-bb:latest"
PATH_ENV = "PATH=/usr/sbin:/usr/bin:/sbin:/bin"
RUNC = shutil.which("runc") or "/usr/sbin/runc"  # --runc sets it


def sh(cmd, timeout=120, env=None, check=False):
    """Run a shell command; (exit code, stdout+stderr)."""
    p = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=timeout, env=env)
    out = p.stdout + p.stderr
    if check and p.returncode != 0:
        raise RuntimeError(f"{cmd}: exit {p.returncode}\n{out}")
    return p.returncode, out


def make_image_tar(work):
    """A busybox-static rootfs (applets as symlinks, passwd/group) as a tar."""
    root = os.path.join(work, "rootfs")
    for d in ["bin", "etc", "tmp", "proc", "sys", "dev", "root", "run", "var"]:
        os.makedirs(os.path.join(root, d), exist_ok=True)
    busybox = shutil.which("busybox") or "/bin/busybox"
    shutil.copy(busybox, os.path.join(root, "bin/busybox"))
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True).stdout.split()
    for a in applets:
        link = os.path.join(root, "bin", a)
        if a != "busybox" and not os.path.lexists(link):
            os.symlink("busybox", link)
    with open(os.path.join(root, "etc/passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    with open(os.path.join(root, "etc/group"), "w") as f:
        f.write("root:x:0:\nnogroup:x:65534:\n")
    os.chmod(os.path.join(root, "tmp"), 0o1777)
    tar = os.path.join(work, "bb.tar")
    sh(f"tar -C {root} -cf {tar} .", check=True)
    return tar


def normalise(text, name):
    # A pty echoes a NUL as ^@ when script(1) sees its stdin end, at a moment that varies.
    text = text.replace("\r", "").replace("^@", "")
    text = "\n".join(line for line in text.split("\n") if line.strip() != "")
    text = text.replace(name, "NAME")
    text = re.sub(r"\b[0-9a-f]{64}\b", "ID", text)
    text = re.sub(r"\b[0-9a-f]{12}\b", "SHORTID", text)  # Docker's default hostname
    text = re.sub(r'time="[^"]*"', "time=T", text)
    return text.strip()


class Engine:
    """One engine: `cli(rt)` is the command prefix running containers with runtime `rt`
    (runc or pier); `cases()` the (name, script) pairs, where a script is a list of commands
    with {E} (the prefix), {I} (the image), {N} (a container name) and {V} (a host dir)."""

    def __init__(self, work, pier):
        self.work, self.pier = work, pier

    def runtime_flag(self, rt):
        """What `{R}` stands for in a case: the per-container runtime option (Docker's `run
        --runtime`); empty where cli() already names the runtime."""
        return ""

    def close(self):
        pass


class Podman(Engine):
    name = "podman"

    def __init__(self, work, pier):
        super().__init__(work, pier)
        conf = os.path.join(work, "containers.conf")
        with open(conf, "w") as f:
            f.write(PODMAN_CONF.format(pier=pier))
        self.env = dict(os.environ, CONTAINERS_CONF=conf)
        self.base = f"podman --root {work}/podman-root --runroot {work}/podman-run"
        tar = make_image_tar(work)
        sh(f"{self.base} import --change 'ENV {PATH_ENV}' {tar} {IMAGE}", env=self.env, check=True)

    def cli(self, rt):
        return f"{self.base} --runtime {rt}"

    def image(self):
        return IMAGE

    def cases(self):
        return PODMAN_CASES

    def close(self):
        sh(f"{self.base} rm -af -t 0", env=self.env)
        sh(f"{self.base} system reset -f", env=self.env)


# What tests/engines feed podman; docs/engines.md shows the [engine.runtimes] part.
PODMAN_CONF = """[containers]
# The test machine's hard limits are below podman's defaults (1048576 files, 4194304 procs).
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
netns = "none"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"

[engine.runtimes]
pier = ["{pier}"]
"""

RUN_BG = "{E} run -d --name {N} {I} sh -c 'trap \"exit 0\" TERM; echo started; while :; do sleep 1; done'"
WAIT_UP = "until {E} logs {N} 2>/dev/null | grep -q started; do sleep 0.1; done"

PODMAN_CASES = [
    ("run --rm", ["{E} run --rm {I} sh -c 'echo hello; id -u'"]),
    ("exit code", ["{E} run --rm {I} sh -c 'exit 3'"]),
    ("command not found", ["{E} run --rm {I} nosuchcommand >/dev/null 2>&1; echo $?"]),
    ("lo up", ["{E} run --rm {I} sh -c 'ip -o addr show dev lo | cut -d\" \" -f2-7'"]),
    ("-d logs exec stop rm", [
        RUN_BG, WAIT_UP,
        "{E} exec {N} sh -c 'echo in-exec; cat /proc/1/cmdline | tr \"\\0\" \" \"'",
        "{E} exec {N} sh -c 'exit 5'; echo $?",
        "{E} exec -i {N} cat <<< piped",
        "{E} stop -t 10 {N} >/dev/null",
        "{E} inspect -f '{{{{.State.Status}}}} {{{{.State.ExitCode}}}}' {N}",
        "{E} logs {N}",
        "{E} rm {N} >/dev/null",
    ]),
    ("exec -it", [
        RUN_BG, WAIT_UP,
        "script -qec \"{E} exec -it {N} sh -c 'tty >/dev/null && echo tty-ok'\" /dev/null",
        "{E} rm -f -t 0 {N} >/dev/null",
    ]),
    ("tty under script", ["script -qec \"{E} run --rm -t {I} sh -c 'tty >/dev/null && echo tty-ok; stty size'\" /dev/null"]),
    ("--read-only", ["{E} run --rm --read-only {I} sh -c 'touch /x 2>/dev/null || echo root-ro; touch /tmp/x /run/x /var/tmp/x 2>/dev/null && echo tmpfs-rw'"]),
    ("--read-only --read-only-tmpfs=false", ["{E} run --rm --read-only --read-only-tmpfs=false {I} sh -c 'ls /dev/pts; touch /tmp/x 2>/dev/null || echo tmp-ro'"]),
    ("--tmpfs keeps the image's files", ["{E} run --rm --tmpfs /etc {I} sh -c 'ls /etc; grep -c root /etc/passwd; stat -c %a /etc'"]),
    ("--mount type=tmpfs", ["{E} run --rm --mount type=tmpfs,destination=/scratch,tmpfs-size=1m {I} sh -c 'echo x > /scratch/f && cat /scratch/f'"]),
    ("volumes rw and ro", [
        "mkdir -p {V} && echo from-host > {V}/f",
        "{E} run --rm -v {V}:/ro:ro -v {V}:/rw {I} sh -c 'cat /ro/f; touch /ro/n 2>/dev/null || echo ro-refused; echo c > /rw/n && echo rw-ok'",
        "cat {V}/n",
    ]),
    ("--user", ["{E} run --rm --user 65534:65534 {I} id", "{E} run --rm --user nobody {I} id"]),
    ("caps", [
        "{E} run --rm --cap-drop ALL {I} grep CapEff /proc/self/status",
        "{E} run --rm --cap-drop ALL --cap-add NET_ADMIN {I} grep CapEff /proc/self/status",
        "{E} run --rm --privileged {I} sh -c 'grep CapEff /proc/self/status'",
    ]),
    ("memory pids cpus limits", [
        "{E} run --rm --memory 64m --pids-limit 50 --cpus 0.5 {I} sh -c "
        "'cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max "
        "/sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max'",
    ]),
    ("update", [
        "{E} run -d --name {N} --memory 64m {I} sh -c 'trap \"exit 0\" TERM; echo started; while :; do sleep 1; done'",
        WAIT_UP,
        "{E} update --memory 128m --cpus 0.25 {N} >/dev/null; echo $?",
        "{E} exec {N} sh -c 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/cpu.max'",
        "{E} rm -f -t 0 {N} >/dev/null",
    ]),
    ("pause unpause", [
        RUN_BG, WAIT_UP,
        "{E} pause {N} >/dev/null && {E} inspect -f '{{{{.State.Status}}}}' {N}",
        "{E} unpause {N} >/dev/null && {E} inspect -f '{{{{.State.Status}}}}' {N}",
        "{E} rm -f -t 0 {N} >/dev/null",
    ]),
    ("top", [RUN_BG, WAIT_UP, "{E} top {N} pid comm | head -2", "{E} rm -f -t 0 {N} >/dev/null"]),
    ("stats", [RUN_BG, WAIT_UP, "{E} stats --no-stream --format '{{{{.Name}}}}' {N}", "{E} rm -f -t 0 {N} >/dev/null"]),
    ("restart policy", [
        "{E} run -d --name {N} --restart on-failure:2 {I} sh -c 'echo run; exit 1' >/dev/null",
        "until [ \"$({E} inspect -f '{{{{.RestartCount}}}} {{{{.State.Status}}}}' {N})\" = '2 exited' ]; do sleep 0.2; done; echo restarted-twice",
        "{E} logs {N}",
        "{E} rm -f -t 0 {N} >/dev/null",
    ]),
    ("--init", ["{E} run --rm --init {I} sh -c 'cat /proc/1/comm'"]),
    ("kill --all on a stopped container (rm -f)", [
        "{E} run -d --name {N} {I} sh -c 'sleep 300 & exit 0' >/dev/null",
        "{E} wait {N}",
        "{E} rm -f -t 2 {N} >/dev/null; echo $?",
    ]),
]

D_RUN_BG = "{E} run {R} -d --name {N} {I} sh -c 'trap \"exit 0\" TERM; echo started; while :; do sleep 1; done' >/dev/null"
D_WAIT_UP = "until {E} logs {N} 2>/dev/null | grep -q started; do sleep 0.1; done"
D_CGROUP = ("cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max "
            "/sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max")

# (name, script) as for podman. `--network none` is the case whose container carries Docker's
# libnetwork-setkey prestart hook (with --bridge=none the default mode attaches no network).
DOCKER_CASES = [
    ("run --rm", ["{E} run {R} --rm {I} sh -c 'echo hello; id -u'"]),
    ("exit code", ["{E} run {R} --rm {I} sh -c 'exit 3'; echo $?"]),
    ("command not found", ["{E} run {R} --rm {I} nosuchcommand >/dev/null 2>&1; echo $?"]),
    ("env", ["{E} run {R} --rm -e FOO=bar -e EMPTY= {I} sh -c 'echo $FOO; env | sort'"]),
    ("-w workdir", ["{E} run {R} --rm -w /tmp/new {I} pwd"]),
    ("lo (no network attached)", ["{E} run {R} --rm {I} sh -c 'ip -o addr show | cut -d\" \" -f2-7'"]),
    ("--network none (libnetwork prestart hook)", ["{E} run {R} --rm --network none {I} sh -c 'ip -o addr show | cut -d\" \" -f2-7; cat /etc/hostname | wc -c'"]),
    ("-d logs exec stop rm", [
        D_RUN_BG, D_WAIT_UP,
        "{E} exec {N} sh -c 'echo in-exec; cat /proc/1/cmdline | tr \"\\0\" \" \"'",
        "{E} exec {N} sh -c 'exit 5'; echo $?",
        "{E} exec -i {N} cat <<< piped",
        "{E} exec -u 65534 -e X=1 -w /tmp {N} sh -c 'id -u; echo $X; pwd'",
        "{E} stop -t 10 {N} >/dev/null",
        "{E} inspect -f '{{{{.State.Status}}}} {{{{.State.ExitCode}}}}' {N}",
        "{E} logs {N}",
        "{E} rm {N} >/dev/null",
    ]),
    ("kill with a signal", [
        "{E} run {R} -d --name {N} {I} sh -c 'trap \"echo got-usr1; exit 7\" USR1; echo started; while :; do sleep 1; done' >/dev/null",
        D_WAIT_UP,
        "{E} kill -s USR1 {N} >/dev/null",
        "{E} wait {N}",
        "{E} logs {N}",
        "{E} rm {N} >/dev/null",
    ]),
    ("stop escalates to SIGKILL", [
        "{E} run {R} -d --name {N} {I} sh -c 'trap \"\" TERM; echo started; while :; do sleep 1; done' >/dev/null",
        D_WAIT_UP,
        "{E} stop -t 1 {N} >/dev/null",
        "{E} inspect -f '{{{{.State.Status}}}} {{{{.State.ExitCode}}}}' {N}",
        "{E} rm {N} >/dev/null",
    ]),
    ("exec -it", [
        D_RUN_BG, D_WAIT_UP,
        "script -qec \"{E} exec -it {N} sh -c 'tty >/dev/null && echo tty-ok'\" /dev/null",
        "{E} rm -f {N} >/dev/null",
    ]),
    ("tty under script", ["script -qec \"{E} run {R} --rm -t {I} sh -c 'tty >/dev/null && echo tty-ok; stty size'\" /dev/null"]),
    ("--read-only", ["{E} run {R} --rm --read-only {I} sh -c 'touch /x 2>/dev/null || echo root-ro; touch /etc/hosts && echo etc-hosts-rw; touch /dev/shm/x && echo shm-rw'"]),
    ("--read-only --tmpfs", ["{E} run {R} --rm --read-only --tmpfs /run --tmpfs /tmp:rw,size=1m,mode=1777 {I} sh -c 'touch /run/x /tmp/x && echo tmpfs-rw; stat -c %a /tmp; touch /x 2>/dev/null || echo root-ro'"]),
    ("--tmpfs", ["{E} run {R} --rm --tmpfs /etc {I} sh -c 'ls /etc; stat -c %a /etc'"]),
    ("--mount type=tmpfs", ["{E} run {R} --rm --mount type=tmpfs,destination=/scratch,tmpfs-size=1m {I} sh -c 'echo x > /scratch/f && cat /scratch/f'"]),
    ("volumes rw and ro", [
        "mkdir -p {V} && echo from-host > {V}/f",
        "{E} run {R} --rm -v {V}:/ro:ro -v {V}:/rw {I} sh -c 'cat /ro/f; touch /ro/n 2>/dev/null || echo ro-refused; echo c > /rw/n && echo rw-ok'",
        "cat {V}/n",
    ]),
    ("named volume", [
        "{E} volume create {N} >/dev/null",
        "{E} run {R} --rm -v {N}:/data {I} sh -c 'echo kept > /data/f'",
        "{E} run {R} --rm -v {N}:/data:ro {I} sh -c 'cat /data/f; touch /data/g 2>/dev/null || echo ro-refused'",
        "{E} volume rm {N} >/dev/null",
    ]),
    ("--user", ["{E} run {R} --rm --user 65534:65534 {I} id", "{E} run {R} --rm --user nobody {I} id",
                "{E} run {R} --rm --user 1000:1000 --group-add 2000 {I} id"]),
    ("caps", [
        "{E} run {R} --rm {I} grep Cap /proc/self/status",
        "{E} run {R} --rm --cap-drop ALL {I} grep CapEff /proc/self/status",
        "{E} run {R} --rm --cap-drop ALL --cap-add NET_ADMIN {I} grep CapEff /proc/self/status",
        "{E} run {R} --rm --cap-add SYS_ADMIN --cap-drop CHOWN {I} grep CapEff /proc/self/status",
        # --privileged asks for every capability: on a host whose bounding set lacks some (this
        # test machine lacks CAP_SYS_RESOURCE) both runtimes refuse it, with their own words.
        "{E} run {R} --rm --privileged {I} sh -c 'ls /dev | wc -l' >/dev/null 2>&1; echo $?",
    ]),
    ("masked and read-only paths", ["{E} run {R} --rm {I} sh -c 'cat /proc/kcore 2>&1 | wc -c; echo 1 > /proc/sys/kernel/domainname 2>/dev/null || echo sys-ro; ls /sys/firmware | wc -l'"]),
    ("memory pids cpus limits", ["{E} run {R} --rm --memory 64m --pids-limit 50 --cpus 0.5 {I} sh -c '" + D_CGROUP + "'"]),
    ("ulimit, sysctl, shm-size, hostname", ["{E} run {R} --rm --ulimit nofile=512:512 --sysctl net.ipv4.ip_forward=1 --shm-size 8m -h box {I} sh -c 'ulimit -n; cat /proc/sys/net/ipv4/ip_forward; df -k /dev/shm | tail -1 | awk \"{{print \\$2}}\"; hostname'"]),
    ("update", [
        "{E} run {R} -d --name {N} --memory 64m {I} sh -c 'trap \"exit 0\" TERM; echo started; while :; do sleep 1; done' >/dev/null",
        D_WAIT_UP,
        "{E} update --memory 128m --memory-swap 256m --cpus 0.25 --pids-limit 40 {N} >/dev/null; echo $?",
        "{E} exec {N} sh -c '" + D_CGROUP + "'",
        "{E} rm -f {N} >/dev/null",
    ]),
    ("pause unpause", [
        D_RUN_BG, D_WAIT_UP,
        "{E} pause {N} >/dev/null && {E} inspect -f '{{{{.State.Status}}}}' {N}",
        "{E} unpause {N} >/dev/null && {E} inspect -f '{{{{.State.Status}}}}' {N}",
        "{E} rm -f {N} >/dev/null",
    ]),
    ("top", [D_RUN_BG, D_WAIT_UP, "{E} top {N} -o comm | head -2", "{E} rm -f {N} >/dev/null"]),
    ("stats", [D_RUN_BG, D_WAIT_UP, "{E} stats --no-stream --format '{{{{.Name}}}}' {N}", "{E} rm -f {N} >/dev/null"]),
    ("restart policy", [
        "{E} run {R} -d --name {N} --restart on-failure:2 {I} sh -c 'echo run; exit 1' >/dev/null",
        "until [ \"$({E} inspect -f '{{{{.RestartCount}}}} {{{{.State.Status}}}}' {N})\" = '2 exited' ]; do sleep 0.2; done; echo restarted-twice",
        "{E} logs {N}",
        "{E} rm -f {N} >/dev/null",
    ]),
    ("restart", [
        D_RUN_BG, D_WAIT_UP,
        "{E} restart -t 5 {N} >/dev/null; echo $?",
        "until [ $({E} logs {N} | grep -c started) = 2 ]; do sleep 0.1; done; {E} logs {N}",
        "{E} rm -f {N} >/dev/null",
    ]),
    ("--init", ["{E} run {R} --rm --init {I} sh -c 'cat /proc/1/comm; cat /proc/1/cmdline | tr \"\\0\" \" \"'"]),
    ("--pid host, --ipc host, --uts host", ["{E} run {R} --rm --pid host --ipc host --uts host {I} sh -c '[ \"$(cat /proc/1/comm)\" != sh ] && echo host-pid; hostname | grep -qx \"$(cat /proc/sys/kernel/hostname)\" && echo host-uts'"]),
    ("rm -f of a container whose init left a child", [
        "{E} run {R} -d --name {N} --pid host {I} sh -c 'sleep 300 & exit 0' >/dev/null",
        "{E} wait {N}",
        "{E} rm -f {N} >/dev/null; echo $?",
    ]),
]


class Ctr(Engine):
    """containerd 1.6 started by hand (its own root, state and socket), driven with ctr."""

    name = "ctr"

    def __init__(self, work, pier):
        super().__init__(work, pier)
        self.dir = os.path.join(work, "containerd")
        os.makedirs(self.dir, exist_ok=True)
        conf = os.path.join(self.dir, "config.toml")
        with open(conf, "w") as f:
            f.write(CONTAINERD_CONF.format(dir=self.dir))
        self.sock = os.path.join(self.dir, "containerd.sock")
        self.log = open(os.path.join(self.dir, "containerd.log"), "w")
        self.proc = subprocess.Popen(["containerd", "--config", conf], stdout=self.log, stderr=self.log)
        deadline = time.time() + 30
        while not os.path.exists(self.sock):
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError("containerd did not start: " + open(self.log.name).read())
            time.sleep(0.05)
        self.base = f"ctr --address {self.sock} -n pier-tests"
        tar = make_image_tar(work)
        # ctr imports image tars (docker/OCI archives); wrap the rootfs as one with a config.
        archive = oci_archive(work, tar)
        sh(f"{self.base} images import --no-unpack=false {archive}", check=True)

    def cli(self, rt):
        return f"{self.base} run --runc-binary {rt}"

    def cases(self):
        return CTR_CASES

    def close(self):
        sh(f"{self.base} tasks ls -q | xargs -r -n1 {self.base} tasks rm -f")
        sh(f"{self.base} containers ls -q | xargs -r -n1 {self.base} containers rm")
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


CONTAINERD_CONF = """version = 2
root = "{dir}/root"
state = "{dir}/state"
[grpc]
  address = "{dir}/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  disable_cgroup = false
[plugins."io.containerd.snapshotter.v1.overlayfs"]
  root_path = "{dir}/snapshots"
"""

CTR_CASES = [
    ("run --rm", ["{E} --rm {I} {N} sh -c 'echo hello; id -u'"]),
    ("exit code", ["{E} --rm {I} {N} sh -c 'exit 3'"]),
    ("lo up", ["{E} --rm {I} {N} sh -c 'ip -o addr show dev lo | cut -d\" \" -f2-7'"]),
    ("--read-only", ["{E} --rm --read-only {I} {N} sh -c 'touch /x 2>/dev/null || echo root-ro'"]),
    ("--tty under script", ["script -qec \"{E} --rm -t {I} {N} sh -c 'tty >/dev/null && echo tty-ok'\" /dev/null"]),
    ("mounts rw and ro", [
        "mkdir -p {V} && echo from-host > {V}/f",
        "{E} --rm --mount type=bind,src={V},dst=/ro,options=rbind:ro --mount type=bind,src={V},dst=/rw,options=rbind:rw {I} {N} "
        "sh -c 'cat /ro/f; touch /ro/n 2>/dev/null || echo ro-refused; echo c > /rw/n && echo rw-ok'",
    ]),
    ("--memory-limit --cpu-quota (host side)", [
        "{E} -d --memory-limit 67108864 --cpu-quota 20000 --cpu-period 100000 {I} {N} sleep 300",
        "cat /sys/fs/cgroup/memory/pier-tests/{N}/memory.limit_in_bytes /sys/fs/cgroup/cpu/pier-tests/{N}/cpu.cfs_quota_us "
        "2>/dev/null || cat /sys/fs/cgroup/pier-tests/{N}/memory.max /sys/fs/cgroup/pier-tests/{N}/cpu.max",
        "{C} tasks rm -f {N} >/dev/null 2>&1; {C} containers rm {N}",
    ]),
    ("tasks ps, pause, resume, exec", [
        "{E} -d {I} {N} sh -c 'trap \"exit 0\" TERM; while :; do sleep 1; done'",
        "{C} tasks ps {N} | tail -n +2 | wc -l",
        "{C} tasks pause {N} && {C} tasks ls | grep {N} | awk '{{print $3}}'",
        "{C} tasks resume {N} && {C} tasks ls | grep {N} | awk '{{print $3}}'",
        "{C} tasks exec --exec-id e1 {N} sh -c 'echo in-exec; exit 4'; echo $?",
        "{C} tasks rm -f {N} >/dev/null 2>&1; {C} containers rm {N}",
    ]),
    ("--privileged caps", ["{E} --rm --privileged {I} {N} grep CapEff /proc/self/status"]),
    # ctr 1.6's `run` has no --user; `tasks exec --user` sets the process user as an engine's exec does.
    ("tasks exec --user", [
        "{E} -d {I} {N} sh -c 'trap \"exit 0\" TERM; while :; do sleep 1; done'",
        "{C} tasks exec --exec-id u1 --user 65534 {N} sh -c 'id -u; id -g; touch /root-only 2>/dev/null || echo denied'",
        "{C} tasks exec --exec-id u2 --user 1000:100 {N} sh -c 'id -u; id -g'",
        "{C} tasks rm -f {N} >/dev/null 2>&1; {C} containers rm {N}",
    ]),
    ("--cpus --cpu-shares (host side)", [
        "{E} -d --cpus 0.5 --cpu-shares 512 {I} {N} sleep 300",
        "cat /sys/fs/cgroup/cpu/pier-tests/{N}/cpu.cfs_quota_us /sys/fs/cgroup/cpu/pier-tests/{N}/cpu.cfs_period_us "
        "/sys/fs/cgroup/cpu/pier-tests/{N}/cpu.shares 2>/dev/null || cat /sys/fs/cgroup/pier-tests/{N}/cpu.max /sys/fs/cgroup/pier-tests/{N}/cpu.weight",
        "{C} tasks rm -f {N} >/dev/null 2>&1; {C} containers rm {N}",
    ]),
]


class Docker(Engine):
    """Debian's docker.io (dockerd 20.10) started by hand: its own --data-root, --exec-root and
    socket, no iptables, no bridge (containers get the default network mode, which then has no
    network attached; `--network none` is the mode that carries libnetwork's prestart hook),
    both runtimes named with --add-runtime. dockerd starts its own containerd."""

    name = "docker"

    def __init__(self, work, pier):
        super().__init__(work, pier)
        root = docker_root()
        # dockerd finds docker-init (tini-static, for --init) and docker-proxy on PATH.
        self.env = dict(os.environ, PATH=f"{root}/usr/bin:{root}/usr/sbin:" + os.environ["PATH"])
        run = os.path.join(work, "run")
        os.makedirs(run, exist_ok=True)
        self.sock = os.path.join(run, "docker.sock")
        self.log = open(os.path.join(work, "dockerd.log"), "w")
        self.proc = subprocess.Popen([
            f"{root}/usr/sbin/dockerd", "--data-root", os.path.join(work, "data"),
            "--exec-root", os.path.join(run, "exec"), "-H", f"unix://{self.sock}",
            "--pidfile", os.path.join(run, "docker.pid"), "--iptables=false", "--ip6tables=false",
            "--bridge=none", "--userland-proxy=false", "--cgroup-parent", "pier-docker-tests",
            "--containerd-namespace", "pier-docker", "--containerd-plugins-namespace", "pier-docker-p",
            "--add-runtime", f"pier={pier}", "--add-runtime", f"runc-ref={RUNC}",
        ], stdout=self.log, stderr=self.log, env=self.env)
        self.base = f"{root}/usr/bin/docker -H unix://{self.sock}"
        deadline = time.time() + 60
        while sh(f"{self.base} version >/dev/null 2>&1", env=self.env)[0] != 0:
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError("dockerd did not start: " + open(self.log.name).read()[-4000:])
            time.sleep(0.2)
        tar = make_image_tar(work)
        sh(f"{self.base} import --change 'ENV {PATH_ENV}' {tar} {IMAGE}", env=self.env, check=True)

    def cli(self, rt):
        return self.base

    def runtime_flag(self, rt):
        # Both runtimes are added by path (--add-runtime), so each runs through the same shim
        # options; `runc` itself is a name dockerd reserves.
        return "--runtime " + ("runc-ref" if rt == RUNC else "pier")

    def cases(self):
        return DOCKER_CASES

    def close(self):
        sh(f"{self.base} ps -aq | xargs -r {self.base} rm -f", env=self.env)
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def docker_root():
    """Where Debian's docker.io and tini are unpacked (scripts/deps.sh: `dpkg -x`, so no docker
    service is installed or started); "/" when docker.io is installed normally."""
    root = os.environ.get("PIER_DOCKER_ROOT", "/opt/pier-docker")
    return root if os.path.exists(f"{root}/usr/sbin/dockerd") else ""  # "" + /usr/sbin/dockerd


def oci_archive(work, layer_tar, name=CTR_IMAGE, cmd=("sh",), out=None):
    """A minimal OCI image layout archive (one layer, a config with PATH and `cmd`) named
    `name`, for `ctr images import`."""
    import hashlib
    import json
    import tarfile

    lay = os.path.join(work, "oci")
    blobs = os.path.join(lay, "blobs/sha256")
    os.makedirs(blobs, exist_ok=True)

    def blob(data):
        digest = hashlib.sha256(data).hexdigest()
        with open(os.path.join(blobs, digest), "wb") as f:
            f.write(data)
        return {"digest": "sha256:" + digest, "size": len(data)}

    layer = open(layer_tar, "rb").read()
    lblob = blob(layer)
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": [PATH_ENV], "Cmd": list(cmd)},
        "rootfs": {"type": "layers", "diff_ids": [lblob["digest"]]},
    }).encode()
    cblob = blob(config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": dict(cblob, mediaType="application/vnd.oci.image.config.v1+json"),
        "layers": [dict(lblob, mediaType="application/vnd.oci.image.layer.v1.tar")],
    }).encode()
    mblob = blob(manifest)
    index = {"schemaVersion": 2, "manifests": [dict(mblob, mediaType="application/vnd.oci.image.manifest.v1+json",
                                                    annotations={"org.opencontainers.image.ref.name": name,
                                                                 "io.containerd.image.name": name})]}
    with open(os.path.join(lay, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(lay, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion": "1.0.0"}')
    out = out or os.path.join(work, "bb-oci.tar")
    with tarfile.open(out, "w") as t:
        for entry in ["oci-layout", "index.json", "blobs"]:
            t.add(os.path.join(lay, entry), arcname=entry)
    return out


def run_case(engine, rt, label, script, n):
    name = f"pier-e{n}-{os.path.basename(rt)}"
    vol = os.path.join(engine.work, "vol", name)
    image = CTR_IMAGE if engine.name == "ctr" else IMAGE
    parts = []
    for cmd in script:
        cmd = cmd.format(E=engine.cli(rt), R=engine.runtime_flag(rt), C=getattr(engine, "base", ""), I=image, N=name, V=vol)
        code, out = sh(f"bash -c {sh_quote(cmd)}", env=getattr(engine, "env", None), timeout=120)
        parts.append(f"$ [{code}] " + normalise(out, name))
    return "\n".join(parts)


def sh_quote(s):
    return "'" + s.replace("'", "'\\''") + "'"


def make_image(path, name, cmd_json):
    """`--make-image PATH NAME CMD`: write the busybox image as an OCI archive (the CRI tests)."""
    import json
    work = tempfile.mkdtemp(prefix="pier-image-")
    try:
        oci_archive(work, make_image_tar(work), name, json.loads(cmd_json), os.path.abspath(path))
    finally:
        shutil.rmtree(work)


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--make-image":
        return make_image(*sys.argv[2:])
    ap = argparse.ArgumentParser()
    ap.add_argument("--runtime", required=True, help="the pier binary")
    ap.add_argument("--runc", default=shutil.which("runc") or "/usr/sbin/runc")
    ap.add_argument("--engine", action="append", choices=["podman", "ctr", "docker"])
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--only", help="run the cases whose name contains this")
    ap.add_argument("-v", "--verbose", action="store_true", help="show what each case printed")
    args = ap.parse_args()
    engines = args.engine or ["podman", "ctr", "docker"]
    global RUNC
    RUNC = os.path.abspath(args.runc)
    passed = failed = 0
    work = tempfile.mkdtemp(prefix="pier-engines-")
    try:
        for name in engines:
            if name == "docker" and not os.path.exists(docker_root() + "/usr/sbin/dockerd"):
                print("docker: docker.io not installed (scripts/deps.sh), skipped")
                continue
            if name != "docker" and not shutil.which({"podman": "podman", "ctr": "containerd"}[name]):
                print(f"{name}: not installed, skipped")
                continue
            os.makedirs(os.path.join(work, name))
            engine = {"podman": Podman, "ctr": Ctr, "docker": Docker}[name](os.path.join(work, name), os.path.abspath(args.runtime))
            try:
                for n, (label, script) in enumerate(engine.cases()):
                    if args.only and args.only not in label:
                        continue
                    want = run_case(engine, args.runc, label, script, n)
                    got = run_case(engine, os.path.abspath(args.runtime), label, script, n)
                    if want == got:
                        passed += 1
                        print(f"ok   {name}: {label}")
                        if args.verbose:
                            print("    " + want.replace("\n", "\n    "))
                    else:
                        failed += 1
                        print(f"FAIL {name}: {label}\n--- runc\n{want}\n--- pier\n{got}")
            finally:
                engine.close()
    finally:
        if not args.keep:
            sh(f"umount -R {work}/*/* 2>/dev/null; rm -rf {work}")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
