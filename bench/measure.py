"""Run one command as a child and measure it: wall time, peak RSS, CPU time.

Runs as a *fresh, small* wrapper process so that the peak RSS reported is the
scanner's own. On Linux ``ru_maxrss`` of a child also includes the RSS of the
image it was forked/vforked from (the kernel folds the pre-exec mm's high-water
mark into the new image's maxrss), so measuring from the benchmark process
itself (which holds boto3 and seeding buffers) would inflate it. This wrapper
imports only the stdlib and psutil (~12 MB), well below any scanner's peak.

Two readings of peak memory:
  * ``maxrss_kb``: ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` after the child is
    reaped: the kernel's exact high-water mark (authoritative);
  * ``polled_peak_kb``: the largest RSS seen by psutil every ``--interval``
    seconds (a cross-check; can only under-read).

Usage: python measure.py --stdout FILE --stderr FILE [--interval 0.01] -- CMD...
Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import threading
import time

import psutil


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stdout", required=True)
    parser.add_argument("--stderr", required=True)
    parser.add_argument("--interval", type=float, default=0.01)
    parser.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    cmd = args.cmd[1:] if args.cmd and args.cmd[0] == "--" else args.cmd
    if not cmd:
        parser.error("no command")

    peak = 0
    samples = 0
    done = threading.Event()

    with open(args.stdout, "wb") as out, open(args.stderr, "wb") as err:
        started = time.perf_counter()
        child = subprocess.Popen(cmd, stdout=out, stderr=err)

        def poll() -> None:
            nonlocal peak, samples
            try:
                proc = psutil.Process(child.pid)
                while not done.is_set():
                    peak = max(peak, proc.memory_info().rss)
                    samples += 1
                    done.wait(args.interval)
            except psutil.Error:
                pass

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        returncode = child.wait()
        wall = time.perf_counter() - started
        done.set()
        poller.join(timeout=1)

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    json.dump(
        {
            "returncode": returncode,
            "wall_seconds": wall,
            "maxrss_kb": usage.ru_maxrss,  # kilobytes on Linux
            "polled_peak_kb": peak // 1024,
            "samples": samples,
            "cpu_user_seconds": usage.ru_utime,
            "cpu_sys_seconds": usage.ru_stime,
        },
        sys.stdout,
    )
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
