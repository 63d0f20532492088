#!/usr/bin/env python3
"""Complexity guard: CPU time of whole commands at N and 4N apps, their ratio, not seconds.

For each size the script seeds one genauth-mock with the apps, lets `secret-rotator run --once`
give every app its first secret (not measured), then counts the instructions of commands whose
work must grow linearly with the apps:
  - `run --once` with nothing due: start-up (config, locks, state, metrics series, the plan
    of every app), the outputs' check, and exit;
  - `status`: every app's record and outputs;
  - `check-config`: the config and the host checks.
The ratio between 4N and N apps is the test of growth: linear work gives at most 4 (less, as
the fixed cost of a start is shared), a quadratic tends to 16. The script fails (exit 1) when a
ratio exceeds --max-ratio (default 6).

What is counted: user + system CPU seconds of the process (wait4's rusage), the least of
--runs runs (default 3). Instructions would be better, as no other load changes them, but
neither counter works on these machines: valgrind 3.19 (Debian 12) dies with an internal
SIGSEGV while the Swift binaries start (any of its tools, stripped or not, debug or release),
and `perf stat -e instructions` answers "not supported" in these VMs (no PMU). CPU time of a
single-threaded start is far less noisy than wall time; the least of three runs and a margin
above 4 keep a loaded machine from failing a linear build, and a quadratic of the kind this
guards against (swift-prometheus registering every app's series, 75 % of start-up CPU at
10,000 apps) gave 8.9 at 2,000 and 8,000 apps, where linear commands give 3.9 to 4.0.

Usage: complexity.py --bin DIR [--apps N] [--max-ratio R]
Runs everything on loopback in a temporary directory removed at exit; every wait is bounded.
"""
import argparse
import time
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the shared mock, config and process helpers)

def cpu_seconds(argv, env, output_path, timeout):
    """Runs argv to completion (bounded); returns (exit status, user + system CPU seconds)."""
    with open(output_path, "wb") as out:
        process = bench.spawn(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    pidfd = os.pidfd_open(process.pid)
    try:
        import select
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if not poller.poll(max(0, deadline - time.monotonic()) * 1000):
            bench.stop(process)
            raise bench.BenchError("%s did not finish within %d s" % (" ".join(argv[:3]), timeout))
        _, status, usage = os.wait4(process.pid, 0)
    finally:
        os.close(pidfd)
    bench.children.remove(process)
    return os.waitstatus_to_exitcode(status), usage.ru_utime + usage.ru_stime


def least_cpu(argv, env, work, tag, runs, timeout):
    """The least CPU time of `runs` runs, and the last exit status."""
    best = None
    rc = 0
    for run in range(runs):
        rc, seconds = cpu_seconds(argv, env, os.path.join(work, "%s.%d.out" % (tag, run)), timeout)
        best = seconds if best is None else min(best, seconds)
    return best, rc


def measure(args, size, root):
    work = os.path.join(root, "n%d" % size)
    os.makedirs(os.path.join(work, "run"))
    apps = bench.app_set("c%d-" % size, size)
    mock = bench.Mock(args.bin, work, apps)
    try:
        config = os.path.join(work, "rotator.toml")
        state = os.path.join(work, "state")
        bench.write_config(config, mock, apps, state, os.path.join(work, "drop"), first_start="fetch")
        env = bench.daemon_env(work)
        binary = os.path.join(args.bin, "secret-rotator")
        rc, seconds, _ = bench.run_timed([binary, "run", "--once", "--config", config], env, 600, os.path.join(work, "first.out"))
        if rc != 0:
            raise bench.BenchError("first pass over %d apps exited %d: %s" % (size, rc, bench.tail(os.path.join(work, "first.out"))))
        counts = {}
        for tag, argv, ok in [
            ("run --once", [binary, "run", "--once", "--config", config], (0,)),
            ("status", [binary, "status", "--config", config, "--state-dir", state], (0, 1, 2)),
            ("check-config", [binary, "check-config", "--config", config], (0,)),
        ]:
            name = tag.replace(" ", "_")
            seconds, rc = least_cpu(argv, env, work, name, args.runs, args.timeout)
            if rc not in ok:
                raise bench.BenchError("%s over %d apps exited %d: %s" % (tag, size, rc, bench.tail(os.path.join(work, name + ".0.out"))))
            counts[tag] = seconds
        return counts
    finally:
        bench.stop(mock.process)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", required=True, help="directory with secret-rotator and genauth-mock")
    parser.add_argument("--apps", type=int, default=2000, help="N; the larger size is 4N (default 2000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per command and size; the least CPU time counts")
    parser.add_argument("--max-ratio", type=float, default=6.0, help="largest allowed count(4N)/count(N)")
    parser.add_argument("--timeout", type=int, default=300, help="seconds each measured command may take")
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="secret-rotator-complexity.")
    failed = False
    try:
        small = measure(args, args.apps, root)
        large = measure(args, args.apps * 4, root)
        for tag in small:
            ratio = large[tag] / small[tag]
            verdict = "ok" if ratio <= args.max_ratio else "FAILED (more than %.1f: not linear)" % args.max_ratio
            failed = failed or ratio > args.max_ratio
            print("complexity %s: %.3f CPU s at %d apps, %.3f at %d apps, ratio %.2f %s" % (
                tag, small[tag], args.apps, large[tag], args.apps * 4, ratio, verdict))
    except bench.BenchError as error:
        print("complexity: FAILED: %s" % error)
        return 1
    finally:
        bench.cleanup()
        shutil.rmtree(root, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
