"""Render the systemd unit files of a case, for a runtime under test or for "host" mode.

Runtime mode: the unit's main process is the runtime (`RUNTIME --root ROOT run ...`), exactly as
a user would write it; host mode: the payload runs directly on the (nspawn) host, which proves
the scenario and its judging against systemd alone. Paths are as seen inside the nspawn machine:
the work dir is /h, the runtime binary is bind-mounted at RUNTIME_IN_MACHINE.
"""

RUNTIME_IN_MACHINE = "/opt/sdtest/runtime"
#: --root of every runtime call: state of all test containers lives under it.
RUNTIME_ROOT = "/run/sdtest-rt"


def unit_name(case, kind="service"):
    """`sdt-<key>.service` (or .socket)."""
    return f"sdt-{case.key}.{kind}"


def container_id(case):
    """The container id a case uses with the runtime."""
    return f"sdt-{case.key}"


def _host_exec(case):
    rootfs = f"/h/b/{case.key}/rootfs"
    args = [a.replace("{ctl}", f"/h/ctl/{case.key}") for a in case.args]
    args = [rootfs + a if a.startswith(("/bin/", "/payload/")) else a for a in args]
    return " ".join(args), [f"PATH={rootfs}/bin", f"CTL=/h/ctl/{case.key}"]


def _runtime_exec(case):
    rt = f"{RUNTIME_IN_MACHINE} --root {RUNTIME_ROOT}"
    bundle, cid = f"/h/b/{case.key}", container_id(case)
    if case.launch == "run":
        return f"{rt} run --bundle {bundle} {cid}"
    if case.launch == "run-d":
        return f"{rt} run -d --bundle {bundle} {cid}"
    if case.launch == "create-start":
        return f"/bin/sh -c '{rt} create --bundle {bundle} {cid} && exec {rt} start {cid}'"
    if case.launch == "run-preserve":
        return f"{rt} run --preserve-fds {case.preserve_fds} --bundle {bundle} {cid}"
    if case.launch in ("exec", "exec-d"):  # into the box container the judge started (13)
        detach = " -d" if case.launch == "exec-d" else ""
        return f"{rt} exec{detach} --notify-socket own {cid} {' '.join(case.args)}"
    raise ValueError(f"unknown launch {case.launch!r}")


def _with_preserved_fds(case, cmd):
    """Open the case's extra files as fds 3+LISTEN_FDS.. in a shell that then execs cmd."""
    if not case.preserve_fds:
        return cmd
    first = 4  # after the one socket-activation fd (fd 3)
    opens = "; ".join(f"exec {first + i}< /h/ctl/{case.key}/extra{i}.txt"
                      for i in range(case.preserve_fds))
    return f"/bin/sh -c '{opens}; exec {cmd}'"


def service_unit(case, mode):
    """Text of sdt-<key>.service; mode is "host" or "runtime"."""
    lines = ["[Unit]", f"Description=pier systemd test {case.key}: {case.title}", "",
             "[Service]"]
    lines += [f"{k}={v}" for k, v in case.service if not (mode == "host" and k == "NotifyAccess")]
    if mode == "host":
        cmd, env = _host_exec(case)
        lines.append("Environment=" + " ".join(env))
        # The payload's sd-notify-send runs as a child of the payload shell; in a container the
        # runtime relays it as the main process (or with the init's pid), here nothing does.
        lines.append(f"NotifyAccess={case.host_notify_access}")
    else:
        cmd = _runtime_exec(case)
        rt = f"{RUNTIME_IN_MACHINE} --root {RUNTIME_ROOT}"
        lines.append(f"ExecStopPost=-{rt} delete -f {container_id(case)}")
    lines.append("ExecStart=" + _with_preserved_fds(case, cmd))
    return "\n".join(lines) + "\n"


#: podman's storage for the quadlet case: in the work dir (ext4 on the host; the machine's own
#: root is an overlay, where podman's overlay driver cannot work), vfs driver (nspawn refuses
#: the whiteout device nodes overlay needs).
PODMAN_ROOT = "/h/podman"


def podman_global_args(mode):
    """podman's global flags for the quadlet case; runtime mode adds --runtime (the runtime
    under test), host mode keeps podman's default runtime (crun)."""
    args = f"--root {PODMAN_ROOT} --storage-driver vfs"
    return args + (f" --runtime {RUNTIME_IN_MACHINE}" if mode == "runtime" else "")


def quadlet_image(case):
    """The image the quadlet case imports from its bundle's rootfs."""
    return f"localhost/sdt-{case.key}:latest"


def quadlet_unit(case, mode):
    """Text of sdt-<key>.container (podman-systemd.unit(5)) for a quadlet case, else None:
    quadlet's generator turns it into sdt-<key>.service (Type=notify, podman run
    --sdnotify=container). --pids-limit 0: the machine's cgroup has no pids controller."""
    if case.launch != "quadlet":
        return None
    exec_args = " ".join(f"'{a}'" for a in case.args)
    lines = ["[Unit]", f"Description=pier systemd test {case.key}: {case.title}", "",
             "[Container]", f"Image={quadlet_image(case)}", f"Exec={exec_args}", "Notify=true",
             "Network=none", f"Volume=/h/ctl/{case.key}:/ctl", "Environment=CTL=/ctl PATH=/bin",
             f"GlobalArgs={podman_global_args(mode)}", "PodmanArgs=--pids-limit 0", "",
             "[Service]", "TimeoutStartSec=60"]
    lines += [f"{k}={v}" for k, v in case.service]
    return "\n".join(lines) + "\n"


def socket_unit(case):
    """Text of sdt-<key>.socket, or None when the case is not socket-activated."""
    if not case.socket:
        return None
    lines = ["[Unit]", f"Description=pier systemd test {case.key}: socket", "", "[Socket]"]
    lines += [f"{k}={v}".replace("{ctl}", f"/h/ctl/{case.key}") for k, v in case.socket]
    return "\n".join(lines) + "\n"


def write_units(units_dir, cases, mode):
    """Write every case's units into units_dir (later bind-mounted at /etc/systemd/system)."""
    units_dir.mkdir(parents=True, exist_ok=True)
    for case in cases:
        quadlet = quadlet_unit(case, mode)
        if quadlet:  # installed by its judge into /etc/containers/systemd (needs podman)
            (units_dir.parent / "quadlet").mkdir(exist_ok=True)
            (units_dir.parent / "quadlet" / unit_name(case, "container")).write_text(quadlet)
            continue
        (units_dir / unit_name(case)).write_text(service_unit(case, mode))
        sock = socket_unit(case)
        if sock:
            (units_dir / unit_name(case, "socket")).write_text(sock)
