#!/usr/bin/env python3
"""Fleet acceptance test; run it through Tests/Fleet/run.sh (see README.md there).

Real processes only: a 3-member etcd cluster on 127.0.0.1 (free ports picked per run, fresh
data directories, stopped and restarted by PID), one genauth-mock, 3 candidate rotators and 5
followers, each with its own config, state directory, drop directory, runtime directory and
log file. Every wait is bounded by a deadline and polls something observable; every process
started here is stopped on exit, on failure and on SIGTERM/SIGINT/SIGHUP (and gets SIGKILL
from the kernel if this script dies first: PR_SET_PDEATHSIG, so children are spawned from the
main thread only: the signal follows the thread that forked, not the process).

Prints one PASS or FAIL line per acceptance check, with its figures; exits 1 if any failed.
"""
import argparse
import base64
import ctypes
import json
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import ssl
import time
import urllib.error
import urllib.request

# --- the daemon's contract, in one place -------------------------------------------------------
PREFIX = "/secret-rotator/fleet-test"
ELECTION_NAME = PREFIX + "/election/default"   # etcd v3election name the candidates campaign on
APPS_KEY = PREFIX + "/apps/"                   # + app id: {"version", "rotated_at", "host"}
INTENT_KEY = PREFIX + "/intent/"               # + app id: the fencing record before a refresh
LEASE_TTL = 2.0                                # [cluster] lease_ttl (etcd's minimum)
B_INTERVAL = 10.0                              # app "b" on the candidates
SLACK = 2.0                                    # scheduling slack on top of TTL + 2 s
REQUEST_TIMEOUT = 2.0                          # [genauth] request_timeout of every daemon
SETTLE = 2 * REQUEST_TIMEOUT + 5.0             # the engine's settle period (EnginePolicy.settlePeriod)
# A kill that lands inside a rotation (between the leader's fencing transaction and its notice)
# leaves an intent: the new leader reads GenAuth at once and, if nothing changed, again a settle
# period after the intent before it rotates (the old request may still land; rotating before
# would be a second rotation). So a gap may reach the interval plus the longer of the failover
# and the settle period.
LATE_BOUND = B_INTERVAL + max(LEASE_TTL + 2.0, SETTLE) + SLACK
FAILOVER_BOUND = LEASE_TTL + 2.0               # kill -> another host holds the election
PROPAGATION_BOUND = 1.0                        # p99, rotation durable on the leader -> 5 followers
MINIMUM_INTERVAL_ENV = {"SECRET_ROTATOR_MINIMUM_INTERVAL": "1s"}

EV_LEADER = "event=cluster_leader"             # this host won the election
EV_LEASE_LOST = "event=cluster_lease_lost"
EV_FENCED = "event=cluster_fenced"             # a refresh refused: the election key is gone
EV_WATCH_DOWN = "event=cluster_watch_down"
EV_WATCH_UP = "event=cluster_watch_up"
EV_HAND_OVER = "event=cluster_hand_over"      # a new leader found an unfinished rotation (informational)
EV_ROTATED = "event=rotated"                   # any secret written (a refresh, a fetch, ...)
# The messages of a refresh of ours (answered, or reconciled after an unknown outcome); "secret fetched ..."
# and "secret changed upstream ..." are a follower's writes.
REFRESH_MESSAGES = (" secret rotated and written", " secret reconciled and written")

STATUS_CLUSTER = "cluster"                     # top-level object of `status --json`
ST_ROLE, ST_LEADER, ST_LEASE_HELD, ST_WATCH = "role", "leader", "leaseHeld", "watch"
ROLE_LEADER, ROLE_CANDIDATE, ROLE_NO_LEASE, ROLE_FOLLOWER = "leader", "candidate", "no-lease", "follower"
WATCH_OK, WATCH_POLLING = "watching", "polling"


def lease_held(cluster):
    """`status --json` cluster.leaseHeld (a boolean)."""
    return cluster.get(ST_LEASE_HELD) is True


ACCESS_KEY_ID = "fleet-access-key-id"
ACCESS_KEY_SECRET = "fleet-access-key-secret-0123456789abcdef"
USER_POOL_ID = "62a1b2c3d4e5f60718293a4b"
APP_A = ("64f1ee7000000000000000a1", "a")      # rotated only by `secret-rotator rotate a`
APP_B = ("64f1ee7000000000000000b2", "b")      # rotated every B_INTERVAL by the leader
CANDIDATES, FOLLOWERS = 3, 5
ETCD_MEMBERS = 3
# etcd runs as the README sets it up: TLS with client certificates required, access control on
# (`auth enable`), and the daemons' user holding a role with readwrite on PREFIX + "/" only.
# This script's own gateway calls go as root. Passwords are made per run and never logged.
ETCD_USER, ETCD_ROLE = "secret-rotator", "secret-rotator-fleet"

POLL_MOCK = 0.02      # the mock recorder's period
POLL_FILES = 0.0015   # the output watcher's period
POLL_ELECTION = 0.05  # failover timing
PR_SET_PDEATHSIG = 1

children = []
results = []  # (name, ok, detail)
verbose = False


class FleetError(Exception):
    pass


# --- processes -----------------------------------------------------------------------------------

def die_with_parent():
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def spawn(argv, **kwargs):
    assert threading.current_thread() is threading.main_thread(), "PR_SET_PDEATHSIG follows the forking thread"
    process = subprocess.Popen(argv, preexec_fn=die_with_parent, **kwargs)
    children.append(process)
    return process


def reap(process, timeout=10.0):
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
    if process in children:
        children.remove(process)


def kill_now(process):
    """SIGKILL (which also ends a stopped process) and reap: a crash, as far as the victim can tell."""
    if process.poll() is None:
        process.kill()
    reap(process)


def cleanup():
    # SIGCONT first: a stopped process does not act on SIGTERM. Signal everyone, then reap.
    live = [p for p in children if p.poll() is None]
    for process in live:
        try:
            process.send_signal(signal.SIGCONT)
            process.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5.0
    for process in live:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
    for process in list(children):
        try:
            process.wait(timeout=10)
        except Exception:
            pass
    children.clear()


def on_signal(signum, _frame):
    print("fleet: stopped by signal %d; stopping every process started here" % signum, flush=True)
    raise SystemExit(128 + signum)


# --- output --------------------------------------------------------------------------------------

def line(text):
    print(text, flush=True)


def detail(text):
    print("  " + text, flush=True)


def check(name, ok, text):
    results.append((name, bool(ok), text))
    line("%s %s: %s" % ("PASS" if ok else "FAIL", name, text))
    return ok


def percentile(values, fraction):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))  # nearest rank
    return ordered[index]


def ms(seconds):
    return "inf" if seconds == float("inf") else "%.0f ms" % (seconds * 1000)


def figures(values):
    if not values:
        return "no samples"
    return "p50 %s, p99 %s, max %s, min %s (n=%d)" % (
        ms(percentile(values, 0.5)), ms(percentile(values, 0.99)), ms(max(values)), ms(min(values)), len(values))


def gap_range(gaps):
    return "min %.1f s, max %.1f s" % (min(gaps), max(gaps)) if gaps else "none (fewer than 2 rotations)"


def wait_until(what, predicate, timeout, period=0.05):
    """Polls predicate() until it returns a truthy value or timeout; returns (value, seconds)."""
    start = time.monotonic()
    deadline = start + timeout
    while True:
        value = predicate()
        if value:
            return value, time.monotonic() - start
        if time.monotonic() >= deadline:
            raise FleetError("%s: not within %.1f s" % (what, timeout))
        time.sleep(min(period, max(0.0, deadline - time.monotonic())))


def sleep_until(when):
    """Scheduling, not waiting for a condition: until a monotonic instant chosen by the test."""
    remaining = when - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)


def tail(path, lines=8):
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace").strip().splitlines()
    except FileNotFoundError:
        return "(no file)"
    return "\n    ".join(text[-lines:])


def free_ports(count):
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def b64(text):
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def unb64(text):
    return base64.b64decode(text) if text else b""


def prefix_end(key):
    raw = bytearray(key.encode())
    raw[-1] += 1
    return bytes(raw)


# --- etcd ----------------------------------------------------------------------------------------

