#!/usr/bin/env python3
"""Benchmark orchestrator; run it through Tests/Benchmarks/run.sh (see README.md there).

Everything happens on loopback against genauth-mock, in one work directory whose file system
is also the one the disk limit is measured on. Every wait is bounded; every process started
here is killed on exit (and gets SIGKILL from the kernel if this script dies first).
"""
import argparse
import ctypes
import json
import math
import os
import re
import resource
import select
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

ACCESS_KEY_ID = "bench-access-key-id"
ACCESS_KEY_SECRET = "bench-access-key-secret-0123456789"
EXPOSURE = re.compile(rb"exposure_ms=([0-9.]+)")
PR_SET_PDEATHSIG = 1

children = []
failures = []


class BenchError(Exception):
    pass


def die_with_parent():
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def spawn(argv, **kwargs):
    process = subprocess.Popen(argv, preexec_fn=die_with_parent, **kwargs)
    children.append(process)
    return process


def stop(process, grace=10.0):
    """SIGTERM, then SIGKILL after `grace` seconds; always reaps."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    if process in children:
        children.remove(process)


def cleanup():
    for process in list(children):
        try:
            stop(process, grace=3.0)
        except Exception:
            pass


def on_signal(signum, _frame):
    raise SystemExit(128 + signum)


def line(text):
    print(text, flush=True)


def detail(text):
    print("  " + text, flush=True)


def fail(name, error):
    failures.append(name)
    line("%s: FAILED (%s)" % (name, error))


def percentile(values, fraction):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    # Nearest rank: the smallest value with at least `fraction` of all values at or below it.
    index = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
    return ordered[index]


def cpu_seconds(usage):
    return usage.ru_utime + usage.ru_stime


def run_timed(argv, env, timeout, output_path, usage_out=None):
    """Runs argv to completion (bounded), output to output_path; returns (rc, seconds, maxrss KiB)."""
    with open(output_path, "wb") as out:
        start = time.monotonic()
        process = spawn(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    # Sleep on a pidfd until the child exits (no polling loop to steal CPU from it), then reap
    # it with wait4 for its peak RSS.
    pidfd = os.pidfd_open(process.pid)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if not poller.poll(timeout * 1000):
            stop(process)
            raise BenchError("%s did not finish within %d s" % (" ".join(argv[:3]), timeout))
        _, status, usage = os.wait4(process.pid, 0)
    finally:
        os.close(pidfd)
    elapsed = time.monotonic() - start
    if usage_out is not None:
        usage_out.append(usage)
    process.returncode = os.waitstatus_to_exitcode(status)
    children.remove(process)
    return process.returncode, elapsed, usage.ru_maxrss


class Mock:
    def __init__(self, bin_dir, work, apps):
        seed = {
            "userPoolId": "62a1b2c3d4e5f60718293a4b",
            "accessKeys": [{"accessKeyId": ACCESS_KEY_ID, "accessKeySecret": ACCESS_KEY_SECRET}],
            "apps": [{"appId": app_id, "appName": name} for app_id, name in apps],
            "tokenExpiresIn": 7200,
        }
        seed_path = os.path.join(work, "seed.json")
        with open(seed_path, "w") as f:
            json.dump(seed, f)
        port_file = os.path.join(work, "mock.port")
        self.log = open(os.path.join(work, "mock.out"), "wb")
        self.process = spawn(
            [os.path.join(bin_dir, "genauth-mock"), "--host", "127.0.0.1", "--port", "0", "--port-file", port_file,
             "--seed", seed_path],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not (os.path.exists(port_file) and open(port_file).read().strip()):
            if self.process.poll() is not None:
                raise BenchError("genauth-mock exited with %d" % self.process.returncode)
            if time.monotonic() > deadline:
                raise BenchError("genauth-mock did not report a port within 30 s")
            time.sleep(0.05)
        self.base = "http://127.0.0.1:%d" % int(open(port_file).read().strip())

    def admin(self, method, path):
        request = urllib.request.Request(self.base + path, method=method)
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read().decode("utf-8"))

    def rotation_counts(self):
        return {app["appId"]: app.get("rotationCount", 0) for app in self.admin("GET", "/__admin/apps")["apps"]}


def app_set(prefix, count):
    return [("%s%016x" % (prefix, i), "%s-%05d" % (prefix, i)) for i in range(count)]


def write_config(path, mock, apps, state_dir, drop_dir, first_start="rotate"):
    lines = [
        "[genauth]",
        'host = "%s"' % mock.base,
        'access_key_id = "%s"' % ACCESS_KEY_ID,
        'access_key_secret = "%s"' % ACCESS_KEY_SECRET,
        "requests_per_second = 1000",
        'request_timeout = "5s"',
        "",
        "[defaults]",
        'interval = "30d"',
        "max_concurrent = 64",
        'directory = "%s"' % drop_dir,
        'mode = "0600"',
        'state_directory = "%s"' % state_dir,
        'first_start = "%s"' % first_start,
        "",
    ]
    for app_id, name in apps:
        lines += ["[[app]]", 'id = "%s"' % app_id, 'name = "%s"' % name, ""]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines))


def daemon_env(work, notify_socket=None):
    env = {key: value for key, value in os.environ.items()
           if key not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM", "CREDENTIALS_DIRECTORY",
                          "GENAUTH_ACCESS_KEY_SECRET", "SECRET_ROTATOR_CONFIG", "LISTEN_FDS", "LISTEN_PID")}
    env["RUNTIME_DIRECTORY"] = os.path.join(work, "run")
    if notify_socket:
        env["NOTIFY_SOCKET"] = notify_socket
    return env


def exposures(path):
    with open(path, "rb") as f:
        return [float(value) for value in EXPOSURE.findall(f.read())]


def tail(path, lines=5):
    with open(path, "rb") as f:
        text = f.read().decode("utf-8", "replace").strip().splitlines()
    return " | ".join(text[-lines:])


class Daemon:
    """`secret-rotator run` with a NOTIFY_SOCKET listener; start() returns seconds exec→READY=1."""

    def __init__(self, args, work, config, tag):
        self.args, self.work, self.config, self.tag = args, work, config, tag
        self.process = None

    def start(self, timeout=120.0):
        socket_path = os.path.join(self.work, "notify-%s.sock" % self.tag)
        if os.path.exists(socket_path):
            os.unlink(socket_path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        listener.bind(socket_path)
        self.output = os.path.join(self.work, "daemon-%s.out" % self.tag)
        try:
            with open(self.output, "wb") as out:
                start = time.monotonic()
                self.process = spawn(
                    [os.path.join(self.args.bin, "secret-rotator"), "run", "--config", self.config],
                    env=daemon_env(self.work, socket_path), stdout=out, stderr=subprocess.STDOUT)
            deadline = start + timeout
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BenchError("no READY=1 within %d s" % timeout)
                if self.process.poll() is not None:
                    raise BenchError("daemon exited with %d: %s" % (self.process.returncode, tail(self.output)))
                listener.settimeout(min(remaining, 0.5))
                try:
                    datagram = listener.recv(65536)
                except socket.timeout:
                    continue
                if b"READY=1" in datagram.split(b"\n"):
                    return time.monotonic() - start
        finally:
            listener.close()
            os.unlink(socket_path)

    def stop(self):
        if self.process is not None:
            stop(self.process)
            self.process = None


def proc_status(path):
    values = {}
    with open(path) as f:
        for entry in f:
            key, _, value = entry.partition(":")
            values[key] = value.strip()
    return values


def switches(pid):
    """{tid: (comm, voluntary+nonvoluntary)} over every thread of pid."""
    result = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            status = proc_status("/proc/%d/task/%s/status" % (pid, tid))
            result[tid] = (status["Name"],
                           int(status["voluntary_ctxt_switches"]) + int(status["nonvoluntary_ctxt_switches"]))
        except (FileNotFoundError, ProcessLookupError, KeyError):
            continue
    return result


def kib(value):
    return int(value.split()[0])


# -- the benchmarks --------------------------------------------------------------------------

def bench_disk(args, drop_dir):
    seconds = 1 if args.smoke else 5
    result = subprocess.run([args.durable, drop_dir, str(seconds), "8"], capture_output=True, text=True,
                            timeout=seconds + 60)
    if result.returncode != 0:
        raise BenchError(result.stderr.strip() or "durable_replace exited %d" % result.returncode)
    fields = dict(item.split("=") for item in result.stdout.split())
    fs, source, target = subprocess.run(["df", "--output=fstype,source,target", drop_dir], capture_output=True,
                                        text=True, timeout=10).stdout.strip().splitlines()[-1].split()
    rate = float(fields["per_second"])
    line("disk limit: %.0f durable replaces/s (8 writers: write, fsync, rename, fsync dir; %s s; %s on %s at %s)"
         % (rate, fields["seconds"], fs, source, target))
    return rate


def bench_sdk(args, mock, apps, work, drop_dir):
    seconds = 2 if args.smoke else 10
    apps_file = os.path.join(work, "sdk-apps.txt")
    with open(apps_file, "w") as f:
        f.writelines("%s %s\n" % app for app in apps)
    python = os.path.join(args.venv, "bin", "python")
    argv = [python, os.path.join(os.path.dirname(__file__), "sdk_loop.py"), mock.base, ACCESS_KEY_ID, ACCESS_KEY_SECRET,
            apps_file, drop_dir, str(seconds)]
    process = spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = process.communicate(timeout=seconds + 120)
    except subprocess.TimeoutExpired:
        stop(process)
        raise BenchError("SDK loop did not finish within %d s" % (seconds + 120))
    children.remove(process)
    if process.returncode != 0:
        raise BenchError("SDK loop exited %d: %s" % (process.returncode, err.decode("utf-8", "replace").strip()[-300:]))
    result = json.loads(out.decode().strip().splitlines()[-1])
    rate = result["rotations"] / result["seconds"]
    line("sdk loop: %.1f rotations/s (official genauth 5.1.0 Python SDK, one at a time, plain write without fsync; "
         "%d apps in %.1f s)" % (rate, result["rotations"], result["seconds"]))
    return rate


def rotating_pass(args, mock, work, tag, apps):
    """A first-start `run --once` pass (first_start = rotate) over `apps`; returns a dict."""
    state_dir = os.path.join(work, "state-" + tag)
    drop_dir = os.path.join(work, "drop")
    config = os.path.join(work, "rotator-%s.toml" % tag)
    write_config(config, mock, apps, state_dir, drop_dir)
    before = mock.rotation_counts()
    output = os.path.join(work, "pass-%s.out" % tag)
    timeout = 120 + len(apps) // 20
    rc, seconds, maxrss = run_timed(
        [os.path.join(args.bin, "secret-rotator"), "run", "--once", "--config", config], daemon_env(work), timeout, output)
    if rc != 0:
        raise BenchError("run --once exited %d: %s" % (rc, tail(output)))
    after = mock.rotation_counts()
    refreshed = sum(after.get(app_id, 0) - before.get(app_id, 0) for app_id, _ in apps)
    if refreshed != len(apps):
        raise BenchError("the mock saw %d refreshes for %d apps" % (refreshed, len(apps)))
    return {"config": config, "seconds": seconds, "maxrss": maxrss, "refreshed": refreshed, "output": output,
            "exposures": exposures(output), "apps": len(apps), "end": time.monotonic()}


def bench_p1(result, disk_rate, sdk_rate):
    rate = result["apps"] / result["seconds"]
    ratio_limit = "%.3f" % (rate / disk_rate) if disk_rate else "n/a"
    ratio_sdk = "%.2f" % (rate / sdk_rate) if sdk_rate else "n/a"
    line("P1 pass: %.1f apps/s; ours/limit %s; ours/SDK %s (%d apps rotated in %.2f s, requests_per_second = 1000 "
         "(the config maximum), max_concurrent = 64, refreshes seen by the mock: %d; reference: 900 apps/s, "
         "ours/SDK 1)" % (rate, ratio_limit, ratio_sdk, result["apps"], result["seconds"], result["refreshed"]))


def exposure_single(args, mock, work, app):
    repeats = 5 if args.smoke else 50
    state_dir = os.path.join(work, "state-single")
    config = os.path.join(work, "rotator-single.toml")
    write_config(config, mock, [app], state_dir, os.path.join(work, "drop"))
    values = []
    elapsed = []
    for index in range(repeats):
        output = os.path.join(work, "single-%d.out" % index)
        rc, seconds, _ = run_timed(
            [os.path.join(args.bin, "secret-rotator"), "rotate", app[1], "--config", config], daemon_env(work), 120,
            output)
        if rc != 0:
            raise BenchError("rotate exited %d: %s" % (rc, tail(output)))
        values += exposures(output)
        elapsed.append(seconds)
    return values, repeats, elapsed


def bench_exposure(single, single_count, single_elapsed, small):
    parts = []
    if single:
        parts.append("one app alone p50 %.2f ms p99 %.2f ms (%d rotations)"
                     % (percentile(single, 0.5), percentile(single, 0.99), len(single)))
    if small and small["exposures"]:
        values = small["exposures"]
        parts.append("%d apps at 64 concurrent p50 %.2f ms p99 %.2f ms (%d rotations)"
                     % (small["apps"], percentile(values, 0.5), percentile(values, 0.99), len(values)))
    if not parts:
        line("exposure: n/a (field exposure_ms not logged)")
    else:
        line("exposure: " + "; ".join(parts))
    if small:
        detail("small pass (the 1,000-app figure the issue quotes): %d apps in %.2f s = %.1f apps/s"
               % (small["apps"], small["seconds"], small["apps"] / small["seconds"]))
    if single_elapsed:
        detail("one-app `rotate` command: median %.0f ms per process, %d runs"
               % (statistics.median(single_elapsed) * 1000, single_count))


def reap(process, grace=10.0):
    """SIGTERM (SIGKILL after `grace` s) and wait4: the process's resource usage."""
    # Not Popen.poll(): it would reap the process and lose its usage.
    try:
        os.kill(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + grace
    usage = None
    while usage is None:
        pid, status, ru = os.wait4(process.pid, os.WNOHANG)
        if pid:
            usage = ru
        elif time.monotonic() > deadline:
            os.kill(process.pid, signal.SIGKILL)
            _, status, usage = os.wait4(process.pid, 0)
        else:
            time.sleep(0.05)
    process.returncode = os.waitstatus_to_exitcode(status)
    children.remove(process)
    return usage


def bench_command(args, work, name, argv, apps, reference, ok=(0,)):
    """One run of an operator command over the P1 apps: wall and CPU seconds."""
    output = os.path.join(work, "%s.out" % name.replace(" ", "-"))
    usage = []
    rc, seconds, _ = run_timed([os.path.join(args.bin, "secret-rotator")] + argv, daemon_env(work), 120 + apps // 20,
                               output, usage)
    if rc not in ok:
        raise BenchError("%s exited %d: %s" % (name, rc, tail(output)))
    line("%s: %.2f s wall, %.2f CPU s over %d apps (reference: %s)"
         % (name, seconds, cpu_seconds(usage[0]), apps, reference))


def bench_p3(args, work, p1):
    """P3, then `rotate --all --yes` handed to that daemon: exec to the line saying so."""
    daemon = Daemon(args, work, p1["config"], "p3")
    try:
        seconds = daemon.start()
        rss = kib(proc_status("/proc/%d/status" % daemon.process.pid)["RssAnon"])
        line("P3 start: %.0f ms exec to READY=1 (%d apps with state; reference: 150 ms)" % (seconds * 1000, p1["apps"]))
        detail("RssAnon at READY=1: %.1f MiB (%d apps, every record loaded, no step run yet; reference: 24 MiB idle "
               "at 10,000 apps)" % (rss / 1024, p1["apps"]))
        try:
            bench_handoff(args, work, p1)
        except Exception as error:
            fail("rotate --all handoff", error)
    finally:
        daemon.stop()


def bench_handoff(args, work, p1):
    """Exec of `rotate --all --yes` to its 'asked the running daemon' line (requests written,
    daemon signalled); the command is then stopped (it would wait for every rotation) and
    the daemon with it, so the apps' rotations are not part of any figure."""
    process = spawn([os.path.join(args.bin, "secret-rotator"), "rotate", "--all", "--yes", "--config", p1["config"]],
                    env=daemon_env(work), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    start = time.monotonic()
    seen = None
    try:
        poller = select.poll()
        poller.register(process.stdout, select.POLLIN)
        buffered = b""
        deadline = start + 120
        while seen is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError("no 'asked the running daemon' line within 120 s")
            if not poller.poll(left * 1000):
                continue
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                raise BenchError("rotate --all exited before handing the requests over")
            buffered += chunk
            if b"asked the running daemon" in buffered:
                seen = time.monotonic() - start
    finally:
        usage = reap(process)
    line("rotate --all handoff: %.2f s exec to the requests handed to the daemon, %.2f CPU s (%d apps; reference: "
         "2 s)" % (seen, cpu_seconds(usage), p1["apps"]))


def bench_p2(args, mock, work, small):
    idle_seconds = 5 if args.smoke else 30
    # Each rotation is read back once a settle period (2 × request_timeout + 5 s = 15 s) after
    # it; let those checks come due and do them with a second pass, so that nothing is due for
    # 30 days when the daemon starts.
    settle = 15.0 + 1.0
    wait = small["end"] + settle - time.monotonic()
    if wait > 0:
        time.sleep(wait)
    output = os.path.join(work, "settle.out")
    rc, _, _ = run_timed([os.path.join(args.bin, "secret-rotator"), "run", "--once", "--config", small["config"]],
                         daemon_env(work), 120 + small["apps"] // 20, output)
    if rc != 0:
        raise BenchError("settle pass exited %d: %s" % (rc, tail(output)))
    daemon = Daemon(args, work, small["config"], "p2")
    try:
        daemon.start()
        pid = daemon.process.pid
        time.sleep(1.0)  # let the start-up work (status, first loop turn) end
        first = switches(pid)
        start = time.monotonic()
        samples = []
        while time.monotonic() - start < idle_seconds:
            status = proc_status("/proc/%d/status" % pid)
            samples.append((kib(status["RssAnon"]), kib(status["RssFile"]), int(status["Threads"])))
            time.sleep(0.5)
        last = switches(pid)
        elapsed = time.monotonic() - start
        if daemon.process.poll() is not None:
            raise BenchError("daemon exited during the idle window")
    finally:
        daemon.stop()
    total = sum(count for _, count in last.values()) - sum(first.get(tid, (None, 0))[1] for tid in last)
    rss_anon = max(s[0] for s in samples)
    rss_file = max(s[1] for s in samples)
    threads = max(s[2] for s in samples)
    line("P2 idle: RssAnon %.1f MiB, RssFile %.1f MiB, %d threads, %.2f context switches/s (%d apps, nothing due, "
         "%.0f s, no watchdog; reference: RssAnon 8 MiB at 1,000 apps, 0 switches/s)"
         % (rss_anon / 1024, rss_file / 1024, threads, total / elapsed, small["apps"], elapsed))
    busy = []
    for tid, (name, count) in sorted(last.items(), key=lambda item: int(item[0])):
        delta = count - first.get(tid, (name, 0))[1]
        if delta:
            busy.append("%s[%s] %d" % (name, tid, delta))
    detail("switches by thread over the window: " + (", ".join(busy) if busy else "none"))


def bench_memory(big, small):
    slope = (big["maxrss"] - small["maxrss"]) / (big["apps"] - small["apps"])
    line("memory slope: %.2f KiB per app (peak RSS %.1f MiB at %d apps - %.1f MiB at %d apps, / %d; reference: "
         "2 KiB per app)"
         % (slope, big["maxrss"] / 1024, big["apps"], small["maxrss"] / 1024, small["apps"],
            big["apps"] - small["apps"]))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--durable", required=True)
    parser.add_argument("--venv", required=True)
    parser.add_argument("--apps", type=int)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    big_count = args.apps or (200 if args.smoke else 10000)
    small_count = 1000 if big_count >= 2000 else max(1, big_count // 4)
    if big_count <= small_count:
        raise SystemExit("--apps must be at least 2")
    # One held lock file per app; the daemon raises its own soft limit, do the same for children.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    work = args.work
    drop_dir = os.path.join(work, "drop")
    os.makedirs(drop_dir, mode=0o750)
    os.makedirs(os.path.join(work, "run"), mode=0o700)
    big_apps = app_set("b1", big_count)
    small_apps = app_set("b2", small_count)
    single_app = app_set("b3", 1)[0]
    detail("apps %d (small pass %d), work directory %s, binaries %s, %d CPUs"
           % (big_count, small_count, work, args.bin, os.cpu_count()))

    disk_rate = sdk_rate = None
    try:
        disk_rate = bench_disk(args, drop_dir)
    except Exception as error:
        fail("disk limit", error)
    mock = Mock(args.bin, work, big_apps + small_apps + [single_app])
    try:
        sdk_rate = bench_sdk(args, mock, big_apps, work, drop_dir)
    except Exception as error:
        fail("sdk loop", error)
    big = small = None
    try:
        big = rotating_pass(args, mock, work, "big", big_apps)
        bench_p1(big, disk_rate, sdk_rate)
    except Exception as error:
        fail("P1 pass", error)
    if big:
        for name, argv, reference, ok in [
            ("status", ["status", "--config", big["config"]], "0.5 s", (0, 1, 2)),
            ("check-config", ["check-config", "--config", big["config"]], "0.5 s", (0,)),
        ]:
            try:
                bench_command(args, work, name, argv, big["apps"], reference, ok)
            except Exception as error:
                fail(name, error)
        try:
            bench_p3(args, work, big)
        except Exception as error:
            fail("P3 start", error)
    try:
        small = rotating_pass(args, mock, work, "small", small_apps)
    except Exception as error:
        fail("small pass (exposure, P2, memory slope)", error)
    single = []
    single_count = 0
    single_elapsed = []
    try:
        single, single_count, single_elapsed = exposure_single(args, mock, work, single_app)
    except Exception as error:
        fail("exposure (one app)", error)
    bench_exposure(single, single_count, single_elapsed, small)
    if small:
        try:
            bench_p2(args, mock, work, small)
        except Exception as error:
            fail("P2 idle", error)
    if big and small:
        bench_memory(big, small)
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    try:
        main()
    finally:
        cleanup()
