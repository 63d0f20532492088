#!/usr/bin/python3
"""Polls genauth-mock's admin API and records every secret each app has ever had.

The mock does not expose its history out of process, so this collector polls
GET /__admin/apps every 50 ms. Each app's record is complete when it holds
rotationCount + 1 distinct secrets (the seeded one plus one per rotation; secrets are
random 128-bit values, so they never repeat): the end-to-end test checks that, so a
missed secret makes the leak check fail instead of passing silently.

Usage: collect-mock-secrets.py ADMIN_APPS_URL OUT_JSON
Writes {"apps": {appId: {"secrets": [...], "rotationCount": N}}} atomically on every
change. Runs until killed.
"""
import json
import os
import sys
import time
import urllib.request


def main() -> None:
    url, out = sys.argv[1], sys.argv[2]
    seen: dict[str, dict] = {}
    while True:
        changed = False
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                apps = json.load(answer)["apps"]
        except (OSError, ValueError, KeyError):
            time.sleep(0.05)
            continue
        for app in apps:
            record = seen.setdefault(app["appId"], {"secrets": [], "rotationCount": 0})
            if app["secret"] and app["secret"] not in record["secrets"]:
                record["secrets"].append(app["secret"])
                changed = True
            if app["rotationCount"] != record["rotationCount"]:
                record["rotationCount"] = app["rotationCount"]
                changed = True
        if changed:
            temporary = out + ".tmp"
            with open(temporary, "w", encoding="utf-8") as file:
                json.dump({"apps": seen}, file)
            os.replace(temporary, out)
        time.sleep(0.05)


if __name__ == "__main__":
    main()
