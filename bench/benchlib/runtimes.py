"""The runtimes under test and the one way every invocation is made: through bench-exec.

Every runtime gets its own state root (`--root <work>/root-<name>`), so a leftover of one can
never disturb another, and `sweep()` can remove everything at the end.
"""

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field

# Keys a host service manager may have put in our environment; none may leak into a runtime
# invocation unless a scenario sets it on purpose. RUST_BACKTRACE / RUST_LIB_BACKTRACE too: a
# developer's shell often has them, engines never set them for a runtime, and with them set
# every `anyhow` error pier builds captures a backtrace (~1 ms each, docs/performance.md).
_SCRUB = ("NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "WATCHDOG_USEC", "WATCHDOG_PID",
          "RUST_BACKTRACE", "RUST_LIB_BACKTRACE")


def base_env() -> dict[str, str]:
    """Our environment without the systemd service-manager variables."""
    return {k: v for k, v in os.environ.items() if k not in _SCRUB}


@dataclass
class Runtime:
    """One OCI runtime: `binary` is None when it is missing (`why` says why)."""

    name: str
    binary: str | None
    root: str
    version: str = ""
    why: str = ""
    skip: dict[str, str] = field(default_factory=dict)  # metric key -> reason it was skipped

    @property
    def present(self) -> bool:
        return self.binary is not None

    def argv(self, *args: str) -> list[str]:
        """Command line `<binary> --root <root> ARGS...` (runc's global-flag position)."""
        return [self.binary, "--root", self.root, *args]

    def cleanup(self, cid: str, timeout_s: float) -> None:
        """`delete -f` the container if its state directory is still there."""
        if not os.path.exists(os.path.join(self.root, cid)):
            return
        try:
            subprocess.run(self.argv("delete", "-f", cid), env=base_env(), timeout=timeout_s,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired:
            pass

    def sweep_containers(self, timeout_s: float) -> list[str]:
        """Force-delete every container whose state directory is in our root; their ids."""
        if not self.present or not os.path.isdir(self.root):
            return []
        left = sorted(e for e in os.listdir(self.root) if os.path.isdir(os.path.join(self.root, e)))
        for cid in left:
            self.cleanup(cid, timeout_s)
        return left

    def sweep(self, timeout_s: float) -> list[str]:
        """sweep_containers(), then remove the root; returns the ids that were left over."""
        left = self.sweep_containers(timeout_s)
        shutil.rmtree(self.root, ignore_errors=True)
        return left


def probe(name: str, binary: str | None, root: str) -> Runtime:
    """Runtime `name` at `binary` (searched in PATH when not absolute), with its version."""
    path = binary if binary and os.sep in binary else shutil.which(binary or name)
    if not path or not os.access(path, os.X_OK):
        return Runtime(name, None, root, why=f"{binary or name}: not found")
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
        version = (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else ""
    except (OSError, subprocess.TimeoutExpired) as err:
        version = f"--version failed: {err}"
    os.makedirs(root, exist_ok=True)
    return Runtime(name, path, root, version=version)


@dataclass
class Exec:
    """Runs command sequences through the bench-exec helper (see bench-exec.c for fields)."""

    helper: str
    timeout_s: int = 10

    def command(self, cmds: list[list[str]], log: str, repeat: int = 1, linger_s: int = 0) -> list[str]:
        argv = [self.helper, "-t", str(self.timeout_s), "-r", str(repeat), "-o", log,
                "-k", str(linger_s), "--"]
        for i, cmd in enumerate(cmds):
            argv += ([":::"] if i else []) + cmd
        return argv

    def run(self, cmds: list[list[str]], log: str, env: dict[str, str], repeat: int = 1) -> dict:
        """Run to completion; the helper's JSON result, plus "error" when it failed."""
        budget = self.timeout_s * len(cmds) * repeat + 10
        try:
            proc = subprocess.run(self.command(cmds, log, repeat), env=env, timeout=budget,
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True)
        except subprocess.TimeoutExpired:
            return {"ok": 0, "error": f"bench-exec exceeded {budget} s"}
        return _parse(proc.stdout, proc.stderr, log)

    def start(self, cmds: list[list[str]], log: str, env: dict[str, str], linger_s: int):
        """Run with linger: returns (result, helper process still reaping the orphans)."""
        proc = subprocess.Popen(self.command(cmds, log, 1, linger_s), env=env, text=True,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        line = proc.stdout.readline()
        return _parse(line, "", log), proc


def _parse(stdout: str, stderr: str, log: str) -> dict:
    try:
        res = json.loads(stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {"ok": 0, "error": f"bench-exec gave no result: {stderr.strip()[:300]}"}
    if not res.get("ok"):
        what = "timed out" if res.get("timed_out") else f"exit status {res.get('status')}"
        res["error"] = f"command {res.get('failed_cmd')} {what}: {tail(log)}"
    return res


def tail(path: str, limit: int = 300) -> str:
    """Last `limit` characters of a log file, on one line."""
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except OSError:
        return ""
    return " | ".join(text.strip().splitlines())[-limit:]
