"""Build what the suite runs: the static helpers and one OCI bundle per case.

The helpers: `sd-notify-send`, the project's one sd_notify sender (notify-relay's example,
static through the workspace's `.cargo/config.toml`), and `sd-serve` (helpers/sd-serve.c,
`gcc -static`), a socket-activation and fd-store server.

A bundle is `<workdir>/b/<key>/` with `config.json` (OCI runtime-spec 1.0.2, written here so no
other runtime is needed) and `rootfs/` (busybox-static, the helpers, the payload scripts). The
same rootfs also serves the "host" mode, where a unit runs the payload without any container.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
REPO = HERE.parents[1]
#: The helpers written in C, compiled here.
C_HELPERS = ("sd-serve",)

#: Inside a container: where the per-case control directory is mounted (FIFOs, sockets, files).
CTL_IN_CONTAINER = "/ctl"


class BuildError(Exception):
    """A build prerequisite is missing or a build step failed; the message says which."""


def find_busybox():
    """Path of a statically linked busybox (Debian: busybox-static), or BuildError."""
    for cand in (shutil.which("busybox"), "/bin/busybox", "/usr/bin/busybox"):
        if cand and os.path.exists(cand):
            out = subprocess.run(["file", "-L", cand], capture_output=True, text=True).stdout
            if "statically linked" in out or "static-pie linked" in out:
                return cand
    raise BuildError("need a statically linked busybox (apt install busybox-static)")


def build_sender():
    """Build notify-relay's example sd-notify-send (release, static) with cargo from the
    repository and return its path; cargo's own up-to-date check makes a rebuild cheap, so the
    suite never runs a stale sender. The target directory is cargo's (CARGO_TARGET_DIR
    respected), asked from `cargo metadata`; binaries sit below the triple that
    .cargo/config.toml names."""
    cargo = os.environ.get("CARGO") or shutil.which("cargo")
    if not cargo:
        raise BuildError("need cargo (the Rust toolchain) to build sd-notify-send")
    cmd = [cargo, "build", "--release", "-p", "notify-relay", "--example", "sd-notify-send"]
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if res.returncode != 0:
        raise BuildError(f"{' '.join(cmd)} failed:\n{res.stderr[-3000:]}")
    meta = subprocess.run([cargo, "metadata", "--format-version", "1", "--no-deps"], cwd=REPO,
                          capture_output=True, text=True, check=True).stdout
    target = Path(json.loads(meta)["target_directory"])
    for base in (target / "x86_64-unknown-linux-gnu", target):
        path = base / "release" / "examples" / "sd-notify-send"
        if path.is_file():
            out = subprocess.run(["file", "-L", str(path)], capture_output=True, text=True).stdout
            if "statically linked" not in out:
                raise BuildError(f"{path} is not statically linked (the machines' roots do not "
                                 f"have the host's libraries): {out.strip()}")
            return path
    raise BuildError(f"cargo built sd-notify-send but it is not below {target}")


def compile_helpers(out_dir):
    """The helpers: sd-notify-send from cargo (build_sender), helpers/*.c of C_HELPERS with
    `gcc -static` into out_dir; returns {name: path}."""
    if not shutil.which("gcc"):
        raise BuildError("need gcc and libc6-dev (static libc) to build the helpers")
    out_dir.mkdir(parents=True, exist_ok=True)
    procs = {}
    for name in C_HELPERS:
        src, dst = HERE / "helpers" / f"{name}.c", out_dir / name
        cmd = ["gcc", "-static", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(dst), str(src)]
        procs[name] = (dst, cmd, subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True))
    helpers = {"sd-notify-send": build_sender()}
    for _dst, cmd, proc in procs.values():
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise BuildError(f"{' '.join(cmd)} failed:\n{err}")
    helpers.update({name: dst for name, (dst, _, _) in procs.items()})
    return helpers


def make_rootfs(dst, busybox, helpers):
    """A minimal root: busybox + applet links in /bin, the helpers, /payload/*.sh, mountpoints."""
    bindir = dst / "bin"
    bindir.mkdir(parents=True)
    shutil.copy2(busybox, bindir / "busybox")
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout
    for applet in applets.split():
        if not (bindir / applet).exists():
            (bindir / applet).symlink_to("busybox")
    for name, path in helpers.items():
        shutil.copy2(path, bindir / name)
    shutil.copytree(HERE / "payloads", dst / "payload")
    # Mountpoints exist in the image, so no runtime has to write into it.
    for d in ("proc", "sys", "dev", "tmp", "etc", "run/notify", CTL_IN_CONTAINER.lstrip("/")):
        (dst / d).mkdir(parents=True, exist_ok=True)
    (dst / "etc/passwd").write_text("root:x:0:0:root:/:/bin/sh\n")
    (dst / "etc/group").write_text("root:x:0:\n")


def oci_config(args, ctl_source, hostname):
    """config.json for one case: busybox as root, no terminal, ctl_source bind-mounted rw."""
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    ro = ["nosuid", "noexec", "nodev", "ro"]
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/bin", f"CTL={CTL_IN_CONTAINER}", "HOME=/"],
            "cwd": "/",
            "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": False},
        "hostname": hostname,
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ro},
            {"destination": CTL_IN_CONTAINER, "type": "bind", "source": ctl_source,
             "options": ["rbind", "rw"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    }


#: The host id the container's 0 maps to in a user-namespace case.
USERNS_HOST_ID = 100000


def with_user_namespace(config):
    """A new user namespace mapping 0..65535 to USERNS_HOST_ID..; the control directory is an
    idmapped bind (ridmap), so the host root's FIFOs belong to the container's root."""
    maps = [{"containerID": 0, "hostID": USERNS_HOST_ID, "size": 65536}]
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"] = maps
    config["linux"]["gidMappings"] = maps
    for m in config["mounts"]:
        if m["destination"] == CTL_IN_CONTAINER:
            m["options"].append("ridmap")


def build_case(workdir, case, template_rootfs):
    """Bundle b/<key>/ and control dir ctl/<key>/ (with the case's FIFOs and files) for one case."""
    bundle = workdir / "b" / case.key
    bundle.mkdir(parents=True)
    # hard links: every bundle gets its own tree (mountpoints, /payload) at almost no cost
    if case.userns:
        # its own copy, owned by the mapped root (hard links would chown the template)
        subprocess.run(["cp", "-a", str(template_rootfs), str(bundle / "rootfs")], check=True)
        subprocess.run(["chown", "-R", f"{USERNS_HOST_ID}:{USERNS_HOST_ID}", str(bundle / "rootfs")],
                       check=True)
    else:
        subprocess.run(["cp", "-al", str(template_rootfs), str(bundle / "rootfs")], check=True)
    ctl = workdir / "ctl" / case.key
    ctl.mkdir(parents=True)
    for fifo in case.fifos:
        os.mkfifo(ctl / fifo)
    for name, text in case.files.items():
        (ctl / name).write_text(text)
    args = [a.replace("{ctl}", CTL_IN_CONTAINER) for a in case.args]
    config = oci_config(args, f"/h/ctl/{case.key}", f"sdt-{case.key}")
    if case.userns:
        with_user_namespace(config)
    if case.annotations:
        config["annotations"] = dict(case.annotations)
    if case.limit:
        config["linux"]["resources"].update(case.limit.resources)
    (bundle / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def build_all(workdir, cases):
    """Everything the cases need under workdir; returns nothing, raises BuildError."""
    busybox = find_busybox()
    helpers = compile_helpers(workdir / "helpers")
    template = workdir / "rootfs-template"
    make_rootfs(template, busybox, helpers)
    for case in cases:
        build_case(workdir, case, template)
