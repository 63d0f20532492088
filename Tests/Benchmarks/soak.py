#!/usr/bin/env python3
"""Memory per step: does a long-running daemon grow with the work it does?

Runs `secret-rotator run` against one genauth-mock on loopback with three kinds of apps, so that
every kind of step happens many times over:
  - `ok-*`     rotate apps with a short interval: refreshes, writes, settle reads (successes);
  - `fail-*`   rotate apps whose refresh the mock answers with HTTP 503 (failures, backoff);
  - `read-*`   follow apps polling GenAuth on a short interval (verify and fetch reads).
Steps are counted from the daemon's own debug lines (one per GenAuth call, success or failure),
not from the clock. RssAnon (/proc/PID/status) is read at `--baseline` steps and at `--steps`
steps; the figure is the growth between them per step, in bytes.

    soak.py --bin DIR [--steps N] [--baseline N] [--max-bytes-per-step B] [--apps N]

Exit 0 when the growth per step is within --max-bytes-per-step (default: no bound, figures
only), 1 when it is not or the soak could not run, 64 for a bad command line. Every wait is
bounded; every process started here dies with it (PR_SET_PDEATHSIG).
"""
import argparse
import ctypes
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

ACCESS_KEY_ID = "soak-access-key-id"
ACCESS_KEY_SECRET = "soak-access-key-secret-0123456789"
PR_SET_PDEATHSIG = 1
STEP_LINES = (b"GenAuth call succeeded", b"GenAuth call failed")


def die_with_parent():
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class SoakError(Exception):
    pass


def wait_for_file(path, process, seconds):
    deadline = time.monotonic() + seconds
    while not (os.path.exists(path) and open(path).read().strip()):
        if process.poll() is not None:
            raise SoakError("%s exited with %d" % (process.args[0], process.returncode))
        if time.monotonic() > deadline:
            raise SoakError("%s did not appear within %d s" % (path, seconds))
        time.sleep(0.05)


def rss_anon_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    raise SoakError("no RssAnon for pid %d" % pid)


