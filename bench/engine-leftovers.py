#!/usr/bin/env python3
"""How long containerd takes to see a container end when its init leaves processes behind
(issue 17), runc beside pier: a benchmark, not a test (no assertion on times).

In a pid namespace shared with another process (a Kubernetes pod with shareProcessNamespace,
here `--with-ns pid:...`), the kernel does not kill what the init leaves: the containerd shim
sends `kill --all ID 9` when the init exits (and on stop) and waits for the container's
stdio, which the leftovers hold. A runtime whose `kill --all` fails after the init exited
keeps containerd waiting for the leftovers.

  exit:  `sh -c 'sleep 20 & sleep 1'`: seconds from `ctr run` to its return (runc: ~1.1)
  stop:  `sh -c 'sleep 20 & exec sleep 30'`, `ctr tasks kill` (SIGTERM) after it started:
         seconds from the kill to `ctr run` returning

usage: bench/engine-leftovers.py --runtime PIER [--runs N]   (as root; needs containerd)
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "engines"))
import run as engines  # noqa: E402


def timed_exit(ctr, rt, pidns, name):
    start = time.monotonic()
    subprocess.run(f"{ctr.cli(rt)} --rm --with-ns pid:{pidns} {engines.CTR_IMAGE} {name} "
                   "sh -c 'sleep 20 & sleep 1'", shell=True, capture_output=True, timeout=60)
    return time.monotonic() - start


def timed_stop(ctr, rt, pidns, name):
    run = subprocess.Popen(f"{ctr.cli(rt)} --rm --with-ns pid:{pidns} {engines.CTR_IMAGE} {name} "
                           "sh -c 'sleep 20 & echo up; exec sleep 30'", shell=True,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    run.stdout.readline()  # "up": both sleeps exist
    start = time.monotonic()
    subprocess.run(f"{ctr.base} tasks kill {name}", shell=True, capture_output=True)
    run.wait(timeout=60)
    return time.monotonic() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runtime", required=True)
    ap.add_argument("--runc", default="/usr/sbin/runc")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="pier-bench-leftovers-")
    os.makedirs(os.path.join(work, "ctr"))
    ctr = engines.Ctr(os.path.join(work, "ctr"), os.path.abspath(args.runtime))
    holder = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", "sleep", "3600"])
    try:
        deadline = time.monotonic() + 10
        while True:  # the holder's child is the pid namespace's init
            kids = subprocess.run(["pgrep", "-P", str(holder.pid)], capture_output=True, text=True).stdout.split()
            if kids or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        pidns = f"/proc/{kids[0]}/ns/pid"
        runtimes = {"runc": args.runc, "pier": os.path.abspath(args.runtime)}
        for label, fn in [("exit", timed_exit), ("stop", timed_stop)]:
            for rt_name, rt in runtimes.items():
                times = [fn(ctr, rt, pidns, f"bench-{label}-{rt_name}-{i}") for i in range(args.runs)]
                print(f"{label:5} {rt_name:5} median {statistics.median(times):.2f} s "
                      f"(min {min(times):.2f}, max {max(times):.2f}, {args.runs} runs)")
    finally:
        holder.kill()
        holder.wait()
        ctr.close()
        subprocess.run(f"rm -rf {work}", shell=True)


if __name__ == "__main__":
    main()