def make_certificates(directory):
    """A CA, a member certificate for 127.0.0.1 with the serverAuth and clientAuth extended key
    usages (etcd's gateway dials its own member with it, as a client), and a client certificate
    without a CommonName (with access control on, the gateway refuses one that has a CN). The
    daemons and this script share the client certificate; etcd knows them apart by user."""
    os.makedirs(directory, mode=0o700)
    script = """set -e
key() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $1.key -out $1.csr -subj "$2" 2>/dev/null; }
sign() { openssl x509 -req -in $1.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out $1.pem -days 2 -extfile $1.ext 2>/dev/null; }
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=fleet-etcd-ca 2>/dev/null
key server /CN=fleet-etcd-member
printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth,clientAuth\\n' > server.ext
sign server
key client /O=secret-rotator
printf 'basicConstraints=CA:FALSE\\nextendedKeyUsage=clientAuth\\n' > client.ext
sign client
chmod 0600 *.key
"""
    done = subprocess.run(["/bin/sh", "-c", script], cwd=directory, capture_output=True, timeout=60)
    if done.returncode != 0:
        raise FleetError("openssl failed: %s" % done.stderr.decode(errors="replace"))
    path = lambda name: os.path.join(directory, name)
    return {"ca": path("ca.pem"), "server_cert": path("server.pem"), "server_key": path("server.key"),
            "cert": path("client.pem"), "key": path("client.key")}


class EtcdUnavailable(Exception):
    pass


class Member:
    def __init__(self, index, client_port, peer_port, data_dir, log_path):
        self.name = "m%d" % index
        self.client = "https://127.0.0.1:%d" % client_port
        self.peer = "http://127.0.0.1:%d" % peer_port
        self.data_dir = data_dir
        self.log_path = log_path
        self.process = None

    def alive(self):
        return self.process is not None and self.process.poll() is None


