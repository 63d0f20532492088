#!/usr/bin/env bash
# Wire-compatibility check against the official Python SDKs.
#
#   Tests/SDKConformance/run.sh <bin-dir> [output.json]
#
# Makes a venv under .build/sdk-venv with genauth==5.1.0, authing==5.1.0 and websockets
# (which the SDKs import without declaring), starts <bin-dir>/genauth-mock on a free
# loopback port, runs both SDKs' refresh/get-application-secret against it and writes their
# request logs to output.json (default .build/sdk-conformance/sdk-requests.json). The Swift
# test "SDK wire conformance" then compares our client's requests with that file when
# GENAUTH_SDK_REQUEST_LOG points at it.
set -euo pipefail

bin_dir=${1:?usage: run.sh <bin-dir> [output.json]}
repo_root=$(cd "$(dirname "$0")/../.." && pwd)
output=${2:-$repo_root/.build/sdk-conformance/sdk-requests.json}
venv=$repo_root/.build/sdk-venv
mock=$bin_dir/genauth-mock

[ -x "$mock" ] || { echo "run.sh: $mock not found; build first" >&2; exit 1; }
mkdir -p "$(dirname "$output")"

if ! "$venv/bin/python" -c 'import genauth, authing, websockets' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check genauth==5.1.0 authing==5.1.0 websockets
fi
"$venv/bin/python" - <<'PY'
import genauth, authing
assert genauth.__version__ == "5.1.0" and authing.__version__ == "5.1.0", (genauth.__version__, authing.__version__)
PY

work=$(mktemp -d)
mock_pid=
cleanup() {
    if [ -n "$mock_pid" ]; then kill "$mock_pid" 2>/dev/null || true; wait "$mock_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

"$mock" --port 0 --port-file "$work/port" >"$work/mock.out" 2>&1 &
mock_pid=$!
# Wait for the port file (written once the socket is bound), up to 30 s.
for _ in $(seq 300); do
    [ -s "$work/port" ] && break
    kill -0 "$mock_pid" 2>/dev/null || { cat "$work/mock.out" >&2; echo "run.sh: genauth-mock exited" >&2; exit 1; }
    sleep 0.1
done
[ -s "$work/port" ] || { echo "run.sh: genauth-mock did not report a port" >&2; exit 1; }
port=$(cat "$work/port")

"$venv/bin/python" "$repo_root/Tests/SDKConformance/sdk_check.py" "http://127.0.0.1:$port" "$output"
