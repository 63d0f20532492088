#!/usr/bin/env python3
"""Runs the official GenAuth and Authing Python SDKs (5.1.0) against a running genauth-mock.

For each SDK: clear the mock's request log, call refresh_application_secret and
get_application_secret through ManagementClient(host=mock), check both succeed and return
the mock's current secret (read via the admin API), and save the mock's request log.
Writes {"genauth": {"sdk":..., "requests": [...]}, "authing": {...}} to the output path.
Exits non-zero on any mismatch.
"""
import json
import sys
import urllib.request

import authing
import genauth

ACCESS_KEY_ID = "mock-access-key-id"
ACCESS_KEY_SECRET = "mock-access-key-secret"
APP_ID = "62a1b2c3d4e5f60718293a01"


def admin(base, method, path):
    req = urllib.request.Request(base + path, method=method)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read().decode("utf-8"))


def check(condition, message):
    if not condition:
        print("FAIL: " + message, file=sys.stderr)
        sys.exit(1)


def run_sdk(base, module, name):
    admin(base, "DELETE", "/__admin/requests")
    before = admin(base, "GET", "/__admin/apps/" + APP_ID)
    client = module.ManagementClient(
        access_key_id=ACCESS_KEY_ID, access_key_secret=ACCESS_KEY_SECRET, host=base
    )
    refreshed = client.refresh_application_secret(APP_ID)
    check(refreshed.get("statusCode") == 200, "%s refresh failed: %r" % (name, refreshed.get("message")))
    new_secret = refreshed["data"]["secret"]
    after = admin(base, "GET", "/__admin/apps/" + APP_ID)
    check(new_secret == after["secret"], "%s refresh returned a secret the mock does not hold" % name)
    check(after["rotationCount"] == before["rotationCount"] + 1, "%s refresh did not rotate once" % name)
    read = client.get_application_secret(APP_ID)
    check(read.get("statusCode") == 200, "%s get_application_secret failed: %r" % (name, read.get("message")))
    check(read["data"]["secret"] == after["secret"], "%s get_application_secret disagrees with the mock" % name)
    log = admin(base, "GET", "/__admin/requests")["requests"]
    paths = [r["path"] for r in log]
    check(
        paths == ["/api/v3/get-management-token", "/api/v3/refresh-application-secret", "/api/v3/get-application-secret"],
        "%s made unexpected requests: %r" % (name, paths),
    )
    print("%s %s: refresh and get_application_secret OK" % (name, module.__version__))
    return {"sdk": "%s-py-sdk:%s" % (name, module.__version__), "requests": log}


def main():
    if len(sys.argv) != 3:
        print("usage: sdk_check.py http://127.0.0.1:PORT OUTPUT.json", file=sys.stderr)
        sys.exit(2)
    base, output = sys.argv[1], sys.argv[2]
    result = {"genauth": run_sdk(base, genauth, "genauth"), "authing": run_sdk(base, authing, "authing")}
    with open(output, "w") as f:
        json.dump(result, f, indent=2, sort_keys=True)
    print("wrote " + output)


if __name__ == "__main__":
    main()