class StepCounter:
    """Counts the daemon's per-call debug lines in its output file, reading only what is new."""

    def __init__(self, path):
        self.path, self.offset, self.count, self.partial = path, 0, 0, b""

    def read(self):
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        self.offset += len(chunk)
        lines = (self.partial + chunk).split(b"\n")
        self.partial = lines.pop()
        self.count += sum(1 for entry in lines if any(marker in entry for marker in STEP_LINES))
        return self.count


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", required=True, help="directory with secret-rotator and genauth-mock")
    parser.add_argument("--steps", type=int, default=10000)
    parser.add_argument("--baseline", type=int, default=1000)
    parser.add_argument("--apps", type=int, default=20, help="apps of each kind")
    parser.add_argument("--max-bytes-per-step", type=float, default=None)
    parser.add_argument("--timeout", type=float, default=900, help="seconds the whole soak may take")
    parser.add_argument("--wrap", default="",
                        help="a command to run the daemon under, e.g. 'heaptrack -o FILE' (RssAnon is then the wrapper's)")
    args = parser.parse_args()
    if not (0 < args.baseline < args.steps) or args.apps < 1:
        parser.error("need 0 < --baseline < --steps and --apps >= 1")

    work = tempfile.mkdtemp(prefix="secret-rotator-soak.")
    os.chmod(work, 0o700)
    children = []

    def spawn(argv, **kwargs):
        # Its own process group, so a --wrap program's child (the daemon) is stopped with it.
        process = subprocess.Popen(argv, preexec_fn=die_with_parent, start_new_session=True, **kwargs)
        children.append(process)
        return process

    try:
        kinds = {kind: [("%s%020x" % (kind, i), "%s-%03d" % (kind, i)) for i in range(args.apps)]
                 for kind in ("ok", "fail", "read")}
        seed = {
            "userPoolId": "62a1b2c3d4e5f60718293a4b",
            "accessKeys": [{"accessKeyId": ACCESS_KEY_ID, "accessKeySecret": ACCESS_KEY_SECRET}],
            "apps": [{"appId": i, "appName": n} for apps in kinds.values() for i, n in apps],
            "tokenExpiresIn": 7200,
        }
        with open(os.path.join(work, "seed.json"), "w") as f:
            json.dump(seed, f)
        port_file = os.path.join(work, "mock.port")
        mock = spawn([os.path.join(args.bin, "genauth-mock"), "--host", "127.0.0.1", "--port", "0",
                      "--port-file", port_file, "--seed", os.path.join(work, "seed.json")],
                     stdout=open(os.path.join(work, "mock.out"), "wb"), stderr=subprocess.STDOUT)
        wait_for_file(port_file, mock, 30)
        base = "http://127.0.0.1:%d" % int(open(port_file).read().strip())
        for app_id, _ in kinds["fail"]:
            body = json.dumps({"endpoint": "refresh-application-secret", "appId": app_id, "count": 10 ** 9,
                               "fault": "http-status", "status": 503}).encode()
            request = urllib.request.Request(base + "/__admin/faults", data=body, method="POST",
                                             headers={"content-type": "application/json"})
            urllib.request.urlopen(request, timeout=10).read()

        drop = os.path.join(work, "secrets")
        os.mkdir(drop, 0o700)
        lines = [
            "[genauth]", 'host = "%s"' % base, 'access_key_id = "%s"' % ACCESS_KEY_ID,
            'access_key_secret = "%s"' % ACCESS_KEY_SECRET, "requests_per_second = 1000", 'request_timeout = "1s"', "",
            "[defaults]", 'interval = "1s"', 'jitter = "0s"', "max_concurrent = 16", 'verify_interval = "1s"',
            'retry = { initial = "100ms", max = "500ms", multiplier = 2.0 }',
            'directory = "%s"' % drop, 'mode = "0600"', 'state_directory = "%s"' % os.path.join(work, "state"),
            'first_start = "rotate"', "",
        ]
        for kind, apps in kinds.items():
            for app_id, name in apps:
                lines += ["[[app]]", 'id = "%s"' % app_id, 'name = "%s"' % name]
                if kind == "read":
                    lines += ['action = "follow"']
                lines += [""]
        config = os.path.join(work, "rotator.toml")
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines))

        env = {k: v for k, v in os.environ.items()
               if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM", "CREDENTIALS_DIRECTORY",
                            "GENAUTH_ACCESS_KEY_SECRET", "SECRET_ROTATOR_CONFIG")}
        env["RUNTIME_DIRECTORY"] = os.path.join(work, "run")
        env["SECRET_ROTATOR_MINIMUM_INTERVAL"] = "1s"
        output = os.path.join(work, "daemon.out")
        started = time.monotonic()
        daemon = spawn(args.wrap.split() + [os.path.join(args.bin, "secret-rotator"), "run", "--verbose", "--config", config],
                       env=env, stdout=open(output, "wb"), stderr=subprocess.STDOUT)
        counter = StepCounter(output)
        deadline = started + args.timeout
        samples = {}
        for target in (args.baseline, args.steps):
            while counter.read() < target:
                if daemon.poll() is not None:
                    raise SoakError("the daemon exited with %d" % daemon.returncode)
                if time.monotonic() > deadline:
                    raise SoakError("only %d of %d steps within %d s" % (counter.count, target, args.timeout))
                time.sleep(0.2)
            samples[target] = (counter.count, rss_anon_kib(daemon.pid), time.monotonic() - started)
        (steps0, rss0, t0), (steps1, rss1, t1) = samples[args.baseline], samples[args.steps]
        per_step = (rss1 - rss0) * 1024.0 / (steps1 - steps0)
        print("soak: %+.0f bytes per step (RssAnon %.1f MiB after %d steps, %.1f MiB after %d steps; "
              "%d apps rotating, %d failing, %d following; %.0f steps/s)"
              % (per_step, rss0 / 1024.0, steps0, rss1 / 1024.0, steps1, args.apps, args.apps, args.apps,
                 (steps1 - steps0) / max(t1 - t0, 1e-6)), flush=True)
        if args.max_bytes_per_step is not None and per_step > args.max_bytes_per_step:
            print("soak: FAILED: memory grows by more than %.0f bytes per step" % args.max_bytes_per_step, flush=True)
            return 1
        return 0
    except SoakError as error:
        print("soak: FAILED (%s)" % error, flush=True)
        return 1
    finally:
        for process in children:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=10)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        subprocess.run(["rm", "-rf", work], check=False)


if __name__ == "__main__":
    sys.exit(main())