class Etcd:
    """A 3-member cluster on loopback. Restarting a member reuses its data directory: etcd then
    ignores the --initial-cluster* flags (the member is already bootstrapped)."""

    def __init__(self, work, count=ETCD_MEMBERS):
        ports = free_ports(2 * count)
        root = os.path.join(work, "etcd")
        os.makedirs(root, mode=0o700)
        self.members = [Member(i + 1, ports[2 * i], ports[2 * i + 1], os.path.join(root, "m%d" % (i + 1)),
                               os.path.join(root, "m%d.log" % (i + 1))) for i in range(count)]
        self.initial_cluster = ",".join("%s=%s" % (m.name, m.peer) for m in self.members)
        self.token = "fleet-%d" % os.getpid()
        self.tls = make_certificates(os.path.join(root, "tls"))
        self.ssl = ssl.create_default_context(cafile=self.tls["ca"])
        self.ssl.load_cert_chain(self.tls["cert"], self.tls["key"])
        self.root_password = base64.b64encode(os.urandom(18)).decode()
        self.user_password = base64.b64encode(os.urandom(18)).decode()
        self.auth_token = None   # root's token for this script's calls; None before `auth enable`
        self.auth_enabled = False

    @property
    def endpoints(self):
        return [m.client for m in self.members]

    def start(self, member):
        log = open(member.log_path, "ab")
        try:
            member.process = spawn([
                "etcd", "--name", member.name, "--data-dir", member.data_dir,
                "--listen-peer-urls", member.peer, "--initial-advertise-peer-urls", member.peer,
                "--listen-client-urls", member.client, "--advertise-client-urls", member.client,
                "--initial-cluster", self.initial_cluster, "--initial-cluster-state", "new",
                "--initial-cluster-token", self.token, "--logger", "zap", "--log-outputs", "stderr",
                "--client-cert-auth", "--trusted-ca-file", self.tls["ca"],
                "--cert-file", self.tls["server_cert"], "--key-file", self.tls["server_key"],
            ], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            log.close()

    def start_all(self):
        for member in self.members:
            self.start(member)

    def kill(self, member):
        kill_now(member.process)
        member.process = None

    def kill_all(self):
        for member in self.members:
            if member.process is not None:
                member.process.kill()
        for member in self.members:
            if member.process is not None:
                reap(member.process)
                member.process = None

    def etcdctl(self, *args, user=None):
        """etcdctl against every member with this script's client certificate; the output."""
        command = ["etcdctl", "--endpoints=" + ",".join(self.endpoints), "--cacert=" + self.tls["ca"],
                   "--cert=" + self.tls["cert"], "--key=" + self.tls["key"]]
        if user:
            command.append("--user=" + user)
        done = subprocess.run(command + list(args), env=dict(os.environ, ETCDCTL_API="3"), capture_output=True,
                              timeout=30, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise FleetError("etcdctl %s failed: %s" % (args[0], done.stderr.decode(errors="replace").strip()))
        return done.stdout.decode()

    def enable_access_control(self):
        """The README's set-up: root, a role with readwrite on PREFIX/ only, the daemons' user
        holding it, `auth enable`. Passwords go to etcdctl on stdin (never on a command line)."""
        for user, password in (("root", self.root_password), (ETCD_USER, self.user_password)):
            done = subprocess.run(["etcdctl", "--endpoints=" + ",".join(self.endpoints), "--cacert=" + self.tls["ca"],
                                   "--cert=" + self.tls["cert"], "--key=" + self.tls["key"], "user", "add", user,
                                   "--interactive=false"], input=(password + "\n").encode(), capture_output=True,
                                  env=dict(os.environ, ETCDCTL_API="3"), timeout=30)
            if done.returncode != 0:
                raise FleetError("etcdctl user add %s failed: %s" % (user, done.stderr.decode(errors="replace").strip()))
        self.etcdctl("role", "add", ETCD_ROLE)
        self.etcdctl("role", "grant-permission", ETCD_ROLE, "--prefix=true", "readwrite", PREFIX + "/")
        self.etcdctl("user", "grant-role", ETCD_USER, ETCD_ROLE)
        self.etcdctl("auth", "enable")
        self.auth_enabled = True

    def authenticate(self, endpoint, timeout):
        answer = self.post(endpoint, "/v3/auth/authenticate", {"name": "root", "password": self.root_password},
                           timeout, authenticated=False)
        if not answer.get("token"):
            raise EtcdUnavailable("%s: root could not authenticate: %s" % (endpoint, answer.get("error")))
        self.auth_token = answer["token"]

    def post(self, endpoint, path, body, timeout=1.0, authenticated=True):
        """One gateway call as root (once access control is on): a token is fetched when none is
        held, and fetched again once when etcd says it is invalid (simple tokens expire, and a
        member restarted from its data directory may not know it)."""
        if authenticated and self.auth_enabled and self.auth_token is None:
            self.authenticate(endpoint, timeout)
        answer = self.post_once(endpoint, path, body, timeout, self.auth_token if authenticated else None)
        if authenticated and self.auth_enabled and "invalid auth token" in str(answer.get("error", "")):
            self.authenticate(endpoint, timeout)
            answer = self.post_once(endpoint, path, body, timeout, self.auth_token)
        return answer

    def post_once(self, endpoint, path, body, timeout, token):
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = token
        request = urllib.request.Request(endpoint + path, data=json.dumps(body).encode(), method="POST", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=self.ssl) as answer:
                return json.loads(answer.read().decode())
        except urllib.error.HTTPError as error:
            try:
                return json.loads(error.read().decode())
            except ValueError:
                raise EtcdUnavailable("%s%s: HTTP %d" % (endpoint, path, error.code))
        except (OSError, ValueError) as error:
            raise EtcdUnavailable("%s%s: %s" % (endpoint, path, error))

    def call(self, path, body, timeout=1.0):
        """The first live member that answers without an error."""
        last = "no member running"
        for member in self.members:
            if not member.alive():
                continue
            try:
                answer = self.post(member.client, path, body, timeout)
            except EtcdUnavailable as error:
                last = str(error)
                continue
            if "error" in answer and "header" not in answer and "kv" not in answer:
                last = "%s: %s" % (member.name, answer.get("error") or answer.get("message"))
                continue
            return answer
        raise EtcdUnavailable(last)

    def serving(self, member):
        """The member answers a linearizable read (it has a leader and a quorum)."""
        if not member.alive():
            return False
        try:
            answer = self.post(member.client, "/v3/kv/range", {"key": b64("fleet-health")}, timeout=1.0)
        except EtcdUnavailable:
            return False
        return "header" in answer and "error" not in answer

    def wait_serving(self, members, timeout):
        return wait_until("etcd members %s serving" % ",".join(m.name for m in members),
                          lambda: all(self.serving(m) for m in members), timeout, period=0.1)[1]

    def member_status(self, member):
        answer = self.post(member.client, "/v3/maintenance/status", {}, timeout=1.0)
        return answer.get("header", {}).get("member_id"), answer.get("leader")

    def raft_leader(self):
        """The member that is raft leader, asked of every live member (they must agree), or None."""
        ids = {}
        leaders = set()
        for member in self.members:
            if not member.alive():
                continue
            try:
                own, leader = self.member_status(member)
            except EtcdUnavailable:
                continue
            ids[own] = member
            if leader and leader != "0":
                leaders.add(leader)
        if len(leaders) != 1:
            return None
        return ids.get(leaders.pop())

    def election_leader(self):
        """The host holding ELECTION_NAME, or None (nobody leads, or etcd unreachable)."""
        try:
            answer = self.call("/v3/election/leader", {"name": b64(ELECTION_NAME)}, timeout=0.5)
        except EtcdUnavailable:
            return None
        kv = answer.get("kv")
        if not kv:
            return None
        raw = unb64(kv.get("value"))
        try:
            value = json.loads(raw)
            return value.get("host") if isinstance(value, dict) else str(value)
        except ValueError:
            return raw.decode("utf-8", "replace")

    def get(self, key):
        try:
            answer = self.call("/v3/kv/range", {"key": b64(key)})
        except EtcdUnavailable:
            return None
        kvs = answer.get("kvs") or []
        return unb64(kvs[0].get("value")) if kvs else None

    def range_prefix(self, prefix):
        answer = self.call("/v3/kv/range", {"key": b64(prefix), "range_end": b64(prefix_end(prefix))})
        return {unb64(kv["key"]).decode(): unb64(kv.get("value")) for kv in answer.get("kvs") or []}


# --- the mock ------------------------------------------------------------------------------------

class Mock:
    def __init__(self, bin_dir, work, apps):
        seed = {
            "userPoolId": USER_POOL_ID,
            "accessKeys": [{"accessKeyId": ACCESS_KEY_ID, "accessKeySecret": ACCESS_KEY_SECRET}],
            "apps": [{"appId": app_id, "appName": name} for app_id, name in apps],
            "tokenExpiresIn": 7200,
        }
        seed_path = os.path.join(work, "seed.json")
        with open(seed_path, "w") as f:
            json.dump(seed, f)
        port_file = os.path.join(work, "mock.port")
        with open(os.path.join(work, "mock.out"), "wb") as log:
            self.process = spawn(
                [os.path.join(bin_dir, "genauth-mock"), "--host", "127.0.0.1", "--port", "0", "--port-file", port_file,
                 "--seed", seed_path], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        def port():
            if self.process.poll() is not None:
                raise FleetError("genauth-mock exited with %d" % self.process.returncode)
            try:
                return int(open(port_file).read().strip())
            except (FileNotFoundError, ValueError):
                return None
        self.base = "http://127.0.0.1:%d" % wait_until("genauth-mock port file", port, 30)[0]

    def admin(self, path, timeout=10):
        with urllib.request.urlopen(self.base + path, timeout=timeout) as answer:
            return json.loads(answer.read().decode("utf-8"))

    def apps(self, timeout=10):
        return self.admin("/__admin/apps", timeout)["apps"]

    def current(self):
        """{app id: (rotationCount, secret)} now."""
        return {app["appId"]: (app.get("rotationCount", 0), app.get("secret")) for app in self.apps()}

    def issued(self):
        answer = self.admin("/__admin/issued")
        return set(answer.get("secrets", [])) | set(answer.get("tokens", [])) | set(answer.get("accessKeySecrets", []))


class Recorder(threading.Thread):
    """Polls the mock's admin API every POLL_MOCK: every (rotationCount, secret) each app goes
    through, with the monotonic time it was first seen (the mock keeps no history itself)."""

    def __init__(self, mock):
        super().__init__(daemon=True, name="mock-recorder")
        self.mock = mock
        self.cond = threading.Condition()
        self.history = {}
        self.halt = threading.Event()
        self.errors = 0

    def run(self):
        while not self.halt.is_set():
            try:
                apps = self.mock.apps(timeout=2)
            except Exception:
                self.errors += 1
                self.halt.wait(POLL_MOCK)
                continue
            now = time.monotonic()
            with self.cond:
                changed = False
                for app in apps:
                    entries = self.history.setdefault(app["appId"], [])
                    entry = (now, app.get("rotationCount", 0), app.get("secret"))
                    if not entries or entries[-1][1:] != entry[1:]:
                        entries.append(entry)
                        changed = True
                if changed:
                    self.cond.notify_all()
            self.halt.wait(POLL_MOCK)

    def count(self, app_id):
        with self.cond:
            entries = self.history.get(app_id)
            return entries[-1][1] if entries else 0

    def rotations(self, app_id, since=float("-inf")):
        """Monotonic times of each rotation seen (a jump of k in one poll counts k at that time)."""
        with self.cond:
            entries = list(self.history.get(app_id, []))
        times = []
        for previous, entry in zip(entries, entries[1:]):
            for _ in range(max(0, entry[1] - previous[1])):
                times.append(entry[0])
        return [t for t in times if t >= since]

    def last_rotation(self, app_id):
        times = self.rotations(app_id)
        return times[-1] if times else None

    def wait_count_above(self, app_id, count, timeout):
        with self.cond:
            return self.cond.wait_for(lambda: self.history.get(app_id, [(0, 0, None)])[-1][1] > count, timeout)

    def secrets(self):
        with self.cond:
            return {entry[2] for entries in self.history.values() for entry in entries if entry[2]}


class FileWatcher(threading.Thread):
    """Reads a set of output files every POLL_FILES and records when each content was first seen."""

    def __init__(self, paths):
        super().__init__(daemon=True, name="file-watcher")
        self.paths = list(paths)
        self.lock = threading.Lock()
        self.seen = {path: {} for path in self.paths}
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            for path in self.paths:
                content = read_secret(path)
                now = time.monotonic()
                if content is not None and content not in self.seen[path]:
                    with self.lock:
                        self.seen[path][content] = now
            time.sleep(POLL_FILES)

    def first_seen(self, path, content):
        with self.lock:
            return self.seen[path].get(content)

    def stop(self):
        self.halt.set()
        self.join(timeout=5)


def read_secret(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        return os.read(fd, 4096).decode("utf-8", "replace").strip()
    finally:
        os.close(fd)


# --- the daemons ---------------------------------------------------------------------------------

class Daemon:
    def __init__(self, fleet, host, candidate):
        self.fleet = fleet
        self.host = host
        self.candidate = candidate
        root = os.path.join(fleet.work, "daemons", host)
        self.state_dir = os.path.join(root, "state")
        self.out_dir = os.path.join(root, "out")
        self.run_dir = os.path.join(root, "run")
        self.config = os.path.join(root, "rotator.toml")
        self.log = os.path.join(root, "daemon.log")
        self.socket_path = os.path.join(root, "notify.sock")
        os.makedirs(self.run_dir, mode=0o700)
        self.process = None
        self.listener = None
        self.write_config()

    def write_config(self):
        fleet = self.fleet
        lines = [
            "[genauth]",
            'host = "%s"' % fleet.mock.base,
            'access_key_id = "%s"' % ACCESS_KEY_ID,
            'access_key_secret = "%s"' % ACCESS_KEY_SECRET,
            "requests_per_second = 1000",
            'request_timeout = "%ds"' % REQUEST_TIMEOUT,
            "",
            "[defaults]",
            'state_directory = "%s"' % self.state_dir,
            'directory = "%s"' % self.out_dir,
            'mode = "0600"',
            'first_start = "fetch"',
            "",
            "[cluster]",
            "endpoints = [%s]" % ", ".join('"%s"' % e for e in fleet.etcd.endpoints),
            'prefix = "%s"' % PREFIX,
            'lease_ttl = "%ds"' % LEASE_TTL,
            'host = "%s"' % self.host,
            'ca_file = "%s"' % fleet.etcd.tls["ca"],
            'cert_file = "%s"' % fleet.etcd.tls["cert"],
            'key_file = "%s"' % fleet.etcd.tls["key"],
            'user = "%s"' % ETCD_USER,
            'password_file = "%s"' % fleet.etcd_password_file,
            "",
        ]
        for (app_id, name), interval in ((APP_A, "1h"), (APP_B, "%ds" % B_INTERVAL if self.candidate else "1h")):
            lines += ["[[app]]", 'id = "%s"' % app_id, 'name = "%s"' % name,
                      'action = "%s"' % ("rotate" if self.candidate else "follow"), 'interval = "%s"' % interval, ""]
        fd = os.open(self.config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines))

    def env(self, notify=False):
        env = {key: value for key, value in os.environ.items()
               if key not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM", "CREDENTIALS_DIRECTORY",
                              "GENAUTH_ACCESS_KEY_SECRET", "SECRET_ROTATOR_CONFIG", "LISTEN_FDS", "LISTEN_PID",
                              "INVOCATION_ID")}
        env["RUNTIME_DIRECTORY"] = self.run_dir  # app locks live here: one per daemon, as on separate hosts
        env.update(MINIMUM_INTERVAL_ENV)
        if notify:
            env["NOTIFY_SOCKET"] = self.socket_path
        return env

    def spawn(self):
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.listener.bind(self.socket_path)
        with open(self.log, "ab") as out:
            self.started = time.monotonic()
            self.process = spawn([os.path.join(self.fleet.bin, "secret-rotator"), "run", "--config", self.config],
                                 env=self.env(notify=True), stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL)

    def wait_ready(self, timeout=60.0):
        """Seconds from exec to READY=1 on NOTIFY_SOCKET."""
        deadline = self.started + timeout
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise FleetError("%s: no READY=1 within %d s: %s" % (self.host, timeout, tail(self.log)))
                if self.process.poll() is not None:
                    raise FleetError("%s exited with %d: %s" % (self.host, self.process.returncode, tail(self.log)))
                self.listener.settimeout(min(remaining, 0.2))
                try:
                    datagram = self.listener.recv(65536)
                except socket.timeout:
                    continue
                if b"READY=1" in datagram.split(b"\n"):
                    return time.monotonic() - self.started
        finally:
            self.listener.close()
            self.listener = None
            os.unlink(self.socket_path)

    def start(self, timeout=60.0):
        self.spawn()
        return self.wait_ready(timeout)

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def kill(self):
        kill_now(self.process)
        self.process = None

    def output(self, name):
        return os.path.join(self.out_dir, name)

    def log_size(self):
        try:
            return os.path.getsize(self.log)
        except FileNotFoundError:
            return 0

    def log_since(self, offset):
        with open(self.log, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace").splitlines()

    def command(self, args, timeout):
        """Runs `secret-rotator ARGS --config CFG` as this host's operator; (rc, stdout, seconds)."""
        return self.fleet.command([os.path.join(self.fleet.bin, "secret-rotator")] + args + ["--config", self.config],
                                  self.env(), timeout, "%s-%s" % (self.host, args[0]))

    def status(self, timeout=20.0):
        rc, out, _ = self.command(["status", "--json"], timeout)
        try:
            return json.loads(out)
        except ValueError:
            raise FleetError("%s: status --json exited %d without JSON: %r" % (self.host, rc, out[-300:]))

    def cluster(self):
        report = self.status()
        cluster = report.get(STATUS_CLUSTER)
        if not isinstance(cluster, dict):
            raise FleetError("%s: status --json has no %r object (keys: %s)" % (self.host, STATUS_CLUSTER, sorted(report)))
        return cluster

    def rotate(self, name, timeout=45.0):
        rc, out, seconds = self.command(["rotate", name, "--timeout", "30s"], timeout)
        if rc != 0:
            raise FleetError("%s: `rotate %s` exited %d: %s" % (self.host, name, rc, out.strip()[-300:]))
        return seconds


class Fleet:
    def __init__(self, args, work):
        self.bin = args.bin
        self.work = work
        self.args = args
        self.commands = 0
        os.makedirs(os.path.join(work, "cmd"), mode=0o700)
        self.etcd = Etcd(work)
        # The daemons' etcd password, as an operator would give it: a 0600 file ([cluster] password_file).
        self.etcd_password_file = os.path.join(work, "etcd", "password")
        fd = os.open(self.etcd_password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.etcd.user_password + "\n")
        self.mock = None
        self.recorder = None
        self.daemons = []
        self.outages = []   # (start, end) windows with etcd down: no b rotation is due there
        self.rotate_requests = 0   # `rotate a` commands run
        self.rotate_answered = 0   # ... that exited 0 (the others may still rotate later, or never)

    def command(self, argv, env, timeout, tag):
        self.commands += 1
        path = os.path.join(self.work, "cmd", "%04d-%s" % (self.commands, tag))
        start = time.monotonic()
        with open(path + ".out", "wb") as out, open(path + ".err", "wb") as err:
            process = spawn(argv, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_now(process)
            raise FleetError("%s did not finish within %d s" % (" ".join(argv[1:3]), timeout))
        children.remove(process)
        seconds = time.monotonic() - start
        with open(path + ".out", "rb") as f:
            text = f.read().decode("utf-8", "replace")
        with open(path + ".err", "rb") as f:
            text_err = f.read().decode("utf-8", "replace")
        return process.returncode, text if text.strip() else text_err, seconds

    @property
    def candidates(self):
        return [d for d in self.daemons if d.candidate]

    @property
    def followers(self):
        return [d for d in self.daemons if not d.candidate]

    def by_host(self, host):
        for daemon in self.daemons:
            if daemon.host == host:
                return daemon
        return None

    def leader(self, timeout=FAILOVER_BOUND + 10):
        """The daemon holding the election (bounded wait while nobody does)."""
        def find():
            host = self.etcd.election_leader()
            return self.by_host(host) if host else None
        daemon, _ = wait_until("an elected leader", find, timeout)
        return daemon

    def acting_leader(self, timeout):
        """Waits until the host holding the election also says `role: leader` in its status; (daemon, seconds)."""
        def agreed():
            daemon = self.by_host(self.etcd.election_leader() or "")
            if daemon is None:
                return None
            try:
                return daemon if daemon.cluster().get(ST_ROLE) == ROLE_LEADER else None
            except FleetError:
                return None
        return wait_until("a leader that knows it leads", agreed, timeout, period=0.1)

    def converged(self, daemons=None):
        """True when every output of every daemon holds the mock's current secret."""
        current = self.mock.current()
        for daemon in daemons or self.daemons:
            for app_id, name in (APP_A, APP_B):
                if read_secret(daemon.output(name)) != current[app_id][1]:
                    return False
        return True

    def divergence(self):
        current = self.mock.current()
        wrong = []
        for daemon in self.daemons:
            for app_id, name in (APP_A, APP_B):
                held = read_secret(daemon.output(name))
                if held != current[app_id][1]:
                    wrong.append("%s/%s holds %s" % (daemon.host, name, "nothing" if held is None else "an old secret"))
        return ", ".join(wrong) or "none"

    def wait_converged(self, what, timeout):
        try:
            return wait_until(what, self.converged, timeout, period=0.05)[1]
        except FleetError as error:
            raise FleetError("%s (%s)" % (error, self.divergence()))

    def check_alive(self):
        dead = [d for d in self.daemons if d.process is not None and d.process.poll() is not None]
        for daemon in dead:
            detail("%s exited with %d: %s" % (daemon.host, daemon.process.returncode, tail(daemon.log)))
        return dead


# --- scenarios -----------------------------------------------------------------------------------

def setup(fleet, args):
    start = time.monotonic()
    fleet.etcd.start_all()
    seconds = fleet.etcd.wait_serving(fleet.etcd.members, 30)
    fleet.etcd.enable_access_control()
    fleet.etcd.wait_serving(fleet.etcd.members, 30)
    detail("etcd: %d members serving in %.1f s (%s), TLS with client certificates, auth enabled: user %s, role %s "
           "readwrite on %s/ only" % (len(fleet.etcd.members), seconds, " ".join(fleet.etcd.endpoints), ETCD_USER,
                                     ETCD_ROLE, PREFIX))
    fleet.mock = Mock(fleet.bin, fleet.work, [APP_A, APP_B])
    fleet.recorder = Recorder(fleet.mock)
    fleet.recorder.start()
    for i in range(CANDIDATES):
        fleet.daemons.append(Daemon(fleet, "cand-%d" % (i + 1), True))
    for i in range(FOLLOWERS):
        fleet.daemons.append(Daemon(fleet, "foll-%d" % (i + 1), False))
    for daemon in fleet.daemons:
        daemon.spawn()
    ready = [daemon.wait_ready() for daemon in fleet.daemons]
    detail("daemons: %d candidates, %d followers; exec to READY=1 %s" % (CANDIDATES, FOLLOWERS, figures(ready)))
    leader = fleet.leader(timeout=30)
    detail("leader elected: %s (%.1f s after the first start)" % (leader.host, time.monotonic() - start))
    fleet.wait_converged("every output holds the mock's current secret", 30)

    def roles_settled():
        leaders = 0
        elected = fleet.etcd.election_leader()
        for daemon in fleet.daemons:
            cluster = daemon.cluster()
            if cluster.get(ST_LEADER) != elected:
                return False
            if daemon.candidate:
                if cluster.get(ST_ROLE) not in (ROLE_LEADER, ROLE_CANDIDATE) or not lease_held(cluster):
                    return False
                leaders += cluster.get(ST_ROLE) == ROLE_LEADER
            elif cluster.get(ST_ROLE) != ROLE_FOLLOWER or cluster.get(ST_WATCH) != WATCH_OK:
                return False
        return leaders == 1
    check("setup", True, "3 etcd members, mock, %d daemons up, one leader (%s), all outputs converged in %.1f s"
          % (len(fleet.daemons), fleet.etcd.election_leader(), time.monotonic() - start))
    # Not a reason to stop: the other scenarios do not need `status`.
    try:
        _, seconds = wait_until("one leader, other candidates `candidate`, followers `watching`", roles_settled, 30,
                                period=0.2)
        ok = check("status shows the cluster", True, "one %s, %d %s, %d followers %s, all name the elected host as "
                   "%s (%.1f s)" % (ROLE_LEADER, CANDIDATES - 1, ROLE_CANDIDATE, FOLLOWERS, WATCH_OK, ST_LEADER, seconds))
    except FleetError as error:
        ok = check("status shows the cluster", False, str(error))
    if verbose or not ok:
        dump_status(fleet.daemons)


def dump_status(daemons):
    """Each daemon's `status --json` cluster object (one line each; stops at the first without one)."""
    for daemon in daemons:
        try:
            detail("%s status cluster: %s" % (daemon.host, json.dumps(daemon.cluster(), sort_keys=True)))
        except FleetError as error:
            detail(str(error))
            break


def propagate_once(fleet, watcher, leader):
    """One `rotate a` on the leader; returns (seconds durable-on-leader -> all followers, rotate seconds)."""
    fleet.rotate_requests += 1
    seconds = leader.rotate(APP_A[1])
    fleet.rotate_answered += 1
    secret = fleet.mock.current()[APP_A[0]][1]
    paths = [leader.output(APP_A[1])] + [f.output(APP_A[1]) for f in fleet.followers]

    def all_seen():
        seen = [watcher.first_seen(path, secret) for path in paths]
        return seen if all(t is not None for t in seen) else None
    try:
        seen, _ = wait_until("the new secret of a on the leader and all followers", all_seen, 10, period=0.01)
    except FleetError:
        missing = [p.split("/daemons/")[1] for p in paths if watcher.first_seen(p, secret) is None]
        detail("not propagated within 10 s to: %s" % ", ".join(missing))
        return float("inf"), seconds
    return max(seen[1:]) - seen[0], seconds


def rotations_of_a(fleet, count, label):
    watcher = FileWatcher(d.output(APP_A[1]) for d in fleet.daemons)
    watcher.start()
    latencies, commands = [], []
    try:
        for _ in range(count):
            leader = fleet.leader()
            try:
                latency, seconds = propagate_once(fleet, watcher, leader)
            except FleetError as error:
                # Counted as never propagated; the next rotation goes on (the figures show how many).
                detail("%s: %s" % (label, error))
                latency, seconds = float("inf"), None
            latencies.append(latency)
            if seconds is not None:
                commands.append(seconds)
    finally:
        watcher.stop()
    detail("%s: `rotate a` command median %s" % (label, ms(statistics.median(commands)) if commands else "n/a"))
    return latencies


def scenario_propagation(fleet, args):
    latencies = rotations_of_a(fleet, args.rotations, "propagation")
    p99 = percentile(latencies, 0.99)
    check("propagation", len(latencies) == args.rotations and p99 <= PROPAGATION_BOUND,
          "%d rotations of a, leader's output -> all %d followers' outputs: %s (bound p99 <= %s)"
          % (len(latencies), FOLLOWERS, figures(latencies), ms(PROPAGATION_BOUND)))


def scenario_one_member(fleet, args):
    etcd = fleet.etcd
    for kind in ("a follower member", "the raft leader member"):
        raft = etcd.raft_leader()
        if raft is None:
            raise FleetError("no raft leader among the members")
        victim = raft if kind.startswith("the raft") else next(m for m in etcd.members if m is not raft)
        leader_before = fleet.leader().host
        offsets = {d.host: d.log_size() for d in fleet.candidates}
        etcd.kill(victim)
        killed_at = time.monotonic()
        detail("SIGKILL etcd %s (%s)" % (victim.name, kind))
        if victim is raft:
            # Informational: a rotation started at once meets etcd's own re-election
            # (election timeout 1 s): writes stall until the remaining members elect a leader.
            first = rotations_of_a(fleet, 1, "right after killing the raft leader")
            elected, seconds = wait_until("a new raft leader", etcd.raft_leader, 15, period=0.05)
            detail("rotation started at once: %s; etcd elected %s %.1f s after the kill"
                   % (figures(first), elected.name, time.monotonic() - killed_at))
        # The checked rotations go to a leader that knows it leads (etcd may name a host whose
        # daemon does not, e.g. an abandoned election key): the wait is a figure of its own.
        acting, _ = fleet.acting_leader(15)
        detail("%s holds the election and says %s in status %.1f s after the kill"
               % (acting.host, ROLE_LEADER, time.monotonic() - killed_at))
        latencies = rotations_of_a(fleet, args.member_rotations, "one member down")
        check("one member stopped (%s)" % kind, len(latencies) == args.member_rotations and max(latencies) <= PROPAGATION_BOUND,
              "%d rotations of a with %s down: %s (bound each <= %s)"
              % (len(latencies), victim.name, figures(latencies), ms(PROPAGATION_BOUND)))
        leader_after = fleet.etcd.election_leader()
        lost = {d.host: [l for l in d.log_since(offsets[d.host]) if EV_LEASE_LOST in l] for d in fleet.candidates}
        lost = {host: lines for host, lines in lost.items() if lines}
        check("one member stopped (%s): leader kept" % kind, leader_after == leader_before and leader_before not in lost,
              "leader %s before the kill, %s after%s" % (
                  leader_before, leader_after, "" if leader_before not in lost else
                  "; the leader logged %s: %s" % (EV_LEASE_LOST, lost[leader_before][0][:300])))
        for host, lines in sorted(lost.items()):
            if host != leader_before:
                detail("note: candidate %s logged %s %d times (its lease was not lost; etcd kept a quorum): %s"
                       % (host, EV_LEASE_LOST, len(lines), lines[0][:300]))
        etcd.start(victim)
        seconds = etcd.wait_serving(etcd.members, 30)
        detail("etcd %s restarted on its data directory, serving in %.1f s" % (victim.name, seconds))
    fleet.wait_converged("outputs converged after the member restarts", 15)


def next_due(fleet):
    """The monotonic time b is next due on the leader's schedule (last rotation + interval)."""
    last = fleet.recorder.last_rotation(APP_B[0])
    now = time.monotonic()
    if last is None:
        return now + B_INTERVAL
    due = last + B_INTERVAL
    while due < now:
        due += B_INTERVAL
    return due


def b_gaps(fleet, since, until):
    times = fleet.recorder.rotations(APP_B[0])
    window = [t for t in times if since <= t <= until]
    before = [t for t in times if t < since]
    if before:
        window = [before[-1]] + window
    gaps = []
    for a, b in zip(window, window[1:]):
        exempt = any(a < end and b > start for start, end in fleet.outages)
        if not exempt:
            gaps.append(b - a)
    return gaps


def scenario_failover(fleet, args):
    kinds = ("after a b rotation", "just before b is due", "mid-interval", "as soon as ready")
    started = time.monotonic()
    count_before = fleet.recorder.count(APP_B[0])
    failovers = []
    by_kind = {kind: [] for kind in kinds}
    phases = {kind: [] for kind in kinds}
    offsets = {d.host: d.log_size() for d in fleet.candidates}
    for i in range(args.kills):
        kind = kinds[i % len(kinds)]
        if kind == kinds[0]:
            count = fleet.recorder.count(APP_B[0])
            bound = next_due(fleet) - time.monotonic() + FAILOVER_BOUND + SLACK
            if not fleet.recorder.wait_count_above(APP_B[0], count, bound):
                detail("kill %d: no b rotation within %.1f s; killing anyway" % (i + 1, bound))
        elif kind == kinds[1]:
            due = next_due(fleet)
            if due - time.monotonic() < 0.5:
                due += B_INTERVAL
            sleep_until(due - 0.3)
        elif kind == kinds[2]:
            due = next_due(fleet)
            target = due - B_INTERVAL / 2
            if target < time.monotonic():
                target += B_INTERVAL
            sleep_until(target)
        leader = fleet.leader()
        phase = time.monotonic() - (fleet.recorder.last_rotation(APP_B[0]) or started)
        leader.kill()
        killed = time.monotonic()

        def other():
            host = fleet.etcd.election_leader()
            return host if host and host != leader.host else None
        try:
            host, seconds = wait_until("another host holding the election", other, 30, period=POLL_ELECTION)
        except FleetError:
            host, seconds = None, float("inf")
        failovers.append(seconds)
        by_kind[kind].append(seconds)
        phases[kind].append(phase)
        if verbose or seconds > FAILOVER_BOUND:
            detail("kill %d (%s, %.1f s after the last b rotation): %s -> %s in %s"
                   % (i + 1, kind, phase, leader.host, host, ms(seconds)))
        leader.start()
        if fleet.check_alive():
            raise FleetError("a daemon died during the failover loop")
    ended = time.monotonic()
    check("failover", max(failovers) <= FAILOVER_BOUND,
          "%d SIGKILLs of the leader, kill -> another host holds the election: %s (bound each <= %s)"
          % (len(failovers), figures(failovers), ms(FAILOVER_BOUND)))
    for kind in kinds:
        if by_kind[kind]:
            detail("%s (killed %.1f-%.1f s after the last b rotation): %s"
                   % (kind, min(phases[kind]), max(phases[kind]), figures(by_kind[kind])))
    hand_overs = sum(sum(EV_HAND_OVER in l for l in d.log_since(offsets[d.host])) for d in fleet.candidates)
    detail("new leaders that found an unfinished rotation and read GenAuth instead of rotating (%s): %d"
           % (EV_HAND_OVER, hand_overs))
    gaps = b_gaps(fleet, started, ended)
    rotations = fleet.recorder.count(APP_B[0]) - count_before
    elapsed = ended - started
    limit = LATE_BOUND
    doubles = [g for g in gaps if g < B_INTERVAL / 2]
    late = [g for g in gaps if g > limit]
    check("failover: b on schedule", not doubles and not late and rotations > 0,
          "%d rotations of b in %.0f s (expected about %.1f = elapsed / %d s); gaps %s "
          "(double rotation < %.0f s: %d; late > %.0f s: %d)"
          % (rotations, elapsed, elapsed / B_INTERVAL, B_INTERVAL, gap_range(gaps), B_INTERVAL / 2, len(doubles),
             limit, len(late)))
    try:
        seconds = fleet.wait_converged("every output converges after %d kills" % args.kills, 20)
        check("failover: followers converge", True,
              "every output holds the mock's current secret %.1f s after the last kill" % seconds)
    except FleetError as error:
        check("failover: followers converge", False, str(error))


def refreshes_of_b(lines):
    return [l for l in lines if EV_ROTATED in l and APP_B[0] in l and any(m in l for m in REFRESH_MESSAGES)]


def scenario_fencing(fleet, args):
    leader = fleet.leader()
    due = next_due(fleet)
    if due - time.monotonic() < 1.5:
        due += B_INTERVAL
    sleep_until(due - 1.0)
    leader = fleet.leader()
    count = fleet.recorder.count(APP_B[0])
    stopped_offset = leader.log_size()
    leader.process.send_signal(signal.SIGSTOP)
    stopped = time.monotonic()
    detail("SIGSTOP %s %.1f s before b is due" % (leader.host, due - stopped))
    try:
        def other():
            host = fleet.etcd.election_leader()
            return host if host and host != leader.host else None
        host, seconds = wait_until("another leader while %s is stopped" % leader.host, other, FAILOVER_BOUND + SLACK,
                                   period=POLL_ELECTION)
        detail("%s holds the election %s after the SIGSTOP" % (host, ms(seconds)))
        bound = due + FAILOVER_BOUND + SLACK - time.monotonic()
        rotated = fleet.recorder.wait_count_above(APP_B[0], count, max(bound, 0.1))
        new_rotation = fleet.recorder.last_rotation(APP_B[0])

        def recorder_host():
            # The record follows the refresh (written once the rotation is durable): wait for it.
            record = fleet.etcd.get(APP_B_KEY())
            try:
                host = json.loads(record).get("host") if record else None
            except ValueError:
                host = None
            return host if host not in (None, leader.host) else None
        record_host = None
        if rotated:
            try:
                record_host, _ = wait_until("%s names the new leader" % APP_B_KEY(), recorder_host, 5, period=0.05)
            except FleetError:
                record = fleet.etcd.get(APP_B_KEY())
                record_host = "still %s" % (record.decode("utf-8", "replace") if record else "no record")
        check("fencing: a new leader rotates b", rotated and record_host in [d.host for d in fleet.candidates],
              "b rotated %s after it was due, recorded by %s (stopped: %s)"
              % ("%.1f s" % (new_rotation - due) if rotated else "never", record_host, leader.host))
        sleep_until(stopped + 2 * LEASE_TTL)
    finally:
        continued_offset = leader.log_size()
        leader.process.send_signal(signal.SIGCONT)
        continued = time.monotonic()
    detail("SIGCONT %s after %.1f s stopped" % (leader.host, continued - stopped))

    def lost():
        text = leader.log_since(stopped_offset)
        return [l for l in text if EV_LEASE_LOST in l or EV_FENCED in l]
    try:
        evidence, seconds = wait_until("%s logs lease loss or fencing" % leader.host, lost, 10, period=0.1)
        check("fencing: the paused leader knows", True, "%s logged %s %.1f s after SIGCONT: %s"
              % (leader.host, "/".join(sorted({e for e in (EV_LEASE_LOST, EV_FENCED) if any(e in l for l in evidence)})),
                 seconds, evidence[0][:200]))
    except FleetError:
        check("fencing: the paused leader knows", False, "no %s or %s in %s's log within 10 s of SIGCONT"
              % (EV_LEASE_LOST, EV_FENCED, leader.host))
    # Observe until the old process's missed due time is well past and one more interval could have fired.
    sleep_until(continued + max(5.0, LEASE_TTL * 2))
    after = leader.log_since(continued_offset)
    until_leader = []
    for entry in after:
        if EV_LEADER in entry:
            break
        until_leader.append(entry)
    bad = refreshes_of_b(until_leader)
    gaps = b_gaps(fleet, stopped - B_INTERVAL, time.monotonic())
    doubles = [g for g in gaps if g < B_INTERVAL / 2]
    check("fencing: no refresh after the lease is lost", not bad and not doubles,
          "%s refreshed b %d times after SIGCONT before leading again; b rotations around the pause: %d, gaps %s"
          % (leader.host, len(bad), fleet.recorder.count(APP_B[0]) - count,
             ", ".join("%.1f s" % g for g in gaps) or "none"))
    for entry in bad:
        detail("refresh after SIGCONT: " + entry[:300])
    if leader.process.poll() is not None:
        raise FleetError("%s exited after SIGCONT: %s" % (leader.host, tail(leader.log)))


def APP_B_KEY():
    return APPS_KEY + APP_B[0]


def scenario_etcd_down(fleet, args):
    etcd = fleet.etcd
    due = next_due(fleet)
    target = due - B_INTERVAL / 2
    if target < time.monotonic():
        target += B_INTERVAL
    sleep_until(target)  # mid-interval: no refresh in flight when etcd goes
    offsets = {d.host: d.log_size() for d in fleet.daemons}
    count = fleet.recorder.count(APP_B[0])
    etcd.kill_all()
    down = time.monotonic()
    detail("SIGKILL all %d etcd members" % len(etcd.members))
    seen = {}
    bound = LEASE_TTL + 10.0

    def degraded():
        for daemon in fleet.daemons:
            if daemon.host in seen:
                continue
            cluster = daemon.cluster()
            if daemon.candidate:
                ok = cluster.get(ST_ROLE) == ROLE_NO_LEASE and cluster.get(ST_LEASE_HELD) is False
            else:
                ok = cluster.get(ST_WATCH) == WATCH_POLLING
            if ok:
                seen[daemon.host] = time.monotonic() - down
        return len(seen) == len(fleet.daemons)
    try:
        wait_until("status shows the outage", degraded, bound, period=0.2)
        ok = True
    except FleetError:
        ok = False
    dump_status([d for d in fleet.daemons if d.host not in seen])
    followers = [seen[d.host] for d in fleet.followers if d.host in seen]
    candidates = [seen[d.host] for d in fleet.candidates if d.host in seen]
    check("etcd down: followers say polling", len(followers) == FOLLOWERS,
          "%d/%d followers report watch=%s, after %s (bound %.0f s)"
          % (len(followers), FOLLOWERS, WATCH_POLLING, ", ".join("%.1f s" % s for s in sorted(followers)) or "-", bound))
    check("etcd down: candidates say no-lease", len(candidates) == CANDIDATES,
          "%d/%d candidates report role=%s %s=false, after %s (bound %.0f s)"
          % (len(candidates), CANDIDATES, ROLE_NO_LEASE, ST_LEASE_HELD,
             ", ".join("%.1f s" % s for s in sorted(candidates)) or "-", bound))
    sleep_until(down + 2 * B_INTERVAL + 1.0)
    frozen = fleet.recorder.count(APP_B[0]) - count
    check("etcd down: no rotation without a lease", frozen == 0,
          "%d rotations of b in the %.0f s etcd was down (b due every %d s)" % (frozen, time.monotonic() - down, B_INTERVAL))
    for daemon in fleet.followers:
        downs = sum(EV_WATCH_DOWN in l for l in daemon.log_since(offsets[daemon.host]))
        if downs != 1:
            detail("%s logged %s %d times during the outage (expected once)" % (daemon.host, EV_WATCH_DOWN, downs))
    logged_once = all(sum(EV_WATCH_DOWN in l for l in d.log_since(offsets[d.host])) == 1 for d in fleet.followers)
    check("etcd down: logged once", logged_once, "every follower logged %s exactly once during the outage" % EV_WATCH_DOWN
          if logged_once else "some follower did not log %s exactly once" % EV_WATCH_DOWN)

    etcd.start_all()
    up = time.monotonic()
    count = fleet.recorder.count(APP_B[0])
    recovery = 30.0
    try:
        serving = etcd.wait_serving(etcd.members, recovery)
        leader, elected = wait_until("a leader after etcd returns", lambda: fleet.etcd.election_leader(),
                                     up + recovery - time.monotonic())
        elected = time.monotonic() - up
        fleet.outages.append((down, time.monotonic()))
        rotated = fleet.recorder.wait_count_above(APP_B[0], count, max(0.1, up + recovery - time.monotonic()))
        rotated_at = time.monotonic() - up
        converged_at = None
        if rotated:
            fleet.wait_converged("all outputs converge after etcd returns", max(0.1, up + recovery - time.monotonic()))
            converged_at = time.monotonic() - up
        check("etcd back: converges without an operator", rotated,
              "after restarting the members: serving %.1f s, %s elected %.1f s, b rotated %s, all outputs converged "
              "%s (bound %.0f s)" % (serving, leader, elected, "%.1f s" % rotated_at if rotated else "never",
                                     "%.1f s" % converged_at if converged_at else "never", recovery))
    except FleetError as error:
        if not fleet.outages or fleet.outages[-1][0] != down:
            fleet.outages.append((down, time.monotonic()))
        check("etcd back: converges without an operator", False, str(error))
    try:
        def healthy():
            for daemon in fleet.daemons:
                cluster = daemon.cluster()
                if daemon.candidate and cluster.get(ST_ROLE) not in (ROLE_LEADER, ROLE_CANDIDATE):
                    return False
                if not daemon.candidate and cluster.get(ST_WATCH) != WATCH_OK:
                    return False
            return True
        wait_until("status back to normal", healthy, max(0.1, up + recovery - time.monotonic()), period=0.2)
        check("etcd back: status recovers", True, "followers %s, candidates %s/%s %.1f s after the restart (bound %.0f s)"
              % (WATCH_OK, ROLE_LEADER, ROLE_CANDIDATE, time.monotonic() - up, recovery))
    except FleetError as error:
        check("etcd back: status recovers", False, str(error))
        dump_status(fleet.daemons)
    for daemon in fleet.followers:
        ups = sum(EV_WATCH_UP in l for l in daemon.log_since(offsets[daemon.host]))
        if ups < 1:
            detail("%s never logged %s after etcd returned" % (daemon.host, EV_WATCH_UP))


def scenario_invariants(fleet, args, run_started):
    try:
        seconds = fleet.wait_converged("final convergence", 20)
        wrong_mode = []
        for daemon in fleet.daemons:
            for _, name in (APP_A, APP_B):
                mode = os.stat(daemon.output(name)).st_mode & 0o7777
                if mode != 0o600:
                    wrong_mode.append("%s/%s %04o" % (daemon.host, name, mode))
        check("outputs", not wrong_mode, "all %d outputs hold the mock's current secret (%.1f s), mode 0600%s"
              % (2 * len(fleet.daemons), seconds, (": wrong " + ", ".join(wrong_mode)) if wrong_mode else ""))
    except FleetError as error:
        check("outputs", False, str(error))
    counts = fleet.mock.current()
    rotated_a = counts[APP_A[0]][0]
    check("a rotated only on request", fleet.rotate_answered <= rotated_a <= fleet.rotate_requests,
          "the mock rotated a %d times for %d `rotate a` requests, %d of them answered with exit 0 (a failed one may "
          "rotate later or never, but at most once)" % (rotated_a, fleet.rotate_requests, fleet.rotate_answered))
    gaps = b_gaps(fleet, run_started, time.monotonic())
    doubles = [g for g in gaps if g < B_INTERVAL / 2]
    late = [g for g in gaps if g > LATE_BOUND]
    check("b over the whole run", not doubles and not late,
          "%d rotations of b, gaps %s (etcd-down windows excepted); double rotations %d, late %d"
          % (counts[APP_B[0]][0], gap_range(gaps), len(doubles), len(late)))
    secrets = fleet.mock.issued() | fleet.recorder.secrets()
    secrets = {s for s in secrets if s and len(s) >= 8}
    places = [d.log for d in fleet.daemons]
    cmd_dir = os.path.join(fleet.work, "cmd")
    places += [os.path.join(cmd_dir, name) for name in os.listdir(cmd_dir)]
    # The daemons' etcd password is ours to keep out of logs and output; etcd's own WAL may
    # hold what `user add` and authenticate requests carried, so its files are not searched for it.
    ours = set(places)
    for member in fleet.etcd.members:
        for root, _, files in os.walk(member.data_dir):
            places += [os.path.join(root, name) for name in files]
        places.append(member.log_path)
    leaks = []
    needles = [s.encode() for s in secrets]
    passwords = [fleet.etcd.user_password.encode(), fleet.etcd.root_password.encode()]
    for path in places:
        with open(path, "rb") as f:
            data = f.read()
        for needle in needles + (passwords if path in ours else []):
            if needle in data:
                leaks.append(os.path.relpath(path, fleet.work))
                break
    check("no secret leaked", not leaks, "%d issued secrets/tokens/keys searched in %d files (daemon logs, status and "
          "rotate output, etcd data and logs), and the etcd passwords in the first %d: %s"
          % (len(secrets), len(places), len(ours), ", ".join(leaks) or "none found"))
    try:
        keys = fleet.etcd.range_prefix(PREFIX)
        detail("etcd keys under %s: %s" % (PREFIX, ", ".join(sorted(keys)) or "none"))
        detail("intent records left under %s: %d" % (INTENT_KEY, sum(k.startswith(INTENT_KEY) for k in keys)))
        detail("%s = %s" % (APP_B_KEY(), keys.get(APP_B_KEY(), b"").decode("utf-8", "replace")))
    except EtcdUnavailable as error:
        detail("etcd range failed: %s" % error)


# --- an etcd-only self test (no daemon needed) -----------------------------------------------------

def etcd_selftest(fleet, args):
    etcd = fleet.etcd
    etcd.start_all()
    check("etcd start", True, "3 members serving in %.1f s" % etcd.wait_serving(etcd.members, 30))
    check("no leader yet", etcd.election_leader() is None, "election leader before any campaign: %r" % etcd.election_leader())
    lease = etcd.call("/v3/lease/grant", {"TTL": int(LEASE_TTL)})["ID"]
    answer = etcd.call("/v3/election/campaign", {"name": b64(ELECTION_NAME), "lease": lease,
                                                 "value": b64(json.dumps({"host": "selftest"}))}, timeout=5)
    check("campaign", etcd.election_leader() == "selftest", "campaign answered %s; leader %r"
          % (json.dumps(answer)[:120], etcd.election_leader()))
    _, seconds = wait_until("the lease expires", lambda: etcd.election_leader() is None, LEASE_TTL + 5, period=0.05)
    check("lease expiry ends leadership", True, "leader gone %.2f s after the campaign (TTL %d s)" % (seconds, LEASE_TTL))
    for kind in ("follower", "raft leader"):
        raft = etcd.raft_leader()
        victim = raft if kind == "raft leader" else next(m for m in etcd.members if m is not raft)
        etcd.kill(victim)
        t = time.monotonic()
        elected, seconds = wait_until("a raft leader", etcd.raft_leader, 15, period=0.05)
        rest = [m for m in etcd.members if m.alive()]
        etcd.wait_serving(rest, 15)
        check("kill %s member" % kind, True, "%s killed; raft leader %s, %d members serving %.2f s later"
              % (victim.name, elected.name, len(rest), time.monotonic() - t))
        etcd.start(victim)
        check("restart %s member" % kind, True, "%s serving again in %.1f s" % (victim.name, etcd.wait_serving(etcd.members, 30)))
    etcd.kill_all()
    check("all down", etcd.election_leader() is None and etcd.raft_leader() is None, "no member answers")
    etcd.start_all()
    check("all back", True, "3 members serving again in %.1f s" % etcd.wait_serving(etcd.members, 30))
    fleet.mock = Mock(fleet.bin, fleet.work, [APP_A, APP_B])
    fleet.recorder = Recorder(fleet.mock)
    fleet.recorder.start()
    wait_until("recorder sees the apps", lambda: fleet.recorder.count(APP_A[0]) == 0 and fleet.recorder.history, 10)
    check("mock", len(fleet.recorder.secrets()) == 2, "mock at %s, recorder holds %d secrets"
          % (fleet.mock.base, len(fleet.recorder.secrets())))


# --- main ----------------------------------------------------------------------------------------

SCENARIOS = ("propagation", "member", "failover", "fencing", "etcd-down")


def main():
    global verbose
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True, help="directory with secret-rotator and genauth-mock")
    parser.add_argument("--work", required=True)
    parser.add_argument("--rotations", type=int, default=50)
    parser.add_argument("--member-rotations", type=int, default=10)
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated subset of " + ",".join(SCENARIOS))
    parser.add_argument("--etcd-selftest", action="store_true", help="only the etcd and mock helpers, no daemon")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    verbose = args.verbose
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    only = [s for s in args.only.split(",") if s]
    unknown = set(only) - set(SCENARIOS)
    if unknown:
        parser.error("unknown scenario(s): %s" % ", ".join(sorted(unknown)))

    run_started = time.monotonic()
    fleet = Fleet(args, args.work)
    line("fleet: work directory %s, binaries %s, %d CPUs, prefix %s, lease TTL %d s, b every %d s"
         % (args.work, args.bin, os.cpu_count(), PREFIX, LEASE_TTL, B_INTERVAL))
    try:
        if args.etcd_selftest:
            etcd_selftest(fleet, args)
        else:
            try:
                setup(fleet, args)
            except FleetError as error:
                check("setup", False, str(error))
                for daemon in fleet.daemons:
                    detail("%s log: %s" % (daemon.host, tail(daemon.log, 5)))
                raise
            steps = {
                "propagation": scenario_propagation,
                "member": scenario_one_member,
                "failover": scenario_failover,
                "fencing": scenario_fencing,
                "etcd-down": scenario_etcd_down,
                "notice-owed": scenario_notice_owed,
            }
            for name in SCENARIOS:
                if name not in only:
                    continue
                line("== %s (%.0f s into the run)" % (name, time.monotonic() - run_started))
                try:
                    steps[name](fleet, args)
                except (FleetError, EtcdUnavailable) as error:
                    check(name, False, str(error))
                    restore(fleet)
            line("== invariants (%.0f s into the run)" % (time.monotonic() - run_started))
            scenario_invariants(fleet, args, run_started)
            dead = fleet.check_alive()
            check("daemons alive", not dead, "%d of %d daemons still running at the end" % (
                len(fleet.daemons) - len(dead), len(fleet.daemons)))
    except FleetError:
        pass
    finally:
        if fleet.recorder:
            fleet.recorder.halt.set()
    failed = [name for name, ok, _ in results if not ok]
    line("fleet: %d checks, %d failed%s, %.0f s" % (len(results), len(failed),
                                                     (" (" + "; ".join(failed) + ")") if failed else "",
                                                     time.monotonic() - run_started))
    if failed:
        sys.exit(1)


def restore(fleet):
    """After a failed scenario: every etcd member and daemon running again, none stopped."""
    for member in fleet.etcd.members:
        if not member.alive():
            fleet.etcd.start(member)
    for daemon in fleet.daemons:
        if daemon.alive():
            daemon.process.send_signal(signal.SIGCONT)
        else:
            if daemon.process is not None:
                detail("%s had exited with %d: %s" % (daemon.host, daemon.process.returncode, tail(daemon.log)))
                reap(daemon.process)
            try:
                daemon.start()
            except FleetError as error:
                detail(str(error))
    try:
        fleet.etcd.wait_serving(fleet.etcd.members, 30)
    except FleetError as error:
        detail(str(error))



# --- a notice owed through a long etcd outage ----------------------------------------------------

NOTICE_OUTAGE = 60.0          # all members down: longer than the old notice budget (10 tries, ~42 s)
NOTICE_BOUND = 10.0           # etcd serving again -> every follower holds GenAuth's new secret of a


def scenario_notice_owed(fleet, args):
    """All etcd members die while the leader's refresh of `a` is in flight (after its intent,
    before its notice) and stay down for NOTICE_OUTAGE: once they are back, every follower holds
    GenAuth's new secret of `a` within NOTICE_BOUND (not at its hourly poll), and the intent key
    is gone. The notice was owed, not dropped."""
    etcd = fleet.etcd
    leader = fleet.leader()
    key = INTENT_KEY + APP_A[0]
    before = fleet.mock.current()[APP_A[0]]
    stale = etcd.get(key)   # an intent a killed leader left: the new one replaces it
    # The refresh answers 3 s late: etcd dies in between, after the intent, before the notice.
    fault = json.dumps({"fault": "delay", "milliseconds": 3000, "endpoint": "refresh-application-secret",
                        "appId": APP_A[0], "count": 1}).encode()
    urllib.request.urlopen(urllib.request.Request(fleet.mock.base + "/__admin/faults", data=fault, method="POST"),
                           timeout=10).read()
    fleet.rotate_requests += 1
    with open(os.path.join(fleet.work, "cmd", "notice-owed-rotate.out"), "wb") as out:
        rotate = spawn([os.path.join(fleet.bin, "secret-rotator"), "rotate", APP_A[1], "--timeout", "30s",
                        "--config", leader.config], env=leader.env(), stdout=out, stderr=subprocess.STDOUT,
                       stdin=subprocess.DEVNULL)
    try:
        wait_until("the leader's intent for a", lambda: etcd.get(key) not in (None, stale), 20, period=0.02)
        etcd.kill_all()
        down = time.monotonic()
        detail("SIGKILL all %d etcd members while %s's refresh of a is in flight" % (len(etcd.members), leader.host))
        rotated, _ = wait_until("GenAuth rotated a", lambda: fleet.mock.current()[APP_A[0]][0] > before[0], 20)
    finally:
        reap(rotate, timeout=40)
        if rotate.returncode == 0:
            fleet.rotate_answered += 1
    secret = fleet.mock.current()[APP_A[0]][1]
    sleep_until(down + NOTICE_OUTAGE)
    behind = [d.host for d in fleet.followers if read_secret(d.output(APP_A[1])) != secret]
    detail("%d of %d followers without the new secret of a after %.0f s of outage" % (len(behind), FOLLOWERS, NOTICE_OUTAGE))
    etcd.start_all()
    up = time.monotonic()
    try:
        etcd.wait_serving(etcd.members, 30)
        serving = time.monotonic() - up

        def followers_have_it():
            return all(read_secret(d.output(APP_A[1])) == secret for d in fleet.followers)
        _, took = wait_until("every follower holds the new secret of a", followers_have_it, NOTICE_BOUND, period=0.05)
        check("notice owed: followers converge", True,
              "all %d followers on GenAuth's secret of a %.1f s after etcd served again (%.1f s after the restart; "
              "etcd down %.0f s; bound %.0f s)" % (FOLLOWERS, took, serving + took, NOTICE_OUTAGE, NOTICE_BOUND))
    except FleetError as error:
        held = ["%s: %s" % (d.host, "new" if read_secret(d.output(APP_A[1])) == secret else "old")
                for d in fleet.followers]
        check("notice owed: followers converge", False, "%s (%s)" % (error, ", ".join(held)))
    try:
        wait_until("the intent key of a deleted", lambda: etcd.get(key) is None, NOTICE_BOUND, period=0.1)
        check("notice owed: intent cleaned up", True, "%s absent after etcd's return" % key)
    except FleetError as error:
        check("notice owed: intent cleaned up", False, str(error))
    fleet.outages.append((down, time.monotonic()))


SCENARIOS = SCENARIOS + ("notice-owed",)


if __name__ == "__main__":
    try:
        main()
    finally:
        cleanup()
