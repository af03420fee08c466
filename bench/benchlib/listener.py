"""Host-side stand-in for systemd's notify socket (sd_notify(3), systemd manager.c).

Binds an AF_UNIX SOCK_DGRAM socket with SO_PASSCRED and an 8 MiB receive buffer (like PID 1),
receives in a background thread, timestamps every datagram with CLOCK_MONOTONIC on receipt and
closes any passed fds at once (closing the fd of a BARRIER=1 datagram is the acknowledgement
sd_notify_barrier(3) waits for; crun waits for it after forwarding READY=1).
"""

import array
import os
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass

_FD_SIZE = array.array("i").itemsize


@dataclass
class Datagram:
    """One received datagram: receipt time (CLOCK_MONOTONIC ns), payload, sender pid."""

    t_ns: int
    text: str
    pid: int | None

    def fields(self) -> dict[str, str]:
        """KEY=VALUE lines as a dict (the last assignment of a key wins)."""
        out = {}
        for line in self.text.split("\n"):
            key, sep, value = line.partition("=")
            if sep:
                out[key] = value
        return out

    def is_ready(self) -> bool:
        """True when any line of the datagram is READY=1 (systemd checks every line)."""
        return "READY=1" in self.text.split("\n")


class NotifyListener:
    """Receives notify datagrams on `path` until close(); thread-safe accessors."""

    def __init__(self, path: str):
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if os.path.exists(path):
            os.unlink(path)
        self._sock.bind(path)
        os.chmod(path, 0o777)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self._got: list[Datagram] = []
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="notify-listener", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        anc_size = socket.CMSG_SPACE(253 * _FD_SIZE) + socket.CMSG_SPACE(12)
        while not self._stop:
            ready, _, _ = select.select([self._sock], [], [], 0.2)
            if not ready:
                continue
            data, anc, _flags, _addr = self._sock.recvmsg(4096, anc_size)
            t_ns = time.monotonic_ns()
            pid = None
            for level, kind, cdata in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("iII", cdata[:12])[0]
                elif level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds = array.array("i")
                    fds.frombytes(cdata[: len(cdata) - len(cdata) % _FD_SIZE])
                    for fd in fds:
                        os.close(fd)
            with self._cond:
                self._got.append(Datagram(t_ns, data.decode("utf-8", "replace"), pid))
                self._cond.notify_all()

    def mark(self) -> int:
        """Position to pass to since()/wait_for(): datagrams received from now on."""
        with self._cond:
            return len(self._got)

    def since(self, mark: int) -> list[Datagram]:
        """Datagrams received after `mark`, in order of receipt."""
        with self._cond:
            return list(self._got[mark:])

    def wait_for(self, mark: int, pred, timeout_s: float) -> Datagram | None:
        """First datagram after `mark` matching pred, waiting up to timeout_s seconds."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                for dgram in self._got[mark:]:
                    if pred(dgram):
                        return dgram
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def wait_quiet(self, quiet_s: float, max_s: float) -> None:
        """Return once nothing arrived for quiet_s seconds (at most max_s in total)."""
        deadline = time.monotonic() + max_s
        with self._cond:
            seen = len(self._got)
            while time.monotonic() < deadline:
                self._cond.wait(min(quiet_s, max(0.0, deadline - time.monotonic())))
                if len(self._got) == seen:
                    return
                seen = len(self._got)

    def close(self) -> None:
        """Stop the receiver thread and remove the socket."""
        self._stop = True
        self._thread.join(2)
        self._sock.close()
        if os.path.exists(self.path):
            os.unlink(self.path)
