"""Judges of scenarios 7 and 8: the fd store across a restart, and socket activation.

Clients connect from the host to the AF_UNIX sockets in the case's control directory (the same
inode the machine and the container see), and parse the one line `sd-serve` answers with.
"""

import socket
import threading
import time

from .units import unit_name


def ask(path, timeout_s):
    """Connect, read sd-serve's line until EOF; returns {field: value}. Raises OSError."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout_s)
        s.connect(str(path))
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    fields = dict(kv.split("=", 1) for kv in data.decode(errors="replace").split() if "=" in kv)
    return fields


class RetryingClient(threading.Thread):
    """Connects again and again; counts answers, refusals (ECONNREFUSED/ENOENT) and drops."""

    def __init__(self, path, timeout_s):
        super().__init__(daemon=True)
        self.path, self.timeout_s = path, timeout_s
        self.answers, self.refused, self.dropped = [], 0, 0
        self.stopping = threading.Event()
        self.cond = threading.Condition()

    def run(self):
        while not self.stopping.is_set():
            try:
                fields = ask(self.path, self.timeout_s)
            except (ConnectionRefusedError, FileNotFoundError):
                self.refused += 1
            except OSError:
                self.dropped += 1
            else:
                with self.cond:
                    if fields:
                        self.answers.append(fields)
                    else:
                        self.dropped += 1  # accepted, then closed without an answer
                    self.cond.notify_all()
            self.stopping.wait(0.01)  # pacing only: a few hundred connections a second

    def wait_for(self, pred, timeout_s):
        """The first answer matching pred within timeout_s, or None."""
        end = time.monotonic() + timeout_s
        with self.cond:
            while True:
                for a in self.answers:
                    if pred(a):
                        return a
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)


def _summary(a):
    keys = ("origin", "pid", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "fd", "sockname", "extra")
    return " ".join(f"{k}={a.get(k)}" for k in keys) if a else "no answer"


def fdstore(j):
    """7: FDSTORE=1/FDNAME=web survives `systemctl restart`; no client is ever refused."""
    def origin(name):
        return lambda v: v.startswith(f"sd-serve {name} ")

    j.start()
    j.state("active/running, listening socket stored (StatusText=sd-serve created ...)",
            {"ActiveState": "active", "SubState": "running", "StatusText": origin("created")})
    client = RetryingClient(j.ctl / "web.sock", j.deadline)
    client.start()
    try:
        j.check("the first container serves clients",
                lambda: _answered(client.wait_for(lambda a: a.get("origin") == "created", j.deadline)))
        t0 = time.monotonic()
        res = j.machine.systemctl("restart", j.unit, timeout=j.deadline + 10)
        if res.returncode != 0:
            j.record("systemctl restart succeeds", res.stderr.strip()[-200:], False, t0)
        j.state("restarted: active/running, StatusText=sd-serve inherited ...",
                {"ActiveState": "active", "SubState": "running", "StatusText": origin("inherited")})
        a = client.wait_for(lambda a: a.get("origin") == "inherited", j.deadline)
        j.check("new container serves the stored socket: fd 3, LISTEN_FDS=1, LISTEN_FDNAMES=web",
                lambda: (bool(a) and a.get("fd") == "3" and a.get("LISTEN_FDS") == "1"
                         and a.get("LISTEN_FDNAMES") == "web", _summary(a)))
    finally:
        client.stopping.set()
        client.join(j.deadline + 1)
    j.check("a client retrying across the restart is never refused",
            lambda: (client.refused == 0 and client.dropped == 0,
                     f"{len(client.answers)} answered, {client.refused} refused, {client.dropped} dropped"))


def _answered(a):
    return bool(a), _summary(a)


def socket_activation(j, extra=None):
    """8: a .socket unit starts the service; the container gets fd 3 with LISTEN_* right."""
    sock = unit_name(j.case, "socket")
    j.start(sock, block=True)
    j.state("socket unit listening", {"ActiveState": "active", "SubState": "listening"}, unit=sock)
    t0 = time.monotonic()
    try:
        a = ask(j.ctl / "act.sock", j.deadline)
    except OSError as exc:
        j.record("a connection starts the service and is served", f"client: {exc}", False, t0)
    j.record("a connection starts the service and is served", _summary(a), bool(a), t0)
    path = f"/h/ctl/{j.case.key}/act.sock"

    def listen_env():
        ok = (a.get("fd") == "3" and a.get("sockname") == path and a.get("LISTEN_FDS") == "1"
              and a.get("LISTEN_FDNAMES") == "act" and a.get("LISTEN_PID") == a.get("pid"))
        return ok, _summary(a)

    j.check("fd 3 is the socket; LISTEN_FDS=1 LISTEN_FDNAMES=act LISTEN_PID=own pid", listen_env)
    if extra is not None:
        j.check(f"--preserve-fds: fd 4 is the extra file ({extra})",
                lambda: (a.get("extra") == extra, f"extra={a.get('extra')}"))
    j.state("service active/running", {"ActiveState": "active", "SubState": "running"})
