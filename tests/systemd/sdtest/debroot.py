"""The root filesystem of the newer systemd: Debian 13 (trixie), built by mmdebstrap and cached.

`ensure_root()` returns a directory that harness.sh boots with `SD_ROOT=` (nspawn
--volatile=overlay, so the tree is never written and one build serves every run). It is built
when missing, when it was built for another package set or when it changed since (a
digest of its dpkg database and etc/ is kept with it), under a lock, into a temporary
directory that is renamed into place only when mmdebstrap succeeded: a half-built tree is never
used. The packages come from the Debian archive that this machine's apt already uses
(/etc/apt/sources.list*), or from $PIER_DEBIAN_MIRROR.
"""

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

SUITE = "trixie"
#: systemd as PID 1 with its D-Bus; podman for engine-level scenarios.
PACKAGES = ("systemd", "systemd-sysv", "dbus", "podman")
#: Where the root is kept between runs ($PIER_TEST_CACHE overrides).
CACHE = Path(os.environ.get("PIER_TEST_CACHE", "/var/cache/pier-tests"))
STAMP = ".pier-root"
BUILD_TIMEOUT_S = 1200


class RootError(Exception):
    """The root could not be built; the message says why (and has mmdebstrap's output tail)."""


def root_key():
    """What the cached root was built from: suite and packages (a change rebuilds it)."""
    text = f"{SUITE} variant=important include={','.join(PACKAGES)}"
    return hashlib.sha256(text.encode()).hexdigest()[:16] + f" {text}"


def _sources_texts():
    paths = [Path("/etc/apt/sources.list")]
    d = Path("/etc/apt/sources.list.d")
    if d.is_dir():
        paths += sorted(d.iterdir())
    for p in paths:
        if p.suffix in (".list", ".sources") or p.name == "sources.list":
            try:
                yield p.suffix, p.read_text()
            except OSError:
                continue


def _debian_uri(uri, suites):
    """The URI if it is the main Debian archive (a Debian suite, not the security archive)."""
    debian = re.compile(r"^(bookworm|trixie|forky|sid|stable|testing|unstable)(-updates)?$")
    if "security" in uri or not any(debian.match(s) for s in suites):
        return None
    return uri.rstrip("/")


def debian_mirror():
    """The Debian archive apt uses here (deb822 or one-line sources), or $PIER_DEBIAN_MIRROR."""
    if os.environ.get("PIER_DEBIAN_MIRROR"):
        return os.environ["PIER_DEBIAN_MIRROR"]
    for suffix, text in _sources_texts():
        if suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.M))
                for uri in fields.get("URIs", "").split():
                    found = _debian_uri(uri, fields.get("Suites", "").split())
                    if found and "deb" in fields.get("Types", "deb").split():
                        return found
        else:
            for line in text.splitlines():
                words = re.sub(r"\[[^]]*\]", "", line).split()
                if len(words) >= 3 and words[0] == "deb":
                    found = _debian_uri(words[1], [words[2]])
                    if found:
                        return found
    raise RootError("no Debian archive in /etc/apt/sources.list*; set PIER_DEBIAN_MIRROR")


def systemd_version(root):
    """The major version of the systemd package installed in root (e.g. 257)."""
    out = subprocess.run(["dpkg-query", f"--admindir={root}/var/lib/dpkg", "-W", "-f", "${Version}",
                          "systemd"], capture_output=True, text=True).stdout
    m = re.match(r"(\d+)", out)
    if not m:
        raise RootError(f"{root}: no systemd package installed")
    return int(m.group(1))


def content_digest(root):
    """A digest of what in root decides how its systemd behaves: the dpkg database and every
    file under etc/ (path, mode, content; symlinks by target). A root changed after it was
    built (a package installed into it, a unit enabled, a config edited) no longer matches."""
    h = hashlib.sha256()
    h.update((root / "var/lib/dpkg/status").read_bytes())
    for dirpath, dirnames, filenames in os.walk(root / "etc"):
        dirnames.sort()
        for name in sorted(filenames + [d for d in dirnames if (Path(dirpath) / d).is_symlink()]):
            path = Path(dirpath) / name
            st = path.lstat()
            h.update(f"{path.relative_to(root)}\0{st.st_mode:o}\0".encode())
            if path.is_symlink():
                h.update(os.readlink(path).encode())
            elif path.is_file():
                h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _stamp(root):
    return f"{root_key()}\ncontent {content_digest(root)}"


def _fresh(root, log):
    try:
        stamp = (root / STAMP).read_text().strip()
        if stamp.splitlines()[0] != root_key():
            return False
        if stamp != _stamp(root):
            log(f"{root} changed since it was built (dpkg database or etc/): rebuilding it")
            return False
        return True
    except (OSError, IndexError):
        return False


def _build(root, log):
    if not shutil.which("mmdebstrap"):
        raise RootError("need mmdebstrap to build the Debian 13 root (apt install mmdebstrap)")
    tmp = root.with_name(root.name + ".new")
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = ["mmdebstrap", "--variant=important", "--include=" + ",".join(PACKAGES),
           SUITE, str(tmp), debian_mirror()]
    log(f"building the {SUITE} root: {' '.join(cmd)}")
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RootError(f"mmdebstrap took over {BUILD_TIMEOUT_S}s") from exc
    if res.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RootError(f"mmdebstrap failed ({res.returncode}):\n{(res.stdout + res.stderr)[-3000:]}")
    (tmp / STAMP).write_text(_stamp(tmp) + "\n")
    old = root.with_name(root.name + ".old")
    if root.exists():
        shutil.rmtree(old, ignore_errors=True)
        root.rename(old)
    tmp.rename(root)
    shutil.rmtree(old, ignore_errors=True)


def ensure_root(log=print):
    """Path of the cached trixie root, built first when missing or stale; raises RootError."""
    CACHE.mkdir(parents=True, exist_ok=True)
    root = CACHE / SUITE
    with open(CACHE / f"{SUITE}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time; the others then reuse it
        if not _fresh(root, log):
            _build(root, log)
    return root
