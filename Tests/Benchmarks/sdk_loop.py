#!/usr/bin/env python3
"""The naive reference: a plain loop over the official GenAuth Python SDK (5.1.0).

    sdk_loop.py BASE_URL ACCESS_KEY_ID ACCESS_KEY_SECRET APPS_FILE DROP_DIR SECONDS

APPS_FILE holds "ID NAME" lines. For each app in turn (stopping after the last app or after
SECONDS, whichever comes first) it calls refresh_application_secret through
ManagementClient(host=BASE_URL) and writes the new secret to DROP_DIR/sdk-NAME with a plain
open/write/close: no temp file, no fsync, no rename. This is what a quick script would do.
Prints one JSON object: {"rotations": N, "seconds": S}. Run with the SDK venv's python.
"""
import json
import os
import sys
import time

import genauth


def main():
    if len(sys.argv) != 7:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    base, key_id, key_secret, apps_file, drop_dir, seconds = sys.argv[1:]
    limit = float(seconds)
    with open(apps_file) as f:
        apps = [line.split() for line in f if line.strip()]
    client = genauth.ManagementClient(access_key_id=key_id, access_key_secret=key_secret, host=base)
    # The first call also fetches the management token, inside the timed loop, as the
    # daemon's token fetch is inside its pass.
    start = time.monotonic()
    done = 0
    for app_id, name in apps:
        answer = client.refresh_application_secret(app_id)
        if answer.get("statusCode") != 200:
            print("refresh failed for %s: %r" % (app_id, answer.get("message")), file=sys.stderr)
            sys.exit(1)
        with open(os.path.join(drop_dir, "sdk-" + name), "w") as out:
            out.write(answer["data"]["secret"] + "\n")
        done += 1
        if time.monotonic() - start >= limit:
            break
    elapsed = time.monotonic() - start
    print(json.dumps({"rotations": done, "seconds": elapsed}))


if __name__ == "__main__":
    main()
